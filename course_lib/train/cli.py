"""``python -m course_lib.train METHOD ...``: train a self-supervised method from the command line.

The notebooks' code, no second loop: ``load_data``, ``backbone_for_profile``, ``build_method``, a ``DeviceLoader``
of two ``SimCLRAugment`` views, :func:`~course_lib.train.fit` (progress bar, AMP on CUDA, checkpoint + resume,
the target update as ``on_step``, ``KNNMonitor``), then ``linear_probe``. ``OUT/checkpoint.pt`` records every
option: the same command resumes after a kill, a changed one stops with one line. Results go to
``OUT/summary.json``; errors are one line on stderr, exit status 2. E.g.
``python -m course_lib.train simclr --profile gpu --epochs 200 --out runs/simclr``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import typing
from pathlib import Path

import torch

from .. import config as cfg
from .. import distributed as dist_utils
from ..augment import SimCLRAugment
from ..data import DeviceLoader, load_data
from ..evaluate import KNNMonitor, extract_features, linear_probe
from ..methods import METHODS, build_method, target_update
from ..models import backbone_for_profile
from .accel import fused_options
from .loop import fit
from .runs import RunMismatchError
from .steps import two_view_step

__all__ = ["main", "build_parser", "parse_overrides", "resolve_options", "WarmupCosine", "CLIError"]

PROG = "python -m course_lib.train"
EPOCHS = {"gpu": 200, "cpu": 20, "smoke": 2}  # budgets in epochs, not minutes: machine speeds vary
BATCH_SIZE = {"gpu": 256, "cpu": 128, "smoke": 64}  # cpu: 128 beat 256 at equal epochs on 10k images (more steps)
KNN_EVERY = {"gpu": 5, "cpu": 1, "smoke": 1}  # a 50k bank through ResNet-18 costs ~1/5 of an epoch
WEIGHT_DECAY = {"adam": 1e-6, "sgd": 5e-4, "lars": 1e-6}  # SimCLR's 1e-6; MoCo's CIFAR-10 demo 5e-4
KNN_K, KNN_TEMPERATURE = 200, 0.1  # the SSL papers' monitor (Wu et al., 2018)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class CLIError(Exception):
    """A mistake in the command line or its inputs: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors in one line too (no usage block)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------------- schedule
class WarmupCosine:
    """η_t / η = min(1, (t + 1)/T_w) · ½ (1 + cos(π · max(0, t − T_w) / (T − T_w))): warm-up, then cosine.

    Step t (0-based) of T = ``total_steps``: linear warm-up over T_w = ``warmup_steps``, then cosine decay
    to 0 without restarts (Loshchilov & Hutter, 2017), as SimCLR (Chen et al., 2020, appendix B.9). The factor
    of ``torch.optim.lr_scheduler.LambdaLR``, stepped per batch by ``fit``; an object, so the checkpoint keeps it.
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, t: int) -> float:
        if t < self.warmup_steps:
            return (t + 1) / self.warmup_steps
        progress = (t - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ------------------------------------------------------------------------------------ parser
def _doc_line(method_class) -> str:
    """The first line of the method's module docstring: what the method is, and its paper."""
    return (sys.modules[method_class.__module__].__doc__ or method_class.__name__).strip().splitlines()[0]


def _type_name(tp) -> str:  # Optional[int] -> "int or None"
    return " or ".join(getattr(a, "__name__", str(a)).replace("NoneType", "None") for a in typing.get_args(tp) or [tp])


def _fields_text(config_class) -> str:
    hints = typing.get_type_hints(config_class)
    return ", ".join(f"{f.name} ({_type_name(hints[f.name])}, default {f.default!r})"
                     for f in dataclasses.fields(config_class))


def _epilog() -> str:
    w = max(map(len, METHODS))
    return "\n".join(["methods:", *(f"  {n:<{w}}  {_doc_line(m)}" for n, (m, _) in METHODS.items()), "",
                      "method settings (--set KEY=VALUE; the defaults are the papers'):",
                      *(f"  {n:<{w}}  " + " ".join(f"{f.name}={f.default}" for f in dataclasses.fields(c))
                        for n, (_, c) in METHODS.items()), "",
                      f"example: {PROG} moco --profile cpu --set queue_size=1024   (the same command again resumes)"])


