"""What makes a representation good (chapter 01): invariance to an augmentation, class clustering."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .. import _checks as check
from ..data import normalize_batch, to_model_input
from .features import ArrayLike, _module_device, extract_features


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
    images = check.images(images)  # (N, H, W, 3)
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

    x = check.features(features, "features")
    y = check.labels(labels, len(x), "labels").long().cpu().numpy()
    x = F.normalize(x, dim=1).cpu().numpy()
    k = n_clusters or len(np.unique(y))
    sample = max_silhouette if len(x) > max_silhouette else None
    silhouette = silhouette_score(x, y, metric="cosine", sample_size=sample, random_state=seed)
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"silhouette": float(silhouette), "nmi": float(normalized_mutual_info_score(y, clusters))}


__all__ = ["invariance_ratio", "cluster_scores"]
