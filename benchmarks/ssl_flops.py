"""FLOPs of a self-supervised training step, device peaks, and what a budget would cost: the counting half of
``benchmarks/ssl_cifar.py``.

* :func:`step_flops`: one training step of a method (``loss = model(x1, x2)``, then ``loss.backward()``),
  counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (shapes only: no memory, no
  arithmetic), 2 FLOPs per multiply-add, matmuls and convolutions only (elementwise work is not counted).
* :func:`device_peak`: the peak FLOP/s to read an achieved rate against: NVIDIA's data-sheet numbers by card
  name (dense, tensor cores under autocast, plain fp32 without), or the measured matmul probe on a CPU.
* :func:`budget_estimates`: minutes of the lightly benchmark budget (200 epochs of the 50 000 CIFAR-10 training
  images, ResNet-18) on a T4 and an H100, from counted FLOPs at an assumed fraction of peak.
* :func:`flops_report`, :func:`budget_report`: the benchmark's printed tables of both, returned as dicts.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.methods import build_method
from course_lib.models import backbone_for_profile

# (tokens every one of which the card's name holds, most specific first) -> (bf16/fp16 dense peak, fp32 peak)
GPU_PEAKS = [
    (("h100", "pcie"), 756e12, 51e12),
    (("h100", "nvl"), 835e12, 60e12),
    (("h100",), 989e12, 67e12),   # SXM
    (("h200",), 989e12, 67e12),
    (("a100",), 312e12, 19.5e12),
    (("l4",), 121e12, 30.3e12),
    (("a10g",), 125e12, 31.2e12),  # the A10's data-sheet figure
    (("v100",), 125e12, 15.7e12),
    (("t4",), 65e12, 8.1e12),
]

LIGHTLY_EPOCHS, LIGHTLY_IMAGES, LIGHTLY_BATCH = 200, 50_000, 512  # lightly's CIFAR-10 benchmark, ResNet-18
ASSUMED = {  # name: (peak FLOP/s, assumed achieved fraction, the assumption in words)
    "T4 fp16 15%": (65e12, 0.15, "fp16 autocast at 15 % of the T4's 65 TFLOPS (as scripts/estimate_t4.py: "
                                 "NVIDIA's measured T4 ResNet-50 AMP rate)"),
    "H100 bf16 25%": (989e12, 0.25, "bf16 autocast at 25 % of the H100 SXM's 989 TFLOPS (dense)"),
    "H100 bf16 40%": (989e12, 0.40, "bf16 autocast at 40 % of the H100 SXM's 989 TFLOPS (dense)"),
}


def step_flops(model: nn.Module, batch_size: int, image_size: int = 32) -> int:
    """FLOPs of ``model(x1, x2).backward()`` for two views ``(batch_size, 3, image_size, image_size)``.

    Counted on a copy of ``model`` on the meta device, in training mode (MoCo's queue and key encoder, BYOL's
    target network: all as in a real step). The caller's model is not touched.
    """
    meta = copy.deepcopy(model).to("meta").train()
    x1, x2 = (torch.empty(batch_size, 3, image_size, image_size, device="meta") for _ in range(2))
    counter = FlopCounterMode(display=False)
    with counter:
        meta(x1, x2).backward()
    return counter.get_total_flops()


def gpu_peak(name: str, autocast: bool) -> Optional[float]:
    """The data-sheet peak FLOP/s of the CUDA card ``name`` (e.g. ``"NVIDIA H100 80GB HBM3"``): bf16/fp16
    tensor cores if ``autocast``, else fp32. None for a card not in :data:`GPU_PEAKS`."""
    tokens = set(re.split(r"[\s\-_]+", name.lower()))
    for needed, low_precision, fp32 in GPU_PEAKS:
        if set(needed) <= tokens:
            return low_precision if autocast else fp32
    return None


def device_peak(device: torch.device, amp_dtype: Optional[torch.dtype], probe_gflops: float) -> tuple:
    """``(peak FLOP/s or None, where it comes from)`` for a run on ``device`` with autocast ``amp_dtype``.

    CUDA: :func:`gpu_peak` of the card; elsewhere the measured float32 matmul rate ``probe_gflops``, the most
    this machine did just now (a CPU's data-sheet peak is rarely reached and VMs share their cores).
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        precision = str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "fp32"
        peak = gpu_peak(name, amp_dtype is not None)
        return peak, f"{name} {precision} data-sheet peak" + (" (card not in the table)" if peak is None else "")
    return probe_gflops * 1e9, f"measured float32 matmul probe ({device.type})"


def budget_minutes(flops_per_image: float, flops_per_second: float, epochs: int = LIGHTLY_EPOCHS,
                   images: int = LIGHTLY_IMAGES) -> float:
    """t = epochs · images · FLOPs per image / achieved FLOP/s, in minutes."""
    return epochs * images * flops_per_image / flops_per_second / 60


def budget_estimates(gpu_flops_per_image: float) -> dict:
    """Minutes of the lightly budget under each of :data:`ASSUMED`: ``{name: {"assumption", "tflops", "minutes"}}``."""
    return {name: {"assumption": what, "tflops": fraction * peak / 1e12,
                   "minutes": budget_minutes(gpu_flops_per_image, fraction * peak)}
            for name, (peak, fraction, what) in ASSUMED.items()}


def flops_report(batch: int, device, amp_dtype, per_image: float, rates: dict, probes: list) -> dict:
    """Achieved FLOP/s of each pipeline (``rates``: name -> images/s) and its fraction of the device's peak
    (on a CPU the fastest of the matmul ``probes``, GFLOPS), printed and returned."""
    peak, source = device_peak(device, amp_dtype, max(probes))
    print(f"\nFLOPs of a step (FlopCounterMode, meta device; matmuls and convolutions, 2 per multiply-add): "
          f"{per_image / 1e9:.4f} GFLOP per image (two views, forward + backward), "
          f"{per_image * batch / 1e9:.3f} GFLOP per step of {batch}")
    print(f"peak: {source}, {peak / 1e12 if peak else math.nan:.3g} TFLOPS; matmul probes "
          + ", ".join(f"{p:.1f}" for p in probes) + " GFLOPS (before, between, after the runs)")
    print(f"{'pipeline':<34} {'images/s':>10} {'GFLOP/s':>10} {'of peak':>8}")
    out = {"per_image": per_image, "per_step": per_image * batch, "batch": batch,
           "peak_per_s": peak, "peak_source": source, "achieved_per_s": {}, "fraction_of_peak": {}}
    for name, rate in rates.items():
        achieved = per_image * rate
        fraction = achieved / peak if peak else None
        out["achieved_per_s"][name], out["fraction_of_peak"][name] = achieved, fraction
        print(f"{name:<34} {rate:10.1f} {achieved / 1e9:10.2f} {f'{100 * fraction:.2f} %' if peak else '?':>8}")
    return out


def budget_report(method: str, profile: str, device, measured_rate: float) -> dict:
    """Minutes of lightly's CIFAR-10 budget for ``method`` on ResNet-18, under each assumption; printed."""
    e, n, b = LIGHTLY_EPOCHS, LIGHTLY_IMAGES, LIGHTLY_BATCH
    gpu_per_image = step_flops(build_method(method, backbone_for_profile("gpu")), b) / b
    assumed = budget_estimates(gpu_per_image)
    print(f"\nlightly's budget, {e} epochs × {n} images, {method} on ResNet-18 (CIFAR stem, the gpu profile's "
          f"backbone), batch {b}: {gpu_per_image / 1e9:.3f} GFLOP per image, {e * n * gpu_per_image / 1e15:.1f} PFLOP")
    for name, est in assumed.items():
        print(f"  {name:<14} {est['minutes']:7.1f} min   assuming {est['tflops']:.1f} TFLOPS: {est['assumption']}")
    measured = e * n / measured_rate / 60 if profile == "gpu" else None  # only this run's model is ResNet-18
    if measured is not None:
        print(f"  at this run's measured rate on {device} ({measured_rate:.0f} images/s): {measured:.1f} min")
    return {"epochs": e, "images": n, "batch": b, "gflops_per_image": gpu_per_image / 1e9, "assumed": assumed,
            "measured_minutes": measured}
