"""course_lib.color against independent computations: colorsys per pixel for HSV, the CIE
formulas written out per pixel in numpy for L*a*b*, published reference colours, round trips."""
import colorsys

import numpy as np
import pytest
import torch

from course_lib.color import hsv_to_rgb, lab_to_rgb, rgb_to_hsv, rgb_to_lab


def _images(seed=0, shape=(2, 3, 6, 7), levels=None, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    if levels:  # coarse values so that channels tie (grey pixels, two equal maxima)
        x = torch.round(x * (levels - 1)) / (levels - 1)
    return x.to(dtype)


def _per_pixel(fn, x):
    """Apply a function of one (c0, c1, c2) triple to every pixel of a (B, 3, H, W) array."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                out[b, :, i, j] = fn(*x[b, :, i, j])
    return out


# ----------------------------------------------------------------------------------- HSV
@pytest.mark.parametrize("levels", [None, 4])
def test_rgb_to_hsv_matches_colorsys(levels):
    x = _images(1, levels=levels)
    got = rgb_to_hsv(x).numpy()
    want = _per_pixel(colorsys.rgb_to_hsv, x)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_hsv_to_rgb_matches_colorsys():
    hsv = _images(2)
    hsv[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])  # hue on the wrap-around and a sector edge
    got = hsv_to_rgb(hsv).numpy()
    want = _per_pixel(colorsys.hsv_to_rgb, hsv)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_hsv_primaries():
    rgb = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0]],
                       dtype=torch.float32).T.reshape(1, 3, 1, 6)
    hsv = rgb_to_hsv(rgb)[0, :, 0].T
    want = torch.tensor([[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [1 / 6, 1, 1], [0, 0, 0.5], [0, 0, 0]])
    torch.testing.assert_close(hsv, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hsv_round_trip(dtype):
    x = _images(3, shape=(4, 3, 16, 16), dtype=dtype)
    back = hsv_to_rgb(rgb_to_hsv(x))
    assert back.dtype == dtype and back.shape == x.shape
    torch.testing.assert_close(back, x, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)


# --------------------------------------------------------------------------------- L*a*b*
def _lab_reference(r, g, b):
    """CIE 1976 L*a*b* of one sRGB pixel, written out from the standards (IEC 61966-2-1, CIE 15)."""
    def linear(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    rl, gl, bl = linear(r), linear(g), linear(b)
    X = 0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl
    Y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
    Z = 0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl
    Xn, Yn, Zn = 0.4124564 + 0.3575761 + 0.1804375, 0.2126729 + 0.7151522 + 0.0721750, \
        0.0193339 + 0.1191920 + 0.9503041

    def f(t):
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(Y / Yn) - 16, 500 * (f(X / Xn) - f(Y / Yn)), 200 * (f(Y / Yn) - f(Z / Zn))


def test_rgb_to_lab_matches_per_pixel_formula():
    x = _images(4)
    x[0, :, 0, 0] = torch.tensor([0.01, 0.02, 0.005])  # dark: the linear branches of both curves
    got = rgb_to_lab(x).numpy()
    want = _per_pixel(_lab_reference, x)
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("rgb, lab", [
    ((1, 0, 0), (53.2408, 80.0925, 67.2032)),
    ((0, 1, 0), (87.7347, -86.1827, 83.1793)),
    ((0, 0, 1), (32.2970, 79.1875, -107.8602)),
    ((1, 1, 1), (100.0, 0.0, 0.0)),
    ((0, 0, 0), (0.0, 0.0, 0.0)),
    ((0.5, 0.5, 0.5), (53.3890, 0.0, 0.0)),
])
def test_lab_reference_colours(rgb, lab):
    x = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)
    got = rgb_to_lab(x).view(3)
    torch.testing.assert_close(got, torch.tensor(lab), atol=2e-3, rtol=0)
    back = lab_to_rgb(torch.tensor(lab).view(1, 3, 1, 1)).view(3)
    torch.testing.assert_close(back, torch.tensor(rgb, dtype=torch.float32), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_round_trip(dtype):
    x = _images(5, shape=(4, 3, 16, 16), dtype=dtype)
    lab = rgb_to_lab(x)
    assert lab.dtype == dtype and lab.shape == x.shape
    assert lab[:, 0].min() >= 0 and lab[:, 0].max() <= 100
    back = lab_to_rgb(lab)
    torch.testing.assert_close(back, x, atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=0)


def test_lab_to_rgb_clips_out_of_gamut():
    lab = torch.tensor([[50.0, 120.0, -120.0], [100.0, -100.0, 100.0]]).T.reshape(1, 3, 1, 2)
    rgb = lab_to_rgb(lab)
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    raw = lab_to_rgb(lab, clip=False)
    assert raw.min() < 0 or raw.max() > 1  # really outside the gamut


def test_half_precision_and_gradients():
    x = _images(6, dtype=torch.float32)
    lab16 = rgb_to_lab(x.half())
    assert lab16.dtype == torch.float16
    torch.testing.assert_close(lab16.float(), rgb_to_lab(x), atol=0.1, rtol=0)
    x = x.clone().requires_grad_(True)
    (rgb_to_lab(x).sum() + rgb_to_hsv(x).sum()).backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("fn", [rgb_to_hsv, hsv_to_rgb, rgb_to_lab, lab_to_rgb])
@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(2, 4, 8, 8), torch.rand(2, 8, 8, 3)])
def test_bad_shapes_name_the_expected_one(fn, bad):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        fn(bad)


def test_integer_images_are_refused():
    with pytest.raises(ValueError, match="255"):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
