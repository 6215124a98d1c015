"""Small stand-ins for the chapters' encoders: when a chapter has not been run, chapter 09 trains a short
version of its recipe with the same library pieces (``fit``, the chapter's loss or method, ``DeviceLoader``).

Every recipe: the profile's backbone from ``set_seed(0)`` (the same initial weights as ``random``), Adam with a
one-cycle schedule, ``epochs`` epochs of batches of ``batch_size``, and a resumable checkpoint
``09_small_<name>-<profile>-{run}.pt``. They are shorter than the chapters' runs: the table says which
encoders came from where (``info["source"]``).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import nn

from .. import config
from ..augment import SimCLRAugment
from ..data import DeviceLoader, PKSampler
from ..losses import AngularMarginHead, batch_hard_triplet_loss
from ..losses.margins import MarginWarmup
from ..methods import build_method, target_update
from ..models import Classifier, EmbeddingClassifier, EmbeddingNet, backbone_for_profile
from ..train import embedding_step, fit, head_step, two_view_step
from .registry import ZOO, EncoderNotFound, FrozenEncoder, load_encoder

EMBEDDING_DIM = 128  # the metric-learning chapters' embedding size


def _adam(lr: float, steps: int):
    return dict(optimizer=lambda params: torch.optim.Adam(params, lr=lr, weight_decay=1e-5),
                scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps)))


def _fit(name, model, loader, epochs, lr, step, **kwargs):
    fit(model, loader, epochs, step=step, checkpoint=config.checkpoint_path(f"09_small_{name}", per_run=True),
        desc=f"{name} (small)", **_adam(lr, epochs * len(loader)), **kwargs)


def _supervised(backbone, images, labels, epochs, batch, lr, device):
    crop_flip = SimCLRAugment(scale=(0.5, 1.0), jitter_p=0.0, gray_p=0.0)
    loader = DeviceLoader(images, labels, batch, transform=crop_flip, device=device)
    _fit("supervised", Classifier(backbone, int(labels.max()) + 1), loader, epochs, lr, None)


def _pk_loader(images, labels, batch, device):
    n_classes = int(labels.max()) + 1
    p = min(8, n_classes)
    return DeviceLoader(images, labels, batch_sampler=PKSampler(labels, p=p, k=max(2, batch // p)), device=device)


def _triplet(backbone, images, labels, epochs, batch, lr, device):
    model = EmbeddingNet(backbone, dim=EMBEDDING_DIM, normalize=True)
    _fit("triplet", model, _pk_loader(images, labels, batch, device), epochs, lr,
         embedding_step(batch_hard_triplet_loss, margin=0.2))


def _arcface(backbone, images, labels, epochs, batch, lr, device):
    head = AngularMarginHead(EMBEDDING_DIM, int(labels.max()) + 1, kind="arcface", m=0.0)
    model = EmbeddingClassifier(EmbeddingNet(backbone, dim=EMBEDDING_DIM), head)
    loader = _pk_loader(images, labels, batch, device)
    warmup = MarginWarmup(m=0.5, steps=max(1, epochs * len(loader) // 3))
    _fit("arcface", model, loader, epochs, lr, head_step(), on_step=warmup, config={"on_step": repr(warmup)})


def _pretext(kind: str):
    def train(backbone, images, labels, epochs, batch, lr, device):
        from ..pretext import ColorizationTask, RotationTask, train_pretext

        task = RotationTask(backbone) if kind == "rotation" else ColorizationTask.from_images(images, backbone)
        train_pretext(task.to(device), images, epochs, batch, lr, name=f"small_{kind}", chapter="09")
    return train


def _ssl(method: str, **overrides):
    def train(backbone, images, labels, epochs, batch, lr, device):
        model = build_method(method, backbone, **overrides)
        loader = DeviceLoader(images, labels, batch, transform=SimCLRAugment(), n_views=2, device=device)
        _fit(method, model, loader, epochs, lr, two_view_step, on_step=target_update(epochs * len(loader)))
    return train


RECIPES: dict[str, Callable] = {
    "supervised": _supervised, "triplet": _triplet, "arcface": _arcface,
    "rotation": _pretext("rotation"), "colorization": _pretext("colorization"),
    "simclr": _ssl("simclr", temperature=0.2),  # chapter 06's choice for small batches
    "moco": _ssl("moco"), "byol": _ssl("byol"), "barlow": _ssl("barlow"),
}


def train_small(name: str, images, labels, epochs: int, batch_size: int = 128, lr: float = 2e-3,
                device=None, profile: Optional[str] = None) -> FrozenEncoder:
    """A short run of encoder ``name``'s recipe on uint8 ``images`` (N, H, W, 3) / ``labels`` (N,),
    as a :class:`FrozenEncoder`. ``"random"`` trains nothing. Resumes or loads its checkpoint."""
    if name not in ZOO:
        raise ValueError(f"unknown encoder {name!r}: choose from {', '.join(ZOO)}")
    device = torch.device(device) if device is not None else config.get_device()
    config.set_seed(0)
    backbone = backbone_for_profile(profile).to(device, memory_format=torch.channels_last)
    if name != "random":
        RECIPES[name](backbone, images, labels, epochs, batch_size, lr, device)
    source = "initial weights" if name == "random" else f"09, small: {epochs} epoch(s) on {len(labels)} images"
    info = {"name": name, "source": source, "epochs": 0 if name == "random" else epochs,
            "train_images": len(labels), "chapter": "09_explore", **{k: getattr(ZOO[name], k) for k in ("family", "method")}}
    return FrozenEncoder(backbone, ZOO[name].input, info)


def load_or_train(names: Iterable[str], images, labels, epochs: int, batch_size: int = 128, lr: float = 2e-3,
                  device=None, profile: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """``{name: FrozenEncoder}``: the encoder each chapter saved for the profile, or, where it is missing,
    a small one trained here (:func:`train_small`), with one line each through ``log`` saying which."""
    out = {}
    for name in names:
        try:
            if name == "random":
                raise EncoderNotFound("")
            out[name] = load_encoder(name, profile, device)
            i = out[name].info
            i["source"] = f"{i['chapter']}: {i['epochs']} epoch(s) on {i['train_images']} images"
            log(f"{name:>12}: loaded, saved by {i['chapter']} ({i['epochs']} epochs on {i['train_images']} images)")
        except EncoderNotFound:
            if name != "random":
                log(f"{name:>12}: not saved yet ({ZOO[name].chapter} saves it in this profile); training a small "
                    f"one here: {epochs} epoch(s) on {len(labels)} images")
            out[name] = train_small(name, images, labels, epochs, batch_size, lr, device, profile)
            if name == "random":
                log(f"{name:>12}: the initial weights (set_seed(0)), untrained")
    return out


__all__ = ["RECIPES", "train_small", "load_or_train", "EMBEDDING_DIM"]
