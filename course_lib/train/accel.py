"""What :func:`~course_lib.train.fit` does for speed and scale, apart from the loop itself: ``channels_last``,
fused optimizers, ``torch.compile`` with a clean fall-back to eager mode, and DistributedDataParallel.

None of it changes what is computed (the tests compare every path with the plain one); each is an option
of ``fit`` and of ``python -m course_lib.train``, and the same code runs on CPU, MPS and CUDA.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Optional

import torch
from torch import nn

from .. import distributed as dist_utils

__all__ = ["fused_options", "to_channels_last", "CompileFallback", "forward_model", "prepare_distributed"]


def fused_options(optimizer_class, device: torch.device) -> dict:
    """``{"fused": True}`` where ``optimizer_class`` has a fused CUDA kernel (Adam, AdamW, SGD in torch ≥ 2.3)
    and ``device`` is CUDA: one kernel for all parameters instead of several per tensor. Else ``{}``."""
    if torch.device(device).type != "cuda":
        return {}
    try:
        return {"fused": True} if "fused" in inspect.signature(optimizer_class).parameters else {}
    except (TypeError, ValueError):
        return {}


def to_channels_last(x):
    """A 4-D float batch in NHWC memory order (the same tensor, strided differently); anything else as is.
    Convolutions on CPUs and tensor cores run faster on it (~2× here on CPU)."""
    if isinstance(x, torch.Tensor):
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 and x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        moved = [to_channels_last(v) for v in x]
        return type(x)(*moved) if hasattr(x, "_fields") else type(x)(moved)
    if isinstance(x, dict):
        return {k: to_channels_last(v) for k, v in x.items()}
    return x


class CompileFallback:
    """``torch.compile(module)``, or ``module`` itself if compiling fails: the first call that raises
    inside the compiler prints one warning and every call from then on runs eagerly. Attributes
    (``model.head``, ``model.config``) come from the module either way."""

    def __init__(self, module: nn.Module, compiled=None):
        self.module, self.failed = module, False
        try:
            self.compiled = compiled if compiled is not None else torch.compile(module)
        except Exception as err:  # e.g. an old torch, or a platform without a compiler backend
            self._fall_back(err)

    def _fall_back(self, err: Exception) -> None:
        self.failed = True
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                      "training on in eager mode (same results, no compile speed-up)", RuntimeWarning, stacklevel=3)

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:
                if not _from_compiler(err):
                    raise  # the model's own error (a bad shape): the same in eager mode, so say it
                self._fall_back(err)
        return self.module(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.module, name)


def _from_compiler(err: Exception) -> bool:
    """True for errors raised by dynamo / inductor (or their C++ / triton tool chains), not by the model."""
    module = type(err).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor", "torch.fx")) or "inductor" in str(err).lower() \
        or "dynamo" in str(err).lower()


def prepare_distributed(model: nn.Module) -> nn.Module:
    """Before DDP: BatchNorm over the global batch where the method wants it (``model.global_batchnorm``,
    default True; MoCo says False and shuffles instead). In place; returns ``model``."""
    if getattr(model, "global_batchnorm", True):
        dist_utils.convert_global_batchnorm(model)
    return model


def forward_model(model: nn.Module, device: torch.device, distributed: bool = False, compile: bool = False):
    """What the step calls: ``model``, wrapped in DistributedDataParallel (gradients averaged over the
    processes) when ``distributed``, then compiled when ``compile`` (with :class:`CompileFallback`)."""
    wrapped = model
    if distributed and dist_utils.is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        ids: Optional[list] = [device.index] if device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids)
    if compile:
        wrapped = CompileFallback(wrapped)
    return wrapped
