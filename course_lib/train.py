"""One training loop for every chapter: θ ← θ − η ∇_θ L(θ; batch), epoch after epoch, resumable.

:func:`fit` runs ``step(model, batch) -> loss`` over a loader for some epochs, with a progress bar,
mixed precision on CUDA, a checkpoint after every epoch and an optional monitor (e.g. the kNN
accuracy of :class:`~course_lib.evaluate.KNNMonitor`). Run the same cell again after a disconnect
and it continues from the last finished epoch, and reaches exactly the weights an uninterrupted
run would have (on the CPU; on a GPU up to its non-deterministic kernels)::

    history = fit(model, loader, epochs=EPOCHS, checkpoint=checkpoint_dir() / "simclr.pt",
                  step=two_view_step, monitor=KNNMonitor(x_train, y_train, x_test, y_test))
    plot_history(history)
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
import torch.nn.functional as F
from torch import nn

from .config import set_seed
from .evaluate import KNNMonitor, knn_monitor

__all__ = ["fit", "History", "supervised_step", "two_view_step", "pair_step", "embedding_step",
           "mined_triplet_step", "head_step", "prototypical_step",
           "triplet_ce_step", "npair_step", "epoch_seed", "KNNMonitor", "knn_monitor"]

Loss = Union[torch.Tensor, dict]


# ------------------------------------------------------------------------------------- steps
def supervised_step(model: nn.Module, batch) -> torch.Tensor:
    """L = CE(model(x), y): supervised classification; batch ``(x (B, 3, H, W), y (B,))``."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def two_view_step(model: nn.Module, batch) -> Loss:
    """L = model(x1, x2): self-supervised methods whose forward takes two views and returns the loss.

    batch ``((x1, x2), y)`` as :class:`~course_lib.data.DeviceLoader` gives with ``n_views=2``;
    the labels are not used.
    """
    (x1, x2), _ = batch
    return model(x1, x2)


def pair_step(loss_fn: Callable, **kwargs) -> Callable:
    """Step for a Siamese network on pairs: ``L = loss_fn(f(x1), f(x2), same, **kwargs)``.

    batch ``(x1 (B, 3, H, W), x2 (B, 3, H, W), same (B,))`` as a DataLoader over
    :class:`~course_lib.data.PairDataset` gives; both branches share the weights of ``model``.
    E.g. ``pair_step(contrastive_loss, margin=1.0)``.
    """

    def step(model: nn.Module, batch) -> torch.Tensor:
        x1, x2, same = batch
        z = model(torch.cat([x1, x2]))  # one pass through the shared branch: (2B, D)
        return loss_fn(z[: len(x1)], z[len(x1):], same, **kwargs)

    return step


def embedding_step(loss_fn: Callable, **kwargs) -> Callable:
    """Step for a loss on a labelled batch of embeddings: ``L = loss_fn(f(x), y, **kwargs)``.

    batch ``(x (B, 3, H, W), y (B,))``, e.g. from a DeviceLoader with a
    :class:`~course_lib.data.PKSampler`. E.g. ``embedding_step(batch_hard_triplet_loss, margin=0.2)``.
    """

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return loss_fn(model(x), y, **kwargs)

    return step


def mined_triplet_step(strategy: str, margin: float = 0.2, squared: bool = False) -> Callable:
    """Step for distance → miner → loss → reduction (FaceNet-style training with a chosen miner):
    mine ``(a, p, n)`` with :func:`course_lib.mining.mine_triplets` on the detached embeddings,
    then the mean triplet loss over those triplets. ``strategy="random"`` draws as many random valid
    triplets as the batch has anchors (the baseline). Logs the number of mined triplets too.
    """
    from .losses import triplet_loss_from_indices
    from .mining import mine_triplets, random_triplets

    def step(model: nn.Module, batch) -> dict:
        x, y = batch
        z = model(x)  # (B, D)
        if strategy == "random":
            a, p, n = random_triplets(y, len(y))
        else:
            a, p, n = mine_triplets(z.detach(), y, strategy=strategy, margin=margin, squared=squared)
        loss = triplet_loss_from_indices(z, a, p, n, margin=margin, squared=squared)
        return {"loss": loss, "triplets": float(len(a))}

    return step


