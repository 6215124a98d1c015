"""Classifiers on frozen features: the weighted kNN monitor (Wu et al., 2018) and the linear probe."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from .features import ArrayLike


def knn_predict(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: Optional[int] = None,
    device=None,
) -> torch.Tensor:
    """ŷ = argmax_c Σ_{i ∈ N_k(x)} exp(s_i / τ) · [y_i = c]: weighted kNN (Wu et al., 2018, InstDisc).

    s_i = cos(f(x), f(x_i)) over the L2-normalised features; N_k(x) are the k most similar
    training ("bank") features. This is the kNN monitor of InstDisc, MoCo and most SSL papers
    (k = 200, τ = 0.1). ``k`` is capped at the bank size. The weights are computed as
    exp((s_i − s_1)/τ), the same vote up to a factor per query, so a small τ cannot overflow.
    Ties in the vote go to the smaller class id.

    Shapes: train ``(N, D)``, ``(N,)``; test ``(M, D)``. Returns the predicted classes ``(M,)`` int64
    on the CPU. The test set is processed in chunks of ``batch_size`` rows (default: about 16 M
    similarities per chunk), so 10 000 queries against a 50 000 bank fit in memory.
    """
    bank = check.features(train_features, "train_features")
    bank_y = check.labels(train_labels, len(bank), "train_labels").long()
    queries = check.features(test_features, "test_features", bank.shape[1])
    if len(bank) == 0 or len(queries) == 0:
        raise ValueError("the kNN classifier needs at least one training and one test example")
    if temperature <= 0 or k < 1:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    device = torch.device(device) if device is not None else bank.device
    bank, bank_y, queries = F.normalize(bank.to(device), dim=1), bank_y.to(device), queries.to(device)  # (N, D), (N,)
    k = min(k, len(bank))
    n_classes = int(bank_y.max()) + 1
    batch_size = batch_size or max(1, 2**24 // len(bank))
    predictions = []
    for start in range(0, len(queries), batch_size):
        q = F.normalize(queries[start : start + batch_size], dim=1)  # (B, D)
        s, idx = (q @ bank.T).topk(k, dim=1)  # (B, k) similarities, bank indices
        w = torch.exp((s - s[:, :1]) / temperature)  # (B, k)  ∝ exp(s / τ)
        votes = torch.zeros(len(q), n_classes, device=device).scatter_add_(1, bank_y[idx], w)  # (B, C)
        predictions.append(votes.argmax(dim=1).cpu())
    return torch.cat(predictions)


def knn_accuracy(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: Optional[int] = None,
    device=None,
) -> float:
    """The fraction of test examples whose weighted-kNN vote (:func:`knn_predict`, Wu et al., 2018)
    is their label: a fraction in [0, 1]. Shapes: train ``(N, D)``, ``(N,)``; test ``(M, D)``, ``(M,)``.
    """
    queries = check.features(test_features, "test_features")
    query_y = check.labels(test_labels, len(queries), "test_labels").long().cpu()
    predicted = knn_predict(train_features, train_labels, queries, k, temperature, batch_size, device)
    return (predicted == query_y).double().mean().item()


def linear_probe(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    weight_decay: float = 1e-4,
    max_iter: int = 300,
    device=None,
    return_classifier: bool = False,
):
    """min_{W,b} 1/N Σ_i CE(W x̂_i + b, y_i) + λ/2 ‖W‖²: the linear evaluation protocol.

    Multinomial logistic regression on frozen features (as in Zhang et al., 2016; Chen et al.,
    2020), each feature standardised with the training mean and std (x̂). Solved full batch with
    L-BFGS from zero weights, so it is deterministic and runs on the GPU for 50 000 × 512.
    λ = ``weight_decay`` matches scikit-learn's ``LogisticRegression(C=1 / (λ N))``.

    Shapes: train ``(N, D)``, ``(N,)``; test ``(M, D)``, ``(M,)``. Returns the test accuracy in
    [0, 1]; with ``return_classifier=True`` returns ``(accuracy, linear)`` where ``linear`` is an
    ``nn.Linear(D, C)`` on the *raw* features (the standardisation folded into it).
    """
    x = check.features(train_features, "train_features")
    y = check.labels(train_labels, len(x), "train_labels").long()
    x_test = check.features(test_features, "test_features", x.shape[1])
    y_test = check.labels(test_labels, len(x_test), "test_labels").long()
    device = torch.device(device) if device is not None else x.device
    x, y, x_test, y_test = x.to(device), y.to(device), x_test.to(device), y_test.to(device)
    n_classes = int(max(y.max(), y_test.max())) + 1
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)  # (D,), (D,)
    x_hat = (x - mean) / std  # (N, D)
    W = torch.zeros(n_classes, x.shape[1], device=device, requires_grad=True)  # (C, D)
    b = torch.zeros(n_classes, device=device, requires_grad=True)  # (C,)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-6,
                            tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x_hat @ W.T + b, y) + 0.5 * weight_decay * W.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    linear = nn.Linear(x.shape[1], n_classes).to(device)
    with torch.no_grad():
        linear.weight.copy_(W / std)  # W x̂ + b = (W / σ) x + (b − (W / σ) μ)
        linear.bias.copy_(b - (W / std) @ mean)
        acc = (linear(x_test).argmax(1) == y_test).float().mean().item()
    return (acc, linear) if return_classifier else acc


__all__ = ["knn_predict", "knn_accuracy", "linear_probe", "frozen_scores"]


def frozen_scores(encoder, train_images, train_labels, test_images, test_labels, normalize_input: bool = True,
                  k: int = 200, temperature: float = 0.1) -> dict:
    """``{"kNN": ..., "linear probe": ...}`` of a frozen encoder: the two numbers every chapter reports.

    ``encoder``: ``(B, C, H, W) -> (B, D)`` (a module or a callable such as a pretext task's
    ``encode``); images uint8 ``(N, H, W, 3)``, fed as :func:`extract_features` does (CIFAR-normalised
    unless ``normalize_input=False``, then in [0, 1]). kNN with ``k``/``temperature`` over the
    training features as the bank; the linear probe of :func:`linear_probe`.
    """
    from .features import extract_features

    h_train = extract_features(encoder, train_images, normalize_input=normalize_input)  # (N, D)
    h_test = extract_features(encoder, test_images, normalize_input=normalize_input)    # (M, D)
    return {"kNN": knn_accuracy(h_train, train_labels, h_test, test_labels, k=k, temperature=temperature),
            "linear probe": linear_probe(h_train, train_labels, h_test, test_labels)}
