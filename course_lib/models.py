"""Encoders and heads: the backbones every chapter trains, and the small MLPs put on top of them.

A *backbone* maps images ``(B, 3, H, W)`` to feature vectors ``(B, out_dim)`` (global average
pooling included) and says its ``out_dim``. Heads map ``(B, in_dim)`` to ``(B, out_dim)``.

=============================  ==========================  =========================================
profile                        backbone                    size
=============================  ==========================  =========================================
gpu                            :func:`resnet18_cifar`      11.17 M parameters, 512-d features
cpu                            :class:`SmallConvNet`       0.39 M parameters, 256-d features
smoke                          ``SmallConvNet((8, 16, 32, 64))``  tiny, 64-d features
=============================  ==========================  =========================================

Nothing here downloads weights: every model starts from a random initialisation.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks as check
from . import config

__all__ = [
    "SmallConvNet", "resnet18_cifar", "backbone_for_profile", "Classifier", "EmbeddingNet",
    "EmbeddingClassifier",
    "ProjectionHead", "PredictionHead", "count_parameters",
]


# --------------------------------------------------------------------------------- backbones
class SmallConvNet(nn.Module):
    """f(x) = GAP(block_4(pool(block_3(pool(block_2(pool(block_1(x))))))), block = conv3×3-BN-ReLU.

    The ``cpu`` profile's encoder: a VGG-style stack (Simonyan & Zisserman, 2015) of one 3×3
    convolution per block, batch norm (Ioffe & Szegedy, 2015), a 2×2 max-pool after every block but
    the last, then global average pooling (Lin et al., 2014). With the default widths it has
    0.39 M parameters.

    Input ``(B, in_channels, H, W)`` → output ``(B, widths[-1])``; ``out_dim == widths[-1]``.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        if len(widths) < 1:
            raise ValueError("widths must name at least one block, e.g. (32, 64, 128, 256)")
        layers, c_in = [], in_channels
        for i, c_out in enumerate(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.in_channels, self.out_dim = in_channels, widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check.image_batch(x, self.in_channels)
        return self.pool(self.blocks(x)).flatten(1)  # (B, C, h, w) -> (B, C)


def resnet18_cifar(num_classes: Optional[int] = None) -> nn.Module:
    """ResNet-18 (He et al., 2016) with the CIFAR stem of SimCLR (Chen et al., 2020, App. B.9).

    torchvision's ``resnet18(weights=None)`` (never downloads) with ``conv1`` a 3×3 convolution of
    stride 1 and no max-pool, so a 32×32 image keeps its resolution in the first stage.

    Input ``(B, 3, H, W)``. With ``num_classes=None`` the final ``fc`` is the identity and the model
    returns features ``(B, 512)`` (11.17 M parameters); otherwise ``fc`` is ``Linear(512, num_classes)``
    and it returns logits ``(B, num_classes)``. ``out_dim`` is the output size.
    """
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision
    model.maxpool = nn.Identity()
    model.fc = nn.Identity() if num_classes is None else nn.Linear(512, num_classes)
    model.out_dim = 512 if num_classes is None else num_classes
    return model


def backbone_for_profile(profile: Optional[str] = None) -> nn.Module:
    """The profile's encoder, images ``(B, 3, H, W)`` → features ``(B, out_dim)``.

    ``gpu``: :func:`resnet18_cifar` (512-d); ``cpu``: :class:`SmallConvNet` (256-d);
    ``smoke``: ``SmallConvNet((8, 16, 32, 64))`` (64-d). ``profile=None`` uses ``course_lib.PROFILE``.
    """
    profile = config.resolve_profile(profile or config.PROFILE)
    if profile == "gpu":
        return resnet18_cifar()
    if profile == "cpu":
        return SmallConvNet()
    return SmallConvNet((8, 16, 32, 64))


# ------------------------------------------------------------------------------ whole models
def _out_dim(backbone: nn.Module, given: Optional[int]) -> int:
    dim = given if given is not None else getattr(backbone, "out_dim", None)
    if dim is None:
        raise ValueError("the backbone has no `out_dim` attribute: pass feature_dim=<its output size>")
    return int(dim)


class Classifier(nn.Module):
    """logits = W f(x) + b: a backbone f and a linear head, trained with cross-entropy.

    Input ``(B, 3, H, W)`` → logits ``(B, num_classes)``; :meth:`features` gives ``f(x)``,
    ``(B, backbone.out_dim)``. Parts: ``backbone``, ``head``.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, feature_dim: Optional[int] = None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(_out_dim(backbone, feature_dim), num_classes)
        self.out_dim = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # (B, C)


class EmbeddingNet(nn.Module):
    """z = head(PReLU(BN(W f(x)))): one branch of a Siamese network (Bromley et al., 1993).

    As on the slides (Chierchia, "Siamese network for computer vision"): backbone + global average
    pooling (inside ``backbone``) → neck Dense-BatchNorm-PReLU (He et al., 2015) → head Dense.
    Both branches of a Siamese/triplet network are this one module (shared weights).

    Input ``(B, 3, H, W)`` → embedding ``(B, dim)``, L2-normalised only when ``normalize=True``.
    ``hidden`` is the neck width (default: the backbone's ``out_dim``). Parts: ``backbone``,
    ``neck``, ``head``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        dim: int = 128,
        hidden: Optional[int] = None,
        normalize: bool = False,
        feature_dim: Optional[int] = None,
    ):
        super().__init__()
        in_dim = _out_dim(backbone, feature_dim)
        hidden = hidden or in_dim
        self.backbone = backbone
        self.neck = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.PReLU())
        self.head = nn.Linear(hidden, dim)
        self.normalize, self.out_dim = normalize, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.neck(self.backbone(x)))  # (B, D)
        return F.normalize(z, dim=1) if self.normalize else z