def head_step(center_weight: float = 0.0) -> Callable:
    """Step for an :class:`~course_lib.models.EmbeddingClassifier`:
    ``L = CE(head(f(x), y), y) + λ_c · L_center`` (Wen et al., 2016, for the second term).

    The head adds its margin to the target logit (CosFace/ArcFace) or none (softmax); the centre
    term is used when ``center_weight > 0`` and the model has ``centers``. batch ``(x, y)``.
    """
    def step(model: nn.Module, batch) -> dict:
        x, y = batch
        z = model(x)  # (B, D)
        ce = F.cross_entropy(model.head(z, y), y)
        if center_weight > 0 and getattr(model, "centers", None) is not None:
            center = model.centers(z, y)
            return {"loss": ce + center_weight * center, "ce": ce, "center": center}
        return ce

    return step


def triplet_ce_step(margin: float = 0.2, weight: float = 1.0) -> Callable:
    """Step for triplet + cross-entropy on an :class:`~course_lib.models.EmbeddingClassifier`:
    ``L = L_batch-hard(f(x), y) + weight · CE(head(f(x)), y)``
    (:func:`~course_lib.losses.triplet_ce_loss`). batch ``(x, y)`` from PK batches."""
    from .losses import triplet_ce_loss

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        z = model(x)  # (B, D)
        return triplet_ce_loss(z, model.head(z, y), y, margin=margin, weight=weight)

    return step


def npair_step() -> Callable:
    """Step for the multi-class N-pair loss (Sohn, 2016) on PK batches with K = 2: of each class's
    two images the first is the anchor, the second its positive, and the other classes' positives
    are the negatives (:func:`~course_lib.losses.npair_loss`). batch ``(x, y)``, grouped by class."""
    from .losses import npair_loss

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        if len(y) % 2 or not bool((y[0::2] == y[1::2]).all()):
            raise ValueError("npair_step needs PK batches with k=2 (two images of each class, adjacent)")
        z = model(x)  # (2P, D)
        return npair_loss(z[0::2], z[1::2])

    return step


