"""SimCLR data augmentation, batched: every image of a batch gets its own random view, on any device.

SimCLR (Chen, Kornblith, Norouzi & Hinton, 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", appendix A) makes two views of each image with this chain:

1. random resized crop: area fraction ``a ~ U(0.08, 1)``, aspect ratio ``r ~ logU(3/4, 4/3)``,
   resized back to ``size × size`` (bilinear);
2. horizontal flip with probability 0.5;
3. colour jitter with probability 0.8: brightness, contrast and saturation factors
   ``~ U(1 - 0.8·s, 1 + 0.8·s)``, hue shift ``~ U(-0.2·s, 0.2·s)`` (``s`` the colour strength,
   0.5 for CIFAR-10 in the paper, 1.0 for ImageNet);
4. grayscale with probability 0.2;
5. Gaussian blur with probability 0.5, ``σ ~ U(0.1, 2.0)``, kernel ≈ 10 % of the image side
   (ImageNet only: the paper leaves it out for CIFAR-10, so ``blur_p = 0`` here by default).

Two implementations of the same chain live here:

* :class:`SimCLRAugment` works on a float batch ``(B, 3, H, W)`` in [0, 1] where it already is
  (CPU, CUDA, MPS). Each stage is a small function of the batch and one parameter per image
  (:func:`random_resized_crop_params`, :func:`crop_and_flip`, :func:`adjust_brightness`, ...);
  there is no Python loop over images. Crop and flip are one affine sampling grid per image
  (the grid ``F.affine_grid`` would build, then ``F.grid_sample``), a "probability p" is a boolean
  mask per image. One difference from torchvision: the order of the four colour-jitter
  operations is drawn once per batch (torchvision draws it per image).
* :func:`simclr_reference_transform` is the per-image torchvision composition: the readable
  reference, and the baseline ``benchmarks/augment.py`` measures the batched version against.

Random numbers come from torch's global generator (or an explicit ``generator=``), so
``torch.manual_seed`` makes a batch of views repeat.

Example::

    augment = SimCLRAugment()                      # the paper's CIFAR-10 settings
    x = images.float().div(255)                    # (B, 3, 32, 32) in [0, 1], e.g. on "cuda"
    x1, x2 = augment(x), augment(x)                # two independent views of every image
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ITU-R BT.601 luma weights for R, G, B (as PIL's ``convert("L")``; torchvision uses 0.2989 for R).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)

#: the four colour-jitter operations, in torchvision's ``ColorJitter`` naming
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class SimCLRAugmentConfig:
    """The SimCLR augmentation's settings; the defaults are the paper's CIFAR-10 ones (appendix A/B.9).

    ``jitter_strength`` is the paper's colour strength ``s``: brightness, contrast and saturation
    jitter ``0.8·s``, hue jitter ``0.2·s``. ``blur_kernel_size=None`` means about 10 % of ``size``,
    made odd (3 for 32 px, 23 for 224 px), as in the paper's code.
    """

    size: int = 32
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_size: Optional[int] = None

    def __post_init__(self):
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name in ("scale", "ratio", "blur_sigma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.scale[1] > 1:
            raise ValueError(f"scale is a fraction of the image area, at most 1, got {self.scale}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(
                f"jitter_strength must be in [0, 2.5] (hue jitter 0.2·s <= 0.5), got {self.jitter_strength}"
            )
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.blur_kernel_size is not None and (self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0):
            raise ValueError(f"blur_kernel_size must be odd and positive, got {self.blur_kernel_size}")

    # the four ColorJitter arguments, derived from the strength s
    @property
    def brightness(self) -> float:
        return 0.8 * self.jitter_strength

    @property
    def contrast(self) -> float:
        return 0.8 * self.jitter_strength

    @property
    def saturation(self) -> float:
        return 0.8 * self.jitter_strength

    @property
    def hue(self) -> float:
        return 0.2 * self.jitter_strength

    @property
    def kernel_size(self) -> int:
        """The blur kernel's side: ``blur_kernel_size`` or ``2·((size // 10) // 2) + 1``, at least 3."""
        if self.blur_kernel_size is not None:
            return self.blur_kernel_size
        return max(3, 2 * ((self.size // 10) // 2) + 1)


# ---------------------------------------------------------------------------- random numbers
def _uniform(shape, low, high, device, generator: Optional[torch.Generator] = None) -> Tensor:
    """``U(low, high)`` of ``shape`` on ``device``, from ``generator`` or torch's global one."""
    if generator is None:
        u = torch.rand(shape, device=device)
    else:  # a generator draws on its own device; move the numbers where the images are
        u = torch.rand(shape, device=generator.device, generator=generator).to(device)
    return low + (high - low) * u


def _bernoulli(n: int, p: float, device, generator=None) -> Tensor:
    """``n`` independent coin flips, each True with probability ``p``: ``(n,)`` bool."""
    return _uniform((n,), 0.0, 1.0, device, generator) < p


def _jitter_range(amount: float) -> tuple[float, float]:
    """torchvision's ``ColorJitter`` factor range for a multiplicative jitter: ``[max(0, 1-a), 1+a]``."""
    return max(0.0, 1.0 - amount), 1.0 + amount


# ------------------------------------------------------------------------- 1-2. crop and flip
def random_resized_crop_params(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    attempts: int = 10,
    device=None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """One crop box per image, as torchvision's ``RandomResizedCrop``: ``(n, 4)`` rows ``(top, left, h, w)``.

    Area ``h·w ≈ a·H·W`` with ``a ~ U(scale)``, aspect ``w/h ≈ r`` with ``log r ~ U(log ratio)``
    (the "Inception" crop of Szegedy et al. 2015, used by SimCLR), both sides rounded to whole
    pixels. A draw that does not fit in the image is redrawn, up to ``attempts`` times: all
    attempts are drawn at once and the first one that fits is kept. An image whose attempts all
    fail gets the centre crop of the largest box with an allowed ratio. The corner is uniform
    over the whole-pixel positions that keep the box inside. Returned as floats, in input pixels.
    """
    area = height * width
    target_area = area * _uniform((n, attempts), scale[0], scale[1], device, generator)  # (n, A)
    log_r = _uniform((n, attempts), math.log(ratio[0]), math.log(ratio[1]), device, generator)
    aspect = torch.exp(log_r)  # (n, A)
    w = torch.round(torch.sqrt(target_area * aspect))  # (n, A)
    h = torch.round(torch.sqrt(target_area / aspect))  # (n, A)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, A)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # (n, 1) index of the first fit
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)  # (n,)

    # fallback when no attempt fits: centre crop, ratio clamped into the allowed range
    fw, fh = width, height
    if width / height < min(ratio):
        fh = int(round(width / min(ratio)))
    elif width / height > max(ratio):
        fw = int(round(height * max(ratio)))
    none_fit = ~fits.any(dim=1)  # (n,)
    w = torch.where(none_fit, torch.full_like(w, fw), w)
    h = torch.where(none_fit, torch.full_like(h, fh), h)

    # top-left corner: uniform over the H - h + 1 (W - w + 1) whole-pixel positions
    u = _uniform((n, 2), 0.0, 1.0, device, generator)  # (n, 2)
    top = torch.floor(u[:, 0] * (height - h + 1)).clamp(max=height - h)  # (n,)
    left = torch.floor(u[:, 1] * (width - w + 1)).clamp(max=width - w)  # (n,)
    top = torch.where(none_fit, torch.div(height - h, 2, rounding_mode="floor"), top)
    left = torch.where(none_fit, torch.div(width - w, 2, rounding_mode="floor"), left)
    return torch.stack([top, left, h, w], dim=1)  # (n, 4)


def crop_grid(boxes: Tensor, flip: Tensor, in_size: tuple[int, int], out_size: int) -> Tensor:
    """The sampling grid that crops ``boxes``, mirrors where ``flip``, and resizes to ``out_size``.

    One affine map per image from output coordinates to input coordinates, both normalised to
    [-1, 1] over the image (``align_corners=False``: -1 and 1 are the outer pixel edges)::

        x_in = sx · x_out + tx,   sx = ±w / W,  tx = (2·left + w) / W − 1   (− when flipped)
        y_in = sy · y_out + ty,   sy =  h / H,  ty = (2·top + h) / H − 1

    This is ``F.affine_grid`` with ``theta = [[sx, 0, tx], [0, sy, ty]]``; without rotation x_in
    depends on the column only and y_in on the row only, so the grid is built from two vectors.
    boxes ``(B, 4)`` rows ``(top, left, h, w)`` in input pixels, flip ``(B,)`` bool;
    returns the grid ``(B, out_size, out_size, 2)`` (last axis x, y) for ``F.grid_sample``.
    """
    height, width = in_size
    top, left, h, w = boxes.unbind(dim=1)  # each (B,)
    sign = 1.0 - 2.0 * flip.to(boxes.dtype)  # (B,) -1 mirrors the crop left-right
    sx, tx = sign * w / width, (2 * left + w) / width - 1  # (B,)
    sy, ty = h / height, (2 * top + h) / height - 1  # (B,)
    # output pixel centres in [-1, 1]: -1 + (2i + 1) / out_size
    centres = (torch.arange(out_size, device=boxes.device, dtype=boxes.dtype) * 2 + 1) / out_size - 1
    x_in = sx[:, None] * centres + tx[:, None]  # (B, S) one x per output column
    y_in = sy[:, None] * centres + ty[:, None]  # (B, S) one y per output row
    n = len(boxes)
    return torch.stack(
        [x_in[:, None, :].expand(n, out_size, out_size), y_in[:, :, None].expand(n, out_size, out_size)], dim=-1
    )  # (B, S, S, 2)


def crop_and_flip(x: Tensor, boxes: Tensor, flip: Tensor, size: int) -> Tensor:
    """Crop each image to its box, mirror it where ``flip``, resize to ``size × size`` (bilinear).

    x ``(B, C, H, W)``, boxes ``(B, 4)`` (top, left, h, w), flip ``(B,)`` bool → ``(B, C, size, size)``.
    Bilinear sampling as ``F.interpolate(..., align_corners=False)`` without antialiasing: exact
    for upsampling (the SimCLR-on-CIFAR case); a crop shrunk by more than 2× aliases.
    Samples half a pixel outside a box read the neighbouring image pixels (``padding_mode="border"``
    clamps only at the image's edge).
    """
    grid = crop_grid(boxes.to(x.dtype), flip, tuple(x.shape[-2:]), size)  # (B, size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ---------------------------------------------------------------------------- 3. colour jitter
def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601): ``(B, 3, H, W)`` → ``(B, 1, H, W)``."""
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)  # (B, 1, H, W)


def _per_image(factor: Tensor, x: Tensor) -> Tensor:
    """A per-image factor ``(B,)`` shaped to broadcast over ``(B, C, H, W)``."""
    return factor.to(x.dtype).view(-1, 1, 1, 1)


def blend(x: Tensor, y: Tensor, factor: Tensor) -> Tensor:
    """``clamp(f·x + (1 − f)·y, 0, 1)`` per image: f = 0 gives y, f = 1 gives x, f > 1 goes past x.

    x ``(B, 3, H, W)``, y broadcastable to it, factor ``(B,)`` → ``(B, 3, H, W)``.
    """
    return torch.lerp(y, x, _per_image(factor, x)).clamp_(0, 1)  # y + f·(x − y)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Scale every pixel by ``factor`` (blend with black): ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``."""
    return (x * _per_image(factor, x)).clamp_(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its mean gray level: ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``."""
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype)  # (3,)
    mean = x.mean(dim=(2, 3)) @ weights  # (B,) the mean of the gray image (the map is linear)
    return blend(x, mean.view(-1, 1, 1, 1), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend each pixel with its own gray level: ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``."""
    return blend(x, rgb_to_grayscale(x), factor)


def _hue_chroma_value(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue (in sixths of a turn, not wrapped), chroma ``C = max − min`` and value ``V = max``.

    The largest channel picks the sector of the colour hexagon (R 0, G 2, B 4 sixths) and the
    difference of the other two, over C, the position within ±1 of it: for R that is
    ``(G − B) / C``, for G ``2 + (B − R) / C``, for B ``4 + (R − G) / C``. Ties go to R, then G
    (both sides give the same hue); gray pixels (C = 0) get hue 0.
    x ``(B, 3, H, W)`` → three ``(B, 1, H, W)`` tensors.
    """
    r, g, b = x.split(1, dim=1)  # (B, 1, H, W) each
    value = x.amax(dim=1, keepdim=True)  # (B, 1, H, W)
    chroma = value - x.amin(dim=1, keepdim=True)  # (B, 1, H, W)
    # one-hot of the largest channel as 0/1 floats (arithmetic is faster than torch.where on CPU)
    red = (r == value).to(x.dtype)
    green = (g == value).to(x.dtype) * (1 - red)
    blue = 1 - red - green
    # in-place steps (the trailing _) save allocating a new batch-sized tensor at each step
    offset = (g - b).mul_(red).add_((b - r).mul_(green)).add_((r - g).mul_(blue))  # C·(position)
    offset = offset.div_(chroma.clamp_min(1e-12))  # in [-1, 1]; gray pixels: 0 / tiny = 0
    hue6 = offset.add_(2 * green).add_(4 * blue)  # (B, 1, H, W) sector + position
    return hue6, chroma, value


def _from_hue_chroma(hue6: Tensor, chroma: Tensor, value: Tensor) -> Tensor:
    """RGB from hue (sixths, any real), chroma and value: ``C_n = V − C·clamp(min(k, 4 − k), 0, 1)``
    with ``k = (n + hue6) mod 6`` and ``n = 5, 3, 1`` for R, G, B (each ``(B, 1, H, W)``)."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue6.device, dtype=hue6.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + hue6, 6.0)  # (B, 3, H, W)
    ramp = k.sub_(2).abs_().neg_().add_(2).clamp_(0, 1)  # min(k, 4 − k) = 2 − |k − 2|, in place
    return ramp.mul_(chroma).neg_().add_(value)  # V − C·ramp: (B, 3, H, W)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate every pixel's hue by ``shift`` turns (in [-0.5, 0.5]), keeping S and V:
    ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``.

    The same as ``color.hsv_to_rgb`` of ``color.rgb_to_hsv(x)`` with ``H ← (H + shift) mod 1``; as the rotation
    keeps V and the chroma C = S·V, RGB is rebuilt from (H + shift, C, V) directly.
    """
    hue6, chroma, value = _hue_chroma_value(x)  # (B, 1, H, W) each
    return _from_hue_chroma(hue6 + 6.0 * _per_image(shift, x), chroma, value)


_ADJUST: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "brightness": adjust_brightness, "contrast": adjust_contrast,
    "saturation": adjust_saturation, "hue": adjust_hue,
}


def color_jitter(x: Tensor, factors: dict[str, Tensor], order: Sequence[str] = JITTER_OPS) -> Tensor:
    """Apply the four jitter operations in ``order``, each with its per-image factor ``(B,)``.

    x ``(B, 3, H, W)`` → ``(B, 3, H, W)``; ``factors`` maps ``"brightness"``, ``"contrast"``,
    ``"saturation"`` (multiplicative, 1 = unchanged) and ``"hue"`` (a shift, 0 = unchanged).
    """
    for name in order:
        x = _ADJUST[name](x, factors[name])
    return x


# -------------------------------------------------------------------------------- 5. blur
def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur each image with its own Gaussian, ``σ`` per image: ``(B, C, H, W)``, ``(B,)`` → same.

    The 2-D Gaussian is separable: one horizontal then one vertical 1-D convolution. Treating the
    ``B·C`` channels as groups of one ``conv2d`` gives every image its own kernel. Borders are
    reflected, the kernel sampled at integer offsets and normalised to sum 1 (as torchvision).
    """
    batch, channels, height, width = x.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)  # (k,)
    kernel = torch.exp(-0.5 * (offsets / sigma.to(x.dtype).view(-1, 1)) ** 2)  # (B, k)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, k)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B·C, k) one kernel per channel
    y = x.reshape(1, batch * channels, height, width)  # (1, B·C, H, W)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")  # (1, B·C, H+2r, W+2r)
    y = F.conv2d(y, kernel.view(-1, 1, 1, kernel_size), groups=batch * channels)  # rows
    y = F.conv2d(y, kernel.view(-1, 1, kernel_size, 1), groups=batch * channels)  # columns
    return y.view(batch, channels, height, width)


# --------------------------------------------------------------------------- the whole chain
@dataclass
class AugmentParams:
    """Everything random about one batch of views; each tensor has one entry per image.

    ``boxes`` (B, 4) crop (top, left, h, w) in input pixels; ``flip`` (B,) bool; ``jitter`` (B,)
    bool, whether colour jitter applies; ``brightness``, ``contrast``, ``saturation`` (B,) factors,
    ``hue`` (B,) shift; ``order`` the jitter operations' order for the batch; ``gray`` (B,) bool;
    ``blur`` (B,) bool and ``sigma`` (B,) its standard deviation in output pixels.
    """

    boxes: Tensor
    flip: Tensor
    jitter: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    order: tuple
    gray: Tensor
    blur: Tensor
    sigma: Tensor

    @property
    def factors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in JITTER_OPS}


def select(mask: Tensor, if_true: Tensor, if_false: Tensor) -> Tensor:
    """Per image, ``if_true`` where ``mask`` else ``if_false``: ``(B,)``, ``(B, C, H, W)`` × 2 → ``(B, C, H, W)``.

    ``torch.where(mask.view(-1, 1, 1, 1), if_true, if_false)`` written as ``lerp`` with a 0/1
    weight, which is exact at 0 and 1 and several times faster on CPU.
    """
    return torch.lerp(if_false, if_true, _per_image(mask, if_false))


def check_batch(x) -> Tensor:
    """Raise ``ValueError`` unless ``x`` is a floating-point tensor of shape (B, 3, H, W)."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
        what = f"dtype {x.dtype} and shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"SimCLRAugment expects a float tensor of shape (B, 3, H, W) with values in [0, 1], got {what}"
            " (for uint8 images use x.float() / 255; for (B, H, W, 3) use x.permute(0, 3, 1, 2))"
        )
    return x


class SimCLRAugment(nn.Module):
    """SimCLR's augmentation (Chen et al. 2020, appendix A) for a whole batch at once.

    ``forward(x)``: x float ``(B, 3, H, W)`` in [0, 1] on any device → ``(B, 3, size, size)`` in
    [0, 1], same device and dtype. Every image gets independent random parameters:

    crop + flip (one affine grid per image) → colour jitter with prob. ``jitter_p`` → grayscale
    with prob. ``gray_p`` → Gaussian blur with prob. ``blur_p``.

    Colour-jitter order: torchvision's ``ColorJitter`` draws a new order of its four operations
    for every image; here one random order is drawn per *batch* (a fresh one at every call), so
    the images of a batch share it. Everything else is per image.

    ``SimCLRAugment(config)`` or ``SimCLRAugment(size=32, blur_p=0.5, ...)`` (keyword arguments
    override the config's fields). ``forward(x, generator=None, return_params=False)``:
    ``generator`` replaces torch's global generator; ``return_params=True`` also returns the
    :class:`AugmentParams` drawn. :meth:`sample_params` and :meth:`apply` are the two halves.
    """

    def __init__(self, config: Optional[SimCLRAugmentConfig] = None, **overrides):
        super().__init__()
        config = config or SimCLRAugmentConfig()
        unknown = set(overrides) - {f.name for f in fields(SimCLRAugmentConfig)}
        if unknown:
            raise TypeError(f"unknown SimCLRAugmentConfig field(s): {sorted(unknown)}")
        self.config = replace(config, **overrides)

    def extra_repr(self) -> str:
        return repr(self.config)

    def sample_params(
        self, batch: int, height: int, width: int, device=None, generator: Optional[torch.Generator] = None
    ) -> AugmentParams:
        """Draw every random choice for ``batch`` images of ``height × width`` pixels."""
        c, dev, g = self.config, device, generator
        boxes = random_resized_crop_params(batch, height, width, c.scale, c.ratio, device=dev, generator=g)
        order_keys = _uniform((len(JITTER_OPS),), 0.0, 1.0, "cpu" if g is None else g.device, g)
        order = tuple(JITTER_OPS[i] for i in order_keys.argsort().tolist())  # a random permutation
        return AugmentParams(
            boxes=boxes,  # (B, 4)
            flip=_bernoulli(batch, c.flip_p, dev, g),  # (B,)
            jitter=_bernoulli(batch, c.jitter_p, dev, g),  # (B,)
            brightness=_uniform((batch,), *_jitter_range(c.brightness), dev, g),  # (B,)
            contrast=_uniform((batch,), *_jitter_range(c.contrast), dev, g),  # (B,)
            saturation=_uniform((batch,), *_jitter_range(c.saturation), dev, g),  # (B,)
            hue=_uniform((batch,), -c.hue, c.hue, dev, g),  # (B,)
            order=order,
            gray=_bernoulli(batch, c.gray_p, dev, g),  # (B,)
            blur=_bernoulli(batch, c.blur_p, dev, g),  # (B,)
            sigma=_uniform((batch,), *c.blur_sigma, dev, g),  # (B,)
        )

    def apply(self, x: Tensor, params: AugmentParams) -> Tensor:
        """Apply drawn parameters: ``(B, 3, H, W)`` in [0, 1] → ``(B, 3, size, size)`` in [0, 1].

        A stage whose probability is 0 in the config is skipped; otherwise it is computed for the
        whole batch and kept only where the image's mask is True (:func:`select`; no indexing by
        the mask, so no host-device synchronisation).
        """
        c = self.config
        check_batch(x)
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):  # grid_sample / HSV maths in float32
            x = x.float()
        x = crop_and_flip(x, params.boxes, params.flip, c.size)  # (B, 3, size, size)
        if c.jitter_p > 0 and c.jitter_strength > 0:
            jittered = color_jitter(x, params.factors, params.order)  # (B, 3, size, size)
            x = select(params.jitter, jittered, x)
        if c.gray_p > 0:
            x = select(params.gray, rgb_to_grayscale(x).expand_as(x), x)  # (B, 3, size, size)
        if c.blur_p > 0:
            blurred = gaussian_blur(x, params.sigma, c.kernel_size)  # (B, 3, size, size)
            x = select(params.blur, blurred, x)
        return x.to(dtype)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None, return_params: bool = False):
        check_batch(x)
        params = self.sample_params(x.shape[0], x.shape[2], x.shape[3], device=x.device, generator=generator)
        out = self.apply(x, params)
        return (out, params) if return_params else out


# --------------------------------------------------------------------- per-image reference
def simclr_reference_transform(config: Optional[SimCLRAugmentConfig] = None, api: Optional[str] = None):
    """The same SimCLR chain as a per-image torchvision composition (the readable reference).

    Takes a PIL image or a uint8 tensor ``(3, H, W)`` and returns a float32 tensor
    ``(3, size, size)`` in [0, 1]. ``api="v2"`` (the default when available, torchvision ≥ 0.16)
    uses ``torchvision.transforms.v2``; ``api="v1"`` the classic ``torchvision.transforms``.
    It draws from the same distributions as :class:`SimCLRAugment`; the differences: resizing is
    antialiased (matters only when a crop shrinks), the jitter order is drawn per image, and
    torchvision's grayscale uses 0.2989 for red on tensors (PIL and BT.601: 0.299).
    """
    c = config or SimCLRAugmentConfig()
    if api is None:
        try:
            from torchvision.transforms import v2  # noqa: F401
            api = "v2"
        except ImportError:
            api = "v1"
    if api == "v2":
        from torchvision.transforms import v2 as T
    elif api == "v1":
        import torchvision.transforms as T
    else:
        raise ValueError(f"api must be 'v2', 'v1' or None, got {api!r}")

    steps = [
        T.RandomResizedCrop(c.size, scale=tuple(c.scale), ratio=tuple(c.ratio), antialias=True),
        T.RandomHorizontalFlip(p=c.flip_p),
        T.RandomApply([T.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue)], p=c.jitter_p),
        T.RandomGrayscale(p=c.gray_p),
    ]
    if c.blur_p > 0:
        steps.append(T.RandomApply([T.GaussianBlur(c.kernel_size, sigma=tuple(c.blur_sigma))], p=c.blur_p))
    if api == "v2":  # PIL or uint8 tensor in, uint8 through the chain, float at the end
        steps = [T.ToImage(), *steps, T.ToDtype(torch.float32, scale=True)]
        if hasattr(T, "ToPureTensor"):
            steps.append(T.ToPureTensor())
    else:
        steps = [_V1ToTensor(), *steps, T.ConvertImageDtype(torch.float32)]
    return T.Compose(steps)


class _V1ToTensor:
    """PIL image → uint8 tensor (3, H, W); a tensor passes through (for the v1 pipeline)."""

    def __call__(self, img):
        if isinstance(img, Tensor):
            return img
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(img)


class TwoViews:
    """Wrap a transform so that each call returns two independent views: ``(t(x), t(x))``.

    For a per-image ``Dataset`` (``transform=TwoViews(simclr_reference_transform())``) or a batch
    (``x1, x2 = TwoViews(SimCLRAugment())(x)``).
    """

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, x):
        return self.transform(x), self.transform(x)

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


__all__ = [
    "SimCLRAugmentConfig", "SimCLRAugment", "AugmentParams", "simclr_reference_transform", "TwoViews",
    "random_resized_crop_params", "crop_grid", "crop_and_flip", "rgb_to_grayscale", "blend",
    "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
    "color_jitter", "gaussian_blur", "select", "check_batch", "GRAY_WEIGHTS", "JITTER_OPS",
]