def _number(kind, low: float, strict: bool = False):
    """An argparse ``type``: ``kind(text)``, at least ``low`` (more than ``low`` if ``strict``)."""
    def parse(text: str):
        if (value := kind(text)) < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text} is not {'>' if strict else '>='} {low}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m course_lib.train`` (``--help`` lists the methods and their settings)."""
    p = _Parser(prog=PROG, description="Train a self-supervised method on the profile's data with course_lib's fit "
                "(checkpoint + resume, kNN monitor), then a linear probe.", epilog=_epilog(),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    per = lambda d: ", ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
    add = p.add_argument
    add("method", choices=list(METHODS), metavar="METHOD", help=f"one of {', '.join(METHODS)} (below)")
    add("--profile", choices=cfg.PROFILES, help=f"data, backbone and budgets; default {cfg.PROFILE} "
        "(gpu with CUDA, else cpu; $COURSE_PROFILE overrides)")
    add("--epochs", type=_number(int, 0), help=f"default {per(EPOCHS)}")
    add("--batch-size", type=_number(int, 1), help=f"images a batch (two views each); default {per(BATCH_SIZE)}")
    add("--optimizer", choices=("adam", "sgd", "lars"), default="adam", help="adam (default), sgd (momentum 0.9) "
        "or lars (SGD + layer-wise trust ratio, SimCLR/BYOL's large-batch optimizer)")
    add("--lr", type=_number(float, 0, strict=True), help="peak learning rate; default adam 1e-3, sgd 0.06·batch/512, lars 0.3·batch/256 (batch: the global batch)")
    add("--weight-decay", type=_number(float, 0), help=f"default {per(WEIGHT_DECAY)}")
    add("--warmup-epochs", type=_number(int, 0), help="linear warm-up, then cosine decay to 0, stepped per batch; "
        "default a tenth of the epochs, at most 10")
    add("--seed", type=int, default=0, help="seed of the weights, shuffling and augmentation (default 0)")
    add("--out", help="folder of checkpoint.pt and summary.json; default runs/<method>-<profile>")
    add("--data", choices=("auto", "cifar10", "digits"), default="auto", help="auto (default): CIFAR-10; in the "
        "smoke profile scikit-learn's digits when CIFAR-10 is not on disk")
    add("--device", help="cuda, mps or cpu (default: the best present)")
    add("--knn-every", type=_number(int, 1), help=f"kNN monitor (k={KNN_K}, cosine, τ={KNN_TEMPERATURE}) on the "
        f"test set every N epochs and at the end; default {per(KNN_EVERY)}")
    add("--set", action="append", default=[], metavar="KEY=VALUE", help="a method setting (repeatable; below)")
    add("--no-progress", action="store_true", help="no progress bar (the line per epoch stays)")
    add("--fresh", action="store_true", help="ignore an existing checkpoint: train from scratch over it")
    add("--compile", action="store_true", help="torch.compile the method (falls back to eager mode where it fails)")
    add("--no-channels-last", action="store_true", help="keep NCHW memory order (default: channels_last, ~2x on CPU)")
    return p


def _value(text: str, tp):
    """``text`` as the field type ``tp``: int, float, bool (true/false/1/0/yes/no), str; none for Optional."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and text.lower() in ("none", "null"):  # Optional[X]
        return None
    tp = args[0] if args else tp
    if tp is bool and text.lower() in TRUE + FALSE:
        return text.lower() in TRUE
    if tp in (int, float, str):
        return tp(text)
    raise ValueError(text)


