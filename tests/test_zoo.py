"""course_lib.zoo (chapter 09): saved encoders round-trip, missing ones get a small stand-in with a clear
message, and the comparison's numbers equal independent computations and are deterministic for a seed."""
import numpy as np
import pytest
import torch

from course_lib import zoo
from course_lib.evaluate import knn_accuracy, knn_predict, map_at_r
from course_lib.models import backbone_for_profile
from course_lib.pretext import ColorizationTask


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path / "checkpoints"


def _images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)


def _clustered(n=60, d=8, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    return torch.randn(c, d, generator=g)[y] * 3 + torch.randn(n, d, generator=g), y


# ----------------------------------------------------------------------------------- registry
def test_a_saved_encoder_loads_back_with_the_same_outputs_and_its_info(checkpoints):
    torch.manual_seed(0)
    backbone = backbone_for_profile("smoke").eval()
    path = zoo.save_encoder("simclr", backbone, epochs=3, train_images=500, profile="smoke")
    assert path == checkpoints / "encoders" / "smoke" / "simclr.pt" and not path.with_suffix(".tmp").exists()
    loaded = zoo.load_encoder("simclr", profile="smoke")
    x = torch.rand(4, 3, 32, 32)
    from course_lib.data import normalize_batch
    assert torch.equal(loaded(x), backbone(normalize_batch(x)))
    info = zoo.saved_encoders("smoke")["simclr"]
    assert (info["chapter"], info["family"], info["epochs"], info["train_images"]) == ("06_simclr", "self-supervised", 3, 500)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_the_colorization_encoder_is_fed_lightness_as_its_task_feeds_it(checkpoints):
    torch.manual_seed(0)
    task = ColorizationTask.from_images(_images(), backbone_for_profile("smoke")).eval()
    zoo.save_encoder("colorization", task.backbone, epochs=1, train_images=48, profile="smoke")
    loaded = zoo.load_encoder("colorization", profile="smoke")
    x = torch.rand(3, 3, 32, 32)
    assert loaded.input == "lightness"
    assert torch.allclose(loaded(x), task.encode(x), atol=1e-6)


def test_missing_unknown_and_mismatched_encoders_say_what_to_do(checkpoints):
    with pytest.raises(zoo.EncoderNotFound, match="06_simclr saves it"):
        zoo.load_encoder("simclr", profile="smoke")
    with pytest.raises(ValueError, match="pass chapter="):
        zoo.save_encoder("mine", backbone_for_profile("smoke"), epochs=1, train_images=1)
    zoo.save_encoder("byol", backbone_for_profile("cpu"), epochs=1, train_images=1, profile="cpu")
    (checkpoints / "encoders" / "smoke").mkdir(parents=True)
    (checkpoints / "encoders" / "cpu" / "byol.pt").rename(checkpoints / "encoders" / "smoke" / "byol.pt")
    with pytest.raises(ValueError, match="does not fit the smoke profile's backbone"):
        zoo.load_encoder("byol", profile="smoke")
    with pytest.raises(ValueError, match="unknown encoder"):
        zoo.train_small("nonsense", _images(), torch.zeros(48, dtype=torch.long), epochs=1)


def test_a_missing_encoder_is_trained_small_with_a_message_and_a_saved_one_is_loaded(checkpoints):
    images, labels = _images(64), torch.arange(64) % 4
    zoo.save_encoder("supervised", backbone_for_profile("smoke"), epochs=7, train_images=64, profile="smoke")
    lines = []
    got = zoo.load_or_train(["random", "supervised", "rotation"], images, labels, epochs=1, batch_size=32,
                            profile="smoke", device="cpu", log=lines.append)
    assert "saved by 01_representations (7 epochs" in lines[1]
    assert "rotation" in lines[2] and "not saved yet (05_pretext_tasks saves it" in lines[2] and "1 epoch(s) on 64" in lines[2]
    assert got["rotation"].info["source"].startswith("09, small") and got["supervised"].info["epochs"] == 7
    torch.manual_seed(0)
    assert torch.equal(got["random"].backbone.state_dict()["blocks.0.weight"],
                       zoo.train_small("random", images, labels, 1, profile="smoke").backbone.state_dict()["blocks.0.weight"])
    trained = dict(got["rotation"].backbone.named_parameters())["blocks.0.weight"]
    assert not torch.equal(trained, got["random"].backbone.state_dict()["blocks.0.weight"])  # it did train


@pytest.mark.parametrize("name", sorted(set(zoo.RECIPES) - {"rotation"}))
def test_every_small_recipe_trains_its_backbone(checkpoints, name):
    images, labels = _images(64, seed=1), torch.arange(64) % 4
    random = zoo.train_small("random", images, labels, 1, profile="smoke", device="cpu")
    enc = zoo.train_small(name, images, labels, 1, batch_size=32, profile="smoke", device="cpu")
    changed = [not torch.equal(a, b) for a, b in zip(enc.backbone.state_dict().values(), random.backbone.state_dict().values())]
    assert any(changed) and enc.input == zoo.ZOO[name].input
    assert torch.isfinite(enc(torch.rand(2, 3, 32, 32))).all()


# ----------------------------------------------------------------------------------- scores
def test_knn_predict_matches_a_slow_vote():
    bank, y = _clustered(50, seed=1)
    queries, _ = _clustered(20, seed=2)
    got = knn_predict(bank, y, queries, k=7, temperature=0.1)
    b, q = torch.nn.functional.normalize(bank, dim=1), torch.nn.functional.normalize(queries, dim=1)
    for i in range(len(q)):
        s = [(float(q[i] @ b[j]), j) for j in range(len(b))]
        top = sorted(s, reverse=True)[:7]
        votes = [0.0] * 3
        for sim, j in top:
            votes[int(y[j])] += np.exp(sim / 0.1)
        assert int(got[i]) == int(np.argmax(votes))


def test_scores_equal_independent_computations_and_repeat_exactly():
    f_train, y_train = _clustered(90, seed=3)
    f_test, y_test = _clustered(45, seed=4)
    s = zoo.score_features(f_train, y_train, f_test, y_test, k=10)
    assert s["kNN"] == pytest.approx(knn_accuracy(f_train, y_train, f_test, y_test, k=10))
    sim = torch.nn.functional.normalize(f_test, dim=1) @ torch.nn.functional.normalize(f_test, dim=1).T
    sim.fill_diagonal_(-2)
    assert s["Recall@1"] == pytest.approx((y_test[sim.argmax(1)] == y_test).float().mean().item())
    again = zoo.score_all({"a": f_train}, y_train, {"a": f_test}, y_test, progress=False)["a"]
    assert again == zoo.score_all({"a": f_train}, y_train, {"a": f_test}, y_test, progress=False)["a"]
    assert s["MAP@R"] == pytest.approx(map_at_r(f_test, y_test, metric="cosine"))  # the retrieval chapter's own, by cosine


def test_confusion_matrix_matches_sklearn_and_most_confused_reads_it():
    from sklearn.metrics import confusion_matrix as sk

    g = np.random.default_rng(0)
    y, p = g.integers(0, 4, 200), g.integers(0, 4, 200)
    m = zoo.confusion_matrix(torch.tensor(p), torch.tensor(y), 4)
    np.testing.assert_allclose(m, sk(y, p, labels=range(4), normalize="true"))
    hand = np.array([[0.7, 0.3, 0.0], [0.05, 0.9, 0.05], [0.2, 0.0, 0.8]])
    assert zoo.most_confused(hand, ["a", "b", "c"], top=2) == [("a", "b", 0.3), ("c", "a", 0.2)]
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        zoo.confusion_matrix(torch.zeros(3), torch.zeros(4))


def test_within_superclass_by_hand():
    classes = ["airplane", "automobile", "cat", "dog"]
    groups = {"vehicle": ("airplane", "automobile"), "animal": ("cat", "dog")}
    m = np.array([[0.5, 0.5, 0.0, 0.0],    # airplane: all mistakes to automobile (same super-class)
                  [0.0, 1.0, 0.0, 0.0],    # no mistakes
                  [0.0, 0.25, 0.5, 0.25],  # cat: half of its mistakes within
                  [0.0, 0.0, 0.0, 1.0]])
    out = zoo.within_superclass(m, classes, groups)
    assert out["within"] == pytest.approx((0.5 + 0.25) / 1.0)
    assert out["chance"] == pytest.approx((0.5 * 1 / 3 + 0.5 * 1 / 3) / 1.0)
    assert zoo.within_superclass(m, ["0", "1", "2", "3"]) is None


def test_spearman_is_pearson_of_ranks():
    a, b = [0.1, 0.5, 0.3, 0.9, 0.7], [1.0, 3.0, 2.0, 4.0, 5.0]
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    assert zoo.spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    with pytest.raises(ValueError):
        zoo.spearman([1, 2], [1, 2])


# ----------------------------------------------------------------------------------- figures
def test_maps_are_deterministic_for_a_seed_and_drawn_one_panel_each(headless_plots):
    from course_lib.viz import map_coordinates, plot_confusions, plot_maps

    f, y = _clustered(40, seed=5)
    feats = {"a": f, "b": f * 2 + 1, "c": -f}
    one = map_coordinates(feats, method="tsne", perplexity=10, progress=False)
    two = map_coordinates(feats, method="tsne", perplexity=10, progress=False)
    assert all(np.array_equal(one[k], two[k]) for k in feats)
    fig = plot_maps(one, y, classes=["x", "y", "z"], cols=2)
    assert sum(ax.get_visible() for ax in fig.axes) == 3
    fig = plot_confusions({k: np.eye(3) * 0.8 + 0.2 / 3 for k in feats}, classes=["x", "y", "z"], cols=3)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[:3]] == ["a", "b", "c"]
