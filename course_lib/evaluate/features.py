"""Features of a frozen encoder: h = f(x) for a whole image set, and the raw-pixel baseline."""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .. import _checks as check
from ..data import DeviceLoader, to_model_input

ArrayLike = Union[torch.Tensor, np.ndarray]
_PROGRESS_MIN_N = 20_000  # extract_features shows a progress bar from this many images on


def _module_device(model) -> torch.device:
    if isinstance(model, nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            return t.device
    return torch.device("cpu")



@torch.no_grad()
def extract_features(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: ArrayLike,
    batch_size: int = 512,
    device=None,
    normalize_input: bool = True,
    progress: Optional[bool] = None,
) -> torch.Tensor:
    """h_i = f(x_i) for every image, f frozen: ``(N, D)`` float32 on the CPU.

    ``images``: uint8 ``(N, H, W, 3)`` (scaled to [0, 1] and, if ``normalize_input``, normalised with
    the CIFAR-10 statistics, exactly as :class:`~course_lib.data.DeviceLoader` feeds training) or an
    already prepared float ``(N, C, H, W)`` tensor (used as is). ``model`` is any callable
    ``(B, C, H, W) -> (B, D)``; an ``nn.Module`` runs in eval mode and gets its mode back afterwards.
    Outputs with more dimensions are flattened to ``(B, D)``. ``device`` defaults to the model's.
    A progress bar appears for ``N >= 20 000`` unless ``progress`` says otherwise. On the CPU the
    batches are fed in channels_last (NHWC) memory order: the same numbers, convolutions ~1.7× faster.
    """
    device = torch.device(device) if device is not None else _module_device(model)
    images = check.images(images, float_nchw=True)  # uint8 (N, H, W, 3) or float (N, C, H, W)
    if images.dtype == torch.uint8:
        batches = (x for x, _ in DeviceLoader(images, None, batch_size, shuffle=False, drop_last=False,
                                              device=device, normalize=normalize_input))
    else:
        batches = (images[i : i + batch_size].to(device, non_blocking=True) for i in range(0, len(images), batch_size))
    if progress is None:
        progress = len(images) >= _PROGRESS_MIN_N
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(images) // batch_size), desc="features", leave=False)
    was_training = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()
    try:
        out = [model(_cpu_nhwc(x)).flatten(1).float().cpu() for x in batches]  # [(B, D)]
    finally:
        if was_training is not None:
            model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def _cpu_nhwc(x: torch.Tensor) -> torch.Tensor:
    """A 4-D float batch on the CPU in channels_last order (the model follows its input); else as is."""
    if x.device.type == "cpu" and x.dim() == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def pixel_features(images: ArrayLike, normalize: bool = True) -> torch.Tensor:
    """The raw-pixel baseline: x ↦ vec(x), uint8 ``(N, H, W, 3)`` → float32 ``(N, 3·H·W)``.

    Scaled and normalised like the models' input (:func:`course_lib.data.to_model_input`), so
    pixels and learned features go through the same kNN / probe.
    """
    return to_model_input(check.images(images), normalize=normalize).flatten(1)  # (N, 3HW)


__all__ = ["extract_features", "pixel_features"]
