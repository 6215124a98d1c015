"""Steps: what one batch costs. ``step(model, batch) -> loss`` (a 0-dim tensor, or a dict with
``"loss"`` and other scalars to log), one function or factory per training objective of the course.
:func:`course_lib.train.fit` calls the step, then the optimizer.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["supervised_step", "two_view_step", "pair_step", "embedding_step", "mined_triplet_step",
           "head_step", "prototypical_step", "triplet_ce_step", "npair_step"]

Loss = Union[torch.Tensor, dict]


def supervised_step(model: nn.Module, batch) -> torch.Tensor:
    """L = CE(model(x), y): supervised classification; batch ``(x (B, 3, H, W), y (B,))``."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def two_view_step(model: nn.Module, batch) -> Loss:
    """L = model(x1, x2): self-supervised methods whose forward takes two views and returns the loss.

    batch ``((x1, x2), y)`` as :class:`~course_lib.data.DeviceLoader` gives with ``n_views=2``;
    the labels are not used.
    """
    (x1, x2), _ = batch
    return model(x1, x2)


def pair_step(loss_fn: Callable, **kwargs) -> Callable:
    """Step for a Siamese network on pairs: ``L = loss_fn(f(x1), f(x2), same, **kwargs)``.

    batch ``(x1 (B, 3, H, W), x2 (B, 3, H, W), same (B,))`` as a DataLoader over
    :class:`~course_lib.data.PairDataset` gives; both branches share the weights of ``model``.
    E.g. ``pair_step(contrastive_loss, margin=1.0)``.
    """

    def step(model: nn.Module, batch) -> torch.Tensor:
        x1, x2, same = batch
        z = model(torch.cat([x1, x2]))  # one pass through the shared branch: (2B, D)
        return loss_fn(z[: len(x1)], z[len(x1):], same, **kwargs)

    return step


def embedding_step(loss_fn: Callable, **kwargs) -> Callable:
    """Step for a loss on a labelled batch of embeddings: ``L = loss_fn(f(x), y, **kwargs)``.

    batch ``(x (B, 3, H, W), y (B,))``, e.g. from a DeviceLoader with a
    :class:`~course_lib.data.PKSampler`. E.g. ``embedding_step(batch_hard_triplet_loss, margin=0.2)``.
    """

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return loss_fn(model(x), y, **kwargs)

    return step


def mined_triplet_step(strategy: str, margin: float = 0.2, squared: bool = False) -> Callable:
    """Step for distance → miner → loss → reduction (FaceNet-style training with a chosen miner):
    mine ``(a, p, n)`` with :func:`course_lib.mining.mine_triplets` on the detached embeddings,
    then the mean triplet loss over those triplets. ``strategy="random"`` draws as many random valid
    triplets as the batch has anchors (the baseline). Logs the number of mined triplets too.
    """
    from ..losses import triplet_loss_from_indices
    from ..mining import mine_triplets, random_triplets

    def step(model: nn.Module, batch) -> dict:
        x, y = batch
        z = model(x)  # (B, D)
        if strategy == "random":
            a, p, n = random_triplets(y, len(y))
        else:
            a, p, n = mine_triplets(z.detach(), y, strategy=strategy, margin=margin, squared=squared)
        loss = triplet_loss_from_indices(z, a, p, n, margin=margin, squared=squared)
        return {"loss": loss, "triplets": float(len(a))}

    return step


def head_step(center_weight: float = 0.0) -> Callable:
    """Step for an :class:`~course_lib.models.EmbeddingClassifier`:
    ``L = CE(head(f(x), y), y) + λ_c · L_center`` (Wen et al., 2016, for the second term).

    The head adds its margin to the target logit (CosFace/ArcFace) or none (softmax); the centre
    term is used when ``center_weight > 0`` and the model has ``centers``. batch ``(x, y)``.
    """
    def step(model: nn.Module, batch) -> dict:
        x, y = batch
        z = model(x)  # (B, D)
        ce = F.cross_entropy(model.head(z, y), y)
        if center_weight > 0 and getattr(model, "centers", None) is not None:
            center = model.centers(z, y)
            return {"loss": ce + center_weight * center, "ce": ce, "center": center}
        return ce

    return step


def triplet_ce_step(margin: float = 0.2, weight: float = 1.0) -> Callable:
    """Step for triplet + cross-entropy on an :class:`~course_lib.models.EmbeddingClassifier`:
    ``L = L_batch-hard(f(x), y) + weight · CE(head(f(x)), y)``
    (:func:`~course_lib.losses.triplet_ce_loss`). batch ``(x, y)`` from PK batches."""
    from ..losses import triplet_ce_loss

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        z = model(x)  # (B, D)
        return triplet_ce_loss(z, model.head(z, y), y, margin=margin, weight=weight)

    return step


def npair_step() -> Callable:
    """Step for the multi-class N-pair loss (Sohn, 2016) on PK batches with K = 2: of each class's
    two images the first is the anchor, the second its positive, and the other classes' positives
    are the negatives (:func:`~course_lib.losses.npair_loss`). batch ``(x, y)``, grouped by class."""
    from ..losses import npair_loss

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        if len(y) % 2 or not bool((y[0::2] == y[1::2]).all()):
            raise ValueError("npair_step needs PK batches with k=2 (two images of each class, adjacent)")
        z = model(x)  # (2P, D)
        return npair_loss(z[0::2], z[1::2])

    return step


def prototypical_step(n_support: int) -> Callable:
    """Step for prototypical networks (Snell et al., 2017) on episodes from a
    :class:`~course_lib.data.PKSampler`: each batch is P classes × K images, grouped by class; the
    first ``n_support`` images of each class are the support set, the other K − n_support the
    queries, and the loss is :func:`~course_lib.losses.prototypical_loss` (P-way, n_support-shot).
    """
    from ..losses import prototypical_loss

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        z = model(x)  # (P·K, D), class by class
        labels = torch.unique_consecutive(y)  # (P,)
        z = z.view(len(labels), -1, z.shape[-1])  # (P, K, D)
        y = y.view(len(labels), -1)  # (P, K)
        if z.shape[1] <= n_support:
            raise ValueError(f"episodes need K > n_support={n_support} images a class, got K={z.shape[1]}")
        support, query = z[:, :n_support], z[:, n_support:]  # (P, S, D), (P, Q, D)
        return prototypical_loss(support.reshape(-1, z.shape[-1]), y[:, :n_support].reshape(-1),
                                 query.reshape(-1, z.shape[-1]), y[:, n_support:].reshape(-1))

    return step
