"""course_lib.pretext's rotation, jigsaw, context, autoencoder and deep-clustering tasks.

Inputs are checked against independent computations: NumPy's rot90, slow loops over images and
tiles, images whose pixels hold their own coordinates (so a patch says where it was cut from),
scikit-learn's KMeans and its adjusted Rand index. Each task's loss falls on a fixed batch, and
deep clustering survives fit's checkpoint + resume.
"""
import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.data import DeviceLoader  # noqa: E402
from course_lib.models import SmallConvNet  # noqa: E402
from course_lib.pretext import pretext_step  # noqa: E402
from course_lib.pretext.clustering import (  # noqa: E402
    AutoencoderTask, DeepClusterConfig, DeepClusterTask, kmeans, split_empty_clusters,
)
from course_lib.pretext.context import NEIGHBOURS, ContextTask, context_pairs, patch_layout  # noqa: E402
from course_lib.pretext.jigsaw import JigsawConfig, JigsawTask, jigsaw_permutations, make_jigsaw, min_hamming  # noqa: E402
from course_lib.pretext.rotation import RotationConfig, RotationTask, rotate_batch  # noqa: E402
from course_lib.train import fit  # noqa: E402
from course_lib import viz  # noqa: E402
from course_lib.viz import pretext as vp  # noqa: E402


