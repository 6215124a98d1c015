"""Images/s of self-supervised training on CIFAR-10 with the data on the device and augmented in batches, against
the per-image torchvision pipeline; FLOPs, the fraction of peak reached, and what lightly's budget would take.

    python benchmarks/ssl_cifar.py simclr --profile cpu --epochs 1 --steps-per-epoch 20 --compare-baseline
    python benchmarks/ssl_cifar.py byol --profile gpu --epochs 3 --optimizer lars --compile --json byol.json

Both train with course_lib's ``fit``, the same code on CPU and CUDA (AMP on CUDA: bf16 where the card has it, else
fp16 with a gradient scaler; channels_last unless --no-channels-last; fused optimizers on CUDA; warm-up + cosine):
(a) device-resident: the images as one uint8 tensor on the device in a ``DeviceLoader``, two views of
    ``SimCLRAugment`` with per-sample random parameters, batched on the device (as ``python -m course_lib.train``);
(b) per-image (--compare-baseline): a ``DataLoader`` (--workers) over a Dataset that hands each image, a PIL image
    as torchvision's CIFAR10 gives one, twice to ``simclr_reference_transform()``; batches moved to the device and
    normalised as ``DeviceLoader``'s. The same architecture afresh from the same seed, the same steps, right after (a).
Per epoch: images/s (training images of two views, over fit's epoch time, the kNN monitor left out), time, loss,
kNN accuracy (k=200, τ=0.1, bank = the training images). The summary's images/s leaves out the first epoch when
there are several (CUDA context, compiling, worker start-up); --compare-baseline also times both data pipelines
alone. FLOPs of a step (two views, forward + backward, target networks and queues included) are counted on the meta
device (``benchmarks/ssl_flops.py``); achieved FLOP/s = FLOPs per image × images/s, against the card's data-sheet
peak (CUDA) or a float32 matmul probe (CPU). The last line printed is a JSON summary; --json PATH writes it too.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ssl_flops  # noqa: E402
from course_lib import config as cfg  # noqa: E402
from course_lib.augment import SimCLRAugment, simclr_reference_transform  # noqa: E402
from course_lib.data import DeviceLoader, balanced_subset, load_data, normalize_batch  # noqa: E402
from course_lib.evaluate import KNNMonitor  # noqa: E402
from course_lib.methods import METHODS, build_method, target_update  # noqa: E402
from course_lib.models import backbone_for_profile  # noqa: E402
from course_lib.train.accel import fused_options  # noqa: E402
from course_lib.train.cli import BATCH_SIZE, KNN_K, KNN_TEMPERATURE, WarmupCosine, matmul_gflops  # noqa: E402
from course_lib.train.lars import LARS  # noqa: E402
from course_lib.train.loop import fit  # noqa: E402
from course_lib.train.steps import two_view_step  # noqa: E402

DEVICE, PER_IMAGE = "device-resident batched", "per-image DataLoader"  # the two pipelines
OPTIMIZERS = {  # name: (class, its other arguments, default lr for a batch of b, weight decay)
    "adam": (torch.optim.Adam, {}, lambda b: 1e-3, 1e-6),                      # the course's default
    "sgd": (torch.optim.SGD, {"momentum": 0.9}, lambda b: 0.06 * b / 512, 5e-4),  # MoCo's CIFAR-10 demo
    "lars": (LARS, {"momentum": 0.9}, lambda b: 0.3 * b / 256, 1e-6),          # SimCLR (appendix B.1)
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("method", choices=list(METHODS))
    add("--epochs", type=int, default=1)
    add("--batch-size", type=int, help=f"images a step (two views each); default {BATCH_SIZE}")
    add("--profile", choices=cfg.PROFILES, help="data size and backbone; default $COURSE_PROFILE, else from the device")
    add("--train-images", type=int, help="a class-balanced subset of the profile's training images")
    add("--steps-per-epoch", type=int, help="at most this many steps an epoch (default: all batches)")
    add("--device", help="cuda, mps or cpu (default: the best present)")
    add("--data", choices=("auto", "cifar10", "digits"), default="auto")
    add("--compile", action="store_true", help="torch.compile the model (fit falls back to eager mode)")
    add("--no-channels-last", dest="channels_last", action="store_false")
    add("--amp", action=argparse.BooleanOptionalAction, default=None, help="default: on for CUDA (fit's default)")
    add("--optimizer", choices=list(OPTIMIZERS), default="adam")
    add("--lr", type=float, help="default adam 1e-3, sgd 0.06·B/512, lars 0.3·B/256")
    add("--compare-baseline", action="store_true", help="also train with the per-image DataLoader pipeline")
    add("--workers", type=int, help="the per-image DataLoader's workers; default 0 on CPU, 2 elsewhere")
    add("--seed", type=int, default=0)
    add("--json", help="write the JSON summary here too")
    return p


# ------------------------------------------------------------------------------------------ the two pipelines
class FirstSteps:
    """At most ``steps`` batches of ``loader`` a pass (all of them when ``steps`` is None)."""

    def __init__(self, loader, steps):
        self.loader, self.steps = loader, min(len(loader), steps or len(loader))

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.steps)


class PerImagePairs(torch.utils.data.Dataset):
    """Item i: ``((t(img), t(img)), label)``, ``img`` a PIL image as torchvision's CIFAR10 hands a transform,
    ``t`` the per-image SimCLR chain (two float ``(3, 32, 32)`` views in [0, 1])."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images.numpy(), labels.tolist(), transform  # (N, H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return (self.transform(img), self.transform(img)), self.labels[i]


