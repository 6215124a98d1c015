import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import DeviceLoader
from course_lib.evaluate import KNNMonitor
from course_lib.models import Classifier, SmallConvNet
from course_lib.train import History, epoch_seed, fit, supervised_step, two_view_step


def _data(n=64, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    # class 0 dark, class 1 bright, plus noise: separable by the mean intensity
    base = torch.where(labels[:, None, None, None] == 1, 170, 60)
    images = (base + torch.randint(-40, 40, (n, size, size, 3), generator=g)).clamp(0, 255).to(torch.uint8)
    return images, labels


def noisy_flip(x):
    """A random augmentation drawn from torch's global RNG, per sample: flip + noise."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x + 0.05 * torch.rand_like(x)


def _model(seed=0):
    torch.manual_seed(seed)
    return Classifier(SmallConvNet((4, 8, 8, 8)), 2)


def _loader(images, labels, **kw):
    return DeviceLoader(images, labels, batch_size=16, transform=noisy_flip, **kw)


def _step_with_acc(model, batch):
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}


def _scheduler(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.8)  # stepped per batch


def _without_time(history):
    return {k: v for k, v in history.items() if k != "time"}


def test_resume_is_exact(tmp_path):
    images, labels = _data()
    straight = _model()
    h_straight = fit(straight, _loader(images, labels), epochs=4, step=_step_with_acc, scheduler=_scheduler,
                     checkpoint=tmp_path / "straight.pt", seed=3, progress=False)

    path = tmp_path / "run.pt"
    fit(_model(), _loader(images, labels), epochs=2, step=_step_with_acc, scheduler=_scheduler,
        checkpoint=path, seed=3, progress=False)
    # the kernel dies: a fresh process makes a new model (even a differently initialised one) and
    # optimizer, and runs the same cell again
    torch.manual_seed(12345)
    resumed = _model(seed=7)
    h_resumed = fit(resumed, _loader(images, labels), epochs=4, step=_step_with_acc, scheduler=_scheduler,
                    checkpoint=path, seed=3, progress=False)

    assert h_resumed["epoch"] == [1, 2, 3, 4]
    assert _without_time(h_resumed) == _without_time(h_straight)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert h_resumed["lr"][-1] == pytest.approx(1e-3 * 0.8 ** (4 * 4 // 3))  # 4 epochs × 4 batches


def test_other_seed_gives_other_run():
    images, labels = _data()
    h0 = fit(_model(), _loader(images, labels), epochs=1, seed=0, progress=False)
    h1 = fit(_model(), _loader(images, labels), epochs=1, seed=1, progress=False)
    assert h0["loss"] != h1["loss"]
    assert epoch_seed(0, 1) != epoch_seed(1, 0) and epoch_seed(0, 1) == epoch_seed(0, 1)


def test_finished_checkpoint_loads_without_training(tmp_path):
    images, labels = _data()
    path = tmp_path / "done.pt"
    trained = _model()
    history = fit(trained, _loader(images, labels), epochs=2, checkpoint=path, progress=False)

    def exploding():
        raise AssertionError("a finished run must not iterate the loader")

    same_run = _loader(images, labels)
    same_run._batches = exploding  # the same run's loader, which must not be iterated
    fresh = _model(seed=1)
    again = fit(fresh, same_run, epochs=2, checkpoint=path, progress=False)
    assert again == history and isinstance(again, History)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in trained.state_dict().items())
    # resume=False trains from scratch and overwrites the checkpoint
    fit(_model(seed=2), _loader(images, labels), epochs=1, checkpoint=path, resume=False, progress=False)
    assert torch.load(path, weights_only=False)["epoch"] == 1


def test_checkpoint_contents_and_weights_only_load(tmp_path):
    images, labels = _data()
    path = tmp_path / "c.pt"
    fit(_model(), _loader(images, labels), epochs=1, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)  # plain tensors and python types only
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "history"} <= set(state)
    assert state["epoch"] == 1 and state["history"]["epoch"] == [1]
    assert not list(tmp_path.glob("*.tmp"))  # written atomically via a temporary file


def test_loss_decreases_on_separable_problem():
    images, labels = _data(n=128)
    model = _model()
    history = fit(model, _loader(images, labels), epochs=6, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), progress=False)
    assert len(history["loss"]) == 6
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["loss"][0] == pytest.approx(math.log(2), abs=0.3)
    assert all(t > 0 for t in history["time"]) and history["lr"] == [1e-2] * 6


def test_monitor_and_logged_scalars_in_history():
    images, labels = _data()
    calls = []

    def monitor(model):
        calls.append(model.training)
        assert not torch.is_grad_enabled()
        return {"custom": 1.0}

    knn = KNNMonitor(images[:48], labels[:48], images[48:], labels[48:], k=5)
    model = _model()
    history = fit(model, _loader(images, labels), epochs=5, step=_step_with_acc,
                  monitor=lambda m: {**knn(m), **monitor(m)}, monitor_every=2, progress=False)
    assert calls == [False, False, False]  # after epochs 2, 4 and the last, in eval mode
    assert model.training
    assert [math.isnan(v) for v in history["knn_acc"]] == [True, False, True, False, False]
    assert all(0 <= v <= 1 for v in history["knn_acc"] if not math.isnan(v))
    assert len(history["acc"]) == 5 and all(0 <= a <= 1 for a in history["acc"])
    assert set(history) == {"epoch", "loss", "acc", "lr", "time", "knn_acc", "custom"}
    json.loads(json.dumps(history))  # JSON-serialisable (NaN included)
    assert history.last()["epoch"] == 5


def test_two_view_step_and_plain_iterable_loader():
    class TwoView(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = SmallConvNet((4, 4, 4, 4))

        def forward(self, x1, x2):
            return (self.backbone(x1) - self.backbone(x2)).pow(2).mean() - self.backbone(x1).std(0).mean()

    images, labels = _data(n=32)
    loader = DeviceLoader(images, labels, batch_size=8, transform=noisy_flip, n_views=2)
    torch.manual_seed(0)
    history = fit(TwoView(), loader, epochs=2, step=two_view_step, progress=False)
    assert len(history["loss"]) == 2 and all(math.isfinite(v) for v in history["loss"])

    batches = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])) for _ in range(3)]  # a list works too
    history = fit(_model(), batches, epochs=2, step=supervised_step, progress=True)
    assert history["epoch"] == [1, 2]


def test_history_append_pads_with_nan():
    h = History()
    h.append({"epoch": 1, "loss": 2.0})
    h.append({"epoch": 2, "loss": 1.0, "knn_acc": 0.5})
    h.append({"epoch": 3, "loss": 0.5})
    assert h["epoch"] == [1, 2, 3] and h["loss"] == [2.0, 1.0, 0.5]
    assert math.isnan(h["knn_acc"][0]) and h["knn_acc"][1] == 0.5 and math.isnan(h["knn_acc"][2])


def test_bad_arguments():
    images, labels = _data()
    model = _model()
    other = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler"):
        fit(model, _loader(images, labels), 1, scheduler=torch.optim.lr_scheduler.StepLR(other, 1), progress=False)
    with pytest.raises(ValueError, match="no batch"):
        fit(model, DeviceLoader(images[:8], labels[:8], batch_size=16), 1, progress=False)


def test_metric_steps_compute_their_losses():
    from course_lib.losses import batch_hard_triplet_loss, contrastive_loss, triplet_loss_from_indices
    from course_lib.mining import mine_triplets
    from course_lib.train import embedding_step, mined_triplet_step, pair_step

    torch.manual_seed(0)
    net = torch.nn.Linear(6, 3)
    x1, x2 = torch.randn(5, 6), torch.randn(5, 6)
    same = torch.tensor([1, 0, 1, 0, 0])
    expected = contrastive_loss(net(x1), net(x2), same, margin=0.7)
    torch.testing.assert_close(pair_step(contrastive_loss, margin=0.7)(net, (x1, x2, same)), expected)

    x, y = torch.randn(12, 6), torch.arange(4).repeat_interleave(3)
    torch.testing.assert_close(embedding_step(batch_hard_triplet_loss, margin=0.3)(net, (x, y)),
                               batch_hard_triplet_loss(net(x), y, margin=0.3))
    out = mined_triplet_step("semihard", margin=0.5)(net, (x, y))
    a, p, n = mine_triplets(net(x), y, strategy="semihard", margin=0.5)
    assert out["triplets"] == len(a)
    torch.testing.assert_close(out["loss"], triplet_loss_from_indices(net(x), a, p, n, margin=0.5))
    random_out = mined_triplet_step("random")(net, (x, y))
    assert random_out["triplets"] == 12 and random_out["loss"].requires_grad


def test_head_and_prototypical_steps():
    from course_lib.losses import AngularMarginHead, CenterLoss, center_loss, prototypical_loss
    from course_lib.models import EmbeddingClassifier
    from course_lib.train import head_step, prototypical_step

    torch.manual_seed(0)
    model = EmbeddingClassifier(torch.nn.Linear(6, 4), AngularMarginHead(4, 3, kind="cosface"), CenterLoss(4, 3))
    x, y = torch.randn(9, 6), torch.tensor([0, 1, 2] * 3)
    z = model(x)
    ce = F.cross_entropy(model.head(z, y), y)
    torch.testing.assert_close(head_step()(model, (x, y)), ce)
    out = head_step(center_weight=0.5)(model, (x, y))
    torch.testing.assert_close(out["loss"], ce + 0.5 * center_loss(z, y, model.centers.centers))

    # an episode: 3 classes x 4 images grouped by class, 1 support + 3 queries each
    y = torch.tensor([5, 5, 5, 5, 2, 2, 2, 2, 9, 9, 9, 9])
    x = torch.randn(12, 6)
    z = model(x)
    s, q = torch.tensor([0, 4, 8]), torch.tensor([1, 2, 3, 5, 6, 7, 9, 10, 11])
    torch.testing.assert_close(prototypical_step(1)(model, (x, y)), prototypical_loss(z[s], y[s], z[q], y[q]))
    with pytest.raises(ValueError, match="K > n_support"):
        prototypical_step(4)(model, (x, y))


def test_triplet_ce_and_npair_steps():
    from course_lib.losses import AngularMarginHead, npair_loss, triplet_ce_loss
    from course_lib.models import EmbeddingClassifier
    from course_lib.train import npair_step, triplet_ce_step

    torch.manual_seed(0)
    model = EmbeddingClassifier(torch.nn.Linear(6, 4), AngularMarginHead(4, 3, kind="softmax"))
    x, y = torch.randn(6, 6), torch.tensor([0, 0, 1, 1, 2, 2])
    z = model(x)
    torch.testing.assert_close(triplet_ce_step(margin=0.3, weight=0.5)(model, (x, y)),
                               triplet_ce_loss(z, model.head(z, y), y, margin=0.3, weight=0.5))
    torch.testing.assert_close(npair_step()(model, (x, y)), npair_loss(z[[0, 2, 4]], z[[1, 3, 5]]))
    with pytest.raises(ValueError, match="k=2"):
        npair_step()(model, (x, torch.tensor([0, 1, 1, 0, 2, 2])))
