"""``python -m course_lib.train METHOD ...``: the command line over fit, in the smoke profile on scikit-learn's digits.

The errors are one line and exit status 2; a run killed with SIGKILL and started again ends with the weights and
history of an uninterrupted one, bit for bit; summary.json holds what the docs say.
"""
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course_lib.config import set_seed
from course_lib.methods import METHODS, BYOLConfig, MoCoConfig, SimCLRConfig, build_method
from course_lib.models import backbone_for_profile
from course_lib.train.cli import CLIError, WarmupCosine, main, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
# the subprocess trainings run on one xdist worker, one after the other (`make test` uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("train_cli")

BASE = ["--profile", "smoke", "--data", "digits", "--no-progress"]
# BYOL: a target network on a cosine momentum schedule, Adam, a warm-up epoch: everything resume must restore
RUN = ["byol", *BASE, "--epochs", "3", "--batch-size", "16", "--seed", "1", "--warmup-epochs", "1",
       "--set", "projector_hidden=128", "--set", "predictor_hidden=128"]
SUMMARY_KEYS = {"method", "config", "options", "profile", "device", "data", "epochs", "history", "knn_acc",
                "linear_probe", "wall_time_s", "train_time_s", "matmul_gflops", "torch", "run_id"}


def _command(args):
    return [sys.executable, "-m", "course_lib.train", *map(str, args)]