def parse_overrides(config_class, items) -> dict:
    """``["key=value", ...]`` → ``{field: value}``, each value parsed by the dataclass field's type.

    Raises :class:`CLIError` (listing the fields) for an unknown field, a missing ``=`` or a bad value.
    """
    hints, out = typing.get_type_hints(config_class), {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in {f.name for f in dataclasses.fields(config_class)}:
            what = "expected KEY=VALUE" if not sep else f"{config_class.__name__} has no field {key!r}"
            raise CLIError(f"--set {item}: {what}; its fields are {_fields_text(config_class)}")
        try:
            out[key] = _value(text.strip(), hints[key])
        except ValueError:
            raise CLIError(f"--set {item}: {key} is {_type_name(hints[key])}, got {text.strip()!r}") from None
    return out


# ----------------------------------------------------------------------------------- running
def resolve_options(args, profile: str) -> dict:
    """The command's options with the profile's defaults filled in (what summary.json records)."""
    epochs = EPOCHS[profile] if args.epochs is None else args.epochs
    batch = BATCH_SIZE[profile] if args.batch_size is None else args.batch_size
    warmup = min(10, epochs // 10) if args.warmup_epochs is None else args.warmup_epochs
    if warmup > epochs:
        raise CLIError(f"--warmup-epochs {warmup} is more than --epochs {epochs}")
    return dict(method=args.method, profile=profile, epochs=epochs, batch_size=batch, optimizer=args.optimizer,
                lr={"adam": 1e-3, "sgd": 0.06 * batch / 512, "lars": 0.3 * batch / 256}[args.optimizer] if args.lr is None
                else args.lr,
                weight_decay=WEIGHT_DECAY[args.optimizer] if args.weight_decay is None else args.weight_decay,
                warmup_epochs=warmup, seed=args.seed, out=args.out or f"runs/{args.method}-{profile}",
                data=args.data, device=args.device, set=list(args.set), fresh=args.fresh,
                knn_every=KNN_EVERY[profile] if args.knn_every is None else args.knn_every,
                progress=not args.no_progress, compile=args.compile, channels_last=not args.no_channels_last,
                processes=dist_utils.world_size())


def _device(name) -> torch.device:
    try:
        return torch.empty(1, device=cfg.get_device(name)).device  # "cuda" without CUDA fails here, not later
    except (RuntimeError, AssertionError) as err:
        raise CLIError(f"--device {name}: {str(err).splitlines()[0]}") from None


def _load(dataset: str, profile: str):
    try:
        return load_data(True, profile, dataset), load_data(False, profile, dataset)
    except FileNotFoundError as err:  # load_cifar10's message: what is missing, then what to do
        raise CLIError(f"{str(err).splitlines()[0]} Put it in {cfg.data_dir()} (cifar-10-batches-py, or an "
                       "ImageFolder tree or .tar.gz named by $COURSE_CIFAR10; $COURSE_DATA moves that folder), connect "
                       "to the internet for torchvision's download, or train offline with --data digits.") from None


def _epoch_printer(epochs: int):
    from tqdm.auto import tqdm

    def on_epoch(model, epoch: int, history) -> None:
        if dist_utils.rank() != 0:
            return
        r = history.last()
        knn = f"  kNN {r['knn_acc']:.4f}" if not math.isnan(r.get("knn_acc", math.nan)) else ""
        tqdm.write(f"epoch {epoch}/{epochs}  loss {r['loss']:.4f}  lr {r['lr']:.3g}{knn}  ({r['time']:.1f} s)")
    return on_epoch


def _optimizer_class(name: str, device: torch.device) -> tuple:
    """(optimizer class, its extra options): SGD / LARS with momentum 0.9, Adam; fused kernels on CUDA."""
    if name == "lars":
        from .lars import LARS
        return LARS, {"momentum": 0.9}
    cls = torch.optim.SGD if name == "sgd" else torch.optim.Adam
    return cls, {**({"momentum": 0.9} if name == "sgd" else {}), **fused_options(cls, device)}


def matmul_gflops(device: torch.device, n: int = 512, seconds: float = 0.2) -> float:
    """2n³ / t of float32 n×n matmuls now: how fast the machine was, to read a wall time beside."""
    a, count, t0 = torch.full((n, n), 0.5, device=device), 0, time.perf_counter()
    while (t := time.perf_counter() - t0) < seconds or count == 0:
        (a @ a).sum().item()  # .item() waits for an asynchronous device
        count += 1
    return 2 * n**3 * count / t / 1e9


def _setup(args):
    """The parsed command → options, device, data, method, loader, monitor (no training yet)."""
    cfg.check_environment(verbose=False)
    profile = cfg.resolve_profile(args.profile or cfg.PROFILE)
    launched = dist_utils.launched_by_torchrun()
    device = dist_utils.init_from_environment() if launched else None  # before the options: they count processes
    o = resolve_options(args, profile)
    overrides = parse_overrides(METHODS[args.method][1], args.set)
    device = device if launched else _device(args.device)
    if o["batch_size"] % dist_utils.world_size():
        raise CLIError(f"--batch-size {o['batch_size']} (the global batch) must be a multiple of the "
                       f"{dist_utils.world_size()} processes")
    data = _load(args.data, profile)
    cfg.set_seed(o["seed"])  # the initial weights (and MoCo's initial queue)
    try:
        model = build_method(args.method, backbone_for_profile(profile), **overrides)
    except (ValueError, TypeError) as err:
        raise CLIError(f"--set {' '.join(args.set)}: {err}") from None
    loader = DeviceLoader(*data[0], o["batch_size"], transform=SimCLRAugment(), n_views=2, device=device,
                          shard=(dist_utils.rank(), dist_utils.world_size()))
    if len(loader) == 0:
        raise CLIError(f"--batch-size {o['batch_size']} is larger than the {len(data[0])} training images")
    monitor = KNNMonitor(*data[0], *data[1], k=KNN_K, temperature=KNN_TEMPERATURE)
    return o, device, data, model, loader, monitor


def _report(o, device, data, model, history, monitor, started) -> dict:
    """The final kNN accuracy and linear probe, printed, in the summary that summary.json holds."""
    (train_set, test_set), n, m = data, len(data[0]), len(data[1])
    knn = history.last().get("knn_acc", math.nan) if history.get("epoch") else math.nan
    knn = monitor(model)["knn_acc"] if math.isnan(knn) else knn  # 0 epochs: the initial weights
    f_train, f_test = (extract_features(model.backbone, d.images, device=device) for d in data)
    probe = linear_probe(f_train, train_set.labels, f_test, test_set.labels, device=device)
    print(f"final kNN accuracy (k={KNN_K}, cosine, τ={KNN_TEMPERATURE}; {m} test images, bank of {n} train): {knn:.4f}")
    print(f"linear probe (logistic regression on frozen backbone features, {n} train -> {m} test): {probe:.4f}")
    per_epoch = {k: [None if v != v else v for v in values] for k, values in history.items()}  # NaN -> null
    return {"method": o["method"], "config": dataclasses.asdict(model.config), "options": o, "profile": o["profile"],
            "device": str(device), "data": {"name": train_set.source, "train": n, "test": m,
                                            "classes": list(train_set.classes)},
            "epochs": len(history.get("epoch", [])), "history": per_epoch, "knn_acc": knn, "linear_probe": probe,
            "wall_time_s": time.perf_counter() - started, "train_time_s": sum(history.get("time", [])),
            "matmul_gflops": matmul_gflops(device), "torch": torch.__version__, "run_id": history.run.get("run_id")}


def train(args) -> int:
    """Run the parsed command: set up, :func:`fit`, final kNN and linear probe, ``OUT/summary.json``."""
    started = time.perf_counter()
    o, device, data, model, loader, monitor = _setup(args)
    steps, warmup = o["epochs"] * len(loader), o["warmup_epochs"] * len(loader)
    optimizer, momentum = _optimizer_class(o["optimizer"], device)
    out = Path(o["out"])
    checkpoint = out / "checkpoint.pt"
    run = {"method": o["method"], "method_config": dataclasses.asdict(model.config), "data": data[0].source,
           **{k: o[k] for k in ("profile", "epochs", "warmup_epochs", "batch_size", "optimizer", "lr", "weight_decay",
                                "seed")}}  # epochs too: the cosine schedules are sized by them
    shared = f" shared by {o['processes']} processes" if o["processes"] > 1 else ""
    if dist_utils.rank() == 0:
        print(f"{cfg.profile_reason(o['profile'], device)}\n{o['method']}: {_doc_line(METHODS[o['method']][0])}\n"
              f"  {run['method_config']}\ndata {data[0].source}: {len(data[0])} train / {len(data[1])} test images; "
              f"epochs {o['epochs']} of {len(loader)} batches of {o['batch_size']}{shared}; {o['optimizer']} lr {o['lr']:g}, "
              f"weight decay {o['weight_decay']:g}, {o['warmup_epochs']} warm-up epochs, then cosine\ncheckpoint "
              f"{checkpoint}" + (" (exists: resuming it; --fresh starts over)" * (checkpoint.exists() and not o["fresh"])))
    try:
        history = fit(model, loader, o["epochs"], step=two_view_step, optimizer=lambda params: optimizer(
                          params, lr=o["lr"], weight_decay=o["weight_decay"], **momentum),
                      scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(warmup, steps)),
                      checkpoint=checkpoint, resume=not o["fresh"], device=device, monitor=monitor,
                      monitor_every=o["knn_every"], seed=o["seed"], progress=o["progress"], desc=o["method"],
                      on_step=target_update(steps), on_epoch=_epoch_printer(o["epochs"]), config=run,
                      channels_last=o["channels_last"], compile=o["compile"], distributed=dist_utils.is_distributed())
    except RunMismatchError as err:  # fit's message: the file, a line per difference, what to do in a notebook
        what = "; ".join(line.strip() for line in str(err).splitlines()[1:] if line.startswith("  "))
        raise CLIError(f"{checkpoint} holds another run ({what or err}): add --fresh to train this one from scratch "
                       "over it, or give it another --out") from None
    except ValueError as err:  # e.g. MoCo's batch not a multiple of bn_splits, a queue smaller than a batch
        raise CLIError(str(err).splitlines()[0]) from None
    if dist_utils.rank() != 0:  # process 0 reports; the others are done
        return 0
    summary = _report(o, device, data, model, history, monitor, started)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json.tmp").write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(out / "summary.json.tmp", out / "summary.json")  # atomic, as the checkpoint
    print(f"wrote {out / 'summary.json'} (run {summary['run_id']})")
    return 0


def main(argv: typing.Optional[list] = None) -> int:
    """``python -m course_lib.train ...``; returns the exit status (0, or 2 after a one-line error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or argparse's one-line error (2)
        return stop.code if isinstance(stop.code, int) else 0
    try:
        return train(args)
    except CLIError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
