"""Colorization as classification (Zhang, Isola & Efros, 2016): predict a* b* from L*.

Colours are ambiguous (a car may be red or blue), so regressing a*b* with L2 averages the modes
into grey. Zhang et al. instead quantize the a*b* plane into bins of grid size 10, keep the Q bins
that are in the sRGB gamut and used by the training images (313 on ImageNet), and predict a
distribution over them per pixel, trained with a cross-entropy whose weights favour rare colours
(class rebalancing). A colour is read back from the distribution by its *annealed mean*.

L*a*b* comes from :func:`course_lib.color.rgb_to_lab` / :func:`~course_lib.color.lab_to_rgb`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from ..color import lab_to_rgb, rgb_to_lab
from .common import PretextTask
from .inpainting import build_decoder, feature_map

__all__ = ["AB_MAX", "ab_histogram", "grid_centres", "in_gamut", "ab_bins", "quantize_ab", "soft_encode",
           "bin_counts", "rebalancing_weights", "annealed_mean", "ColorizationConfig", "ColorizationTask",
           "colorize"]

#: The a*b* plane the grid covers: centres ``grid · k`` with ``|grid · k| <= AB_MAX`` (sRGB's a* lies
#: in about [-86, 98], b* in [-108, 95]).
AB_MAX = 110.0


def _as_rgb(images) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` or float ``(N, 3, H, W)`` in [0, 1] -> float ``(N, 3, H, W)``."""
    x = check.images(images, float_nchw=True)
    return x.permute(0, 3, 1, 2).float() / 255.0 if x.dtype == torch.uint8 else check.image_batch(x, 3)


def _ab_pixels(images, chunk: int = 256):
    """The a*b* of every pixel, ``(n_pixels, 2)`` per chunk of ``chunk`` images (a generator)."""
    x = _as_rgb(images)
    for i in range(0, len(x), chunk):
        yield rgb_to_lab(x[i : i + chunk])[:, 1:].permute(0, 2, 3, 1).reshape(-1, 2)  # (n, 2)