def _cli(args, env=None):
    return subprocess.run(_command(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def _weights(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run of RUN, its folder."""
    out = tmp_path_factory.mktemp("straight")
    result = _cli([*RUN, "--out", out])
    assert result.returncode == 0, result.stderr
    return out


# ------------------------------------------------------------------------------ the parser
def test_help_lists_every_method_and_option(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name, (method, config) in METHODS.items():
        first_line = sys.modules[method.__module__].__doc__.strip().splitlines()[0]
        assert f"  {name}  " in text and first_line in text
        assert all(f"{f.name}=" in text for f in dataclasses.fields(config))
    for option in ("--profile", "--epochs", "--batch-size", "--lr", "--optimizer", "--weight-decay", "--seed",
                   "--out", "--data", "--device", "--knn-every", "--set", "--no-progress", "--fresh"):
        assert option in text


def test_a_bad_option_is_one_line_and_exit_2():
    result = _cli(["simclr", "--bogus"])
    assert result.returncode == 2 and result.stdout == ""
    assert "--bogus" in _one_line(result.stderr) and "--help" in result.stderr


def test_a_bad_set_field_is_one_line_listing_the_fields():
    result = _cli(["simclr", *BASE, "--set", "temprature=0.2"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = _one_line(result.stderr)
    assert "'temprature'" in line and all(f.name in line for f in dataclasses.fields(SimCLRConfig))


@pytest.mark.parametrize("args, says", [
    (["nomethod"], "invalid choice"),
    (["simclr", "--epochs", "-1"], "--epochs"),
    (["simclr", "--lr", "0"], "--lr"),
    (["simclr", "--epochs", "2", "--warmup-epochs", "3"], "--warmup-epochs"),
    (["simclr", "--set", "temperature=warm"], "temperature is float"),
    (["simclr", "--set", "temperature"], "KEY=VALUE"),
    (["moco", "--set", "mlp=maybe"], "mlp is bool"),
])
def test_bad_values_are_one_line_and_exit_2(args, says, capsys):
    assert main([*args, *BASE]) == 2
    captured = capsys.readouterr()
    assert says in _one_line(captured.err)


def test_set_values_are_parsed_by_the_field_type():
    got = parse_overrides(MoCoConfig, ["queue_size=128", "momentum=0.9", "mlp=false", "projector_hidden=none",
                                       "symmetric=Yes", "bn-splits=4"])
    assert got == {"queue_size": 128, "momentum": 0.9, "mlp": False, "projector_hidden": None, "symmetric": True,
                   "bn_splits": 4}
    assert [type(got[k]) for k in ("queue_size", "momentum", "mlp")] == [int, float, bool]
    assert parse_overrides(MoCoConfig, ["projector_hidden=64"]) == {"projector_hidden": 64}
    with pytest.raises(CLIError, match="queue_size is int"):
        parse_overrides(MoCoConfig, ["queue_size=1e3"])


def test_warmup_cosine_schedule_matches_the_closed_form():
    eta, warmup, total = 0.3, 5, 20
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=eta)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(warmup, total))
    lrs = []
    for _ in range(total):  # the lr each optimizer step uses, as fit steps the scheduler after each batch
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    ramp = [eta * (t + 1) / warmup for t in range(warmup)]
    cosine = [eta * (1 + math.cos(math.pi * k / (total - warmup))) / 2 for k in range(total - warmup)]
    assert lrs == pytest.approx(ramp + cosine, rel=1e-12, abs=1e-15)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)  # decayed to 0 after the last step


def test_missing_cifar10_says_what_to_do(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_CIFAR10", "no_proxy", "NO_PROXY")}
    blocked = "http://127.0.0.1:9"  # nothing listens there: torchvision's download fails at once, offline
    env.update(COURSE_DATA=str(empty), http_proxy=blocked, https_proxy=blocked, HTTP_PROXY=blocked,
               HTTPS_PROXY=blocked)
    result = _cli(["simclr", "--profile", "smoke", "--data", "cifar10", "--out", tmp_path / "run"], env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = _one_line(result.stderr)
    for what in ("CIFAR-10 is not available", str(empty), "$COURSE_CIFAR10", "$COURSE_DATA", "--data digits"):
        assert what in line
    assert not [p.name for p in empty.iterdir() if p.name.startswith("cifar")]  # nothing half-downloaded
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- training
def test_a_killed_run_resumes_to_the_same_weights_and_history(straight, tmp_path):
    out = tmp_path / "killed"
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(_command([*RUN, "--out", out]), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before its first checkpoint could be caught"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    done = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["epoch"]
    assert 1 <= done < 3, f"killed after {done} epochs"

    resumed = _cli([*RUN, "--out", out])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys() and any(k.startswith("target_") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    s, r = _summary(straight), _summary(out)
    without_time = lambda h: {k: v for k, v in h.items() if k != "time"}  # noqa: E731
    assert without_time(s["history"]) == without_time(r["history"])
    assert (s["knn_acc"], s["linear_probe"], s["run_id"]) == (r["knn_acc"], r["linear_probe"], r["run_id"])


def test_summary_has_the_documented_keys(straight):
    summary = _summary(straight)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["method"] == "byol" and summary["profile"] == "smoke" and summary["epochs"] == 3
    assert summary["config"] == dataclasses.asdict(BYOLConfig(projector_hidden=128, predictor_hidden=128))
    assert summary["options"]["batch_size"] == 16 and summary["options"]["lr"] == 1e-3
    assert summary["data"] == {"name": "digits", "train": 500, "test": 200, "classes": [str(i) for i in range(10)]}
    history = summary["history"]
    assert history["epoch"] == [1, 2, 3] and len(history["loss"]) == len(history["lr"]) == 3
    assert all(0.0 <= v <= 1.0 for v in [*history["knn_acc"], summary["knn_acc"], summary["linear_probe"]])
    assert summary["knn_acc"] == history["knn_acc"][-1]
    assert summary["torch"] == torch.__version__ and summary["device"] == "cpu"
    info = torch.load(straight / "checkpoint.pt", map_location="cpu", weights_only=False)["info"]
    assert summary["run_id"] == info["run_id"]


def test_a_changed_option_is_one_line_then_fresh_trains_over_it(straight, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(straight, out)
    assert main([*RUN, "--out", str(out), "--lr", "0.002"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds another run" in line and "lr" in line and "--fresh" in line and "--out" in line
    assert main([*RUN, "--out", str(out), "--lr", "0.002", "--epochs", "1", "--fresh"]) == 0
    summary = _summary(out)
    assert summary["epochs"] == 1 and summary["options"]["lr"] == 0.002


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_and_moves_its_target(name, tmp_path):
    out = tmp_path / name
    assert main([name, *BASE, "--epochs", "1", "--out", str(out)]) == 0
    set_seed(0)  # the command's initial weights: its seed, then the same build
    start = build_method(name, backbone_for_profile("smoke")).state_dict()
    end = _weights(out)
    assert not torch.equal(start["backbone.blocks.0.weight"], end["backbone.blocks.0.weight"])
    targets = [k for k in end if k.startswith("target_") and k.endswith("weight")]
    assert bool(targets) == (name in ("moco", "byol"))
    for key in targets:  # through fit's on_step: the target starts as a copy, then moves towards the online net
        online = key.replace("target_", "", 1)
        assert torch.equal(start[key], start[online])
        assert not torch.equal(end[key], start[key]) and not torch.equal(end[key], end[online]), key
    assert _summary(out)["config"] == dataclasses.asdict(METHODS[name][1]())
