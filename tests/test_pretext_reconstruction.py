"""course_lib.pretext colorization / inpainting / masked reconstruction, and their figures."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.color import rgb_to_lab  # noqa: E402
from course_lib.data import DeviceLoader  # noqa: E402
from course_lib.models import SmallConvNet  # noqa: E402
from course_lib.pretext import pretext_step  # noqa: E402
from course_lib.pretext.colorization import (  # noqa: E402
    ColorizationConfig, ColorizationTask, ab_bins, ab_histogram, annealed_mean, bin_counts, colorize, grid_centres,
    quantize_ab, rebalancing_weights, soft_encode,
)
from course_lib.pretext.inpainting import (  # noqa: E402
    InpaintingConfig, InpaintingTask, inpaint, masked_mse, random_block_mask,
)
from course_lib.pretext.masked import (  # noqa: E402
    MaskedReconstructionConfig, MaskedReconstructionTask, patch_normalize, random_patch_mask, reconstruct,
)
from course_lib.train import fit  # noqa: E402
from course_lib.viz.reconstruction import show_ab_bins, show_reconstructions  # noqa: E402

skimage_color = pytest.importorskip("skimage.color")
colorconv = pytest.importorskip("skimage.color.colorconv")

# the sRGB -> XYZ matrix and D65 white of scikit-image (its own constants, not course_lib's)
SK_RGB_FROM_XYZ = colorconv.rgb_from_xyz
SK_WHITE = np.asarray(colorconv.xyz_tristimulus_values(illuminant="D65", observer="2"), dtype=np.float64)


def _tiny():
    return SmallConvNet((8, 16, 32, 64))


def _images(n=8, size=32, seed=0):
    """Smooth colourful images: blocks of random colours (so every task has something to learn)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def _lab_to_linear_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (..., 3) -> linear sRGB (..., 3) with scikit-image's constants: a per-colour reference."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200], -1)
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    return (t * SK_WHITE) @ SK_RGB_FROM_XYZ.T


# ---------------------------------------------------------------------------- colorization
def test_rgb_to_lab_matches_scikit_image():
    """course_lib.color's Lab vs skimage.color.rgb2lab: within 0.01 (skimage's sRGB matrix has 6
    digits, course_lib's 7: they differ by up to ~0.005 in a* and b*)."""
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = rgb_to_lab(x).permute(0, 2, 3, 1).numpy()
    ref = skimage_color.rgb2lab(x.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-2)


def test_every_bin_is_in_gamut_and_the_gamut_is_covered():
    bins = ab_bins(None).double().numpy()  # (Q, 2)
    L = np.linspace(0, 100, 1001)
    for ab in bins:  # slow reference: some L makes a valid linear sRGB colour (gamma keeps [0, 1])
        rgb = _lab_to_linear_rgb(np.stack([L, np.full_like(L, ab[0]), np.full_like(L, ab[1])], -1))
        assert ((rgb >= -1e-3) & (rgb <= 1 + 1e-3)).all(-1).any(), ab
    # the cells not kept are out of gamut for every L (grey and pure primaries' cells are in)
    kept = {tuple(c) for c in bins.round().astype(int).tolist()}
    for ab in grid_centres(10).double().numpy():
        if tuple(ab.round().astype(int).tolist()) not in kept:
            rgb = _lab_to_linear_rgb(np.stack([L, np.full_like(L, ab[0]), np.full_like(L, ab[1])], -1))
            assert not ((rgb >= 1e-3) & (rgb <= 1 - 1e-3)).all(-1).any(), ab
    assert (0, 0) in kept and (80, 60) in kept  # grey; next to red, (80.1, 67.2)
    assert (80, 70) not in kept  # red's own cell: its centre is just past red, out of gamut


def _coverage(train, held_out, grid=10.0):
    bins = ab_bins(train, grid)
    ab = rgb_to_lab(held_out)[:, 1:]
    q = quantize_ab(ab, bins)  # (B, H, W)
    dist = (ab - bins[q].permute(0, 3, 1, 2)).norm(dim=1)
    return bins, float((dist <= grid / 2 * math.sqrt(2) + 1e-4).float().mean())


