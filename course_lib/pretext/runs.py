"""Chapter 05's runs: train a pretext task within the profile's budget, then score its encoder.

Every task trains the same way -- :func:`course_lib.train.fit` with Adam and a one-cycle schedule
over a :class:`~course_lib.data.DeviceLoader` of [0, 1] images, a resumable checkpoint per task and
configuration -- and is scored the same way: kNN and linear probe of its backbone's features
(:func:`course_lib.evaluate.frozen_scores`), so the chapter's table compares tasks, not recipes.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..config import checkpoint_path
from ..data import DeviceLoader
from ..evaluate import frozen_scores
from ..train import fit
from .common import PretextTask, encoder, pretext_step


def train_pretext(task: PretextTask, images, epochs: int, batch_size: int = 128, lr: float = 2e-3,
                  weight_decay: float = 1e-5, name: str = "pretext", device=None, monitor=None,
                  monitor_every: int = 1, seed: int = 0, chapter: str = "05", channels_last: bool = True):
    """Train ``task`` on uint8 ``images`` (N, H, W, 3) for ``epochs``; returns fit's History.

    Adam(lr, weight_decay) with a one-cycle schedule peaking at ``lr``; checkpoint
    ``<chapter>_<name>-<profile>-{run}.pt`` (run it again and it loads, or resumes after a disconnect).
    A task with an ``on_epoch(model, epoch, history)`` method (deep clustering re-clusters there)
    gets it called after every epoch; one with ``start(images)`` gets it called once before.
    ``channels_last``: model and batches in NHWC memory order (fit's option; ~1.3× faster on a CPU).
    """
    device = torch.device(device) if device is not None else next(task.parameters()).device
    loader = DeviceLoader(images, None, batch_size, normalize=False, device=device)
    if hasattr(task, "start"):
        task.start(images)
    return fit(task, loader, epochs, step=pretext_step,
               optimizer=lambda params: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
               scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader)),
               checkpoint=checkpoint_path(f"{chapter}_{name}", per_run=True), desc=name, seed=seed,
               monitor=monitor, monitor_every=monitor_every, on_epoch=getattr(task, "on_epoch", None),
               channels_last=channels_last)


def score_task(task: PretextTask, train, test) -> dict:
    """kNN and linear-probe accuracy of ``task``'s backbone on ``test`` (bank and probe: ``train``)."""
    return frozen_scores(encoder(task), train.images, train.labels, test.images, test.labels,
                         normalize_input=False)