def _images(n=8, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _uint8(n=64, seed=0):
    return (torch.rand(n, 32, 32, 3, generator=torch.Generator().manual_seed(seed)) * 255).to(torch.uint8)


def _coords(n=16, size=32):
    """Images whose channels 0 and 1 hold each pixel's row and column (channel 2: the image index)."""
    r, c = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    x = torch.stack([r, c, torch.zeros_like(r)])[None].repeat(n, 1, 1, 1)
    x[:, 2] = torch.arange(n).float()[:, None, None]
    return x


def _tiny():
    return SmallConvNet((8, 16, 32, 64))


def _loss_drops(task, x, steps=8, lr=3e-3):
    """A few Adam steps on one batch, the task's random draws (tiles, patches) fixed by a seed."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(task.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        torch.manual_seed(1)
        out = task(x)
        loss = out["loss"] if isinstance(out, dict) else out
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


# ------------------------------------------------------------------------------ rotation
def test_rotating_back_by_minus_the_label_recovers_each_image_exactly():
    x = _images(5)
    x_rot, y = rotate_batch(x)
    assert x_rot.shape == (20, 3, 32, 32) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [5, 5, 5, 5]
    for j in range(20):
        assert torch.equal(torch.rot90(x_rot[j], -int(y[j]), dims=(1, 2)), x[j % 5])


def test_label_k_is_k_quarter_turns_counter_clockwise_as_numpy_rot90():
    x = _images(2, size=6)
    x_rot, y = rotate_batch(x)
    for j in range(8):
        expected = np.rot90(x[j % 2].numpy().transpose(1, 2, 0), int(y[j]))  # (H, W, C), counter-clockwise
        assert np.array_equal(x_rot[j].numpy().transpose(1, 2, 0), expected)


def test_rotation_rejects_non_square_images_and_wrong_shapes():
    with pytest.raises(ValueError, match="H = W"):
        rotate_batch(torch.rand(2, 3, 32, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        RotationTask(_tiny())(torch.rand(3, 32, 32))


@pytest.mark.parametrize("all_rotations", [True, False])
def test_rotation_task_loss_drops_and_logs_accuracy(all_rotations):
    task = RotationTask(_tiny(), RotationConfig(all_rotations=all_rotations))
    out = task(_images(16))
    assert set(out) == {"loss", "acc"} and 0 <= float(out["acc"]) <= 1
    _loss_drops(task, _images(16))


# -------------------------------------------------------------------------------- jigsaw
def test_jigsaw_permutations_are_deterministic_distinct_and_valid():
    a, b = jigsaw_permutations(30, seed=3), jigsaw_permutations(30, seed=3)
    assert a.shape == (30, 9) and a.dtype == torch.int64 and torch.equal(a, b)
    assert not torch.equal(a, jigsaw_permutations(30, seed=4))
    assert torch.equal(a.sort(1).values, torch.arange(9).expand(30, 9))  # each row a permutation
    assert len({tuple(r) for r in a.tolist()}) == 30


@pytest.mark.parametrize("n, strategy, claimed", [
    (10, "max", 8), (30, "max", 7), (100, "max", 6), (1000, "max", 5),
    (100, "min", 2), (100, "random", 3), (1000, "random", 2),
])
def test_min_hamming_distance_is_the_one_the_docstring_claims(n, strategy, claimed):
    assert f"{claimed}" in jigsaw_permutations.__doc__
    assert min_hamming(jigsaw_permutations(n, seed=0, strategy=strategy)) == claimed


def test_min_hamming_matches_a_slow_loop_and_max_beats_random():
    perms = jigsaw_permutations(40, seed=1, strategy="random")
    slow = min(sum(int(a != b) for a, b in zip(p, q)) for i, p in enumerate(perms.tolist())
               for j, q in enumerate(perms.tolist()) if i < j)
    assert min_hamming(perms) == slow
    for seed in range(3):
        assert min_hamming(jigsaw_permutations(100, seed, "max")) > min_hamming(jigsaw_permutations(100, seed, "random"))
    with pytest.raises(ValueError, match="strategy"):
        jigsaw_permutations(10, strategy="far")


def test_inverse_permutation_restores_the_grid_and_tiles_stay_in_their_cells():
    x, perms, gap = _coords(16), jigsaw_permutations(20, seed=0), 2
    tiles, labels = make_jigsaw(x, perms, gap=gap, jitter=True, generator=torch.Generator().manual_seed(0))
    cell, t = 10, 8  # 32 // 3, cell - gap
    assert tiles.shape == (16, 9, 3, t, t) and labels.shape == (16,)
    offsets = set()
    for b in range(16):
        grid = tiles[b, perms[labels[b]].argsort()]  # inverse permutation
        for k in range(9):
            r0, c0 = int(grid[k, 0, 0, 0]), int(grid[k, 1, 0, 0])  # where the tile was cut
            dr, dc = r0 - (1 + cell * (k // 3)), c0 - (1 + cell * (k % 3))
            assert 0 <= dr <= gap and 0 <= dc <= gap
            offsets.add((dr, dc))
            expected = x[b, :, r0:r0 + t, c0:c0 + t]  # slow: cut the tile by hand
            assert torch.equal(grid[k], expected)
    assert len(offsets) > 4  # jittered


def test_without_gap_or_jitter_the_tiles_reassemble_the_image():
    x, perms = _images(3, size=30), jigsaw_permutations(10, seed=0)
    tiles, labels = make_jigsaw(x, perms, gap=0, jitter=False)
    for b in range(3):
        grid = tiles[b, perms[labels[b]].argsort()]  # (9, 3, 10, 10)
        image = grid.reshape(3, 3, 3, 10, 10).permute(2, 0, 3, 1, 4).reshape(3, 30, 30)
        assert torch.equal(image, x[b])


def test_jigsaw_rejects_sizes_that_do_not_tile():
    perms = jigsaw_permutations(10)
    with pytest.raises(ValueError, match="gap"):
        make_jigsaw(_images(2), perms, gap=10)  # cells of 10 px leave no tile
    with pytest.raises(ValueError, match="square"):
        make_jigsaw(torch.rand(2, 3, 32, 24), perms)
    with pytest.raises(ValueError, match=r"\(n, 9\)"):
        make_jigsaw(_images(2), torch.zeros(4, 8, dtype=torch.long))


def test_jigsaw_task_loss_drops():
    task = JigsawTask(_tiny(), JigsawConfig(num_permutations=10, hidden=64))
    assert task.perms.shape == (10, 9)
    _loss_drops(task, _images(16))


# ------------------------------------------------------------------------------- context
@pytest.mark.parametrize("gap, jitter", [(2, 1), (3, 0), (1, 2)])
def test_context_positions_match_where_the_neighbour_was_cut(gap, jitter):
    x = _coords(64)
    centre, neighbour, pos = context_pairs(x, gap=gap, jitter=jitter, generator=torch.Generator().manual_seed(0))
    p, o = patch_layout(32, gap, jitter)
    assert centre.shape == neighbour.shape == (64, 3, p, p) and set(pos.tolist()) == set(range(8))
    for b in range(64):
        cr, cc = int(centre[b, 0, 0, 0]), int(centre[b, 1, 0, 0])
        nr, nc = int(neighbour[b, 0, 0, 0]), int(neighbour[b, 1, 0, 0])
        assert abs(cr - (o + p + gap)) <= jitter and abs(cc - (o + p + gap)) <= jitter  # centre cell, jittered
        di, dj = NEIGHBOURS[int(pos[b])]
        assert abs(nr - (o + (p + gap) * (1 + di))) <= jitter and abs(nc - (o + (p + gap) * (1 + dj))) <= jitter
        assert torch.equal(neighbour[b], x[b, :, nr:nr + p, nc:nc + p])  # slow: the patch cut by hand
        if jitter == 0 and di != 0:
            assert abs(nr - cr) - p == gap  # exactly the gap between the two patches


def test_context_rejects_grids_that_do_not_fit():
    with pytest.raises(ValueError, match="needs"):
        context_pairs(_images(2), gap=14, jitter=2)  # no patch fits
    with pytest.raises(ValueError, match="square"):
        context_pairs(torch.rand(2, 3, 32, 30))


def test_context_task_loss_drops():
    _loss_drops(ContextTask(_tiny()), _images(16))


# ----------------------------------------------------------------- autoencoder, k-means
def test_autoencoder_reconstructs_the_input_shape_and_its_loss_drops():
    task = AutoencoderTask(_tiny())
    assert task.reconstruct(_images(2)).shape == (2, 3, 32, 32)
    _loss_drops(task, _images(16), lr=1e-2)
    with pytest.raises(ValueError, match="32, 32"):
        task(torch.rand(2, 3, 24, 24))


@pytest.mark.parametrize("blobs", [True, False])
def test_kmeans_inertia_matches_sklearn(blobs):
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    rng = np.random.default_rng(0)
    x = make_blobs(1500, 8, centers=12, random_state=0)[0] if blobs else rng.normal(size=(1500, 8))
    x = torch.tensor(x, dtype=torch.float32)
    _, assign, inertia = kmeans(x, 12, iters=100, generator=torch.Generator().manual_seed(0))
    ref = KMeans(12, n_init=10, random_state=0).fit(x.numpy()).inertia_
    assert inertia == pytest.approx(ref, rel=1e-3 if blobs else 0.03)
    assert torch.bincount(assign, minlength=12).min() > 0


def test_an_empty_cluster_takes_a_perturbed_copy_of_the_largest_one():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(100, 4, generator=g) + 5, torch.randn(30, 4, generator=g) - 5])
    init = torch.stack([x[:100].mean(0), x[100:].mean(0), torch.full((4,), 1e3)])  # cluster 2: nobody near
    assign = torch.cdist(x, init).argmin(1)
    assert torch.bincount(assign, minlength=3)[2] == 0
    c, a = split_empty_clusters(x, init, assign)
    eps, sign = 1 / 1024, torch.tensor([1.0, -1.0, 1.0, -1.0])
    torch.testing.assert_close(c[2], init[0] * (1 + eps * sign))  # the largest cluster (0) was split
    torch.testing.assert_close(c[0], init[0] * (1 - eps * sign))
    counts = torch.bincount(a, minlength=3)
    assert counts.min() > 0 and counts[1] == 30 and counts[0] + counts[2] == 100
    _, final, _ = kmeans(x, 3, init=init)
    assert torch.bincount(final, minlength=3).min() > 0


# ------------------------------------------------------------------------ deep clustering
def _deepcluster(n_clusters=8):
    torch.manual_seed(0)
    return DeepClusterTask(_tiny(), DeepClusterConfig(num_clusters=n_clusters, pca_dim=32))


def test_recluster_gives_balanced_weights_new_labels_and_a_new_head():
    from sklearn.metrics import adjusted_rand_score

    images, task = _uint8(128), _deepcluster()
    task.start(images)
    first, head = task.pseudo_labels.clone(), task.head.weight.detach().clone()
    counts = torch.bincount(first, minlength=8).float()
    assert first.shape == (128,) and counts.min() > 0
    torch.testing.assert_close(task.class_weights * counts, torch.full((8,), 128 / 8))  # ∝ 1/|cluster|, E = 1
    x = images.permute(0, 3, 1, 2).float() / 255
    opt = torch.optim.Adam(task.backbone.parameters(), lr=1e-2)
    for _ in range(5):
        loss = task(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    stats = task.on_epoch(task, 1, None)
    assert 0 <= stats["nmi"] <= 1
    assert adjusted_rand_score(first.numpy(), task.pseudo_labels.numpy()) < 0.95
    assert not torch.equal(head, task.head.weight)


def test_deepcluster_loss_drops_and_refuses_unclustered_images():
    images, task = _uint8(64), _deepcluster()
    with pytest.raises(ValueError, match="recluster"):
        task(_images(4))
    task.start(images)
    x = images.permute(0, 3, 1, 2).float() / 255
    _loss_drops(task, x[torch.randperm(64)[:32]])
    with pytest.raises(ValueError, match="not clustered"):
        task(_images(4))


def test_deepcluster_survives_checkpoint_and_resume(tmp_path):
    images = _uint8(96, seed=2)

    def run(epochs, path):
        task = _deepcluster(6)
        task.start(images)
        loader = DeviceLoader(images, None, 32, normalize=False)
        fit(task, loader, epochs, step=pretext_step, checkpoint=path, progress=False, on_epoch=task.on_epoch)
        return task

    straight = run(2, tmp_path / "a.pt")
    run(1, tmp_path / "b.pt")
    resumed = run(2, tmp_path / "b.pt")
    assert torch.equal(straight.pseudo_labels, resumed.pseudo_labels)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    fresh = DeepClusterTask(_tiny(), DeepClusterConfig(num_clusters=6, pca_dim=32))
    fresh.load_state_dict(straight.state_dict())  # the (N,) buffers take the checkpoint's N
    assert torch.equal(fresh.pseudo_labels, straight.pseudo_labels)
    assert torch.equal(fresh.lookup(images[:5].permute(0, 3, 1, 2).float() / 255), torch.arange(5))


# ------------------------------------------------------------------------------- figures


def _n_images(fig):
    return sum(len(ax.images) for ax in fig.axes)


@pytest.mark.usefixtures("headless_plots")
def test_each_figure_draws_what_the_task_sees():
    images = _uint8(40)
    fig = vp.show_rotations(images, n=3)
    assert isinstance(fig, Figure) and _n_images(fig) == 12
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("y=1" in t for t in texts) == 3
    fig = vp.show_jigsaw(images[0], jigsaw_permutations(10), index=4)
    assert _n_images(fig) == 10 and any("#4 of 10" in t.get_text() for t in fig.axes[0].texts)
    fig = vp.show_context_pair(images[0])
    assert _n_images(fig) == 3 and any("label" in t.get_text() for t in fig.axes[0].texts)
    fig = vp.show_clusters(images, torch.arange(40) % 5, per_cluster=4, max_clusters=3)
    assert _n_images(fig) == 12 and sum("cluster" in t.get_text() for t in fig.axes[0].texts) == 3
    with pytest.raises(ValueError, match="index"):
        vp.show_jigsaw(images[0], jigsaw_permutations(10), index=10)
