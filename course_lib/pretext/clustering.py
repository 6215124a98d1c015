"""Reconstruct or cluster: the autoencoder baseline and deep clustering (Caron et al., 2018).

* :class:`AutoencoderTask`: x -> f(x) -> decoder -> x̂, L = ‖x̂ - x‖²; the pretext baseline whose
  features keep what reconstructs pixels, not what names objects.
* :class:`DeepClusterTask` (DeepCluster): alternate (1) k-means on the backbone's features of the
  whole training set -> pseudo-labels, and (2) an epoch of classifying the images into their
  pseudo-labels. :func:`kmeans` is a vectorized Lloyd's algorithm in torch with k-means++ seeding
  and the paper's fix for empty clusters (:func:`split_empty_clusters`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from .common import PretextTask

__all__ = ["kmeans", "split_empty_clusters", "AutoencoderConfig", "AutoencoderTask", "DeepClusterConfig",
           "DeepClusterTask", "pca_whiten"]


# ------------------------------------------------------------------------------- k-means
def _sq_dists(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """‖x_i - c_j‖², ``(N, D)``, ``(k, D)`` -> ``(N, k)``."""
    return ((x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)).clamp_min_(0)


def kmeans_pp(x: torch.Tensor, k: int, generator=None) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007; as scikit-learn): each new centre is
    the best of 2 + ⌊ln k⌋ candidates drawn with probability ∝ D(x)², the one lowering Σ D(x)² most."""
    trials = 2 + int(math.log(k))
    idx = torch.randint(len(x), (1,), generator=generator)
    d2 = _sq_dists(x, x[idx])[:, 0]  # (N,) squared distance to the nearest centre so far
    picks = [int(idx)]
    for _ in range(k - 1):
        cand = torch.multinomial((d2 + 1e-12).cpu(), trials, replacement=True, generator=generator).to(x.device)
        new = torch.minimum(d2[:, None], _sq_dists(x, x[cand]))  # (N, trials)
        best = int(new.sum(0).argmin())
        picks.append(int(cand[best]))
        d2 = new[:, best]
    return x[picks].clone()  # (k, D)


def split_empty_clusters(x: torch.Tensor, centroids: torch.Tensor, assign: torch.Tensor, eps: float = 1 / 1024):
    """Caron et al. (2018), sec. 3.3: an empty cluster takes the centroid of the largest cluster with
    a small perturbation, c_e = c_big (1 ± ε) and c_big (1 ∓ ε) per dimension (as faiss), and the
    largest cluster's points are split between the two. Returns ``(centroids, assign)`` (new tensors)."""
    centroids, assign = centroids.clone(), assign.clone()
    k = len(centroids)
    counts = torch.bincount(assign, minlength=k)  # (k,)
    sign = 1 - 2 * (torch.arange(centroids.shape[1], device=x.device) % 2)  # (D,) +1, -1, +1, ...
    for e in torch.nonzero(counts == 0).flatten().tolist():
        big = int(counts.argmax())
        centroids[e] = centroids[big] * (1 + eps * sign)
        centroids[big] = centroids[big] * (1 - eps * sign)
        members = assign == big  # (N,)
        d = _sq_dists(x[members], centroids[[big, e]])  # (n_big, 2)
        assign[members] = torch.where(d[:, 1] < d[:, 0], e, big)
        counts = torch.bincount(assign, minlength=k)
    return centroids, assign


def kmeans(x, k: int, iters: int = 20, init: Optional[torch.Tensor] = None, generator=None):
    """Lloyd's k-means: min Σ_i ‖x_i - c_{a_i}‖² over centroids c and assignments a.

    ``x`` ``(N, D)`` float; ``init`` ``(k, D)`` starting centroids (default k-means++). Every step:
    assign each point to its nearest centroid, re-seed empty clusters
    (:func:`split_empty_clusters`), move each centroid to its points' mean; stops early when no
    assignment changes. Returns ``(centroids (k, D), assign (N,), inertia)``.
    """
    x = check.features(x, "x")
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, N] = [1, {len(x)}], got {k}")
    c = kmeans_pp(x, k, generator) if init is None else check.features(init, "init", dim=x.shape[1], n=k).clone()
    assign = None
    for _ in range(max(iters, 1)):
        new = _sq_dists(x, c).argmin(1)  # (N,)
        c, new = split_empty_clusters(x, c, new)
        counts = torch.bincount(new, minlength=k).clamp_min(1)[:, None].to(x.dtype)  # (k, 1)
        c = torch.zeros_like(c).index_add_(0, new, x) / counts  # (k, D) means
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
    assign = _sq_dists(x, c).argmin(1)
    c, assign = split_empty_clusters(x, c, assign)
    inertia = float(((x - c[assign]) ** 2).sum())
    return c, assign, inertia


