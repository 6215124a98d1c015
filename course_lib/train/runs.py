"""What defines a training run, so that a checkpoint knows which run it holds.

:func:`describe_run` turns the model, optimizer, scheduler, step, loader, seed and profile into a
plain dict (JSON-able, no memory addresses); :func:`run_id` hashes it to a short name. ``fit``
stores the description in every checkpoint and, on resume, compares it with the run it is asked to
do: the same run resumes, anything else raises :class:`RunMismatchError` naming what differs.
Epochs are not part of a run: asking for more epochs continues it.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import random
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

__all__ = ["RunMismatchError", "describe_run", "run_id", "run_differences", "RandomState"]

# scheduler state that changes while it runs (the run is defined by its settings, not its progress)
_VOLATILE = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "base_lrs",
             "_is_initial", "lr_lambdas", "_schedulers", "_milestones"}


class RunMismatchError(ValueError):
    """The checkpoint holds another run than the one ``fit`` was asked to do."""


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of ``value``: numbers and strings as they are, functions by their
    qualified name (and, for a closure such as ``pair_step(contrastive_loss, margin=1.0)``, the values
    it closed over), tensors by shape and dtype, modules by their repr, other objects by type."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if depth > 4:
        return type(value).__qualname__
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        small = value.numel() <= 16
        return {"tensor": list(value.shape), "dtype": str(value.dtype).replace("torch.", ""),
                **({"values": value.detach().cpu().flatten().tolist()} if small else {})}
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, nn.Module):
        return repr(value)
    if inspect.isfunction(value) or inspect.ismethod(value):
        out = {"fn": f"{value.__module__}.{value.__qualname__}"}
        cells = getattr(value, "__closure__", None) or ()
        names = value.__code__.co_freevars if hasattr(value, "__code__") else ()
        args = {n: _plain(c.cell_contents, depth + 1) for n, c in zip(names, cells)
                if not n.startswith("_")}
        return {**out, **({"args": args} if args else {})}
    if callable(value) and hasattr(value, "__dict__"):  # e.g. a monitor or transform object
        text = repr(value)
        return text if " at 0x" not in text else type(value).__qualname__
    return type(value).__qualname__


def _optimizer(optimizer: torch.optim.Optimizer) -> dict:
    # fused / foreach pick kernels, not the update: a fused CUDA run resumes on a CPU and back
    groups = [{k: None if k in ("fused", "foreach") else _plain(v) for k, v in g.items() if k not in ("params", "initial_lr")}
              | {"lr": _plain(g.get("initial_lr", g.get("lr"))), "n_params": len(g["params"])}
              for g in optimizer.param_groups]
    return {"class": type(optimizer).__qualname__, "groups": groups}


def _scheduler(scheduler) -> Optional[dict]:
    if scheduler is None:
        return None
    state = {k: _plain(v) for k, v in scheduler.state_dict().items() if k not in _VOLATILE}
    return {"class": type(scheduler).__qualname__, **state}


def _loader(loader) -> dict:
    out = {"class": type(loader).__qualname__}
    for name in ("batch_size", "n_views", "shuffle", "drop_last", "normalize"):
        if hasattr(loader, name):
            out[name] = _plain(getattr(loader, name))
    if hasattr(loader, "__len__"):
        out["batches"] = len(loader)
    data = getattr(loader, "labels", None)
    data = getattr(loader, "dataset", None) if data is None else data
    if data is not None and hasattr(data, "__len__"):
        out["examples"] = len(data)
    if getattr(loader, "transform", None) is not None:
        out["transform"] = _plain(loader.transform)
    sampler = getattr(loader, "batch_sampler", None)
    if sampler is not None:
        out["batch_sampler"] = {"class": type(sampler).__qualname__,
                                **{k: _plain(v) for k, v in vars(sampler).items()
                                   if isinstance(v, (int, float, str, bool))}}
    return out


def describe_run(model: nn.Module, optimizer, scheduler, step: Callable, loader, seed: int,
                 profile: str, amp: Optional[bool], config: Optional[dict] = None) -> dict:
    """Everything that defines a run, as a JSON-able dict (the optimizer before any scheduler
    changed its learning rate)."""
    return {
        "model": {"class": type(model).__qualname__, "architecture": repr(model),
                  "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}},
        "optimizer": optimizer if isinstance(optimizer, dict) else _optimizer(optimizer),
        "scheduler": _scheduler(scheduler),
        "step": _plain(step),
        "loader": _loader(loader),
        "seed": int(seed),
        "profile": profile,
        "amp": amp,
        "config": _plain(config or {}),
    }


def run_id(description: dict) -> str:
    """A short, stable name for a run: the first 10 hex digits of the SHA-1 of its description."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _flatten(d: Any, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list) and any(isinstance(v, dict) for v in d):  # e.g. optimizer param groups
        return _flatten({str(i): v for i, v in enumerate(d)}, prefix)
    return {prefix: d}


def run_differences(saved: dict, now: dict, limit: int = 6) -> list[str]:
    """Human-readable lines ``what: checkpoint X, now Y`` for each setting that differs."""
    a, b = _flatten(saved), _flatten(now)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "—") != b.get(key, "—"):
            if key == "model.architecture":
                continue  # the shapes (or the class) say it more readably; shown only if alone
            short = lambda v: (s if len(s := json.dumps(v, default=str)) < 70 else s[:67] + "...")
            lines.append(f"{key}: checkpoint {short(a.get(key, '—'))}, now {short(b.get(key, '—'))}")
    if not lines and a.get("model.architecture") != b.get("model.architecture"):
        lines.append("model.architecture: the module structure differs (print(model) to compare)")
    shown, hidden = [], {}
    for line in lines:  # at most two lines per part (model, optimizer, loader, ...), then a count
        part = line.split(".", 1)[0].split(":", 1)[0]
        if sum(l.startswith(part) for l in shown) < 2 and len(shown) < limit:
            shown.append(line)
        else:
            hidden[part] = hidden.get(part, 0) + 1
    return shown + [f"... and {n} more in {part}" for part, n in hidden.items()]


class RandomState:
    """The global random state of Python, NumPy and torch (CPU and CUDA), saved and put back, so
    that ``fit`` leaves the caller's random stream as it found it."""

    def __init__(self):
        self.python, self.numpy = random.getstate(), np.random.get_state()
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