def prototypical_step(n_support: int) -> Callable:
    """Step for prototypical networks (Snell et al., 2017) on episodes from a
    :class:`~course_lib.data.PKSampler`: each batch is P classes × K images, grouped by class; the
    first ``n_support`` images of each class are the support set, the other K − n_support the
    queries, and the loss is :func:`~course_lib.losses.prototypical_loss` (P-way, n_support-shot).
    """
    from .losses import prototypical_loss

    def step(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        z = model(x)  # (P·K, D), class by class
        labels = torch.unique_consecutive(y)  # (P,)
        z = z.view(len(labels), -1, z.shape[-1])  # (P, K, D)
        y = y.view(len(labels), -1)  # (P, K)
        if z.shape[1] <= n_support:
            raise ValueError(f"episodes need K > n_support={n_support} images a class, got K={z.shape[1]}")
        support, query = z[:, :n_support], z[:, n_support:]  # (P, S, D), (P, Q, D)
        return prototypical_loss(support.reshape(-1, z.shape[-1]), y[:, :n_support].reshape(-1),
                                 query.reshape(-1, z.shape[-1]), y[:, n_support:].reshape(-1))

    return step


# ----------------------------------------------------------------------------------- history
class History(dict):
    """Per-epoch records, ``name -> list`` (one value per epoch): what :func:`fit` returns.

    Keys: ``"epoch"`` (1, 2, …), ``"loss"`` (mean over the epoch's batches), every other scalar
    the step logged (mean over batches), ``"lr"`` (at the end of the epoch), ``"time"`` (seconds of
    training in the epoch) and the monitor's metrics (NaN in epochs where it did not run, which
    plots as a gap). A plain dict of lists of floats: JSON-serialisable, ``viz.plot_history`` draws it.
    """

    def append(self, record: dict) -> None:
        """Add one epoch's ``{name: value}``; names missing on either side are padded with NaN."""
        n = len(self.get("epoch", []))
        for key in list(self) + [k for k in record if k not in self]:
            value = record.get(key, math.nan)
            self.setdefault(key, [math.nan] * n).append(value if type(value) is int else float(value))

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
    """bf16 on GPUs that have it natively (compute capability ≥ 8), else fp16; None = no autocast."""
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


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
) -> History:
    """Minimise the mean of ``step(model, batch)`` over ``loader`` for ``epochs`` epochs.

    * ``loader``: any iterable of batches, typically a :class:`~course_lib.data.DeviceLoader`
      (``(x, y)``, or ``((x1, x2), y)`` with two views); tensors are moved to ``device``.
    * ``step(model, batch)``: returns the loss (0-dim tensor) or a dict with ``"loss"`` and other
      scalars to log. Default :func:`supervised_step` (cross-entropy); :func:`two_view_step` for
      methods whose ``forward(x1, x2)`` returns the loss.
    * ``optimizer``: an optimizer, a factory ``params -> optimizer``, or None for Adam(lr=1e-3) over
      the parameters that require grad. ``scheduler``: an LR scheduler on that optimizer, or a factory
      ``optimizer -> scheduler``; it is stepped **once per batch** (size its schedule in steps,
      ``epochs * len(loader)``).
    * ``device``: default the loader's device, else the model's; the model is moved there.
      ``amp``: autocast on CUDA (bf16 where native, else fp16 with a GradScaler); None = on for CUDA,
      never on CPU/MPS.
    * ``checkpoint``: a path. After every epoch, model/optimizer/scheduler/scaler state, the epoch
      count and the history are saved there atomically. If ``resume`` and the file exists, training
      continues after its last epoch; if it already holds ``epochs`` epochs, the weights are loaded
      and its history is returned at once ("train or load checkpoint").
    * Every epoch ``e`` starts with :func:`course_lib.config.set_seed` ``(epoch_seed(seed, e))``, so the
      loader's shuffling and augmentation of epoch ``e`` are the same in a straight run and after a
      resume.
    * ``monitor(model) -> {name: float}``: run in eval mode without gradients after every
      ``monitor_every``-th epoch and after the last; its values go into the history (NaN elsewhere).

    Returns the :class:`History`, one entry per epoch.
    """
    if epochs < 0 or monitor_every < 1:
        raise ValueError(f"epochs must be >= 0 and monitor_every >= 1, got {epochs} and {monitor_every}")
    step = step or supervised_step
    device = torch.device(device) if device is not None else _default_device(model, loader)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer([p for p in model.parameters() if p.requires_grad])
    if scheduler is not None and not hasattr(scheduler, "state_dict"):
        scheduler = scheduler(optimizer)
    if scheduler is not None and getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError("scheduler must be built on the optimizer fit uses: pass a factory `lambda opt: ...`")
    amp_dtype = _amp_dtype(device, amp)
    scaler = _grad_scaler(amp_dtype == torch.float16)
    history, start = History(), 0

    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        state = _load(path, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, start = History(state["history"]), int(state["epoch"])
        if progress:
            print(f"{desc}: loaded {path} ({start} epoch{'s' * (start != 1)} done of {epochs})")
        if start >= epochs:
            return history

    n_batches = len(loader) if hasattr(loader, "__len__") else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_batches and epochs * n_batches, initial=(n_batches or 0) * start, desc=desc, dynamic_ncols=True)
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    try:
        for epoch in range(start, epochs):
            set_seed(epoch_seed(seed, epoch))
            model.train()
            sums, count, t0, shown = {}, 0, time.perf_counter(), time.perf_counter()
            if bar is not None:
                bar.set_description(f"{desc} epoch {epoch + 1}/{epochs}")
            for batch in loader:
                with autocast():
                    out = step(model, _to(batch, device))
                logs = dict(out) if isinstance(out, dict) else {"loss": out}
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(logs["loss"]).backward()
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
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
            record = {"epoch": epoch + 1, **{k: float(v) / count for k, v in sums.items()}}
            record.update(lr=optimizer.param_groups[0]["lr"], time=time.perf_counter() - t0)
            if monitor is not None and ((epoch + 1) % monitor_every == 0 or epoch + 1 == epochs):
                model.eval()
                with torch.no_grad():
                    record.update({k: float(v) for k, v in monitor(model).items()})
                model.train()
            history.append(record)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("epoch", "time")})
            if path is not None:
                _save(path, {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "epoch": epoch + 1,
                    "history": dict(history),
                    "seed": seed,
                })
    finally:
        if bar is not None:
            bar.close()
    return history
