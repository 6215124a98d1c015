"""Tests of course_lib.augment: the batched SimCLR augmentation against independent computations
(torchvision's per-image functional ops, plain slicing) and its random behaviour."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from course_lib.augment import (
    SimCLRAugment, SimCLRAugmentConfig, TwoViews, adjust_brightness, adjust_contrast, adjust_hue,
    adjust_saturation, crop_and_flip, gaussian_blur, random_resized_crop_params,
    simclr_reference_transform,
)

# every stage off, crop = whole image: the augmentation must be the identity
IDENTITY = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0)


def images(b=8, h=32, w=32, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g).to(dtype)


def distinct_pairs(y):
    """True when no two images of the batch are (nearly) equal."""
    flat = y.flatten(1)
    d = torch.cdist(flat, flat)
    return bool((d + torch.eye(len(y)) * 1e9 > 1e-3).all())


# --------------------------------------------------------------------------- shape and range
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_output_shape_dtype_range(dtype):
    torch.manual_seed(0)
    x = images(6, 40, 48, dtype=dtype)
    before = x.clone()
    y = SimCLRAugment(size=24, blur_p=0.5, jitter_p=1.0, gray_p=0.5)(x)
    assert torch.equal(x, before)  # the input is left alone
    assert y.shape == (6, 3, 24, 24) and y.dtype == dtype and y.device == x.device
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_with_same_result_shape():
    torch.manual_seed(0)
    x = images(16).cuda()
    y = SimCLRAugment(blur_p=0.5)(x)
    assert y.device.type == "cuda" and y.shape == (16, 3, 32, 32)
    assert 0 <= y.min().item() and y.max().item() <= 1 and distinct_pairs(y.cpu())


# ----------------------------------------------------------------------- per-image randomness
def test_identical_images_get_different_views():
    torch.manual_seed(0)
    x = images(1).expand(16, -1, -1, -1).contiguous()
    y, params = SimCLRAugment()(x, return_params=True)
    assert distinct_pairs(y)
    assert len(torch.unique(params.boxes, dim=0)) > 12  # crops differ per image
    assert 0 < params.flip.sum() < 16


def test_two_calls_give_two_different_views():
    torch.manual_seed(0)
    x = images(8)
    x1, x2 = TwoViews(SimCLRAugment())(x)
    assert ((x1 - x2).flatten(1).abs().amax(1) > 1e-3).all()


def test_repeatable_under_manual_seed_and_generator():
    x = images(8)
    aug = SimCLRAugment(blur_p=0.5)
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    b = aug(x)
    torch.manual_seed(4)
    c = aug(x)
    assert torch.equal(a, b) and not torch.allclose(a, c)

    state = torch.get_rng_state()
    d = aug(x, generator=torch.Generator().manual_seed(7))
    e = aug(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(d, e)
    assert torch.equal(state, torch.get_rng_state())  # an explicit generator leaves the global one alone


def test_stage_frequencies_follow_probabilities():
    torch.manual_seed(0)
    n = 3000
    x = images(n, 8, 8)
    # flips: with the whole-image crop each view is x or x mirrored
    y = SimCLRAugment(size=8, **{**IDENTITY, "flip_p": 0.5})(x)
    mirrored = (y - x.flip(-1)).flatten(1).abs().amax(1) < 1e-6
    unchanged = (y - x).flatten(1).abs().amax(1) < 1e-6
    assert (mirrored ^ unchanged).all()
    assert abs(mirrored.float().mean().item() - 0.5) < 0.04
    # grayscale: views with three equal channels
    y = SimCLRAugment(size=8, **{**IDENTITY, "gray_p": 0.2})(x)
    gray = (y - y[:, :1]).flatten(1).abs().amax(1) < 1e-6
    assert abs(gray.float().mean().item() - 0.2) < 0.03
    # jitter: views that changed at all
    y = SimCLRAugment(size=8, **{**IDENTITY, "jitter_p": 0.8})(x)
    changed = (y - x).flatten(1).abs().amax(1) > 1e-6
    assert abs(changed.float().mean().item() - 0.8) < 0.03


# ------------------------------------------------------------------------ special cases
def test_identity_when_every_stage_is_off():
    x = images(8)
    torch.manual_seed(0)
    y = SimCLRAugment(size=32, jitter_strength=1.0, **IDENTITY)(x)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_flip_probability_one_mirrors_width():
    x = images(8)
    torch.manual_seed(0)
    y = SimCLRAugment(**{**IDENTITY, "flip_p": 1.0})(x)
    torch.testing.assert_close(y, torch.flip(x, dims=[-1]), atol=1e-6, rtol=0)


def test_grayscale_probability_one_uses_bt601_weights():
    x = images(8)
    torch.manual_seed(0)
    y = SimCLRAugment(**{**IDENTITY, "gray_p": 1.0})(x)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # (B, H, W)
    for c in range(3):
        torch.testing.assert_close(y[:, c], luma, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------- crop
def test_crop_of_output_size_is_a_slice():
    x = images(2, 48, 48)
    boxes = torch.tensor([[5.0, 9.0, 32.0, 32.0], [16.0, 0.0, 32.0, 32.0]])  # top, left, h, w
    y = crop_and_flip(x, boxes, torch.tensor([False, True]), 32)
    torch.testing.assert_close(y[0], x[0, :, 5:37, 9:41], atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1], x[1, :, 16:48, 0:32].flip(-1), atol=1e-5, rtol=0)


def test_whole_image_upsampling_matches_interpolate():
    x = images(4, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]]).expand(4, -1)
    y = crop_and_flip(x, boxes, torch.zeros(4, dtype=torch.bool), 32)
    ref = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)


def test_random_crops_match_torchvision_resized_crop():
    """Each view equals torchvision's resized_crop of its own box (bilinear, no antialias); only a
    two-pixel frame may differ: there we read just outside the box, torchvision clamps to it."""
    torch.manual_seed(0)
    x = images(16)
    y, p = SimCLRAugment(**{**IDENTITY, "scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)})(x, return_params=True)
    for i in range(len(x)):
        top, left, h, w = (int(v) for v in p.boxes[i])
        ref = TF.resized_crop(x[i], top, left, h, w, [32, 32], antialias=False)
        torch.testing.assert_close(y[i, :, 2:-2, 2:-2], ref[:, 2:-2, 2:-2], atol=1e-5, rtol=0)


# the largest box with an allowed ratio (3/4 <= w/h <= 4/3), as a fraction of the image area
@pytest.mark.parametrize("hw, largest", [((32, 32), 1.0), ((40, 24), 24 * 32 / 960), ((20, 60), 20 * 27 / 1200)])
def test_crop_boxes_follow_the_paper_ranges(hw, largest):
    height, width = hw
    torch.manual_seed(0)
    b = random_resized_crop_params(4000, height, width, (0.08, 1.0), (3 / 4, 4 / 3))
    top, left, h, w = b.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    assert torch.equal(b, b.round())  # whole pixels, as torchvision
    assert ((w / h > 0.6) & (w / h < 1 / 0.6)).all()  # 3/4 .. 4/3, up to rounding of small boxes
    area = h * w / (height * width)
    assert area.min() > 0.05 and largest - 0.05 < area.max() <= largest + 1e-6
    assert len(torch.unique(left)) > 5  # the corner moves


def test_crop_areas_are_spread_like_torchvision():
    torch.manual_seed(0)
    b = random_resized_crop_params(20000, 32, 32)
    area = b[:, 2] * b[:, 3] / 1024
    # U(0.08, 1) has mean 0.54; redrawing boxes that stick out lowers it (torchvision: 0.49)
    assert 0.46 < area.mean() < 0.52
    assert abs((area < 0.3).float().mean() - 0.29) < 0.03


# ---------------------------------------------------------------- colour ops vs torchvision
# torchvision's grayscale weighs red 0.2989, BT.601 0.299: contrast/saturation differ by up to
# 1e-4·R·|1 - factor|, hence atol 2e-4 (a wrong formula is off by > 1e-2).
@pytest.mark.parametrize(
    "ours, theirs, low, high",
    [
        (adjust_brightness, TF.adjust_brightness, 0.2, 1.8),
        (adjust_contrast, TF.adjust_contrast, 0.2, 1.8),
        (adjust_saturation, TF.adjust_saturation, 0.0, 1.8),
        (adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
def test_colour_ops_match_torchvision(ours, theirs, low, high):
    x = images(12, 16, 16, seed=1)
    x[0] = x[0].round()  # saturated corners of the RGB cube
    x[1] = x[1, :1].expand(3, -1, -1)  # a gray image
    factors = torch.linspace(low, high, len(x))
    y = ours(x, factors)
    ref = torch.stack([theirs(x[i], float(factors[i])) for i in range(len(x))])
    torch.testing.assert_close(y, ref, atol=2e-4, rtol=0)


def test_jitter_stage_applies_each_images_factors_in_the_drawn_order():
    torch.manual_seed(5)
    x = images(6, 16, 16)
    aug = SimCLRAugment(size=16, **{**IDENTITY, "jitter_p": 1.0}, jitter_strength=1.0)
    y, p = aug(x, return_params=True)
    for i in range(len(x)):
        ref = x[i]
        for op in p.order:
            ref = getattr(TF, f"adjust_{op}")(ref, float(getattr(p, op)[i]))
        torch.testing.assert_close(y[i], ref, atol=3e-4, rtol=0)  # 0.299 vs 0.2989, as above


def test_gaussian_blur_matches_torchvision_per_image_sigma():
    x = images(4, 20, 20)
    sigma = torch.tensor([0.1, 0.7, 1.3, 2.0])
    for k in (3, 5):
        y = gaussian_blur(x, sigma, k)
        ref = torch.stack([TF.gaussian_blur(x[i], [k, k], [float(s)] * 2) for i, s in enumerate(sigma)])
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_blur_stage_uses_each_images_sigma_and_a_tenth_of_the_size():
    torch.manual_seed(0)
    x = images(6, 40, 40)
    y, p = SimCLRAugment(size=40, **{**IDENTITY, "blur_p": 1.0})(x, return_params=True)
    assert len(torch.unique(p.sigma)) == 6 and ((p.sigma >= 0.1) & (p.sigma <= 2.0)).all()
    for i in range(len(x)):  # 40 px: kernel 2·((40 // 10) // 2) + 1 = 5
        ref = TF.gaussian_blur(x[i], [5, 5], [float(p.sigma[i])] * 2)
        torch.testing.assert_close(y[i], ref, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------- inputs
@pytest.mark.parametrize(
    "bad",
    [
        torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8),  # not float
        torch.rand(4, 32, 32, 3),  # channels last
        torch.rand(3, 32, 32),  # one image, no batch
        torch.rand(4, 1, 32, 32),  # one channel
    ],
)
def test_bad_input_raises_naming_the_expected_shape(bad):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        SimCLRAugment()(bad)


def test_config_is_checked():
    with pytest.raises(ValueError, match="flip_p"):
        SimCLRAugmentConfig(flip_p=1.5)
    with pytest.raises(ValueError, match="scale"):
        SimCLRAugment(scale=(0.5, 0.1))
    with pytest.raises(TypeError, match="colour"):
        SimCLRAugment(colour=0.5)
    c = SimCLRAugmentConfig(jitter_strength=1.0)
    assert (c.brightness, c.contrast, c.saturation, c.hue) == pytest.approx((0.8, 0.8, 0.8, 0.2))
    assert SimCLRAugmentConfig(size=32).kernel_size == 3 and SimCLRAugmentConfig(size=224).kernel_size == 23


# ------------------------------------------------------------------------ per-image reference
@pytest.mark.parametrize("api", ["v2", "v1"])
def test_reference_transform_on_pil_and_uint8(api):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pil = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    t = simclr_reference_transform(SimCLRAugmentConfig(blur_p=0.5), api=api)
    a, b = TwoViews(t)(pil)
    for v in (a, b):
        assert type(v) is torch.Tensor and v.shape == (3, 32, 32) and v.dtype == torch.float32
        assert v.min() >= 0 and v.max() <= 1
    assert not torch.equal(a, b)
    big = torch.from_numpy(rng.integers(0, 256, (3, 40, 50), dtype=np.uint8))
    assert t(big).shape == (3, 32, 32)


def test_reference_is_identity_when_every_stage_is_off():
    x = (images(1)[0] * 255).round().to(torch.uint8)  # (3, 32, 32)
    y = simclr_reference_transform(SimCLRAugmentConfig(**IDENTITY))(x)
    torch.testing.assert_close(y, x.float() / 255, atol=1e-6, rtol=0)