def test_bins_cover_the_training_colours():
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    bins, covered = _coverage(x, x)
    # every used in-gamut cell is kept (min_count = 1); the pixels that miss are those at the gamut's
    # edge whose cell centre lies outside it (uniform RGB noise has many of them)
    assert covered > 0.99
    assert len(bins) == len(ab_bins(ab_histogram(x)))  # the histogram path agrees
    few = ab_bins(x[:4])  # some pixels of the others fall in cells not kept
    slow = bin_counts(x, few)
    assert int(slow.sum()) == 64 * 16 * 16 and torch.equal(bin_counts(x, few, grid=10.0), slow)


def test_bins_cover_real_cifar_colours(cifar10_test_split):
    images = cifar10_test_split[0]
    train = images[:1000].permute(0, 3, 1, 2).float() / 255
    held_out = images[1000:1500].permute(0, 3, 1, 2).float() / 255
    bins, covered = _coverage(train, held_out)
    assert 150 < len(bins) <= len(ab_bins(None))
    assert covered > 0.995


def test_quantize_and_soft_encode_match_a_slow_reference():
    bins = ab_bins(None)
    ab = (torch.rand(2, 2, 3, 3, generator=torch.Generator().manual_seed(2)) - 0.5) * 150
    q, z = quantize_ab(ab, bins), soft_encode(ab, bins, k=5, sigma=5.0)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                d = ((bins.double() - ab[b, :, i, j].double()) ** 2).sum(1)
                assert int(q[b, i, j]) == int(d.argmin())
                near = d.argsort()[:5]
                w = torch.exp(-d[near] / (2 * 25.0))
                np.testing.assert_allclose(z[b, near, i, j].double(), w / w.sum(), rtol=1e-4, atol=1e-6)
    assert torch.allclose(z.sum(1), torch.ones(2, 3, 3)) and int((z > 0).sum(1).max()) == 5


def test_rebalancing_weights_expectation_and_formula():
    bins = ab_bins(None)
    counts = torch.randint(0, 1000, (len(bins),), generator=torch.Generator().manual_seed(3))
    counts[:5] = 0  # unused bins are allowed
    w = rebalancing_weights(counts, lam=0.5, sigma=5.0, bins=bins).double()
    p = counts.double() / counts.sum()
    assert float((p * w).sum()) == pytest.approx(1.0, abs=1e-5)
    # slow reference of Zhang et al. Eq. 4, smoothing by a sum over every pair of bins
    c = bins.double()
    smooth = torch.stack([sum(p[j] * math.exp(-float(((c[i] - c[j]) ** 2).sum()) / 50) for j in range(len(c)))
                          for i in range(len(c))])
    ref = 1 / (0.5 * smooth / smooth.sum() + 0.5 / len(c))
    np.testing.assert_allclose(w, ref / (p * ref).sum(), rtol=1e-4)
    # no smoothing: rarer bins weigh more; λ = 1: uniform weights
    w0 = rebalancing_weights(counts, sigma=0.0)
    assert bool((w0[counts.argsort()].diff() <= 1e-6).all())
    assert torch.allclose(rebalancing_weights(counts, lam=1.0, sigma=0.0), torch.ones(len(bins)))
    with pytest.raises(ValueError, match="bins"):
        rebalancing_weights(counts, sigma=5.0)


def test_annealed_mean_limits():
    bins = ab_bins(None)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, len(bins), 3, 4, generator=g)
    logits.scatter_add_(1, torch.randint(0, len(bins), (2, 1, 3, 4), generator=g), torch.full((2, 1, 3, 4), 3.0))
    mode = bins[logits.argmax(1)].permute(0, 3, 1, 2)  # (B, 2, H, W)
    assert torch.allclose(annealed_mean(logits, bins, T=1e-3), mode, atol=1e-3)
    p = torch.softmax(logits.double(), 1)
    mean = torch.stack([(p[:, q, None] * bins[q].double()[None, :, None, None]) for q in range(len(bins))]).sum(0)
    assert torch.allclose(annealed_mean(logits, bins, T=1.0).double(), mean, atol=1e-4)
    with pytest.raises(ValueError, match="T"):
        annealed_mean(logits, bins, T=0.0)


