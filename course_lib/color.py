"""Colour spaces as batched torch functions: RGB ↔ HSV and RGB ↔ CIE L*a*b*.

Chapter 01 splits an image into the channels of each space; chapter 05's colorization predicts
the a*b* channels from L*. Every function takes and returns ``float`` tensors ``(B, 3, H, W)``
and works on any device, with no Python loop over pixels.

=========  ==============================================  ============================
space      channels                                        range
=========  ==============================================  ============================
RGB        red, green, blue (sRGB, gamma-encoded)          [0, 1] each
HSV        hue, saturation, value                          [0, 1] each (hue is a turn:
                                                           0 = red, 1/3 = green, 2/3 = blue)
L*a*b*     lightness, green(−)↔red(+), blue(−)↔yellow(+)    L* in [0, 100]; a*, b* roughly
                                                           [−128, 127]
=========  ==============================================  ============================

HSV follows Smith (1978), "Color gamut transform pairs", exactly as Python's ``colorsys`` does.
L*a*b* is CIE 1976 with the sRGB primaries and the D65 white point (IEC 61966-2-1 for the sRGB
transfer curve): pure red is (53.24, 80.09, 67.20), white is (100, 0, 0).
"""
from __future__ import annotations

import torch

from . import _checks as check

__all__ = ["rgb_to_hsv", "hsv_to_rgb", "rgb_to_lab", "lab_to_rgb", "RGB_TO_XYZ", "D65_WHITE"]

#: Linear sRGB → CIE XYZ (D65), rows X, Y, Z (IEC 61966-2-1).
RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
#: XYZ of the D65 white (the matrix's row sums, so that RGB white maps to a* = b* = 0 exactly).
D65_WHITE = tuple(sum(row) for row in RGB_TO_XYZ)

_EPS = 1e-12
_DELTA = 6.0 / 29.0  # the CIE f(t) switches from a cube root to a line at t = δ³


def _check(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    return check.image_batch(x, 3, name, floating=True, hint=" (values in [0, 1]: divide uint8 images by 255 first)")


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    # half precision cannot hold the cube roots and the 1/12.92 slope accurately: compute in fp32
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------------------- HSV
def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB → HSV: ``V = max(R,G,B)``, ``S = (V − min)/V``, ``H`` = the hexagon angle / 360°.

    ``x``: float ``(B, 3, H, W)`` in [0, 1]. Returns ``(B, 3, H, W)`` with hue, saturation and
    value, each in [0, 1]. Grey pixels (max = min) get hue 0, black gets saturation 0; where two
    channels tie for the maximum, red wins over green over blue (as in ``colorsys``).
    """
    x = _check(x)
    r, g, b = x.unbind(1)  # each (B, H, W)
    v, _ = x.max(dim=1)
    c = v - x.min(dim=1).values  # chroma
    safe_c = torch.where(c > 0, c, torch.ones_like(c))
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    h = torch.where(
        r == v, (g - b) / safe_c,
        torch.where(g == v, 2.0 + (b - r) / safe_c, 4.0 + (r - g) / safe_c),
    )  # in sixths of a turn, (−1, 5]
    h = torch.where(c > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    return torch.stack([h, s, v], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV → RGB: ``channel_n = V − V·S·clip(min(k, 4 − k), 0, 1)``, ``k = (n + 6H) mod 6``,
    with n = 5, 3, 1 for R, G, B (the closed form of Smith's six-sector rule).

    ``x``: float ``(B, 3, H, W)`` with hue, saturation, value in [0, 1] (hue wraps around).
    Returns RGB ``(B, 3, H, W)`` in [0, 1].
    """
    x = _check(x)
    h, s, v = x.unbind(1)  # each (B, H, W)
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)  # (B, 3, H, W)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


# ------------------------------------------------------------------------------------- L*a*b*
def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def _matrix(x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    m = torch.tensor(RGB_TO_XYZ, dtype=torch.float64)
    m = torch.linalg.inv(m) if inverse else m
    return m.to(device=x.device, dtype=x.dtype)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB → CIE L*a*b* (D65): ``L* = 116 f(Y/Yn) − 16``, ``a* = 500 (f(X/Xn) − f(Y/Yn))``,
    ``b* = 200 (f(Y/Yn) − f(Z/Zn))``, with ``f(t) = t^{1/3}`` above ``(6/29)³`` and linear below.

    ``x``: float ``(B, 3, H, W)`` sRGB in [0, 1] (gamma-encoded, as images are stored).
    Returns ``(B, 3, H, W)``: L* in [0, 100], a* and b* roughly in [−128, 127]. Computed in
    float32 (float64 stays float64) and returned in the input's dtype.
    """
    x = _check(x)
    dtype = x.dtype
    lin = _srgb_to_linear(x.to(_work_dtype(x)))
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(lin), lin)  # (B, 3, H, W): X, Y, Z
    white = torch.tensor(D65_WHITE, device=x.device, dtype=lin.dtype).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(
        t > _DELTA**3, t.clamp_min(_DELTA**3) ** (1.0 / 3.0), t / (3 * _DELTA**2) + 4.0 / 29.0
    )
    fx, fy, fz = f.unbind(1)
    lab = torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
    return lab.to(dtype)


def lab_to_rgb(x: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE L*a*b* (D65) → sRGB, the inverse of :func:`rgb_to_lab`.

    ``x``: float ``(B, 3, H, W)`` with L* in [0, 100] and a*, b* in about [−128, 127].
    Returns sRGB ``(B, 3, H, W)``. Many L*a*b* triples lie outside the sRGB gamut (a colorization
    network can predict them); ``clip=True`` clamps the result into [0, 1] so it can be shown.
    """
    x = _check(x)
    dtype = x.dtype
    lab = x.to(_work_dtype(x))
    L, a, b = lab.unbind(1)
    fy = (L + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=1)  # (B, 3, H, W)
    t = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    white = torch.tensor(D65_WHITE, device=x.device, dtype=lab.dtype).view(1, 3, 1, 1)
    lin = torch.einsum("ij,bjhw->bihw", _matrix(lab, inverse=True), t * white)
    if clip:
        lin = lin.clamp(0.0, 1.0)
    rgb = _linear_to_srgb(lin)
    return (rgb.clamp(0.0, 1.0) if clip else rgb).to(dtype)
