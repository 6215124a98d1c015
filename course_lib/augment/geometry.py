"""Steps 1-2 of the SimCLR chain: random resized crop and horizontal flip, one affine grid per image."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import _uniform


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


__all__ = ["random_resized_crop_params", "crop_grid", "crop_and_flip"]
