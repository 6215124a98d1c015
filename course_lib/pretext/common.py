"""What every pretext task shares: images in, a loss out, and the encoder the chapter evaluates.

A pretext task makes its labels from the images themselves (the slides' "free supervision"). Each
task here is a small ``nn.Module`` with named parts -- ``backbone`` (the encoder f whose features
are measured downstream) and the task's own ``head`` (plus, where the method has them, a
``decoder`` or ``discriminator``) -- and two methods:

* ``forward(x) -> loss``: ``x`` is a float batch ``(B, 3, H, W)`` in [0, 1] (a
  :class:`~course_lib.data.DeviceLoader` with ``normalize=False``); the task builds its inputs and
  targets from it (rotations, tiles, the L channel, masked images ...) and returns a 0-dim loss,
  or a dict with ``"loss"`` and other scalars to log (e.g. the pretext accuracy).
* ``encode(x) -> h``: the backbone's features ``(B, D)`` of whole images in [0, 1], prepared the way
  the task trained the backbone (normalised RGB for most; the L channel for colorization).

:func:`pretext_step` lets :func:`course_lib.train.fit` train any of them; :func:`encoder` turns one
into the callable that :func:`course_lib.evaluate.extract_features` measures.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data import normalize_batch


class PretextTask(nn.Module):
    """Base class: ``backbone`` plus the task's parts; subclasses define ``forward(x) -> loss``."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB ``(B, 3, H, W)`` -> what the backbone is fed (default: CIFAR-normalised RGB)."""
        return normalize_batch(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(prepare(x)): ``(B, 3, H, W)`` in [0, 1] -> ``(B, D)``."""
        return self.backbone(self.prepare(x))


def pretext_step(model: PretextTask, batch):
    """The :func:`~course_lib.train.fit` step of every pretext task: ``model(x)``, labels unused."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return model(x)


class Encoder(nn.Module):
    """A task's ``encode`` as a module (so that evaluation switches the task to eval mode and finds
    its device): ``(B, 3, H, W)`` in [0, 1] -> ``(B, D)``. Feed it un-normalised images
    (``extract_features(..., normalize_input=False)``)."""

    def __init__(self, task: PretextTask):
        super().__init__()
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.task.encode(x)


def encoder(task: PretextTask) -> Encoder:
    """:class:`Encoder` of ``task``."""
    return Encoder(task)
