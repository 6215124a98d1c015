"""Checkpoints know which run they hold; hooks; fit leaves the caller's random state alone."""
import random

import numpy as np
import pytest
import torch

from course_lib.config import checkpoint_path
from course_lib.data import DeviceLoader
from course_lib.losses import contrastive_loss
from course_lib.models import Classifier, SmallConvNet
from course_lib.train import RunMismatchError, describe_run, fit, pair_step, run_id


def _data(n=48, size=8):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 255, (n, size, size, 3), generator=g).to(torch.uint8)
    return images, labels


def _model(width=8, seed=0):
    torch.manual_seed(seed)
    return Classifier(SmallConvNet((4, width, width, width)), 2)


def _loader(batch_size=16):
    return DeviceLoader(*_data(), batch_size=batch_size)


def _adam(lr):
    return lambda params: torch.optim.Adam(params, lr=lr)


def test_changed_hyperparameter_is_refused_with_what_differs(tmp_path):
    path = tmp_path / "run.pt"
    fit(_model(), _loader(), epochs=1, optimizer=_adam(1e-3), checkpoint=path, progress=False)
    with pytest.raises(RunMismatchError) as err:
        fit(_model(), _loader(), epochs=1, optimizer=_adam(1e-2), checkpoint=path, progress=False)
    text = str(err.value)
    assert "optimizer.groups.0.lr: checkpoint 0.001, now 0.01" in text
    assert "per_run=True" in text and "resume=False" in text
    assert isinstance(err.value, ValueError)


def test_changed_width_is_a_clear_error_not_a_size_mismatch(tmp_path):
    path = tmp_path / "run.pt"
    fit(_model(width=8), _loader(), epochs=1, checkpoint=path, progress=False)
    with pytest.raises(RunMismatchError, match=r"model\.shapes\..*checkpoint \[8"):
        fit(_model(width=16), _loader(), epochs=1, checkpoint=path, progress=False)


@pytest.mark.parametrize("change", ["batch_size", "seed", "step_argument", "config"])
def test_every_part_of_the_run_is_compared(tmp_path, change):
    def run(batch_size=16, seed=0, margin=1.0, config=None):
        pairs = DeviceLoader(*_data(), batch_size=batch_size)
        step = pair_step(contrastive_loss, margin=margin)
        return describe_run(_model(), torch.optim.Adam(_model().parameters()), None, step, pairs, seed,
                            "smoke", None, config)

    base = run()
    other = {"batch_size": run(batch_size=8), "seed": run(seed=1), "step_argument": run(margin=2.0),
             "config": run(config={"subset": 5000})}[change]
    assert run_id(base) == run_id(run())  # stable for the same run
    assert run_id(base) != run_id(other)


def test_more_epochs_continue_the_same_run(tmp_path):
    path = tmp_path / "run.pt"
    fit(_model(), _loader(), epochs=1, checkpoint=path, progress=False)
    history = fit(_model(), _loader(), epochs=3, checkpoint=path, progress=False)
    assert history["epoch"] == [1, 2, 3]


def test_per_run_paths_give_each_configuration_its_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    template = checkpoint_path("ablation", per_run=True)
    assert template.name == "ablation-smoke-{run}.pt"
    runs = {lr: fit(_model(), _loader(), epochs=1, optimizer=_adam(lr), checkpoint=template, progress=False)
            for lr in (1e-3, 1e-2)}
    files = sorted(p.name for p in tmp_path.glob("ablation-smoke-*.pt"))
    assert len(files) == 2
    assert {h.run["checkpoint"].rsplit("/", 1)[-1] for h in runs.values()} == set(files)
    # the same configuration again finds its own file and trains nothing
    again = fit(_model(), _loader(), epochs=1, optimizer=_adam(1e-2), checkpoint=template, progress=False)
    assert again == runs[1e-2]


def test_history_says_how_it_was_trained(tmp_path):
    history = fit(_model(), _loader(), epochs=1, seed=7, progress=False)
    assert history.run["optimizer"].startswith("Adam(lr=0.001")
    assert history.run["amp"] == "off" and history.run["seed"] == 7 and history.run["device"] == "cpu"


def test_hooks_see_every_step_and_epoch_across_a_resume(tmp_path):
    path = tmp_path / "run.pt"
    steps, epochs = [], []

    def on_epoch(model, epoch, history):
        assert not model.training and not torch.is_grad_enabled()
        epochs.append(epoch)
        return {"hook_value": 10.0 * epoch}

    fit(_model(), _loader(), epochs=1, checkpoint=path, progress=False,
        on_step=lambda model, step: steps.append(step), on_epoch=on_epoch)
    history = fit(_model(), _loader(), epochs=2, checkpoint=path, progress=False,
                  on_step=lambda model, step: steps.append(step), on_epoch=on_epoch)
    per_epoch = len(_loader())
    assert steps == list(range(1, 2 * per_epoch + 1))  # counted across the resume
    assert epochs == [1, 2] and history["hook_value"] == [10.0, 20.0]


def test_on_step_runs_after_the_optimizer_step(tmp_path):
    model = _model()
    seen = []

    def on_step(m, step):  # the weights it sees are already updated: it can copy them to a target
        seen.append(m.head.weight.detach().clone())

    before = model.head.weight.detach().clone()
    fit(model, _loader(), epochs=1, progress=False, on_step=on_step)
    assert not torch.equal(seen[0], before)
    assert torch.equal(seen[-1], model.head.weight.detach())


def test_fit_leaves_the_global_random_state_as_it_found_it():
    model, loader = _model(), _loader()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    fit(model, loader, epochs=1, progress=False)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
