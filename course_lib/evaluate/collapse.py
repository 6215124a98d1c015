"""Has the representation collapsed? The spread of ℓ2-normalised features over a batch.

SimSiam (Chen & He, 2021, §4.1, figure 2) introduced the measure: the standard deviation over the
images of each channel of z / ‖z‖, averaged over the channels. If z collapses to a constant vector it
is 0; if z / ‖z‖ is spread like a uniform direction on the unit sphere of R^d, each coordinate has
mean 0 and variance 1/d, so the measure is ≈ 1/√d. Chapter 08 draws it with and without BYOL's
predictor and momentum target.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from .features import ArrayLike, _module_device, extract_features

__all__ = ["feature_std", "CollapseMonitor"]


def feature_std(features: ArrayLike) -> float:
    """(1/d) Σ_j std_i(z̄_ij), z̄_i = z_i / ‖z_i‖: the collapse measure of SimSiam (Chen & He, 2021, §4.1).

    ``features`` ``(N, D)`` (tensor or array, any numeric dtype, N ≥ 2); the std over the N rows is
    the sample one (N − 1). 0 when every row points the same way, ≈ 1/√D for spread-out features.
    """
    z = check.features(features)  # (N, D) float32
    if len(z) < 2:
        raise ValueError(f"expected features of shape (N, D) with N >= 2, got {tuple(z.shape)}")
    z_bar = F.normalize(z.double(), dim=1)  # (N, D), unit rows
    return float(z_bar.std(dim=0).mean())  # std over the batch, mean over the dimensions


class CollapseMonitor:
    """monitor(model) → {"feature_std": …, "feature_std_ref": 1/√d}: :func:`feature_std` on held-out images.

    For :func:`course_lib.train.fit` (``monitor=CollapseMonitor(x_test[:1024])``), like
    :class:`~course_lib.evaluate.KNNMonitor`. ``images`` uint8 ``(N, H, W, 3)``. The features are those
    SimSiam measures, the output the loss sees: ``model.projector(model.backbone(x))`` when the model has
    both parts, else ``model.backbone(x)``, else ``model(x)``; ``feature_fn(model, x)`` chooses others,
    e.g. ``lambda m, x: m.backbone(x)`` for the representation before the head. The reference value
    1/√d (d the feature width) is returned beside it, so ``plot_history`` draws both. The model runs in
    eval mode (BatchNorm with its running statistics, as for every monitor; its mode is given back),
    so nothing changes in it and the value is deterministic.
    """

    def __init__(self, images: ArrayLike, feature_fn: Optional[Callable] = None, name: str = "feature_std",
                 batch_size: int = 512):
        self.images = check.images(images, "images")  # (N, H, W, 3)
        if len(self.images) < 2:
            raise ValueError("CollapseMonitor needs at least 2 images")
        self.feature_fn, self.name, self.batch_size = feature_fn, name, batch_size

    def _encoder(self, model: nn.Module) -> Callable:
        if self.feature_fn is not None:
            return lambda x: self.feature_fn(model, x)
        if hasattr(model, "projector") and hasattr(model, "backbone"):
            return lambda x: model.projector(model.backbone(x))
        return getattr(model, "backbone", model)

    def __call__(self, model: nn.Module) -> dict:
        was_training = model.training
        model.eval()
        try:
            z = extract_features(self._encoder(model), self.images, self.batch_size, device=_module_device(model))
        finally:
            model.train(was_training)
        return {self.name: feature_std(z), f"{self.name}_ref": 1.0 / math.sqrt(z.shape[1])}
