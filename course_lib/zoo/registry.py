"""Saved encoders: each chapter keeps the backbone it trained, so that chapter 09 can compare them all.

A chapter ends its training with ``save_encoder("simclr", model.backbone, epochs=EPOCHS, ...)``; the file
``<checkpoint_dir>/encoders/<profile>/<name>.pt`` holds the backbone's weights and what made them (chapter,
method, epochs, training images). ``load_encoder(name)`` rebuilds ``backbone_for_profile(profile)``, loads
the weights and wraps them in a :class:`FrozenEncoder` that takes images in [0, 1] and prepares them the
way the backbone was trained (CIFAR-normalised RGB, or the lightness channel for colorization).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .. import config
from ..data import normalize_batch
from ..models import backbone_for_profile

FORMAT = 1
INPUTS = ("rgb", "lightness")


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder of the comparison: which chapter trains it, its family, and the method's name."""

    chapter: Optional[str]  # the notebook that saves it (None: never trained)
    family: str             # random | supervised | metric learning | pretext | self-supervised
    method: str             # what trained it, in words
    input: str = "rgb"      # what the backbone is fed: CIFAR-normalised RGB, or L*/50 - 1 (colorization)


# The encoders chapter 09 compares, in table order, each with the chapter that saves it.
ZOO: dict[str, EncoderSpec] = {
    "random": EncoderSpec(None, "random", "no training (the initial weights of every run)"),
    "supervised": EncoderSpec("01_representations", "supervised", "cross-entropy on the labels, crop + flip"),
    "triplet": EncoderSpec("03_triplets_mining", "metric learning", "batch-hard triplet loss, PK batches"),
    "arcface": EncoderSpec("04_beyond_triplets", "metric learning", "ArcFace (s = 30, m = 0.5, softmax warm-up)"),
    "rotation": EncoderSpec("05_pretext_tasks", "pretext", "rotation prediction"),
    "colorization": EncoderSpec("05_pretext_tasks", "pretext", "colorization (rebalanced ab bins)", "lightness"),
    "simclr": EncoderSpec("06_simclr", "self-supervised", "SimCLR (NT-Xent)"),
    "moco": EncoderSpec("07_moco", "self-supervised", "MoCo v2 (queue + momentum encoder)"),
    "byol": EncoderSpec("08_byol_barlow", "self-supervised", "BYOL (predictor + EMA target)"),
    "barlow": EncoderSpec("08_byol_barlow", "self-supervised", "Barlow Twins (cross-correlation)"),
}


class FrozenEncoder(nn.Module):
    """h = f(prepare(x)) with f frozen: images ``(B, 3, H, W)`` in [0, 1] -> features ``(B, D)``.

    ``input="rgb"``: CIFAR-normalised RGB, as :class:`~course_lib.data.DeviceLoader` feeds training;
    ``"lightness"``: L*/50 - 1 repeated on the three channels, as the colorization task feeds its backbone.
    Feed it with ``extract_features(encoder, images, normalize_input=False)``.
    """

    def __init__(self, backbone: nn.Module, input: str = "rgb", info: Optional[dict] = None):
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
        self.backbone, self.input, self.info = backbone.eval().requires_grad_(False), input, dict(info or {})
        self.out_dim = getattr(backbone, "out_dim", None)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input == "rgb":
            return normalize_batch(x)
        from ..color import rgb_to_lab

        return (rgb_to_lab(x)[:, :1] / 50.0 - 1.0).expand(-1, 3, -1, -1)  # (B, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(x))

    def extra_repr(self) -> str:
        return f"input={self.input!r}, " + ", ".join(f"{k}={self.info[k]!r}" for k in ("name", "chapter", "epochs") if k in self.info)


class EncoderNotFound(FileNotFoundError):
    """No saved encoder of that name for this profile: the message says which chapter saves it."""


def encoder_dir(profile: Optional[str] = None) -> Path:
    """``<checkpoint_dir>/encoders/<profile>/`` (not created)."""
    return config.checkpoint_dir() / "encoders" / config.resolve_profile(profile or config.PROFILE)


def encoder_path(name: str, profile: Optional[str] = None) -> Path:
    return encoder_dir(profile) / f"{name}.pt"


def save_encoder(name: str, backbone: nn.Module, epochs: int, train_images: int, chapter: Optional[str] = None,
                 profile: Optional[str] = None, **info) -> Path:
    """Save ``backbone``'s weights as encoder ``name`` of the profile, with what trained it; returns the file.

    ``name`` is one of :data:`ZOO` (its chapter, family, method and input come from there) or a new name,
    then give ``chapter=`` (and ``input=`` if not RGB) yourself. Written atomically (a temporary file, then
    a rename), so a killed kernel never leaves half a file.
    """
    spec = ZOO.get(name)
    if spec is None and chapter is None:
        raise ValueError(f"{name!r} is not one of the course's encoders ({', '.join(ZOO)}): pass chapter=... too")
    profile = config.resolve_profile(profile or config.PROFILE)
    meta = {**(asdict(spec) if spec else {"family": "other", "method": name, "input": "rgb"}),
            **({"chapter": chapter} if chapter else {}), **info,
            "name": name, "profile": profile, "epochs": int(epochs), "train_images": int(train_images),
            "backbone": type(backbone).__name__, "out_dim": getattr(backbone, "out_dim", None),
            "saved": datetime.date.today().isoformat()}
    path = encoder_path(name, profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, "info": meta, "state_dict": state}, tmp)
    os.replace(tmp, path)
    return path


def _missing_message(name: str, profile: str, path: Path) -> str:
    spec = ZOO.get(name)
    where = (f"chapter {spec.chapter} saves it when run in the {profile} profile" if spec and spec.chapter
             else "no chapter saves it")
    return f"no saved encoder {name!r} for the {profile} profile at {path} ({where})"


def load_encoder(name: str, profile: Optional[str] = None, device=None) -> FrozenEncoder:
    """The saved encoder ``name`` of the profile as a :class:`FrozenEncoder` (its ``info`` says what
    trained it). Raises :class:`EncoderNotFound` naming the chapter that saves it."""
    profile = config.resolve_profile(profile or config.PROFILE)
    path = encoder_path(name, profile)
    if not path.exists():
        raise EncoderNotFound(_missing_message(name, profile, path))
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != FORMAT:
        raise ValueError(f"{path}: format {saved.get('format')!r}, expected {FORMAT}: save the encoder again")
    backbone = backbone_for_profile(profile)
    try:
        backbone.load_state_dict(saved["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit the {profile} profile's backbone "
                         f"{type(backbone).__name__}: {str(err).splitlines()[0]}") from None
    info = saved["info"]
    return FrozenEncoder(backbone, info.get("input", "rgb"), info).to(device or "cpu")


def saved_encoders(profile: Optional[str] = None) -> dict[str, dict]:
    """``{name: info}`` of every encoder saved for the profile (the files' metadata, no weights loaded)."""
    out = {}
    for path in sorted(encoder_dir(profile).glob("*.pt")):
        try:
            out[path.stem] = torch.load(path, map_location="cpu", weights_only=True)["info"]
        except Exception as err:  # a foreign or damaged file is reported, not fatal
            out[path.stem] = {"error": f"{type(err).__name__}: {err}"}
    return out


__all__ = ["ZOO", "EncoderSpec", "FrozenEncoder", "EncoderNotFound", "encoder_dir", "encoder_path",
           "save_encoder", "load_encoder", "saved_encoders"]