class EmbeddingClassifier(nn.Module):
    """An embedding network trained through a classification head: z = f(x), logits = head(z, y).

    For the losses that need class weights or centres (Chierchia slides): softmax, CosFace, ArcFace
    (``head`` an :class:`~course_lib.losses.AngularMarginHead`) and centre loss (``centers`` a
    :class:`~course_lib.losses.CenterLoss`). ``forward(x)`` returns the embedding ``(B, D)``, so
    retrieval and :func:`~course_lib.evaluate.extract_features` use it like any embedding net;
    :func:`course_lib.train.head_step` trains it. Parts: ``embedder``, ``head``, ``centers``.
    """

    def __init__(self, embedder: nn.Module, head: nn.Module, centers: Optional[nn.Module] = None):
        super().__init__()
        self.embedder, self.head, self.centers = embedder, head, centers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x)  # (B, D)


# ------------------------------------------------------------------------------------- heads
class ProjectionHead(nn.Module):
    """z = g(h) = W_L σ(BN(W_{L-1} … σ(BN(W_1 h)))): SimCLR's projection head (Chen et al., 2020).

    ``num_layers`` linear layers; every one but the last is followed by BatchNorm1d and ReLU
    (SimCLR's g, 2 layers; SimCLR v2 uses 3). ``last_bn=True`` adds a BatchNorm1d without affine
    parameters after the last layer (SimCLR v2, MoCo v3). The loss is computed on z; the
    representation kept for downstream tasks is h, before the head.

    Input ``(B, in_dim)`` → output ``(B, out_dim)``.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, num_layers: int = 2, last_bn: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers, d = [], in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        check.matrix(h, "features", rows="B", cols=self.in_dim)
        return self.layers(h)  # (B, out_dim)


class PredictionHead(nn.Module):
    """p = q(z) = W_2 ReLU(BN(W_1 z)): BYOL's predictor (Grill et al., 2020), online branch only.

    An MLP of the same shape as BYOL's projector: Linear(in_dim, 4096)-BN-ReLU-Linear(4096, 256).
    Its asymmetry (the target branch has none) is what keeps BYOL from collapsing.

    Input ``(B, in_dim)`` → output ``(B, out_dim)``.
    """

    def __init__(self, in_dim: int = 256, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check.matrix(z, "features", rows="B", cols=self.in_dim)
        return self.layers(z)  # (B, out_dim)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Σ numel(θ) over the model's parameters (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
