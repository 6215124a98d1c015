"""course_lib.viz.augmentations: each gallery row is one stage of SimCLR's chain, drawn headless."""
import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.augment import SimCLRAugmentConfig  # noqa: E402
from course_lib.viz import augmentation_stages, gallery_views, show_augmentation_gallery  # noqa: E402

pytestmark = pytest.mark.usefixtures("headless_plots")
STAGES = ["crop + resize", "horizontal flip", "colour jitter", "grayscale", "Gaussian blur", "full chain"]


def _image(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8)  # (H, W, 3)


def _as_float(image):
    return image.permute(2, 0, 1).float() / 255  # (3, H, W) in [0, 1]


def test_each_stage_switches_only_its_own_stage_on():
    base = SimCLRAugmentConfig(size=16)
    stages = augmentation_stages(base)
    assert list(stages) == STAGES
    assert stages["full chain"] == base
    probabilities = {name: (c.flip_p, c.jitter_p, c.gray_p, c.blur_p) for name, c in stages.items()}
    assert probabilities["crop + resize"] == (0, 0, 0, 0) and stages["crop + resize"].scale == base.scale
    assert probabilities["horizontal flip"] == (1, 0, 0, 0)
    assert probabilities["colour jitter"] == (0, 1, 0, 0)
    assert probabilities["grayscale"] == (0, 0, 1, 0)
    assert probabilities["Gaussian blur"] == (0, 0, 0, 1)
    for name in STAGES[1:5]:  # stages other than the crop keep the whole image
        assert stages[name].scale == (1.0, 1.0) and stages[name].ratio == (1.0, 1.0)


def test_flip_and_grayscale_rows_match_a_direct_computation():
    image = _image()
    x = _as_float(image)  # (3, H, W)
    views = gallery_views(image, n=3, config=SimCLRAugmentConfig(size=16), seed=0)
    assert all(v.shape == (3, 3, 16, 16) for v in views.values())
    mirrored = x.flip(-1)  # the image mirrored left-right
    assert torch.allclose(views["horizontal flip"], mirrored.expand(3, -1, -1, -1), atol=1e-5)
    luma = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]  # ITU-R 601 grey, as torchvision
    assert torch.allclose(views["grayscale"], luma.expand(3, 3, -1, -1), atol=1e-5)


def test_random_rows_vary_across_draws_and_repeat_with_the_seed():
    image = _image(1)
    a = gallery_views(image, n=4, config=SimCLRAugmentConfig(size=16), seed=3)
    b = gallery_views(image, n=4, config=SimCLRAugmentConfig(size=16), seed=3)
    c = gallery_views(image, n=4, config=SimCLRAugmentConfig(size=16), seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k in ("crop + resize", "colour jitter", "full chain"):
        assert not torch.allclose(a[k][0], a[k][1]), f"{k}: two draws gave the same view"
        assert not torch.equal(a[k], c[k])
    assert not torch.allclose(a["crop + resize"][0], _as_float(image), atol=1e-3)


def test_gallery_figure_has_one_row_per_stage_and_the_original_first():
    fig = show_augmentation_gallery(_image(), n=4, config=SimCLRAugmentConfig(size=16), title="views")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 4 * (1 + len(STAGES))
    row_names = [axes[4 * r].get_ylabel() for r in range(1 + len(STAGES))]
    assert row_names == ["original"] + STAGES
    assert len(axes[0].images) == 1 and not axes[1].axison  # the original alone in its row
    assert all(len(ax.images) == 1 for ax in axes[4:])
    assert fig._suptitle.get_text() == "views"