def grid_centres(grid: float = 10.0) -> torch.Tensor:
    """Every cell centre of the a*b* grid: ``(K·K, 2)``, ``K = 2·floor(AB_MAX/grid) + 1``, a* major."""
    r = int(AB_MAX // grid)
    axis = torch.arange(-r, r + 1, dtype=torch.float64) * grid  # (K,)
    return torch.cartesian_prod(axis, axis).float()  # (K·K, 2)


def ab_histogram(images, grid: float = 10.0) -> torch.Tensor:
    """Pixel counts per a*b* grid cell (each pixel in its nearest cell centre): ``(K, K)`` int64,
    rows a*, columns b*, in the order of :func:`grid_centres`. ``images``: uint8 ``(N, H, W, 3)`` or
    float ``(N, 3, H, W)`` in [0, 1]."""
    r = int(AB_MAX // grid)
    k = 2 * r + 1
    counts = torch.zeros(k * k, dtype=torch.long)
    for ab in _ab_pixels(images):
        idx = (torch.round(ab / grid).long() + r).clamp(0, k - 1)  # (n, 2)
        counts += torch.bincount((idx[:, 0] * k + idx[:, 1]).cpu(), minlength=k * k)
    return counts.view(k, k)


def in_gamut(ab: torch.Tensor, l_steps: int = 1001, eps: float = 1e-6) -> torch.Tensor:
    """True where ``(L, a, b)`` is a valid sRGB colour (each channel in [0, 1] before clipping) for
    some L on ``l_steps`` levels of [0, 100]. ``ab`` ``(Q, 2)`` -> ``(Q,)`` bool."""
    ab = check.matrix(ab, "ab", cols=2).double()
    L = torch.linspace(0.0, 100.0, l_steps, dtype=torch.float64)
    lab = torch.stack([L[:, None].expand(-1, len(ab)), ab[None, :, 0].expand(l_steps, -1),
                       ab[None, :, 1].expand(l_steps, -1)])[None]  # (1, 3, l_steps, Q)
    rgb = lab_to_rgb(lab, clip=False)[0]  # (3, l_steps, Q)
    ok = ((rgb >= -eps) & (rgb <= 1 + eps)).all(dim=0)  # (l_steps, Q)
    return ok.any(dim=0)


def ab_bins(source=None, grid: float = 10.0, min_count: int = 1) -> torch.Tensor:
    """The Q quantized a*b* bins of Zhang et al. (2016, Sec. 2.1): ``(Q, 2)`` float32 centres.

    A grid cell is kept if its centre is in the sRGB gamut (:func:`in_gamut`) and, when ``source``
    is given, at least ``min_count`` pixels of it fall in the cell. ``source``: images (uint8
    ``(N, H, W, 3)`` or float ``(N, 3, H, W)`` in [0, 1]), a ``(K, K)`` :func:`ab_histogram`, or None
    (the gamut alone). Grid 10: 229 cells are in gamut; CIFAR-10's 50 000 training images use 226
    of them (ImageNet: 313, counted by the paper with its own gamut test).
    """
    centres = grid_centres(grid)  # (K·K, 2)
    keep = in_gamut(centres)
    if source is not None:
        hist = check.tensor(source)
        k = int(round(len(centres) ** 0.5))
        if not (hist.ndim == 2 and tuple(hist.shape) == (k, k) and not hist.is_floating_point()):
            hist = ab_histogram(source, grid)
        keep &= hist.reshape(-1).cpu() >= min_count
    return centres[keep]


def _sq_distances(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """‖ab − c_q‖² for a*b* ``(B, 2, H, W)`` and bins ``(Q, 2)`` -> ``(B, H, W, Q)``."""
    check.image_batch(ab, 2, "ab", floating=True)
    check.matrix(bins, "bins", cols=2)
    v = ab.permute(0, 2, 3, 1).float()  # (B, H, W, 2)
    c = bins.to(v)
    return (v.pow(2).sum(-1, keepdim=True) - 2 * v @ c.T + c.pow(2).sum(-1)).clamp_min(0.0)


def quantize_ab(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """q(Y) = argmin_q ‖Y_hw − c_q‖: the nearest bin of every pixel (the hard encoding).

    ``ab`` ``(B, 2, H, W)``, ``bins`` ``(Q, 2)`` -> bin ids ``(B, H, W)`` int64.
    """
    return _sq_distances(ab, bins).argmin(dim=-1)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, k: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Z = H⁻¹(Y): the paper's soft encoding, the k = 5 nearest bins weighted by a Gaussian of
    σ = 5 on their distance, normalised to sum to 1 (Zhang et al., 2016, Sec. 2.1).

    ``ab`` ``(B, 2, H, W)``, ``bins`` ``(Q, 2)`` -> ``(B, Q, H, W)``.
    """
    d2 = _sq_distances(ab, bins)  # (B, H, W, Q)
    near, idx = d2.topk(min(k, d2.shape[-1]), dim=-1, largest=False)  # (B, H, W, k)
    w = torch.softmax(-near / (2 * sigma**2), dim=-1)  # Gaussian weights, normalised
    z = torch.zeros_like(d2).scatter_(-1, idx, w)  # (B, H, W, Q)
    return z.permute(0, 3, 1, 2)


def bin_counts(images, bins: torch.Tensor, grid: Optional[float] = None) -> torch.Tensor:
    """How many pixels of ``images`` have each bin as their nearest: ``(Q,)`` int64.

    With ``grid`` (``bins`` a subset of :func:`grid_centres`) a pixel in a kept cell is counted for
    that cell's bin directly (its own centre is the nearest grid point) and only the others are
    searched: the same counts, several times faster.
    """
    counts = torch.zeros(len(bins), dtype=torch.long)
    if grid is not None:
        r = int(AB_MAX // grid)
        k = 2 * r + 1
        cell_of_bin = ((torch.round(bins.double() / grid).long() + r) * torch.tensor([k, 1])).sum(1)  # (Q,)
        lut = torch.full((k * k,), -1, dtype=torch.long)
        lut[cell_of_bin] = torch.arange(len(bins))
    for ab in _ab_pixels(images, chunk=64):
        q = torch.full((len(ab),), -1, dtype=torch.long)
        if grid is not None:
            idx = (torch.round(ab / grid).long() + r).clamp(0, k - 1)  # (n, 2)
            q = lut[(idx[:, 0] * k + idx[:, 1]).cpu()]
        rest = q < 0
        q[rest] = quantize_ab(ab[rest.to(ab.device)].T.reshape(1, 2, 1, -1), bins).reshape(-1).cpu()
        counts += torch.bincount(q, minlength=len(bins))
    return counts


def rebalancing_weights(counts, lam: float = 0.5, sigma: float = 5.0, bins: Optional[torch.Tensor] = None) -> torch.Tensor:
    """w ∝ ((1 − λ) p̃ + λ / Q)⁻¹, Σ_q p_q w_q = 1: the class-rebalancing weights (Zhang et al., Eq. 4).

    ``counts`` ``(Q,)`` pixels per bin give the empirical p; p̃ is p smoothed by a Gaussian of
    ``sigma`` (a*b* units) over the bin centres ``bins`` ``(Q, 2)`` (needed when ``sigma > 0``),
    mixed with the uniform distribution by λ = ``lam``. The weights are scaled so that their
    expectation under the empirical p is 1 (the paper writes it under p̃; the two differ only by
    the smoothing), so the weighted loss keeps the scale of the plain cross-entropy.
    Returns ``(Q,)`` float32.
    """
    n = check.tensor(counts).double().reshape(-1)
    if n.sum() <= 0 or (n < 0).any():
        raise ValueError("expected counts of shape (Q,): non-negative, not all zero")
    p = n / n.sum()  # (Q,)
    if sigma > 0:
        if bins is None:
            raise ValueError("rebalancing_weights needs the bin centres bins=(Q, 2) to smooth with sigma > 0")
        c = check.matrix(bins, "bins", rows=len(n), cols=2).double()
        kernel = torch.exp(-torch.cdist(c, c).pow(2) / (2 * sigma**2))  # (Q, Q)
        p_smooth = kernel @ p
        p_smooth = p_smooth / p_smooth.sum()
    else:
        p_smooth = p
    w = 1.0 / ((1 - lam) * p_smooth + lam / len(n))
    return (w / (p * w).sum()).float()


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, T: float = 0.38) -> torch.Tensor:
    """H(Z) = E[f_T(Z)], f_T(z) = exp(log z / T) / Σ_q exp(log z_q / T): the annealed mean (Sec. 2.3).

    T = 1 is the mean of the predicted distribution (desaturated), T -> 0 its mode (vivid but
    patchy); the paper picks T = 0.38. ``logits`` ``(B, Q, H, W)``, ``bins`` ``(Q, 2)`` -> a*b*
    ``(B, 2, H, W)``. Since z = softmax(logits), f_T(z) = softmax(logits / T).
    """
    check.image_batch(logits, len(bins), "logits", floating=True)
    if T <= 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    f = torch.softmax(logits.float() / T, dim=1)  # (B, Q, H, W)
    return torch.einsum("bqhw,qc->bchw", f, bins.to(f))


# ---------------------------------------------------------------------------------- the task
@dataclass
class ColorizationConfig:
    """Zhang et al.'s settings, for 32x32 CIFAR.

    * ``grid`` = 10, ``min_count`` = 1: the paper's grid; a bin is kept when in gamut and used by
      at least ``min_count`` training pixels (used by :meth:`ColorizationTask.from_images`).
    * ``lam`` = 0.5, ``sigma`` = 5: rebalancing (λ = 1/2, the smoothing Gaussian's σ).
    * ``soft_encode`` = False: hard (nearest-bin) targets; True: the paper's soft encoding (5
      nearest bins, σ = 5), slower (a (B, Q, H, W) target).
    * ``T`` = 0.38: the annealed mean's temperature for :func:`colorize`.
    * ``stride`` = 2: the decoder predicts at 1/``stride`` resolution (16x16), against a*b* targets
      average-pooled to it; :func:`colorize` upsamples the a*b* back. The paper predicts at 1/4
      (56x56 of 224x224); 1/4 of 32x32 (8x8) is too coarse for the figures, 1/1 is 3x slower.
    * ``image_size`` = 32: the size the decoder is built for.
    """

    grid: float = 10.0
    min_count: int = 1
    lam: float = 0.5
    sigma: float = 5.0
    soft_encode: bool = False
    T: float = 0.38
    stride: int = 2
    image_size: int = 32


class ColorizationTask(PretextTask):
    """L = −Σ_hw v(Z_hw) Σ_q Z_hwq log Ẑ_hwq / (H W): class-rebalanced CE over Q a*b* bins (Eq. 2).

    Parts: ``backbone`` (fed L* only: ``L/50 − 1`` in [−1, 1], replicated to the backbone's
    ``in_channels``, 3 for the default SmallConvNet, so an RGB backbone trains unchanged and
    :meth:`encode` feeds it the same grey image), ``decoder`` (its feature map -> logits
    ``(B, Q, H, W)``). Buffers: ``bins`` ``(Q, 2)``, ``weights`` ``(Q,)`` (v(Z) = w of Z's nearest
    bin), saved in checkpoints. Default bins: the whole gamut, weights 1; :meth:`from_images`
    computes both from training images. ``forward(x)`` -> ``{"loss", "acc"}`` (nearest-bin accuracy).
    """

    def __init__(self, backbone: nn.Module, config: Optional[ColorizationConfig] = None,
                 bins: Optional[torch.Tensor] = None, weights: Optional[torch.Tensor] = None):
        super().__init__(backbone)
        self.config = config or ColorizationConfig()
        bins = ab_bins(None, self.config.grid) if bins is None else check.matrix(bins, "bins", cols=2).float()
        weights = torch.ones(len(bins)) if weights is None else check.tensor(weights).float()
        if weights.shape != (len(bins),):
            raise ValueError(f"expected weights of shape (Q,) with Q = {len(bins)}, got {tuple(weights.shape)}")
        self.register_buffer("bins", bins)
        self.register_buffer("weights", weights)
        self.in_channels = getattr(backbone, "in_channels", 3)
        c = self.config
        if c.stride < 1 or c.image_size % c.stride:
            raise ValueError(f"stride must divide image_size = {c.image_size}, got {c.stride}")
        self.decoder = build_decoder(backbone, len(bins), self.in_channels, c.image_size, out_size=c.image_size // c.stride)

    @classmethod
    def from_images(cls, images, backbone: nn.Module, config: Optional[ColorizationConfig] = None):
        """The task with bins and rebalancing weights from ``images`` (uint8 ``(N, H, W, 3)``)."""
        c = config or ColorizationConfig()
        bins = ab_bins(images, c.grid, c.min_count)
        weights = rebalancing_weights(bin_counts(images, bins, c.grid), c.lam, c.sigma, bins=bins)
        return cls(backbone, c, bins, weights)

    def extra_repr(self) -> str:
        return f"{self.config!r}, Q={len(self.bins)}"

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """RGB ``(B, 3, H, W)`` in [0, 1] -> ``L/50 − 1`` ``(B, in_channels, H, W)`` (L replicated)."""
        L = rgb_to_lab(x)[:, :1]  # (B, 1, H, W) in [0, 100]
        return (L / 50.0 - 1.0).expand(-1, self.in_channels, -1, -1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Ẑ's logits: RGB ``(B, 3, H, W)`` in [0, 1] -> ``(B, Q, H/stride, W/stride)``."""
        s = self.config.stride
        return self.decoder(feature_map(self.backbone, self.prepare(x)), size=(x.shape[-2] // s, x.shape[-1] // s))

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Y: the a*b* of RGB ``x`` ``(B, 3, H, W)``, average-pooled to ``(B, 2, H/stride, W/stride)``."""
        return F.avg_pool2d(rgb_to_lab(x)[:, 1:], self.config.stride)

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True, hint=" (RGB in [0, 1]: the task makes the L channel itself)")
        ab = self.targets(x)  # (B, 2, h, w), h = H / stride
        target = quantize_ab(ab, self.bins)  # (B, h, w)
        logits = self.logits(x)  # (B, Q, h, w)
        log_p = F.log_softmax(logits.float(), dim=1)
        if self.config.soft_encode:
            ce = -(soft_encode(ab, self.bins) * log_p).sum(dim=1)  # (B, h, w)
        else:
            ce = -log_p.gather(1, target.unsqueeze(1)).squeeze(1)  # (B, h, w)
        loss = (self.weights[target] * ce).mean()
        return {"loss": loss, "acc": (logits.argmax(1) == target).float().mean()}


@torch.no_grad()
def colorize(task: ColorizationTask, x: torch.Tensor, T: Optional[float] = None) -> torch.Tensor:
    """The task's colours for the L* of ``x``: RGB ``(B, 3, H, W)`` in [0, 1] (a*b* = the annealed
    mean at ``T``, default the config's 0.38, upsampled bilinearly from 1/stride resolution; L*
    kept, as in the paper). Eval mode, the task's mode restored."""
    check.image_batch(x, 3, floating=True, hint=" (RGB in [0, 1]: its L channel is colorized)")
    was_training = task.training
    task.eval()
    ab = annealed_mean(task.logits(x), task.bins, task.config.T if T is None else T)  # (B, 2, h, w)
    task.train(was_training)
    ab = F.interpolate(ab, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (B, 2, H, W)
    return lab_to_rgb(torch.cat([rgb_to_lab(x)[:, :1], ab.to(x)], dim=1))