@contextlib.contextmanager
def one_thread():
    """torch on one thread inside, as in a DataLoader worker: per-image ops on 32×32 images gain nothing from
    more, and lose up to 10× when other processes hold the cores (threads then wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class OnDevice:
    """The batches ``((x1, x2), y)`` of a DataLoader, on ``device`` and normalised as ``DeviceLoader``'s.
    Without workers the batches are made here, on one thread (the training keeps its threads)."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            with one_thread() if self.loader.num_workers == 0 else contextlib.nullcontext():
                batch = next(batches, None)
            if batch is None:
                return
            views, y = batch
            yield tuple(normalize_batch(v.to(self.device, non_blocking=True)) for v in views), y.to(self.device)


def per_image_loader(data, batch: int, steps: int, workers: int, device: torch.device) -> OnDevice:
    """``steps`` batches of ``batch`` random images an epoch through the per-image pipeline."""
    dataset = PerImagePairs(data.images, data.labels, simclr_reference_transform())
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=steps * batch)
    loader = torch.utils.data.DataLoader(dataset, batch, sampler=sampler, drop_last=True, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    return OnDevice(loader, device)


# ------------------------------------------------------------------------------------------------- running
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def fresh_model(method: str, profile: str, seed: int):
    cfg.set_seed(seed)  # the same initial weights (and MoCo's queue) for both pipelines
    return build_method(method, backbone_for_profile(profile))


def train(model, loader, args, device, monitor, label: str):
    """``fit`` as ``python -m course_lib.train`` calls it, plus the speed options; prints a line an epoch."""
    cls, extra, _, _ = OPTIMIZERS[args.optimizer]
    steps, images = args.epochs * len(loader), len(loader) * args.batch_size
    warmup = min(10, args.epochs // 10) * len(loader)

    def on_epoch(model, epoch, history):
        r = history.last()
        knn = f"  kNN {r['knn_acc']:.4f}" if not math.isnan(r.get("knn_acc", math.nan)) else ""
        print(f"  {label:<9} epoch {epoch}/{args.epochs}: {images / r['time']:9.1f} images/s  {r['time']:7.2f} s"
              f"  loss {r['loss']:.4f}{knn}", flush=True)

    return fit(model, loader, args.epochs, step=two_view_step, device=device, amp=args.amp, seed=args.seed,
               optimizer=lambda params: cls(params, lr=args.lr, weight_decay=args.weight_decay, **extra,
                                            **fused_options(cls, device)),
               scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(warmup, steps)),
               monitor=monitor, progress=False, on_step=target_update(steps), on_epoch=on_epoch,
               channels_last=args.channels_last, compile=args.compile)


def images_per_second(history, images_per_epoch: int) -> float:
    """Training images a second over the epochs after the first (over the only one when there is one)."""
    times = history["time"][1:] or history["time"]
    return images_per_epoch * len(times) / sum(times)


def data_rate(loader, device: torch.device) -> float:
    """Training images a second that ``loader`` alone makes into batches on ``device`` (no training)."""
    sync(device)
    start, n = time.perf_counter(), 0
    for (x1, _), _ in loader:
        n += len(x1)
    sync(device)
    return n / (time.perf_counter() - start)


def load(args, profile: str):
    train_set, test_set = load_data(True, profile, args.data), load_data(False, profile, args.data)
    if args.train_images is not None:
        if not 0 < args.train_images <= len(train_set):
            raise SystemExit(f"--train-images must be in 1..{len(train_set)}, got {args.train_images}")
        idx = balanced_subset(train_set.labels, args.train_images, seed=args.seed)
        train_set = dataclasses.replace(train_set, images=train_set.images[idx], labels=train_set.labels[idx])
    return train_set, test_set


def setup(args):
    """Profile, device, the training and test sets, and the device-resident loader; fills in args' defaults."""
    profile = cfg.resolve_profile(args.profile)
    device = torch.empty(0, device=cfg.get_device(args.device)).device  # "cuda" -> "cuda:0"
    args.batch_size = args.batch_size or BATCH_SIZE[profile]
    _, _, default_lr, args.weight_decay = OPTIMIZERS[args.optimizer]
    args.lr = args.lr or default_lr(args.batch_size)
    args.workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else 2)
    train_set, test_set = load(args, profile)
    loader = FirstSteps(DeviceLoader(train_set.images, train_set.labels, args.batch_size, transform=SimCLRAugment(),
                                     n_views=2, device=device), args.steps_per_epoch)
    if len(loader) == 0:
        raise SystemExit(f"--batch-size {args.batch_size} is more than the {len(train_set)} training images")
    return profile, device, train_set, test_set, loader


