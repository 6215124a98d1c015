"""Views per second of SimCLR's augmentation: per image (torchvision) vs batched (course_lib.augment).

    python benchmarks/augment.py [--device cpu|cuda|mps] [--n 4096] [--batch 512] [--repeats 3]
                                 [--per-image-n 1024] [--threads N] [--blur 0.0]

(a) ``per-image PIL``: ``simclr_reference_transform`` applied image by image, in one process, to
    what ``torchvision.datasets.CIFAR10`` hands a transform (``Image.fromarray`` of a row), on the
    first ``--per-image-n`` images (a rate needs no more, and it keeps a slow phase under a minute);
(b) ``per-image uint8``: the same on uint8 ``(3, 32, 32)`` tensor rows (torchvision v2's fast path);
    both per-image runs use one torch thread, as a DataLoader worker does (more threads only add
    overhead on 32×32 images, and collapse when another process holds a core);
(c) ``batched``: :class:`course_lib.augment.SimCLRAugment` on ``--device``, ``--batch`` images at a
    time, from a uint8 tensor already on the device (as ``DeviceLoader`` does), float conversion
    included.

The three run in alternation, ``--repeats`` rounds, the order rotating each round, so a VM whose
speed drifts (these change up to ~5× within an hour) slows all of them alike. Printed: the median
views/s of each, the ratios batched / per-image (median over rounds of the ratio within a round),
and a 1024×1024 float32 matmul GFLOPS probe before and after, to say how fast the machine was.

Images: CIFAR-10 (the ``cpu`` profile's 10k subset) when a local copy is found (e.g.
``COURSE_CIFAR10=../shared/data/cifar10-jpeg.tar.gz COURSE_DATA=$PWD/data``), else scikit-learn's
digits as 32×32 RGB; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from course_lib.augment import SimCLRAugment, SimCLRAugmentConfig, simclr_reference_transform  # noqa: E402
from course_lib.data import find_cifar10, load_data, load_digits  # noqa: E402


def load_images(n: int) -> tuple[torch.Tensor, str]:
    """``n`` uint8 images ``(n, 32, 32, 3)`` (repeated if the source has fewer) and the source's name."""
    if find_cifar10() is not None:
        images, source = load_data(train=True, profile="cpu", dataset="cifar10").images, "cifar10 (cpu subset)"
    else:
        images, source = load_digits(train=True)[0], "digits (no CIFAR-10 found)"
    reps = -(-n // len(images))
    return images.repeat(reps, 1, 1, 1)[:n].contiguous(), source


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_gflops(device: torch.device, n: int = 1024, seconds: float = 0.5) -> float:
    """Float32 ``n × n`` matmuls per second × 2n³ flops: how fast this machine is right now."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if count % 8 == 0:
            sync(device)
    sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def per_image_pil(transform, images: torch.Tensor) -> float:
    """Views/s of ``transform`` applied as a Dataset would: one PIL image at a time, one thread."""
    from PIL import Image

    torch.set_num_threads(1)
    rows = images.numpy()
    start = time.perf_counter()
    for row in rows:
        transform(Image.fromarray(row))
    return len(rows) / (time.perf_counter() - start)


def per_image_uint8(transform, images: torch.Tensor) -> float:
    """Views/s of ``transform`` on one uint8 ``(3, H, W)`` tensor at a time, one thread."""
    torch.set_num_threads(1)
    chw = images.permute(0, 3, 1, 2)  # (N, 3, H, W) view
    start = time.perf_counter()
    for i in range(len(chw)):
        transform(chw[i])
    return len(chw) / (time.perf_counter() - start)


def batched(augment, images_dev: torch.Tensor, batch: int, threads: int) -> float:
    """Views/s of the batched augmentation over uint8 ``(N, 3, H, W)`` images on the device."""
    torch.set_num_threads(threads)
    device = images_dev.device
    sync(device)
    start = time.perf_counter()
    for b in range(0, len(images_dev), batch):
        x = images_dev[b : b + batch].float().div_(255)  # (B, 3, H, W) in [0, 1]
        augment(x)
    sync(device)
    return len(images_dev) / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="where the batched augmentation runs (cpu, cuda, mps)")
    parser.add_argument("--n", type=int, default=4096, help="images per measurement")
    parser.add_argument("--batch", type=int, default=512, help="batch size of the batched augmentation")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    parser.add_argument("--per-image-n", type=int, default=1024, help="images per per-image measurement")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, batched run")
    parser.add_argument("--blur", type=float, default=0.0, help="blur probability (0 for CIFAR, as the paper)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        parser.error("--device mps: no MPS device here")
    torch.manual_seed(0)

    images, source = load_images(args.n)
    config = SimCLRAugmentConfig(size=32, blur_p=args.blur)
    reference = simclr_reference_transform(config)
    augment = SimCLRAugment(config)
    images_dev = images.to(device).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"torch {torch.__version__}  device {device} ({name})  torch threads: batched {args.threads}, "
          f"per-image 1  cpus {os.cpu_count()}  load average {load}")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1) and args.threads > 1:
        print("note: other processes hold the cores; torch's threads then wait on each other and the "
              "batched rate can drop >10x: compare with --threads 1")
    print(f"images: {source}, n={args.n} (per image: {min(args.n, args.per_image_n)}), batch={args.batch}, "
          f"repeats={args.repeats}, blur_p={args.blur}")
    torch.set_num_threads(args.threads)
    probes = [matmul_gflops(torch.device("cpu"))]
    if device.type != "cpu":
        probes_dev = [matmul_gflops(device)]
    print(f"matmul probe before: {probes[0]:.1f} GFLOPS (cpu)"
          + (f", {probes_dev[0]:.1f} GFLOPS ({device.type})" if device.type != "cpu" else ""))

    warm = images[:256]
    per_image_pil(reference, warm), per_image_uint8(reference, warm), batched(augment, images_dev[:512], args.batch, args.threads)

    runs = {
        "per-image PIL (torchvision)": lambda: per_image_pil(reference, images[: args.per_image_n]),
        "per-image uint8 (torchvision)": lambda: per_image_uint8(reference, images[: args.per_image_n]),
        f"batched SimCLRAugment ({device.type})": lambda: batched(augment, images_dev, args.batch, args.threads),
    }
    names = list(runs)
    rates = {k: [] for k in names}
    for r in range(args.repeats):
        for k in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
            rates[k].append(runs[k]())
        print(f"  round {r + 1}: " + "  ".join(f"{rates[k][-1]:9.0f}" for k in names) + "  views/s")

    torch.set_num_threads(args.threads)
    probes.append(matmul_gflops(torch.device("cpu")))
    if device.type != "cpu":
        probes_dev.append(matmul_gflops(device))
    fast = names[-1]
    print(f"\n{'pipeline':36s} {'median views/s':>15s}")
    for k in names:
        print(f"{k:36s} {statistics.median(rates[k]):15.0f}")
    for k in names[:-1]:
        ratio = statistics.median(f / s for f, s in zip(rates[fast], rates[k]))
        print(f"ratio batched / {k.split(' (')[0]}: {ratio:.1f}x (median over rounds)")
    print(f"matmul probe after: {probes[1]:.1f} GFLOPS (cpu)"
          + (f", {probes_dev[1]:.1f} GFLOPS ({device.type})" if device.type != "cpu" else ""))


if __name__ == "__main__":
    main()
