"""benchmarks/ssl_cifar.py end to end in the smoke profile: both pipelines train, and the summary's numbers
agree with each other and with FLOP counts made here, independently, on real CPU tensors."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.methods import build_method
from course_lib.models import backbone_for_profile

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32


def counted_flops_per_image(model, batch: int) -> float:
    """FlopCounterMode over model(x1, x2).backward() on random CPU images, divided by the batch."""
    torch.manual_seed(0)
    x1, x2 = torch.rand(batch, 3, 32, 32), torch.rand(batch, 3, 32, 32)
    counter = FlopCounterMode(display=False)
    with counter:
        model.train()(x1, x2).backward()
    return counter.get_total_flops() / batch


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "summary.json"
    env = {**os.environ, "COURSE_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "benchmarks" / "ssl_cifar.py"), "simclr", "--profile", "smoke",
               "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", str(BATCH), "--compare-baseline",
               "--data", "digits", "--json", str(path)]
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(path.read_text())
    assert json.loads(run.stdout.strip().splitlines()[-1]) == result  # the last line printed is the summary
    return result


def test_both_pipelines_train_and_the_ratio_is_their_quotient(summary):
    rates, data_only = summary["images_per_s"], summary["data_only_images_per_s"]
    assert rates["device-resident batched"] > 0 and rates["per-image DataLoader"] > 0
    assert summary["ratio"] == pytest.approx(rates["device-resident batched"] / rates["per-image DataLoader"],
                                             rel=1e-12)
    assert summary["data_only_ratio"] == pytest.approx(
        data_only["device-resident batched"] / data_only["per-image DataLoader"], rel=1e-12)
    assert summary["steps_per_epoch"] == 2 and summary["batch_size"] == BATCH and summary["data"] == "digits"
    assert math.isfinite(summary["loss"]) and 0 <= summary["knn_acc"] <= 1


def test_flops_per_image_equal_an_independent_count(summary):
    torch.manual_seed(0)
    model = build_method("simclr", backbone_for_profile("smoke"))
    flops = summary["flops"]
    assert flops["per_image"] == counted_flops_per_image(model, BATCH)
    assert flops["per_step"] == flops["per_image"] * BATCH


def test_achieved_rate_and_fraction_of_peak_follow_from_the_counts(summary):
    flops = summary["flops"]
    assert flops["peak_per_s"] == pytest.approx(max(summary["matmul_gflops"]) * 1e9)  # CPU: the probe
    for name, rate in summary["images_per_s"].items():
        assert flops["achieved_per_s"][name] == pytest.approx(flops["per_image"] * rate, rel=1e-12)
        assert flops["fraction_of_peak"][name] == pytest.approx(flops["achieved_per_s"][name] / flops["peak_per_s"])
        assert flops["fraction_of_peak"][name] > 0


def test_budget_estimates_are_resnet18_flops_over_the_assumed_rate(summary):
    estimates = summary["estimates"]
    resnet = counted_flops_per_image(build_method("simclr", backbone_for_profile("gpu")), 2)
    # counted at batch 2 here, 512 there: only NT-Xent's (2B)² logits grow with the batch, ~2e-4 of the total
    assert estimates["gflops_per_image"] * 1e9 == pytest.approx(resnet, rel=1e-3)
    assert set(estimates["assumed"]) == {"T4 fp16 15%", "H100 bf16 25%", "H100 bf16 40%"}
    for est in estimates["assumed"].values():
        assert est["minutes"] > 0 and est["assumption"]
        assert est["minutes"] == pytest.approx(200 * 50_000 * resnet / (est["tflops"] * 1e12) / 60, rel=1e-3)