def test_colorization_refuses_grayscale_input():
    task = ColorizationTask(_tiny())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*L channel"):
        task(torch.rand(2, 1, 32, 32))


def test_colorization_task_trains_and_colorizes():
    x = _images(8)
    torch.manual_seed(0)
    task = ColorizationTask.from_images(x, _tiny())
    assert len(task.bins) == len(ab_bins(x)) and float((bin_counts(x, task.bins) * task.weights).sum()) == \
        pytest.approx(float(bin_counts(x, task.bins).sum()), rel=1e-4)
    assert task.prepare(x).shape == (8, 3, 32, 32) and task.encode(x).shape == (8, 64)
    assert _losses_fall(task, x)
    rgb = colorize(task, x)
    assert rgb.shape == x.shape and 0 <= float(rgb.min()) and float(rgb.max()) <= 1
    # the L channel is kept (up to the gamut clipping of the predicted colours)
    assert float((rgb_to_lab(rgb)[:, 0] - rgb_to_lab(x)[:, 0]).abs().median()) < 1.0
    # the bins and weights are buffers: a checkpoint restores them into a default-built task
    fresh = ColorizationTask(_tiny(), bins=task.bins.clone(), weights=torch.ones(len(task.bins)))
    fresh.load_state_dict(task.state_dict())
    assert torch.equal(fresh.weights, task.weights)


def test_colorization_soft_encoding_trains():
    x = _images(4, seed=5)
    torch.manual_seed(0)
    assert _losses_fall(ColorizationTask(_tiny(), ColorizationConfig(soft_encode=True)), x)


# ------------------------------------------------------------------------------------- masks
def test_block_masks():
    x = torch.zeros(16, 3, 32, 32)
    centre = random_block_mask(x, 16, mode="center")
    expected = torch.zeros(32, 32)
    expected[8:24, 8:24] = 1
    assert centre.shape == (16, 1, 32, 32) and bool((centre == expected).all())
    g = torch.Generator().manual_seed(0)
    m = random_block_mask(x, 10, mode="random", generator=g)[:, 0]  # (B, H, W)
    assert bool((m.sum((1, 2)) == 100).all())
    rows, cols = m.amax(2), m.amax(1)  # (B, H), (B, W): where the block is
    assert bool((rows.sum(1) == 10).all() and (cols.sum(1) == 10).all())
    assert bool((m == rows[:, :, None] * cols[:, None, :]).all())  # a rectangle: rows x cols
    tops = rows.argmax(1)
    assert len(set(tops.tolist())) > 1 and int(tops.max()) <= 22  # random, inside the image
    assert torch.equal(m, random_block_mask(x, 10, generator=torch.Generator().manual_seed(0))[:, 0])
    with pytest.raises(ValueError, match="block size"):
        random_block_mask(x, 33)
    with pytest.raises(ValueError, match="mode"):
        random_block_mask(x, 8, mode="middle")


