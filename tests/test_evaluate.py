import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.evaluate import (
    KNNMonitor, cluster_scores, extract_features, invariance_ratio, knn_accuracy, linear_probe, map_at_r,
    pixel_features, recall_at_k, verification_roc,
)
from course_lib.models import SmallConvNet


# ------------------------------------------------------------------------ slow references
def knn_loop(train_f, train_y, test_f, test_y, k, tau):
    """Wu et al. (2018) written out: per query, cosine to every bank item, k best vote exp(s/τ)."""
    train_f, test_f = np.asarray(train_f, np.float64), np.asarray(test_f, np.float64)
    train_f = train_f / np.linalg.norm(train_f, axis=1, keepdims=True)
    correct = 0
    for q, label in zip(test_f, test_y):
        q = q / np.linalg.norm(q)
        sims = [(float(q @ f), int(y)) for f, y in zip(train_f, train_y)]
        sims.sort(key=lambda t: -t[0])
        votes = {}
        for s, y in sims[: min(k, len(sims))]:
            votes[y] = votes.get(y, 0.0) + math.exp(s / tau)
        best = max(votes.values())
        pred = min(c for c, v in votes.items() if v == best)
        correct += pred == int(label)
    return correct / len(test_y)


def retrieval_loop(x, y, metric):
    """Recall@k and MAP@R per query, brute force: the query left out, singletons skipped."""
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for i in range(len(x)):
        others = [j for j in range(len(x)) if j != i]
        r = sum(y[j] == y[i] for j in others)
        if r == 0:
            continue
        key = (lambda j: -x[i] @ x[j]) if metric == "cosine" else (lambda j: np.linalg.norm(x[i] - x[j]))
        ranked = sorted(others, key=key)
        rel = [y[j] == y[i] for j in ranked]
        ap = sum(sum(rel[: j + 1]) / (j + 1) for j in range(r) if rel[j]) / r
        out.append((rel, ap))
    return out


# --------------------------------------------------------------------------------- kNN
def test_knn_matches_loop_on_random_data():
    g = torch.Generator().manual_seed(0)
    train_f, test_f = torch.randn(60, 8, generator=g), torch.randn(25, 8, generator=g)
    train_y, test_y = torch.randint(0, 4, (60,), generator=g), torch.randint(0, 4, (25,), generator=g)
    for k, tau in [(1, 0.1), (5, 0.1), (20, 0.5), (200, 0.07)]:
        expected = knn_loop(train_f, train_y, test_f, test_y, k, tau)
        assert knn_accuracy(train_f, train_y, test_f, test_y, k=k, temperature=tau, batch_size=7) == pytest.approx(expected)


def test_knn_weights_matter():
    # the query is at angle 0; one bank item of class 1 at 0.1 rad, two of class 0 at 1.0 rad.
    ang = torch.tensor([0.1, 1.0, -1.0])
    bank = torch.stack([ang.cos(), ang.sin()], 1)
    bank_y, query, query_y = torch.tensor([1, 0, 0]), torch.tensor([[1.0, 0.0]]), torch.tensor([1])
    # τ = 0.1: e^{cos 0.1/τ} ≈ 2.0e4 > 2 e^{cos 1/τ} ≈ 442, class 1 wins; τ = 10: near-uniform votes, class 0 wins
    assert knn_accuracy(bank, bank_y, query, query_y, k=3, temperature=0.1) == 1.0
    assert knn_accuracy(bank, bank_y, query, query_y, k=3, temperature=10.0) == 0.0
    assert knn_loop(bank, bank_y, query, query_y, 3, 0.1) == 1.0 and knn_loop(bank, bank_y, query, query_y, 3, 10.0) == 0.0


def test_knn_k_capped_numpy_and_small_temperature():
    rng = np.random.default_rng(1)
    train_f, test_f = rng.normal(size=(10, 5)), rng.normal(size=(30, 5))
    train_y, test_y = rng.integers(0, 3, 10), rng.integers(0, 3, 30)
    acc = knn_accuracy(train_f, train_y, test_f, test_y, k=200)  # numpy in, k > bank size
    assert acc == pytest.approx(knn_loop(train_f, train_y, test_f, test_y, 10, 0.1))
    assert acc == knn_accuracy(torch.tensor(train_f), torch.tensor(train_y), torch.tensor(test_f), torch.tensor(test_y), k=10)
    # τ = 0.005 would overflow exp(s/τ) in float32; the shifted weights do not
    acc = knn_accuracy(train_f, train_y, test_f, test_y, k=10, temperature=0.005)
    assert 0.0 <= acc <= 1.0 and acc == pytest.approx(knn_accuracy(train_f, train_y, test_f, test_y, k=1))


