"""One training loop for every chapter: θ ← θ − η ∇_θ L(θ; batch), epoch after epoch, resumable.

:func:`fit` runs ``step(model, batch) -> loss`` over a loader for some epochs, with a progress bar,
mixed precision on CUDA, a checkpoint after every epoch and an optional monitor (e.g. the kNN
accuracy of :class:`~course_lib.evaluate.KNNMonitor`). Run the same cell again after a disconnect
and it continues from the last finished epoch, and reaches exactly the weights an uninterrupted
run would have (on the CPU; on a GPU up to its non-deterministic kernels)::

    history = fit(model, loader, epochs=EPOCHS, checkpoint=checkpoint_path("06_simclr", per_run=True),
                  step=two_view_step, monitor=knn_monitor(x_train, y_train, x_test, y_test))
    plot_history(history)

The checkpoint knows which run it holds (:mod:`course_lib.train.runs`): change a hyperparameter and
re-run the cell, and ``fit`` either trains the new run in its own file (``{run}`` in the path) or
says what differs; it never hands back the old run silently.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import numpy as np
import torch
from torch import nn

from ..config import PROFILE, set_seed
from ..config import amp_dtype as _device_amp_dtype
from .. import distributed as dist_utils
from .accel import forward_model, prepare_distributed, to_channels_last
from .runs import RandomState, RunMismatchError, describe_run, run_differences, run_id
from .steps import Loss, supervised_step

__all__ = ["fit", "History", "epoch_seed"]


# ----------------------------------------------------------------------------------- history
class History(dict):
    """Per-epoch records, ``name -> list`` (one value per epoch): what :func:`fit` returns.

    Keys: ``"epoch"`` (1, 2, …), ``"loss"`` (mean over the epoch's batches), every other scalar
    the step logged (mean over batches), ``"lr"`` (at the end of the epoch), ``"time"`` (seconds of
    training in the epoch), the monitor's metrics and what ``on_epoch`` returned (NaN in epochs where
    they did not run, which plots as a gap). A plain dict of lists of floats: JSON-serialisable,
    ``viz.plot_history`` draws it. ``history.run`` says how it was trained: optimizer, AMP dtype,
    seed, device, run id and checkpoint.
    """

    def __init__(self, *args, run: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.run = dict(run or {})

    def append(self, record: dict) -> None:
        """Add one epoch's ``{name: value}``; names missing on either side are padded with NaN."""
        n = len(self.get("epoch", []))
        for key in list(self) + [k for k in record if k not in self]:
            value = record.get(key, math.nan)
            self.setdefault(key, [math.nan] * n).append(value if type(value) is int else float(value))

    def update_last(self, values: dict) -> None:
        """Set ``{name: value}`` in the latest epoch's record (new names padded with NaN before)."""
        n = len(self.get("epoch", []))
        for key, value in values.items():
            self.setdefault(key, [math.nan] * n)[-1] = float(value)

    def last(self) -> dict:
        """The latest epoch's record ``{name: value}``."""
        return {k: v[-1] for k, v in self.items() if v}


# --------------------------------------------------------------------------------- utilities
def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``: the same in every process."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _to(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [_to(b, device) for b in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)  # namedtuple too
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _default_device(model: nn.Module, loader) -> torch.device:
    if getattr(loader, "device", None) is not None:
        return torch.device(loader.device)
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def _amp_dtype(device: torch.device, amp: Optional[bool]) -> Optional[torch.dtype]:
    """:func:`course_lib.config.amp_dtype` on ``device`` unless ``amp`` is False; None = no autocast."""
    return None if amp is False else _device_amp_dtype(device)


