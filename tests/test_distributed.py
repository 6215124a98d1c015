"""Training on several processes computes what one process computes on the global batch (gloo, CPU).

For every method: 2 processes, each with half of a global batch of N images, wrapped in
DistributedDataParallel as ``fit(..., distributed=True)`` wraps them; the mean of their losses and every
parameter's (averaged) gradient must equal those of one process on all N images. MoCo is compared with its
single-device stand-in for 2 GPUs (``bn_splits=2`` and the same key shuffle). A gather without the sum in its
backward (the usual bug) must fail the same comparison, and a checkpoint written by 2 processes must resume
on 1 and the other way round, through ``torchrun`` and the command line.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from course_lib import distributed as dist_utils
from course_lib.methods import build_method
from course_lib.models import SmallConvNet
from course_lib.train.accel import forward_model, prepare_distributed

ROOT = Path(__file__).resolve().parents[1]
WORLD, N = 2, 8  # processes, global batch
SETTINGS = {"simclr": {}, "byol": {}, "barlow": {"projector_hidden": 32, "projector_dim": 32},
            "moco": {"queue_size": 16, "bn_splits": 1}}
pytestmark = pytest.mark.xdist_group("distributed")


def _method(name: str, bn_splits: int = 1):
    torch.manual_seed(0)
    settings = dict(SETTINGS[name], **({"bn_splits": bn_splits} if name == "moco" else {}))
    return build_method(name, SmallConvNet((4, 8, 8, 16)), **settings).double()  # float64: equal up to rounding


def _views():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(N, 3, 16, 16, generator=g, dtype=torch.float64),
            torch.randn(N, 3, 16, 16, generator=g, dtype=torch.float64))


def _step(model, x1, x2) -> dict:
    """One forward + backward in train mode; the loss, every trainable parameter's gradient, MoCo's queue."""
    model.train()
    torch.manual_seed(123)  # MoCo's key shuffle draws the same permutation in both settings
    loss = model(x1, x2)
    loss.backward()
    return loss.detach()


def _results(model, loss) -> dict:
    out = {"loss": loss, "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}}
    if hasattr(model, "queue"):
        out["queue"] = model.queue.clone()
    return out


def _naive_gather(z):
    """The bug: gather every process's rows, but let the gradient reach only this process's own rows, unsummed."""
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.detach().contiguous())
    parts[dist.get_rank()] = z
    return torch.cat(parts)


def _worker(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=WORLD)
    x1, x2 = _views()
    n = N // WORLD
    mine = slice(rank * n, (rank + 1) * n)
    results = {}
    for name in (*SETTINGS, "simclr-naive"):
        model = _method(name.split("-")[0])
        if name == "simclr-naive":
            import course_lib.methods.simclr as simclr

            simclr.gather_with_grad = _naive_gather
        prepare_distributed(model)
        ddp = forward_model(model, torch.device("cpu"), distributed=True)
        loss = _step(ddp, x1[mine], x2[mine])
        results[name] = _results(model, dist_utils.mean_over_processes(loss))
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    out = folder / "results.pt"
    mp.spawn(_worker, args=(str(folder / "init"), str(out)), nprocs=WORLD, join=True)
    return torch.load(out)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_loss_and_every_gradient_equal_one_process_on_the_global_batch(name, two_processes):
    model = _method(name, bn_splits=WORLD)  # MoCo: 2 GPUs' BatchNorm, simulated by 2 splits
    x1, x2 = _views()
    one = _results(model, _step(model, x1, x2))
    many = two_processes[name]
    torch.testing.assert_close(many["loss"], one["loss"], rtol=1e-10, atol=1e-12)
    assert many["grads"].keys() == one["grads"].keys() and len(one["grads"]) > 4
    for key, grad in one["grads"].items():
        assert grad.abs().sum() > 0, f"{name}: {key} got no gradient in the reference"
        torch.testing.assert_close(many["grads"][key], grad, rtol=1e-8, atol=1e-10, msg=lambda m: f"{name}.{key}: {m}")
    if "queue" in one:  # every process enqueued all N keys, in the global order
        torch.testing.assert_close(many["queue"], one["queue"], rtol=1e-10, atol=1e-12)


def test_a_gather_that_does_not_sum_its_gradients_is_caught(two_processes):
    model = _method("simclr")
    x1, x2 = _views()
    one = _results(model, _step(model, x1, x2))
    naive = two_processes["simclr-naive"]
    torch.testing.assert_close(naive["loss"], one["loss"], rtol=1e-10, atol=1e-12)  # the loss looks right ...
    off = [k for k, g in one["grads"].items() if not torch.allclose(naive["grads"][k], g, rtol=1e-3, atol=1e-6)]
    assert len(off) > len(one["grads"]) // 2, "... but the gradients must not: the test would miss the bug"


def test_one_process_is_the_identity():
    z = torch.randn(4, 3, requires_grad=True)
    assert dist_utils.gather_with_grad(z) is z and dist_utils.gather(z) is z
    assert dist_utils.world_size() == 1 and dist_utils.rank() == 0
    bn = dist_utils.GlobalBatchNorm(3)
    ref = torch.nn.BatchNorm1d(3)
    x = torch.randn(6, 3)
    torch.testing.assert_close(bn(x), ref(x))
    torch.testing.assert_close(bn.running_var, ref.running_var)


# ------------------------------------------------------------------------------ torchrun
def _command(processes: int, out: Path) -> list:
    base = [sys.executable, "-m"]
    if processes > 1:
        base += ["torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]  # = torchrun
    return base + ["course_lib.train", "simclr", "--profile", "smoke", "--data", "digits", "--batch-size", "32",
                   "--epochs", "4", "--knn-every", "10", "--no-progress", "--out", str(out)]


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (torchrun starts its workers in sessions of their own), children first."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))  # ppid -> pid
    order, todo = [], [pid]
    while todo:
        p = todo.pop()
        order.append(p)
        todo.extend(children.get(p, []))
    for p in reversed(order):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


ENV = {**os.environ, "COURSE_PROFILE": "smoke", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)], ids=["2-then-1", "1-then-2"])
def test_a_checkpoint_resumes_on_another_number_of_processes(first, then, tmp_path):
    """Killed (SIGKILL, every process) after its first checkpoint on ``first`` processes, resumed on ``then``."""
    out = tmp_path / "run"
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(_command(first, out), cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before its first checkpoint: " + (tmp_path / "log").read_text()[-2000:]
        _kill_tree(proc.pid)
        proc.wait(timeout=30)
    killed = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert 1 <= killed["epoch"] < 4
    r = subprocess.run(_command(then, out), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "resuming" in r.stdout and f"epoch {killed['epoch']}/4" not in r.stdout and "epoch 4/4" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["processes"] == then and summary["epochs"] == 4
    assert summary["run_id"] == killed["info"]["run_id"]
    done = killed["epoch"]
    assert summary["history"]["loss"][:done] == killed["history"]["loss"][:done]   # kept, not retrained
    assert all(0 < v < 20 for v in summary["history"]["loss"])
