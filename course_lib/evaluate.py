"""How good is a representation? Features of a frozen encoder, scored the way the papers score them.

* :func:`extract_features`: images → features ``(N, D)`` of a frozen model (eval mode, no grad);
* :func:`knn_accuracy`: weighted kNN classification (Wu et al., 2018), the SSL papers' monitor;
* :func:`linear_probe`: logistic regression on frozen features (the "linear evaluation protocol");
* :func:`recall_at_k`, :func:`map_at_r`: retrieval, as in metric learning (Musgrave et al., 2020);
* :func:`verification_roc`: same/different pairs scored by distance (ROC, AUC);
* :func:`invariance_ratio`, :func:`cluster_scores`, :func:`pixel_features`: chapter 01's measures;
* :class:`KNNMonitor`: ``monitor(model) -> {"knn_acc": ...}`` for :func:`course_lib.train.fit`.

Features and labels may be torch tensors or NumPy arrays; wrong shapes raise ``ValueError`` naming
the expected shape.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import DeviceLoader, check_images, normalize_batch, to_model_input

__all__ = [
    "extract_features", "pixel_features", "knn_accuracy", "linear_probe", "recall_at_k", "map_at_r",
    "verification_roc", "invariance_ratio", "cluster_scores", "KNNMonitor", "knn_monitor",
    "RetrievalMonitor",
]

ArrayLike = Union[torch.Tensor, np.ndarray]
_PROGRESS_MIN_N = 20_000  # extract_features shows a progress bar from this many images on


# ----------------------------------------------------------------------------------- checks
def _features(x: ArrayLike, name: str, dim: Optional[int] = None) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        expected = "(N, D)" if dim is None else f"(N, {dim}) like the training features"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
    return x.float()


def _labels(y: ArrayLike, n: int, name: str) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.shape[0] != n or y.is_floating_point():
        raise ValueError(f"{name} must be integers of shape ({n},), got {y.dtype} of shape {tuple(y.shape)}")
    return y.long()


def _module_device(model) -> torch.device:
    if isinstance(model, nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            return t.device
    return torch.device("cpu")


# ---------------------------------------------------------------------------------- features
@torch.no_grad()
def extract_features(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: ArrayLike,
    batch_size: int = 512,
    device=None,
    normalize_input: bool = True,
    progress: Optional[bool] = None,
) -> torch.Tensor:
    """h_i = f(x_i) for every image, f frozen: ``(N, D)`` float32 on the CPU.

    ``images``: uint8 ``(N, H, W, 3)`` (scaled to [0, 1] and, if ``normalize_input``, normalised with
    the CIFAR-10 statistics, exactly as :class:`~course_lib.data.DeviceLoader` feeds training) or an
    already prepared float ``(N, C, H, W)`` tensor (used as is). ``model`` is any callable
    ``(B, C, H, W) -> (B, D)``; an ``nn.Module`` runs in eval mode and gets its mode back afterwards.
    Outputs with more dimensions are flattened to ``(B, D)``. ``device`` defaults to the model's.
    A progress bar appears for ``N >= 20 000`` unless ``progress`` says otherwise.
    """
    device = torch.device(device) if device is not None else _module_device(model)
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8 and images.ndim == 4 and images.shape[-1] == 3:
        batches = (x for x, _ in DeviceLoader(images, None, batch_size, shuffle=False, drop_last=False,
                                              device=device, normalize=normalize_input))
    elif images.is_floating_point() and images.ndim == 4:
        batches = (images[i : i + batch_size].to(device, non_blocking=True) for i in range(0, len(images), batch_size))
    else:
        raise ValueError(
            "images must be uint8 of shape (N, H, W, 3) or float of shape (N, C, H, W), got "
            f"{images.dtype} of shape {tuple(images.shape)}"
        )
    if progress is None:
        progress = len(images) >= _PROGRESS_MIN_N
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(images) // batch_size), desc="features", leave=False)
    was_training = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()
    try:
        out = [model(x).flatten(1).float().cpu() for x in batches]  # [(B, D)]
    finally:
        if was_training is not None:
            model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def pixel_features(images: ArrayLike, normalize: bool = True) -> torch.Tensor:
    """The raw-pixel baseline: x ↦ vec(x), uint8 ``(N, H, W, 3)`` → float32 ``(N, 3·H·W)``.

    Scaled and normalised like the models' input (:func:`course_lib.data.to_model_input`), so
    pixels and learned features go through the same kNN / probe.
    """
    return to_model_input(check_images(images), normalize=normalize).flatten(1)  # (N, 3HW)


# --------------------------------------------------------------------------------------- kNN
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
    """ŷ = argmax_c Σ_{i ∈ N_k(x)} exp(s_i / τ) · [y_i = c]: weighted kNN (Wu et al., 2018, InstDisc).

    s_i = cos(f(x), f(x_i)) over the L2-normalised features; N_k(x) are the k most similar
    training ("bank") features. This is the kNN monitor of InstDisc, MoCo and most SSL papers
    (k = 200, τ = 0.1). ``k`` is capped at the bank size. The weights are computed as
    exp((s_i − s_1)/τ), the same vote up to a factor per query, so a small τ cannot overflow.
    Ties in the vote go to the smaller class id.

    Shapes: train ``(N, D)``, ``(N,)``; test ``(M, D)``, ``(M,)``. Returns the accuracy in [0, 1].
    The test set is processed in chunks of ``batch_size`` rows (default: about 16 M similarities
    per chunk), so 10 000 queries against a 50 000 bank fit in memory.
    """
    bank = _features(train_features, "train_features")
    bank_y = _labels(train_labels, len(bank), "train_labels")
    queries = _features(test_features, "test_features", bank.shape[1])
    query_y = _labels(test_labels, len(queries), "test_labels")
    if len(bank) == 0 or len(queries) == 0:
        raise ValueError("knn_accuracy needs at least one training and one test example")
    if temperature <= 0 or k < 1:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    device = torch.device(device) if device is not None else bank.device
    bank, bank_y = F.normalize(bank.to(device), dim=1), bank_y.to(device)  # (N, D), (N,)
    queries, query_y = queries.to(device), query_y.to(device)
    k = min(k, len(bank))
    n_classes = int(max(bank_y.max(), query_y.max())) + 1
    batch_size = batch_size or max(1, 2**24 // len(bank))
    correct = 0
    for start in range(0, len(queries), batch_size):
        q = F.normalize(queries[start : start + batch_size], dim=1)  # (B, D)
        s, idx = (q @ bank.T).topk(k, dim=1)  # (B, k) similarities, bank indices
        w = torch.exp((s - s[:, :1]) / temperature)  # (B, k)  ∝ exp(s / τ)
        votes = torch.zeros(len(q), n_classes, device=device).scatter_add_(1, bank_y[idx], w)  # (B, C)
        correct += (votes.argmax(dim=1) == query_y[start : start + batch_size]).sum().item()
    return correct / len(queries)


class KNNMonitor:
    """monitor(model) → {"knn_acc": weighted kNN accuracy (Wu et al., 2018)} of the model's encoder.

    Extracts features of ``train_images`` (the bank) and ``test_images`` (uint8 ``(N, H, W, 3)``)
    with ``model.backbone`` if the model has one, else the model itself; ``feature_fn(model, x)``
    (``x`` the normalised float batch ``(B, 3, H, W)``, returning ``(B, D)``) chooses other features,
    e.g. ``lambda m, x: m.projector(m.backbone(x))`` for those after the projection head.
    Use it as ``fit(..., monitor=KNNMonitor(...))``; it is deterministic and draws no random numbers.
    """

    def __init__(
        self,
        train_images: ArrayLike,
        train_labels: ArrayLike,
        test_images: ArrayLike,
        test_labels: ArrayLike,
        k: int = 200,
        temperature: float = 0.1,
        feature_fn: Optional[Callable] = None,
        batch_size: int = 512,
        name: str = "knn_acc",
    ):
        self.train_images, self.test_images = check_images(train_images, "train_images"), check_images(test_images, "test_images")
        self.train_labels = _labels(train_labels, len(self.train_images), "train_labels")
        self.test_labels = _labels(test_labels, len(self.test_images), "test_labels")
        self.k, self.temperature, self.feature_fn = k, temperature, feature_fn
        self.batch_size, self.name = batch_size, name

    def __call__(self, model: nn.Module) -> dict:
        device = _module_device(model)
        if self.feature_fn is None:
            encoder = getattr(model, "backbone", model)
        else:
            encoder = lambda x: self.feature_fn(model, x)  # noqa: E731
        was_training = model.training
        model.eval()
        try:
            bank = extract_features(encoder, self.train_images, self.batch_size, device=device)  # (N, D)
            test = extract_features(encoder, self.test_images, self.batch_size, device=device)  # (M, D)
        finally:
            model.train(was_training)
        acc = knn_accuracy(bank, self.train_labels, test, self.test_labels, self.k, self.temperature, device=device)
        return {self.name: acc}


def knn_monitor(train_images, train_labels, test_images, test_labels, k=200, temperature=0.1, feature_fn=None, **kwargs) -> KNNMonitor:
    """The monitor ``model -> {"knn_acc": ...}`` for :func:`course_lib.train.fit`; see :class:`KNNMonitor`."""
    return KNNMonitor(train_images, train_labels, test_images, test_labels, k, temperature, feature_fn, **kwargs)


class RetrievalMonitor:
    """monitor(model) → {"recall@1": …, "map@r": …} of the model's embeddings of a held-out set.

    The metric-learning chapters' monitor for :func:`course_lib.train.fit`: embeds ``images``
    (uint8 ``(N, H, W, 3)``) with the whole model (its output is the embedding), then
    :func:`recall_at_k` at ``ks`` and :func:`map_at_r` (Musgrave et al., 2020) with ``metric``.
    """

    def __init__(self, images: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1,),
                 metric: str = "euclidean", batch_size: int = 512):
        self.images = check_images(images, "images")
        self.labels = _labels(labels, len(self.images), "labels")
        self.ks, self.metric, self.batch_size = tuple(ks), metric, batch_size

    def __call__(self, model: nn.Module) -> dict:
        z = extract_features(model, self.images, self.batch_size, device=_module_device(model))  # (N, D)
        out = {f"recall@{k}": v for k, v in recall_at_k(z, self.labels, self.ks, metric=self.metric).items()}
        out["map@r"] = map_at_r(z, self.labels, metric=self.metric)
        return out


# ------------------------------------------------------------------------------ linear probe
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
    x = _features(train_features, "train_features")
    y = _labels(train_labels, len(x), "train_labels")
    x_test = _features(test_features, "test_features", x.shape[1])
    y_test = _labels(test_labels, len(x_test), "test_labels")
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


# --------------------------------------------------------------------------------- retrieval
def _ranked_neighbours(x: torch.Tensor, n: int, metric: str, batch_size: int):
    """For each row of x, the indices of its n nearest other rows, nearest first: yields (start, (B, n))."""
    if metric in ("cosine",):
        x = F.normalize(x, dim=1)
    elif metric not in ("euclidean", "l2"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    for start in range(0, len(x), batch_size):
        q = x[start : start + batch_size]  # (B, D)
        d = -(q @ x.T) if metric == "cosine" else torch.cdist(q, x)  # (B, N), smaller = nearer
        rows = torch.arange(len(q), device=x.device)
        d[rows, start + rows] = math.inf  # the query is not its own neighbour
        yield start, d.topk(n, dim=1, largest=False).indices  # (B, n)


def _retrieval_inputs(embeddings, labels):
    x = _features(embeddings, "embeddings")
    y = _labels(labels, len(x), "labels")
    _, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    return x, y, counts[inverse] - 1  # (N, D), (N,), same-class others per query (N,)


def recall_at_k(
    embeddings: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 2, 4, 8), metric: str = "euclidean", batch_size: int = 1024
) -> dict:
    """R@k = fraction of queries with at least one same-class item among their k nearest neighbours.

    The retrieval metric of Song et al. (2016) and the metric-learning literature: every item is a
    query against all the others (itself left out); queries whose class has no other member are
    skipped. Ranked by Euclidean distance, or cosine similarity with ``metric="cosine"``.
    Shapes: embeddings ``(N, D)``, labels ``(N,)``. Returns ``{k: fraction}`` (NaN if no query counts).
    """
    x, y, others = _retrieval_inputs(embeddings, labels)
    ks = [int(k) for k in ks]
    if min(ks, default=0) < 1:
        raise ValueError(f"every k must be >= 1, got {ks}")
    n = min(max(ks), len(x) - 1)
    if n < 1 or not (others > 0).any():
        return {k: math.nan for k in ks}
    hit = torch.zeros(len(x), n, dtype=torch.bool, device=x.device)  # hit[i, j]: a match within the first j+1
    for start, nn_idx in _ranked_neighbours(x, n, metric, batch_size):
        match = y[nn_idx] == y[start : start + len(nn_idx), None]  # (B, n)
        hit[start : start + len(nn_idx)] = match.cummax(dim=1).values
    valid = others > 0
    return {k: hit[valid, min(k, n) - 1].float().mean().item() for k in ks}


def map_at_r(embeddings: ArrayLike, labels: ArrayLike, metric: str = "euclidean", batch_size: int = 1024) -> float:
    """MAP@R = mean_i 1/R_i Σ_{j ≤ R_i} P@j · rel_j (Musgrave et al., 2020, "A metric learning reality check").

    R_i is the number of other items of query i's class; rel_j = 1 if the j-th nearest neighbour
    shares the class, P@j the precision among the first j. Query left out, singleton classes skipped,
    Euclidean unless ``metric="cosine"``. Shapes: ``(N, D)``, ``(N,)``. Returns a fraction (NaN if no query counts).
    """
    x, y, others = _retrieval_inputs(embeddings, labels)
    if not (others > 0).any():
        return math.nan
    n = int(others.max())
    ap = torch.zeros(len(x), device=x.device)
    for start, nn_idx in _ranked_neighbours(x, n, metric, batch_size):
        r = others[start : start + len(nn_idx), None]  # (B, 1)
        rel = (y[nn_idx] == y[start : start + len(nn_idx), None]).float()  # (B, n)
        rel = rel * (torch.arange(1, n + 1, device=x.device) <= r)  # only the first R_i count
        precision = rel.cumsum(1) / torch.arange(1, n + 1, device=x.device)  # (B, n) P@j
        ap[start : start + len(nn_idx)] = (precision * rel).sum(1) / r.squeeze(1).clamp_min(1)
    return ap[others > 0].mean().item()


def verification_roc(x1: ArrayLike, x2: ArrayLike, same: ArrayLike, metric: str = "euclidean") -> dict:
    """Pairs (x1_i, x2_i) called "same" when d(x1_i, x2_i) ≤ t, for every threshold t: the ROC curve.

    As in face verification (Chopra et al., 2005; Schroff et al., 2015). Shapes: ``(N, D)``,
    ``(N, D)``, ``same`` bool/0-1 ``(N,)``. Returns ``{"fpr", "tpr", "thresholds", "auc"}``:
    NumPy arrays of the curve (thresholds are distances, increasing) and the area under it.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    a = _features(x1, "x1")
    b = _features(x2, "x2", a.shape[1])
    if len(b) != len(a):
        raise ValueError(f"x2 must have shape ({len(a)}, {a.shape[1]}) like x1, got {tuple(b.shape)}")
    same = torch.as_tensor(same)
    if same.shape != (len(a),):
        raise ValueError(f"same must have shape ({len(a)},), got {tuple(same.shape)}")
    if metric == "cosine":
        d = 1 - F.cosine_similarity(a, b, dim=1)  # (N,)
    elif metric in ("euclidean", "l2"):
        d = (a - b).norm(dim=1)  # (N,)
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    score, truth = (-d).cpu().numpy(), same.cpu().numpy().astype(bool)
    fpr, tpr, thr = roc_curve(truth, score)
    return {"fpr": fpr, "tpr": tpr, "thresholds": -thr, "auc": float(roc_auc_score(truth, score))}


