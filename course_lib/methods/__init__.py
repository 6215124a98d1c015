"""Self-supervised methods: short modules with named parts whose ``forward(x1, x2)`` returns the loss
(the losses are those of :mod:`course_lib.losses`):

* :class:`SimCLR`: ``backbone``, ``projector``; ``nt_xent_loss``;
* :class:`MoCo`: ``backbone``, ``projector``, ``target_backbone``, ``target_projector``, a ``queue``;
  ``moco_loss``;
* :class:`BYOL`: ``backbone``, ``projector``, ``predictor``, ``target_backbone``, ``target_projector``;
  ``byol_loss``, symmetrised;
* :class:`BarlowTwins`: ``backbone``, ``projector``; ``barlow_twins_loss``.

Each has a config dataclass with the paper's (CIFAR) defaults, :data:`METHODS` maps names to both,
and :func:`build_method` makes one by name. Train any of them with the same loop; the methods with
a target network move it after every optimizer step::

    model = build_method("byol", backbone_for_profile(), base_momentum=0.99)
    fit(model, loader, epochs, step=two_view_step, on_step=target_update(epochs * len(loader)))

:mod:`~course_lib.methods.common` holds what they share: :func:`momentum_update`, :func:`target_copy`,
:func:`cosine_momentum`, :class:`SplitBatchNorm2d` and :func:`split_batchnorm`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from torch import nn

from .barlow import BarlowTwins, BarlowTwinsConfig
from .byol import BYOL, BYOLConfig
from .common import SplitBatchNorm2d, cosine_momentum, momentum_update, split_batchnorm, target_copy
from .moco import MoCo, MoCoConfig
from .simclr import SimCLR, SimCLRConfig

__all__ = ["SimCLR", "SimCLRConfig", "MoCo", "MoCoConfig", "BYOL", "BYOLConfig", "BarlowTwins",
           "BarlowTwinsConfig", "METHODS", "build_method", "update_target", "target_update", "momentum_update",
           "target_copy", "cosine_momentum", "SplitBatchNorm2d", "split_batchnorm"]

#: name -> (method class, config class)
METHODS = {
    "simclr": (SimCLR, SimCLRConfig),
    "moco": (MoCo, MoCoConfig),
    "byol": (BYOL, BYOLConfig),
    "barlow": (BarlowTwins, BarlowTwinsConfig),
}
_ALIASES = {"barlow_twins": "barlow", "barlowtwins": "barlow", "mocov2": "moco", "moco_v2": "moco"}


def build_method(name: str, backbone: nn.Module, **config_overrides) -> nn.Module:
    """``METHODS[name]`` on ``backbone`` with its config's defaults, ``config_overrides`` replacing some.

    E.g. ``build_method("moco", backbone, queue_size=1024, momentum=0.9)``. An unknown name or
    config field raises ``ValueError`` listing the valid ones.
    """
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)} (or 'barlow_twins')")
    method, config_class = METHODS[key]
    fields = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(config_overrides) - set(fields))
    if unknown:
        raise ValueError(f"{config_class.__name__} has no field {', '.join(map(repr, unknown))}: "
                         f"its fields are {', '.join(fields)}")
    return method(backbone, config_class(**config_overrides))


def update_target(model: nn.Module, step: Optional[int] = None, total_steps: Optional[int] = None) -> None:
    """Move the model's target network after an optimizer step: ``model.update_target(step, total_steps)``
    where the method has one (MoCo, BYOL); nothing for the others (SimCLR, Barlow Twins)."""
    update = getattr(model, "update_target", None)
    if update is not None:
        update(step=step, total_steps=total_steps)


def target_update(total_steps: Optional[int] = None) -> Callable[[nn.Module, int], None]:
    """``on_step`` for :func:`course_lib.train.fit`: ``(model, step) -> None`` calling
    :func:`update_target` ``(model, step, total_steps)``. ``total_steps`` (e.g. ``epochs * len(loader)``)
    sets BYOL's cosine schedule of τ; MoCo's momentum is constant and ignores it."""

    def on_step(model: nn.Module, step: int) -> None:
        update_target(model, step, total_steps)

    return on_step