def pca_whiten(h: torch.Tensor, dim: int, eps: float = 1e-5) -> torch.Tensor:
    """DeepCluster's pre-processing: PCA to ``dim`` dimensions, whitening, L2 normalisation.
    ``(N, D)`` -> ``(N, min(dim, D))`` on the unit sphere."""
    h = h - h.mean(0)  # (N, D)
    u, s, v = torch.linalg.svd(h, full_matrices=False)  # h = U S Vᵀ
    d = min(dim, h.shape[1])
    z = h @ v[:d].T / (s[:d] / (len(h) - 1) ** 0.5 + eps)  # (N, d) unit variance per component
    return F.normalize(z, dim=1)


# -------------------------------------------------------------------------- autoencoder
@dataclass
class AutoencoderConfig:
    """The autoencoder baseline: ``image_size`` = 32 (CIFAR; a multiple of 8), ``width`` = 64 (the
    decoder's last width: a Linear to (4w, S/8, S/8), then three stride-2 transposed convolutions)."""

    image_size: int = 32
    width: int = 64


class AutoencoderTask(PretextTask):
    """L = mean ‖g(f(x)) - x‖² (pixels in [0, 1]): f the ``backbone`` (encoder), g the ``decoder``.

    ``decoder``: ``(B, D)`` -> Linear -> ``(B, 4w, S/8, S/8)`` -> 3 × [ConvTranspose 4×4 stride 2,
    BN, ReLU] -> ``(B, 3, S, S)`` through a sigmoid. ``forward(x)`` returns the 0-dim loss;
    :meth:`reconstruct` gives x̂.
    """

    def __init__(self, backbone: nn.Module, config: Optional[AutoencoderConfig] = None):
        super().__init__(backbone)
        self.config = c = config or AutoencoderConfig()
        if c.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {c.image_size}")
        w, s = c.width, c.image_size // 8

        def up(c_in, c_out, last=False):
            conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
            return [conv, nn.Sigmoid()] if last else [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.decoder = nn.Sequential(nn.Linear(backbone.out_dim, 4 * w * s * s), nn.Unflatten(1, (4 * w, s, s)),
                                     nn.ReLU(inplace=True), *up(4 * w, 2 * w), *up(2 * w, w), *up(w, 3, last=True))

    def extra_repr(self) -> str:
        return repr(self.config)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x̂ = g(f(x)): ``(B, 3, S, S)`` in [0, 1] -> ``(B, 3, S, S)`` in [0, 1]."""
        S = self.config.image_size
        check.image_batch(x, 3, floating=True, hint=f" (S = {S})" if x.ndim == 4 and x.shape[-2:] != (S, S) else "")
        if tuple(x.shape[-2:]) != (S, S):
            raise ValueError(f"expected images of shape (B, 3, {S}, {S}), got {tuple(x.shape)}")
        return self.decoder(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.reconstruct(x), x)


# ------------------------------------------------------------------------ deep clustering
def fingerprint(x: torch.Tensor) -> torch.Tensor:
    """An exact int64 key per image: Σ_p u_p w_p with u the uint8 pixel values (recovered from [0, 1]
    floats ``(N, C, H, W)``) and fixed random weights w < 2³¹ (no overflow: 255·2³¹·3072 < 2⁶³)."""
    u = (x.flatten(1) * 255).round().long()  # (N, C·H·W)
    w = torch.randint(-(2**31), 2**31, (u.shape[1],), generator=torch.Generator().manual_seed(0))
    return (u * w.to(u.device)).sum(1)  # (N,)


@dataclass
class DeepClusterConfig:
    """DeepCluster's settings, scaled to 10k-50k CIFAR images.

    * ``num_clusters`` k = 100: the paper over-clusters ImageNet's 1 000 classes into 10 000; ten
      clusters a class here too.
    * ``pca_dim`` = 256 (the paper's), capped at the feature width; whitened and L2-normalised.
    * ``kmeans_iters`` = 20; ``batch_size`` = 512: images per forward pass when clustering.
    * ``balance`` = True: each image's loss weighted by 1 / |its cluster| (normalised), the
      expectation of the paper's uniform sampling over pseudo-classes: a huge cluster cannot win.
    """

    num_clusters: int = 100
    pca_dim: int = 256
    kmeans_iters: int = 20
    batch_size: int = 512
    balance: bool = True


class DeepClusterTask(PretextTask):
    """L = CE_w(W f(x_i), a_i), a = k-means(PCA(f(X))) re-computed every epoch (Caron et al., 2018).

    Parts: ``backbone`` f, ``head`` W ``Linear(D, k)``, re-initialised after every re-clustering
    (the pseudo-classes are renumbered). Buffers (so that a checkpoint carries them): ``pseudo_labels``
    ``(N,)``, ``class_weights`` ``(k,)``, and ``keys`` / ``key_index``, which find an image's
    pseudo-label from its pixels (:func:`fingerprint`): ``forward(x)`` receives only the images the
    loader shuffled. So ``forward`` accepts exactly the (un-augmented) images clustered last.

    :meth:`start` (``images``: the training set; :func:`~course_lib.pretext.train_pretext` calls it)
    clusters once before training; :meth:`on_epoch`, fit's hook, re-clusters them after every epoch.
    """

    def __init__(self, backbone: nn.Module, config: Optional[DeepClusterConfig] = None):
        super().__init__(backbone)
        self.config = c = config or DeepClusterConfig()
        self.head = nn.Linear(backbone.out_dim, c.num_clusters)
        for name in ("pseudo_labels", "keys", "key_index"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.long))
        self.register_buffer("class_weights", torch.ones(c.num_clusters))

    def extra_repr(self) -> str:
        return repr(self.config)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("pseudo_labels", "keys", "key_index"):  # (N,) buffers: take the checkpoint's N
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def cluster_features(self, x: torch.Tensor) -> torch.Tensor:
        """PCA-whitened, L2-normalised f(x) of [0, 1] images ``(N, 3, H, W)``, in eval mode, by batches."""
        was = self.training
        self.eval()
        h = torch.cat([self.encode(x[i : i + self.config.batch_size]) for i in range(0, len(x), self.config.batch_size)])
        self.train(was)
        return pca_whiten(h.float(), self.config.pca_dim)  # (N, d)

    @torch.no_grad()
    def recluster(self, images) -> dict:
        """k-means on the features of ``images`` (uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1]):
        new pseudo-labels and class weights, head re-initialised. Returns ``{"nmi": NMI(a_{t-1}, a_t),
        "largest_cluster": fraction}`` (the paper's stability curve; NaN the first time)."""
        from sklearn.metrics import normalized_mutual_info_score

        x = _as_float_images(images).to(self.class_weights.device)
        k = self.config.num_clusters
        g = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))  # follows fit's per-epoch seed
        _, assign, _ = kmeans(self.cluster_features(x), k, self.config.kmeans_iters, generator=g)
        old = self.pseudo_labels.cpu().numpy()
        nmi = normalized_mutual_info_score(old, assign.cpu().numpy()) if len(old) == len(assign) else float("nan")
        counts = torch.bincount(assign, minlength=k).float()  # (k,)
        w = torch.where(counts > 0, 1 / counts.clamp_min(1), torch.zeros_like(counts))
        w = w * len(assign) / (w[assign].sum()) if self.config.balance else torch.ones_like(w)  # E_i[w_{a_i}] = 1
        keys = fingerprint(x)
        self.keys, order = keys.sort()
        self.key_index, self.pseudo_labels, self.class_weights = order, assign, w.to(self.class_weights.dtype)
        self.head.reset_parameters()
        return {"nmi": float(nmi), "largest_cluster": float(counts.max() / len(assign))}

    def start(self, images) -> None:
        """Keep ``images`` (the training set) for :meth:`on_epoch` and cluster them once."""
        self._images = images
        self.recluster(images)

    def on_epoch(self, model=None, epoch: int = 0, history=None) -> dict:
        """fit's hook: re-cluster the images given to :meth:`start`."""
        if getattr(self, "_images", None) is None:
            raise ValueError("DeepClusterTask.on_epoch needs the training images: call task.start(images) first")
        return self.recluster(self._images)

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """Row of each image of ``x`` ``(B, 3, H, W)`` in the clustered set ``(B,)``."""
        if len(self.keys) == 0:
            raise ValueError("no pseudo-labels yet: call task.start(images) or task.recluster(images) before training")
        fp = fingerprint(x)  # (B,)
        pos = torch.searchsorted(self.keys, fp).clamp_max(len(self.keys) - 1)  # (B,)
        if not torch.equal(self.keys[pos], fp):
            raise ValueError("DeepClusterTask.forward got images that were not clustered (augmented, or another "
                             "set): feed the un-augmented images given to recluster(images)")
        return self.key_index[pos]

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True)
        y = self.pseudo_labels[self.lookup(x)]  # (B,)
        logits = self.head(self.encode(x))  # (B, k)
        loss = F.cross_entropy(logits, y, weight=self.class_weights)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean()}


def _as_float_images(images) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]; a float (N, 3, H, W) batch as it is."""
    x = check.images(images, float_nchw=True)
    return x if x.is_floating_point() else x.permute(0, 3, 1, 2).float() / 255