@pytest.mark.parametrize("patch, ratio", [(4, 0.75), (8, 0.5), (4, 0.3), (2, 1.0), (4, 0.0)])
def test_patch_masks(patch, ratio):
    x = torch.zeros(6, 3, 32, 32)
    m = random_patch_mask(x, patch, ratio, generator=torch.Generator().manual_seed(1))
    n = (32 // patch) ** 2
    per_patch = m.view(6, 32 // patch, patch, 32 // patch, patch)
    assert bool((per_patch.amax((2, 4)) == per_patch.amin((2, 4))).all())  # patch-aligned
    assert bool((per_patch.amax((2, 4)).sum((1, 2)) == round(ratio * n)).all())  # exact count per image
    if 0 < ratio < 1:
        assert not torch.equal(m[0], m[1])  # a different mask per image


def test_patch_mask_errors():
    with pytest.raises(ValueError, match="patch"):
        random_patch_mask(torch.zeros(1, 3, 30, 30), 4, 0.5)
    with pytest.raises(ValueError, match="ratio"):
        random_patch_mask(torch.zeros(1, 3, 32, 32), 4, 1.5)


def test_masked_losses_ignore_visible_pixels():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    mask = random_patch_mask(target, 4, 0.75, generator=g)
    loss = masked_mse(pred, target, mask)
    ref = sum(((pred[b, :, i, j] - target[b, :, i, j]) ** 2).sum() for b in range(2) for i in range(32)
              for j in range(32) if mask[b, 0, i, j]) / (3 * mask.sum())
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)
    visible = torch.nonzero(mask[0, 0] == 0)[0]
    hidden = torch.nonzero(mask[0, 0] == 1)[0]
    changed = target.clone()
    changed[0, :, visible[0], visible[1]] += 5.0
    assert float(masked_mse(pred, changed, mask)) == float(loss)
    changed[0, :, hidden[0], hidden[1]] += 5.0
    assert float(masked_mse(pred, changed, mask)) != float(loss)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        masked_mse(pred, target, mask[:, :, :16])


def test_patch_normalize_matches_a_loop():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    xn, mean, std = patch_normalize(x, 4)
    for b in range(2):
        for i in range(0, 8, 4):
            for j in range(0, 8, 4):
                p = x[b, :, i : i + 4, j : j + 4]
                ref = (p - p.mean()) / (p.var(unbiased=False) + 1e-6).sqrt()
                assert torch.allclose(xn[b, :, i : i + 4, j : j + 4], ref, atol=1e-5)
    assert torch.allclose(xn * std + mean, x, atol=1e-6)


# ----------------------------------------------------------------------------------- tasks
def _losses_fall(task, x, steps=15, key="loss"):
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    task.train()
    torch.manual_seed(0)
    first = float(task(x)[key].detach())
    for _ in range(steps):
        torch.manual_seed(0)  # the same masks every step: a fixed batch
        out = task(x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    torch.manual_seed(0)
    return float(task(x)[key].detach()) < 0.9 * first


@pytest.mark.parametrize("adversarial", [False, True])
def test_inpainting_step_lowers_its_loss(adversarial):
    torch.manual_seed(0)
    task = InpaintingTask(_tiny(), InpaintingConfig(adversarial=adversarial, mode="random"))
    assert (task.discriminator is not None) == adversarial
    assert _losses_fall(task, _images(8), key="rec")


def test_inpainting_players_get_only_their_own_gradients():
    torch.manual_seed(0)
    task = InpaintingTask(_tiny())
    out = task(_images(4))
    gen_params = [p for n, p in task.named_parameters() if not n.startswith("discriminator.")]
    disc_params = list(task.discriminator.parameters())

    def grads(loss, params):
        return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)

    assert all(g is None or not g.any() for g in grads(out["disc"], gen_params))  # L_D: D only
    assert all(g is None or not g.any() for g in grads(out["gen"], disc_params))  # L_G: G only
    assert any(g is not None and g.any() for g in grads(out["adv"], gen_params))  # L_adv reaches G
    for total, own in zip(grads(out["loss"], disc_params), grads(out["disc"], disc_params)):
        assert torch.allclose(total, own)
    for total, own in zip(grads(out["loss"], gen_params), grads(out["gen"], gen_params)):
        assert (total is None and own is None) or torch.allclose(total, own)
    c = task.config
    gen, rec, adv = (float(out[k].detach()) for k in ("gen", "rec", "adv"))
    assert gen == pytest.approx(c.lambda_rec * rec + c.lambda_adv * adv)
    assert (c.lambda_rec, c.lambda_adv) == (0.999, 0.001)


def test_inpaint_keeps_the_context():
    torch.manual_seed(0)
    task = InpaintingTask(_tiny())
    x = _images(4)
    mask = random_block_mask(x, 12, generator=torch.Generator().manual_seed(0))
    out = inpaint(task, x, mask)
    assert out.shape == x.shape and task.training
    assert torch.equal(out * (1 - mask), x * (1 - mask))
    assert not torch.allclose(out * mask, x * mask)


def test_inpainting_survives_checkpoint_and_resume(tmp_path):
    x = (_images(16) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    path = tmp_path / "inpaint.pt"

    def run(epochs):
        torch.manual_seed(0)
        task = InpaintingTask(_tiny())
        loader = DeviceLoader(x, None, 8, normalize=False)
        return task, fit(task, loader, epochs, step=pretext_step, checkpoint=path, progress=False)

    run(1)
    resumed, hist = run(2)
    fresh = InpaintingTask(_tiny())
    fresh.load_state_dict(torch.load(path, weights_only=False)["model"])
    assert hist["epoch"] == [1, 2] and {"rec", "adv", "disc"} <= set(hist)


@pytest.mark.parametrize("norm_pix", [False, True])
def test_masked_reconstruction_step_lowers_its_loss(norm_pix):
    torch.manual_seed(0)
    task = MaskedReconstructionTask(_tiny(), MaskedReconstructionConfig(norm_pix_loss=norm_pix))
    assert _losses_fall(task, _images(8))


def test_masked_task_loss_ignores_visible_target_pixels():
    torch.manual_seed(0)
    task = MaskedReconstructionTask(_tiny(), MaskedReconstructionConfig(norm_pix_loss=True)).eval()
    x = _images(2)
    mask = random_patch_mask(x, 4, 0.75, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = task.predict(x, mask)
    target, changed = patch_normalize(x, 4)[0], x.clone()
    vis = torch.nonzero(mask[0, 0] == 0)[0]
    changed[0, :, vis[0], vis[1]] = 1 - changed[0, :, vis[0], vis[1]]  # one visible pixel of the target
    assert float(masked_mse(pred, patch_normalize(changed, 4)[0], mask)) == pytest.approx(
        float(masked_mse(pred, target, mask)), abs=1e-7)


def test_reconstruct_keeps_visible_patches():
    torch.manual_seed(0)
    task = MaskedReconstructionTask(_tiny())
    x = _images(3)
    mask = random_patch_mask(x, 4, 0.75, generator=torch.Generator().manual_seed(0))
    out = reconstruct(task, x, mask)
    assert torch.allclose(out * (1 - mask), x * (1 - mask)) and task.training


def test_tasks_refuse_bad_input():
    for task in (InpaintingTask(_tiny()), MaskedReconstructionTask(_tiny())):
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            task(torch.rand(2, 32, 32))
    with pytest.raises(ValueError, match="weights"):
        ColorizationTask(_tiny(), bins=ab_bins(None), weights=torch.ones(3))


# ----------------------------------------------------------------------------------- figures
def test_show_reconstructions_draws_three_rows():
    x = _images(5)
    fig = show_reconstructions(rgb_to_lab(x)[:, :1] / 100, x * 0.5, x, n=4)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.images) == 12
    assert {"input", "prediction", "ground truth"} <= {t.get_text() for t in ax.texts}
    np.testing.assert_allclose(ax.images[4].get_array(), x[0].permute(1, 2, 0).numpy() * 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="one length"):
        show_reconstructions(x, x[:3], x)
    matplotlib.pyplot.close(fig)


def test_show_ab_bins_colours_and_sizes():
    bins = ab_bins(None)
    weights = torch.linspace(0.5, 3.0, len(bins))
    fig = show_ab_bins(bins, weights)
    (points,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert len(points.get_offsets()) == len(bins)
    lab = np.concatenate([np.full((len(bins), 1), 50.0), bins.numpy()], 1)[None]
    ref = skimage_color.lab2rgb(lab)[0]  # scikit-image's colours at L = 50 (clipped into the gamut)
    np.testing.assert_allclose(points.get_facecolors()[:, :3], ref, atol=0.02)
    sizes = points.get_sizes()
    assert bool((np.diff(sizes) > 0).all()) and sizes[-1] / sizes[0] == pytest.approx(6.0, rel=1e-4)
    assert "bins" in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="weights"):
        show_ab_bins(bins, weights[:3])