# ------------------------------------------------------------------- chapter 01: good features
def invariance_ratio(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: ArrayLike,
    transform: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 512,
    device=None,
    seed: int = 0,
    original: bool = False,
) -> dict:
    """ρ = E_i ‖h(t(x_i)) − h(t'(x_i))‖ / E_{i≠j} ‖h(t(x_i)) − h(t'(x_j))‖, h L2-normalised.

    Invariance to an augmentation as a distance ratio: two random augmentations t, t' of the same
    image against augmentations of different images. ρ < 1: the features move less under the
    augmentation than between images (0 = fully invariant); ρ ≈ 1: the augmentation changes them as
    much as changing the image. ``model``: a callable on normalised float batches ``(B, 3, H, W)``
    → ``(B, D)`` (a module, or e.g. ``lambda x: x.flatten(1)`` for pixels); ``images`` uint8
    ``(N, H, W, 3)``, N ≥ 2; ``transform`` a batched augmentation on [0, 1] images as
    :class:`~course_lib.data.DeviceLoader` takes. The views are drawn with seed ``seed``, leaving the
    global random state untouched. ``original=True`` compares t(x) with x itself instead of with a
    second draw t'(x): the choice for a fixed transform such as a flip (two draws would be equal).

    Returns ``{"same_image": mean distance of the N positive pairs, "different_images": mean over
    the N(N−1) other pairs, "ratio": ρ}``.
    """
    images = check_images(images)
    if len(images) < 2:
        raise ValueError(f"images must have shape (N, H, W, 3) with N >= 2, got {tuple(images.shape)}")
    device = torch.device(device) if device is not None else _module_device(model)
    v1, v2 = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            x = to_model_input(images[i : i + batch_size], device, normalize=False).contiguous()  # (B, 3, H, W) in [0, 1]
            v1.append(normalize_batch(x if original else transform(x.clone())))  # t(x), or x
            v2.append(normalize_batch(transform(x.clone())))  # t'(x)
    x1, x2 = torch.cat(v1), torch.cat(v2)  # (N, 3, H, W) each
    h1 = F.normalize(extract_features(model, x1, batch_size, device), dim=1)  # (N, D)
    h2 = F.normalize(extract_features(model, x2, batch_size, device), dim=1)  # (N, D)
    n = len(h1)
    same = (h1 - h2).norm(dim=1).mean().item()
    different = 0.0
    for i in range(0, n, batch_size):
        d = (2 - 2 * h1[i : i + batch_size] @ h2.T).clamp_min(0).sqrt()  # (B, N): ‖a − b‖ of unit vectors
        d[torch.arange(len(d)), i + torch.arange(len(d))] = 0  # leave out the same-image pairs
        different += d.sum().item() / (n * (n - 1))
    return {"same_image": same, "different_images": different, "ratio": same / different if different > 0 else math.nan}


