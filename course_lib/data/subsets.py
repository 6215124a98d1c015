"""The data a notebook uses: class-balanced subsets, sized per profile, as an :class:`ImageData`."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .. import _checks as check
from ..config import PROFILE, resolve_profile
from .sources import CIFAR10_CLASSES, DIGITS_CLASSES, find_cifar10, load_cifar10, load_digits

#: (train, test) sizes per profile; ``None`` means the whole split.
PROFILE_SIZES = {"gpu": (None, None), "cpu": (10_000, 2_000), "smoke": (500, 200)}


# ----------------------------------------------------------------------------------- subsets
def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``n`` examples with the classes as equal as possible, in random order."""
    labels = check.labels(labels)  # (N,)
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    per_class = [torch.nonzero(labels == c).squeeze(1) for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=g)] for idx in per_class]
    # round-robin over classes: the first n of this order are as balanced as the data allows
    rank = torch.cat([torch.arange(len(idx)) for idx in per_class])
    order = torch.cat(per_class)[torch.argsort(rank, stable=True)]
    chosen = order[: min(n, len(order))]
    return chosen[torch.randperm(len(chosen), generator=g)]


@dataclass
class ImageData:
    """A labelled image set: ``images`` uint8 (N, 32, 32, 3), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):  # ``x, y = load_data(...)`` works too
        return iter((self.images, self.labels))


def load_data(
    train: bool = True,
    profile: str | None = None,
    dataset: str = "auto",
    root: str | os.PathLike | None = None,
    seed: int = 0,
) -> ImageData:
    """The data a notebook uses in a profile: CIFAR-10, subsampled per :data:`PROFILE_SIZES`.

    ``dataset``: ``"cifar10"``, ``"digits"`` or ``"auto"``. ``auto`` means CIFAR-10 (downloaded
    if needed) in the gpu/cpu profiles; in smoke, CIFAR-10 only if a local copy exists, else digits.
    """
    profile = resolve_profile(profile or PROFILE)
    if dataset not in ("auto", "cifar10", "digits"):
        raise ValueError(f"dataset must be 'auto', 'cifar10' or 'digits', got {dataset!r}")
    if dataset == "auto":
        dataset = "digits" if profile == "smoke" and find_cifar10(root) is None else "cifar10"
    if dataset == "cifar10":
        x, y = load_cifar10(train=train, root=root, download=True)
        classes, source = CIFAR10_CLASSES, "cifar10"
    else:
        x, y = load_digits(train=train)
        classes, source = DIGITS_CLASSES, "digits"
    n = PROFILE_SIZES[profile][0 if train else 1]
    if n is not None and n < len(y):
        idx = balanced_subset(y, n, seed=seed + (0 if train else 1))
        x, y = x[idx], y[idx]
    return ImageData(x, y, classes, source)


__all__ = ["PROFILE_SIZES", "balanced_subset", "ImageData", "load_data"]