def _grad_scaler(enabled: bool):
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _save(path: Path, state: dict) -> None:
    """torch.save to a temporary file, then rename: a run killed mid-save keeps the old checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(path: Path, device: torch.device) -> dict:
    # our own file: full unpickling (torch >= 2.6 defaults to weights_only=True)
    return torch.load(path, map_location=device, weights_only=False)


# ----------------------------------------------------------------------------------------- fit
def _build(model, optimizer, scheduler):
    if optimizer is None:
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer([p for p in model.parameters() if p.requires_grad])
    from .runs import _optimizer  # described before a scheduler changes its learning rate

    described = _optimizer(optimizer)
    if scheduler is not None and not hasattr(scheduler, "state_dict"):
        scheduler = scheduler(optimizer)
    if scheduler is not None and getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError("scheduler must be built on the optimizer fit uses: pass a factory `lambda opt: ...`")
    return optimizer, described, scheduler


def _optimizer_text(described: dict) -> str:
    g = described["groups"][0]
    keys = [k for k in ("lr", "max_lr", "momentum", "weight_decay", "betas") if k in g]  # max_lr: OneCycleLR
    return f"{described['class']}({', '.join(f'{k}={g[k]}' for k in keys)})"


def _resume(path: Path, run: dict, device, model, optimizer, scheduler, scaler) -> tuple[History, int, int]:
    """Load the checkpoint at ``path`` if it holds this run; raise :class:`RunMismatchError` if not."""
    state = _load(path, device)
    saved = state.get("run")
    if saved is not None and run_id(saved) != run_id(run):
        lines = "\n  ".join(run_differences(saved, run))
        raise RunMismatchError(
            f"{path} holds another run than this one:\n  {lines}\n"
            "Give this run its own file (another checkpoint name, or checkpoint_path(name, per_run=True)"
            " / a '{run}' in the path), or pass resume=False to train from scratch and overwrite it.")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:  # a checkpoint from before runs were recorded
        raise RunMismatchError(f"{path} holds another model ({str(e).splitlines()[0]}); use another "
                               "checkpoint name or resume=False") from None
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    history = History(state["history"], run=state.get("info"))
    return history, int(state["epoch"]), int(state.get("step", 0))


def fit(
    model: nn.Module,
    loader: Iterable,
    epochs: int,
    step: Optional[Callable[[nn.Module, object], Loss]] = None,
    optimizer: Optional[Union[torch.optim.Optimizer, Callable]] = None,
    scheduler=None,
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    resume: bool = True,
    device=None,
    amp: Optional[bool] = None,
    monitor: Optional[Callable[[nn.Module], dict]] = None,
    monitor_every: int = 1,
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
    on_step: Optional[Callable[[nn.Module, int], None]] = None,
    on_epoch: Optional[Callable[[nn.Module, int, "History"], Optional[dict]]] = None,
    config: Optional[dict] = None,
    channels_last: bool = False,
    compile: bool = False,
    distributed: bool = False,
) -> History:
    """Minimise the mean of ``step(model, batch)`` over ``loader`` for ``epochs`` epochs.

    * ``loader``: any iterable of batches, typically a :class:`~course_lib.data.DeviceLoader`
      (``(x, y)``, or ``((x1, x2), y)`` with two views); tensors are moved to ``device``.
    * ``step(model, batch)``: returns the loss (0-dim tensor) or a dict with ``"loss"`` and other
      scalars to log. Default :func:`supervised_step` (cross-entropy); :func:`two_view_step` for
      methods whose ``forward(x1, x2)`` returns the loss.
    * ``optimizer``: an optimizer, a factory ``params -> optimizer``, or None for Adam(lr=1e-3) over
      the parameters that require grad (printed, and kept in ``history.run``). ``scheduler``: an LR
      scheduler on that optimizer, or a factory ``optimizer -> scheduler``; it is stepped **once per
      batch** (size its schedule in steps, ``epochs * len(loader)``).
    * ``device``: default the loader's device, else the model's; the model is moved there.
      ``amp``: autocast on CUDA (bf16 where native, else fp16 with a GradScaler); None = on for CUDA,
      never on CPU/MPS. ``channels_last``: model and image batches in NHWC memory order; ``compile``:
      ``torch.compile`` the model (falls back to eager mode, with a warning, where compiling fails).
    * ``distributed``: one of several processes (``torchrun``, :mod:`course_lib.distributed`): the model
      is converted to global BatchNorm where the method wants it and wrapped in DistributedDataParallel;
      give each process its share of every global batch (``DeviceLoader(..., shard=(rank, world))``).
      Logged numbers are means over the processes; only process 0 prints and writes the checkpoint,
      which any number of processes can resume.
    * ``on_step(model, step)``: called after every optimizer step, ``step`` = optimizer steps done
      so far in the run (1, 2, …, counting across resumes): e.g. the momentum update of a target
      network. ``on_epoch(model, epoch, history)``: called at the end of every epoch (1-based), after
      the monitor, in eval mode without gradients; a dict of floats it returns goes into that
      epoch's record (e.g. a collapse metric), anything else it keeps is its own (e.g. snapshots).
    * ``checkpoint``: a path. After every epoch, model/optimizer/scheduler/scaler state, the epoch
      count, the history and the description of the run (:func:`~course_lib.train.runs.describe_run`:
      model, optimizer, scheduler, step and its arguments, loader and augmentation, seed, profile,
      and ``config``, a dict of anything else that defines the run) are saved there atomically.
      ``{run}`` in the path is replaced by the run's id, so each configuration gets its own file.
      If ``resume`` and the file exists: the same run continues after its last epoch (or, when it
      already holds ``epochs`` epochs, its weights and history are returned at once: "train or load
      checkpoint"); another run raises :class:`RunMismatchError` naming what differs.
    * Every epoch ``e`` starts with :func:`course_lib.config.set_seed` ``(epoch_seed(seed, e))``, so the
      loader's shuffling and augmentation of epoch ``e`` are the same in a straight run and after a
      resume. The caller's global random state is put back when ``fit`` returns.
    * ``monitor(model) -> {name: float}``: run in eval mode without gradients after every
      ``monitor_every``-th epoch and after the last; its values go into the history (NaN elsewhere).

    Returns the :class:`History`, one entry per epoch.
    """
    if epochs < 0 or monitor_every < 1:
        raise ValueError(f"epochs must be >= 0 and monitor_every >= 1, got {epochs} and {monitor_every}")
    step = step or supervised_step
    main = dist_utils.rank() == 0  # the process that prints and saves
    progress = progress and main
    device = torch.device(device) if device is not None else _default_device(model, loader)
    model.to(device)
    optimizer, described, scheduler = _build(model, optimizer, scheduler)
    amp_dtype = _amp_dtype(device, amp)
    scaler = _grad_scaler(amp_dtype == torch.float16)
    run = describe_run(model, described, scheduler, step, loader, seed, PROFILE, amp, config)
    path = Path(str(checkpoint).replace("{run}", run_id(run))) if checkpoint is not None else None
    info = {"optimizer": _optimizer_text(described), "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "seed": seed, "device": str(device), "run_id": run_id(run), "checkpoint": str(path) if path else None}
    history, start, n_steps = History(run=info), 0, 0
    if path is not None and resume and path.exists():
        history, start, n_steps = _resume(path, run, device, model, optimizer, scheduler, scaler)
        history.run = {**history.run, **info}
        if progress:
            print(f"{desc}: loaded {path.name} ({start} epoch{'s' * (start != 1)} done of {epochs})")
        if start >= epochs:
            return history
    if progress:
        print(f"{desc}: {info['optimizer']}, amp {info['amp']}, seed {seed}, run {info['run_id']}"
              + (f" -> {path.name}" if path else "")
              + (f", {dist_utils.world_size()} processes" if dist_utils.is_distributed() else ""))
    if distributed:
        prepare_distributed(model)  # after describe_run: the same run on 1 or W processes
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = forward_model(model, device, distributed=distributed, compile=compile)
    move = (lambda b: to_channels_last(_to(b, device))) if channels_last else (lambda b: _to(b, device))

    n_batches = len(loader) if hasattr(loader, "__len__") else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_batches and epochs * n_batches, initial=(n_batches or 0) * start, desc=desc, dynamic_ncols=True)
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    caller_random = RandomState()
    try:
        for epoch in range(start, epochs):
            set_seed(epoch_seed(seed, epoch))
            model.train()
            sums, count, t0, shown = {}, 0, time.perf_counter(), time.perf_counter()
            if bar is not None:
                bar.set_description(f"{desc} epoch {epoch + 1}/{epochs}")
            for batch in loader:
                with autocast():
                    out = step(forward, move(batch))
                logs = dict(out) if isinstance(out, dict) else {"loss": out}
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(logs["loss"]).backward()
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                n_steps += 1
                if on_step is not None:
                    on_step(model, n_steps)  # e.g. the EMA / momentum update of a target network
                for k, v in logs.items():  # running sums stay on the device: no sync per batch
                    v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)  # no float64 on MPS
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if bar is not None:
                    bar.update(1)
                    if time.perf_counter() - shown > 0.5:
                        bar.set_postfix(loss=f"{float(sums['loss']) / count:.4f}", refresh=False)
                        shown = time.perf_counter()
            if count == 0:
                raise ValueError("the loader yielded no batch: is the dataset smaller than batch_size with drop_last=True?")
            if distributed:  # the mean over the processes, one synchronisation per epoch
                means = dist_utils.mean_over_processes(torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device)
                                                                    for v in sums.values()]))
                sums = dict(zip(sums, means.tolist()))
            record = {"epoch": epoch + 1, **{k: float(v) / count for k, v in sums.items()}}
            record.update(lr=optimizer.param_groups[0]["lr"], time=time.perf_counter() - t0)
            model.eval()
            with torch.no_grad():
                if monitor is not None and ((epoch + 1) % monitor_every == 0 or epoch + 1 == epochs):
                    record.update({k: float(v) for k, v in monitor(model).items()})
                history.append(record)
                extra = on_epoch(model, epoch + 1, history) if on_epoch is not None else None
                if isinstance(extra, dict):
                    history.update_last(extra)
            model.train()
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in history.last().items() if k not in ("epoch", "time")})
            if path is not None and main:
                _save(path, {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "epoch": epoch + 1,
                    "step": n_steps,
                    "history": dict(history),
                    "seed": seed,
                    "run": run,
                    "info": info,
                })
            if distributed and dist_utils.is_distributed():
                torch.distributed.barrier()  # nobody runs ahead of the checkpoint
    finally:
        caller_random.restore()
        if bar is not None:
            bar.close()
    return history