def test_knn_bad_shapes():
    f, y = torch.randn(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        knn_accuracy(f, y, torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(10,\)"):
        knn_accuracy(f, y[:9], f, y)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        knn_accuracy(f[0], y, f, y)


# ------------------------------------------------------------------------- linear probe
def _blobs(n, d, classes, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=torch.Generator().manual_seed(123)) * scale
    y = torch.arange(n) % classes
    return centers[y] + torch.randn(n, d, generator=g) * 1.5 + 5.0, y


def test_linear_probe_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs(300, 10, 3, seed=0, scale=0.5)  # overlapping classes: the optimum is not trivial
    xt, yt = _blobs(300, 10, 3, seed=1, scale=0.5)
    wd = 1e-2
    acc, linear = linear_probe(x, y, xt, yt, weight_decay=wd, return_classifier=True)
    scaler = StandardScaler().fit(x.numpy())
    ref = LogisticRegression(C=1 / (wd * len(x)), tol=1e-10, max_iter=10_000).fit(scaler.transform(x.numpy()), y.numpy())
    ref_pred = ref.predict(scaler.transform(xt.numpy()))
    assert acc == pytest.approx((ref_pred == yt.numpy()).mean(), abs=0.01)
    ours = linear(xt).argmax(1).numpy()
    assert (ours == ref_pred).mean() >= 0.99
    # same objective, same optimum: the logits agree up to the softmax's free constant per row
    logits_ref = ref.decision_function(scaler.transform(xt.numpy()))
    logits = linear(xt).detach().numpy()
    np.testing.assert_allclose(logits - logits.mean(1, keepdims=True), logits_ref - logits_ref.mean(1, keepdims=True), atol=2e-2)


def test_linear_probe_separable_deterministic_numpy():
    x, y = _blobs(200, 16, 4, seed=0)
    xt, yt = _blobs(200, 16, 4, seed=1)
    acc = linear_probe(x.numpy(), y.numpy(), xt.numpy(), yt.numpy())
    assert acc >= 0.99
    assert acc == linear_probe(x, y, xt, yt)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        linear_probe(x, y, xt[:, :8], yt)


# --------------------------------------------------------------------------- retrieval
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_recall_and_map_match_brute_force(metric):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 6, generator=g)
    y = torch.randint(0, 5, (40,), generator=g)
    y[7] = 99  # a class with one member: skipped
    ref = retrieval_loop(x, y, metric)
    assert len(ref) == 39
    ks = (1, 2, 4, 8, 100)
    got = recall_at_k(x, y, ks=ks, metric=metric, batch_size=9)
    assert set(got) == set(ks)
    for k in ks:
        assert got[k] == pytest.approx(np.mean([any(rel[:k]) for rel, _ in ref]))
    assert got[100] == 1.0
    assert map_at_r(x, y, metric=metric, batch_size=9) == pytest.approx(np.mean([ap for _, ap in ref]))


def test_map_at_r_matches_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(60, 4, generator=g), torch.randint(0, 4, (60,), generator=g)
    calc = pml.AccuracyCalculator(include=("mean_average_precision_at_r", "precision_at_1"), knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
    ref = calc.get_accuracy(x, y, x, y, ref_includes_query=True)
    assert map_at_r(x, y) == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-6)
    assert recall_at_k(x, y, ks=(1,))[1] == pytest.approx(ref["precision_at_1"], abs=1e-6)


def test_retrieval_edge_cases():
    x = torch.randn(3, 2)
    assert all(math.isnan(v) for v in recall_at_k(x, [0, 1, 2]).values())
    assert math.isnan(map_at_r(x, [0, 1, 2]))
    with pytest.raises(ValueError, match="metric"):
        recall_at_k(x, [0, 0, 1], metric="hamming")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        recall_at_k(x, [0, 0])


def test_verification_roc():
    same = torch.tensor([1, 1, 0, 0, 1, 0])
    a = torch.zeros(6, 2)
    b = torch.tensor([[0.1, 0], [0.2, 0], [1.0, 0], [2.0, 0], [0.5, 0], [0.4, 0]])
    roc = verification_roc(a, b, same)
    # distances 0.1 0.2 0.5 (same) vs 0.4 1.0 2.0 (different): 8 of 9 pairs ordered right
    assert roc["auc"] == pytest.approx(8 / 9)
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and np.all(np.diff(roc["thresholds"][1:]) > 0)


# ---------------------------------------------------------------------- features & ch. 01
def test_extract_features_shape_dtype_and_mode():
    torch.manual_seed(0)
    net = SmallConvNet((4, 8, 8, 8)).train()
    images = torch.randint(0, 256, (37, 16, 16, 3), dtype=torch.uint8)
    f = extract_features(net, images, batch_size=10)
    assert f.shape == (37, 8) and f.dtype == torch.float32 and f.device.type == "cpu"
    assert net.training  # mode restored
    # eval mode inside: batch statistics would make each row depend on its batch
    f_single = extract_features(net, images[:5], batch_size=1)
    torch.testing.assert_close(f[:5], f_single)
    from course_lib.data import to_model_input

    torch.testing.assert_close(extract_features(net, to_model_input(images), batch_size=64), f)
    assert extract_features(net, images.numpy(), batch_size=64).shape == (37, 8)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        extract_features(net, images.permute(0, 3, 1, 2))  # uint8 but channels first
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        extract_features(net, images[0].float())  # one image, not a batch


def test_extract_features_in_nhwc_gives_the_nchw_numbers_and_leaves_the_model_alone():
    # on the CPU the batches go in as channels_last (faster convolutions): same features as the
    # plain NCHW forward pass, and the model's weights keep their memory order
    torch.manual_seed(0)
    net = SmallConvNet((4, 8, 8, 8)).eval()
    images = torch.randint(0, 256, (20, 16, 16, 3), dtype=torch.uint8)
    from course_lib.data import to_model_input

    with torch.no_grad():
        expected = net(to_model_input(images).contiguous())  # (20, 8), NCHW
    torch.testing.assert_close(extract_features(net, images, batch_size=8), expected, rtol=1e-5, atol=1e-6)
    assert all(p.is_contiguous() for p in net.parameters())


def test_pixel_features():
    images = torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8)
    f = pixel_features(images)
    assert f.shape == (5, 3 * 8 * 8) and f.dtype == torch.float32
    torch.testing.assert_close(pixel_features(images, normalize=False)[0, :2], images[0, 0, :2, 0].float() / 255)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        pixel_features(images.permute(0, 3, 1, 2))