def cluster_scores(features: ArrayLike, labels: ArrayLike, n_clusters: Optional[int] = None, seed: int = 0, max_silhouette: int = 10_000) -> dict:
    """How well the classes cluster: silhouette (Rousseeuw, 1987) and k-means NMI.

    ``silhouette``: mean of (b_i − a_i) / max(a_i, b_i) under cosine distance, a_i the mean distance
    to i's class, b_i to the nearest other class; in [−1, 1], higher is better (on a random sample
    of ``max_silhouette`` points when N is larger). ``nmi``: normalised mutual information between
    the labels and k-means clusters (k = number of classes, L2-normalised features, seeded).
    Shapes: ``(N, D)``, ``(N,)``. Returns ``{"silhouette": ..., "nmi": ...}``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score, silhouette_score

    x = _features(features, "features")
    y = _labels(labels, len(x), "labels").cpu().numpy()
    x = F.normalize(x, dim=1).cpu().numpy()
    k = n_clusters or len(np.unique(y))
    sample = max_silhouette if len(x) > max_silhouette else None
    silhouette = silhouette_score(x, y, metric="cosine", sample_size=sample, random_state=seed)
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"silhouette": float(silhouette), "nmi": float(normalized_mutual_info_score(y, clusters))}


# ---------------------------------------------------------- chapter 04: few-shot episodes
def few_shot_episodes(labels: ArrayLike, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int = 0):
    """The N-way K-shot test episodes of Vinyals et al. (2016) and Snell et al. (2017), as indices.

    Each episode draws ``n_way`` classes at random among those with at least ``k_shot + n_query``
    members, then, per class, ``k_shot`` support and ``n_query`` query items without replacement
    (support and query disjoint). ``labels`` ``(N,)``. Yields ``(support (n_way·k_shot,),
    query (n_way·n_query,))`` int64 index tensors, grouped class by class. Draws from its own
    generator seeded ``seed``: the same episodes every time, the global random state untouched.
    """
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.is_floating_point():
        raise ValueError(f"labels must be integers of shape (N,), got {y.dtype} of shape {tuple(y.shape)}")
    if min(n_way, k_shot, n_query, episodes) < 1:
        raise ValueError(f"n_way, k_shot, n_query and episodes must be >= 1, got {n_way}, {k_shot}, {n_query}, {episodes}")
    y = y.long().cpu()
    classes, counts = torch.unique(y, return_counts=True)
    eligible = classes[counts >= k_shot + n_query]  # (C',)
    if len(eligible) < n_way:
        raise ValueError(f"a {n_way}-way {k_shot}-shot episode with {n_query} queries per class needs {n_way} "
                         f"classes of >= {k_shot + n_query} items; only {len(eligible)} of the {len(classes)} have that many")
    members = [torch.nonzero(y == c).squeeze(1) for c in eligible.tolist()]  # item indices per class
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(episodes):
        picked = torch.randperm(len(eligible), generator=g)[:n_way]  # (n_way,) classes of the episode
        rows = [members[int(c)][torch.randperm(len(members[int(c)]), generator=g)[: k_shot + n_query]] for c in picked]
        rows = torch.stack(rows)  # (n_way, k_shot + n_query)
        yield rows[:, :k_shot].reshape(-1), rows[:, k_shot:].reshape(-1)


def few_shot_accuracy(
    embeddings: ArrayLike, labels: ArrayLike, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
    episodes: int = 600, seed: int = 0, normalize: bool = False,
) -> dict:
    """N-way K-shot accuracy of nearest-prototype classification (Snell et al., 2017), over episodes.

    For each episode of :func:`few_shot_episodes`: the prototypes c_k = mean of class k's support
    embeddings, each query labelled by its nearest prototype in squared Euclidean distance
    (:func:`course_lib.losses.prototypical_accuracy`). ``embeddings`` ``(N, D)`` of a frozen
    encoder, ``labels`` ``(N,)``; usually classes the encoder never saw (held-out classes).
    ``normalize=True`` L2-normalises the embeddings first (for encoders trained with a cosine loss).

    Returns ``{"accuracy": mean over the episodes, "ci95": 1.96 · std / √episodes, the half-width
    of the 95 % confidence interval the few-shot papers report}``. Chance is ``1 / n_way``.
    """
    from .losses import prototypical_accuracy

    x = _features(embeddings, "embeddings")
    y = _labels(labels, len(x), "labels")
    if normalize:
        x = F.normalize(x, dim=1)
    accs = torch.tensor([
        prototypical_accuracy(x[s], y[s], x[q], y[q])
        for s, q in few_shot_episodes(y, n_way, k_shot, n_query, episodes, seed)
    ], dtype=torch.float64)  # (episodes,)
    ci95 = 1.96 * accs.std(unbiased=True).item() / math.sqrt(len(accs)) if len(accs) > 1 else math.nan
    return {"accuracy": accs.mean().item(), "ci95": ci95}


__all__ += ["few_shot_episodes", "few_shot_accuracy"]