def run_baseline(args, profile: str, train_set, loader, device, probes: list) -> tuple:
    """Train a fresh model with the per-image pipeline, then time both data pipelines alone:
    ``(images/s of training, {pipeline: images/s of its data alone})``."""
    baseline = per_image_loader(train_set, args.batch_size, len(loader), args.workers, device)
    history = train(fresh_model(args.method, profile, args.seed), baseline, args, device, None, "per-image")
    probes.append(matmul_gflops(device))
    cfg.set_seed(args.seed)
    data_only = {DEVICE: data_rate(loader, device), PER_IMAGE: data_rate(baseline, device)}
    return images_per_second(history, len(loader) * args.batch_size), data_only


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    profile, device, train_set, test_set, loader = setup(args)
    amp_dtype = None if args.amp is False else cfg.amp_dtype(device)  # what fit uses; None = no autocast
    amp = str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "off"
    model = fresh_model(args.method, profile, args.seed)
    per_image = ssl_flops.step_flops(model, args.batch_size, train_set.images.shape[1]) / args.batch_size
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    load, cores = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, os.cpu_count() or 1
    if load > cores and torch.get_num_threads() > 1:
        print(f"note: load average {load:.1f} on {cores} cores: torch's threads wait on each other, and every rate "
              "here can drop several-fold (2-4x on the developers' VM); compare with OMP_NUM_THREADS=1")
    print(f"torch {torch.__version__}, {device} ({name}); profile {profile}; {train_set.source} {len(train_set)} "
          f"train / {len(test_set)} test images\n{args.method} on {type(model.backbone).__name__}, batch "
          f"{args.batch_size}, {len(loader)} steps × {args.epochs} epochs, {args.optimizer} lr {args.lr:.3g}, "
          f"amp {amp}, channels_last {args.channels_last}, compile {args.compile}"
          + (f", per-image workers {args.workers}" if args.compare_baseline else ""), flush=True)

    monitor = KNNMonitor(train_set.images, train_set.labels, test_set.images, test_set.labels, k=KNN_K,
                         temperature=KNN_TEMPERATURE)
    probes = [matmul_gflops(device)]
    history = train(model, loader, args, device, monitor, "device")
    probes.append(matmul_gflops(device))
    rates = {DEVICE: images_per_second(history, len(loader) * args.batch_size)}
    data_only, ratio, data_ratio = {}, None, None
    if args.compare_baseline:
        rates[PER_IMAGE], data_only = run_baseline(args, profile, train_set, loader, device, probes)
        ratio, data_ratio = rates[DEVICE] / rates[PER_IMAGE], data_only[DEVICE] / data_only[PER_IMAGE]
    flops = ssl_flops.flops_report(args.batch_size, device, amp_dtype, per_image, rates, probes)
    if args.compare_baseline:
        print(f"ratio device-resident / per-image: {ratio:.2f}x training; data pipelines alone "
              f"{data_only[DEVICE]:.0f} vs {data_only[PER_IMAGE]:.0f} images/s, {data_ratio:.2f}x")
    estimates = ssl_flops.budget_report(args.method, profile, device, rates[DEVICE])
    last = history.last()
    summary = {"method": args.method, "profile": profile, "device": str(device), "device_name": name,
               "data": train_set.source, "train_images": len(train_set), "batch_size": args.batch_size,
               "steps_per_epoch": len(loader), "epochs": args.epochs, "optimizer": args.optimizer, "lr": args.lr,
               "amp": amp, "channels_last": args.channels_last, "compile": args.compile, "images_per_s": rates,
               "ratio": ratio, "data_only_images_per_s": data_only, "data_only_ratio": data_ratio,
               "loss": last["loss"], "knn_acc": last.get("knn_acc"), "matmul_gflops": probes, "flops": flops,
               "estimates": estimates, "torch": torch.__version__}
    line = json.dumps(summary)
    if args.json:
        Path(args.json).write_text(line + "\n")
    print(line)
    return summary


if __name__ == "__main__":
    main()