def test_invariance_ratio():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (20, 8, 8, 3), dtype=torch.uint8)
    pixels = lambda x: x.flatten(1)  # noqa: E731
    ident = invariance_ratio(pixels, images, transform=lambda x: x, batch_size=6)
    assert ident["ratio"] == 0 and ident["same_image"] == 0 and ident["different_images"] > 0
    noise = lambda x: x + 0.3 * torch.rand_like(x)  # noqa: E731
    state = torch.get_rng_state()
    r1 = invariance_ratio(pixels, images, noise, batch_size=20)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert r1 == invariance_ratio(pixels, images, noise, batch_size=20)  # seeded views
    assert r1 != invariance_ratio(pixels, images, noise, batch_size=20, seed=1)
    assert 0 < r1["ratio"] < 1
    assert r1["ratio"] == pytest.approx(r1["same_image"] / r1["different_images"])
    # the mean over i ≠ j, written out (one batch: view 1 drawn, then view 2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = images.permute(0, 3, 1, 2).contiguous().float() / 255  # as DeviceLoader holds them
        from course_lib.data import normalize_batch

        v1, v2 = normalize_batch(noise(x.clone())), normalize_batch(noise(x.clone()))
    h1, h2 = nn.functional.normalize(v1.flatten(1), dim=1), nn.functional.normalize(v2.flatten(1), dim=1)
    d = torch.cdist(h1.double(), h2.double())
    assert r1["different_images"] == pytest.approx(((d.sum() - d.diagonal().sum()) / (20 * 19)).item(), rel=1e-4)
    assert r1["same_image"] == pytest.approx(d.diagonal().mean().item(), rel=1e-4)
    # a fixed transform: compare with the original image instead of a second, identical draw
    flip = lambda x: x.flip(-1)  # noqa: E731
    assert invariance_ratio(pixels, images, flip)["ratio"] == 0
    flipped = invariance_ratio(pixels, images, flip, original=True)
    assert 0 < flipped["ratio"] and flipped["different_images"] == pytest.approx(ident["different_images"], rel=0.2)


def test_cluster_scores():
    x, y = _blobs(90, 8, 3, seed=0, scale=10.0)
    good = cluster_scores(x, y)
    bad = cluster_scores(torch.randn(90, 8, generator=torch.Generator().manual_seed(0)), y)
    assert set(good) == {"silhouette", "nmi"}
    assert good["nmi"] > 0.9 and good["silhouette"] > 0.5
    assert bad["nmi"] < 0.2 and bad["silhouette"] < 0.1


def test_knn_monitor_uses_backbone_and_restores_mode():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (30, 8, 8, 3), dtype=torch.uint8)
    labels = torch.arange(30) % 3

    class WithBackbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = SmallConvNet((4, 4, 4, 4))
            self.head = nn.Linear(4, 3)

    model = WithBackbone().train()
    monitor = KNNMonitor(images[:20], labels[:20], images[20:], labels[20:], k=5)
    out = monitor(model)
    assert set(out) == {"knn_acc"} and model.training
    bank = extract_features(model.backbone, images[:20])
    test = extract_features(model.backbone, images[20:])
    assert out["knn_acc"] == knn_accuracy(bank, labels[:20], test, labels[20:], k=5)
    # other features: through the head
    head = KNNMonitor(images[:20], labels[:20], images[20:], labels[20:], k=5, feature_fn=lambda m, x: m.head(m.backbone(x)))
    assert 0.0 <= head(model)["knn_acc"] <= 1.0 and model.training


def test_retrieval_monitor_reports_recall_and_map():
    from course_lib.evaluate import RetrievalMonitor, map_at_r, recall_at_k

    torch.manual_seed(0)
    images = torch.randint(0, 256, (30, 8, 8, 3), dtype=torch.uint8)
    labels = torch.arange(3).repeat(10)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 5))
    out = RetrievalMonitor(images, labels, ks=(1, 2))(net)
    z = extract_features(net, images)
    assert out["recall@1"] == recall_at_k(z, labels, (1,))[1]
    assert out["recall@2"] == recall_at_k(z, labels, (2,))[2]
    assert out["map@r"] == map_at_r(z, labels)
