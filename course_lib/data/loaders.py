"""Tensors for models: uint8 images -> normalised float batches, and a loader that keeps the whole
dataset on the device and serves augmented batches (no workers, no PIL).

Models see ``float32`` batches ``(B, 3, H, W)`` scaled to [0, 1] and normalised with the CIFAR-10
channel statistics (:func:`to_model_input`, :func:`normalize_batch`).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional

import torch

from .. import _checks as check

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------------- checks
def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Raise ``ValueError`` unless ``images`` is a uint8 tensor (or array) of shape (N, H, W, 3)."""
    return check.images(images, name)


def check_labels(labels: torch.Tensor, n: int, name: str = "labels") -> torch.Tensor:
    """Raise ``ValueError`` unless ``labels`` is an integer tensor of shape (n,); returned as int64."""
    return check.labels(labels, n, name).long()


# ------------------------------------------------------------------------- tensors for models
def to_model_input(images: torch.Tensor, device=None, normalize: bool = True) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` → float32 ``(N, 3, H, W)`` on ``device``, in [0, 1] or normalised."""
    images = check_images(images)
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W)
    return normalize_batch(x) if normalize else x


def normalize_batch(x: torch.Tensor) -> torch.Tensor:
    """Subtract the CIFAR-10 channel mean and divide by its std: ``(B, 3, H, W)`` → same."""
    mean = torch.tensor(CIFAR10_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


class DeviceLoader:
    """Batches from a dataset held as one uint8 tensor on the device (no workers, no PIL).

    Each batch is ``(x, y)``: ``x`` float32 ``(B, 3, H, W)``, transformed as a whole by
    ``transform`` (a batched augmentation working on [0, 1] images) and then normalised.
    With ``n_views=2`` a batch is ``((x1, x2), y)``: two independent augmentations of the
    same images, as SimCLR, MoCo, BYOL and Barlow Twins want.

    ``batch_sampler`` (e.g. :class:`PKSampler`) replaces the shuffled batches by the index batches
    it yields; ``batch_size``, ``shuffle`` and ``drop_last`` are then ignored.

    Shuffling and augmentation draw from torch's global generator, so :func:`course_lib.train.fit`
    makes every epoch repeatable by seeding it per epoch (that is what makes resume exact).

    ``shard=(rank, world_size)``: one of several processes (``torchrun``). ``batch_size`` is then the
    **global** batch: every process draws the same shuffled order (fit seeds them alike) and takes its
    ``batch_size / world_size`` images of each global batch, so together the processes see exactly the
    batches one process would; each then augments its share with its own random stream. The whole
    dataset stays on every device (CIFAR-10 is 150 MB), so no sampler has to move data.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        batch_size: int = 256,
        transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        n_views: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
        device=None,
        normalize: bool = True,
        batch_sampler: Optional[Iterable[torch.Tensor]] = None,
        shard: Optional[tuple] = None,
    ):
        images = check_images(images)
        if labels is None:
            labels = torch.zeros(len(images), dtype=torch.int64)
        labels = check_labels(labels, len(images))
        if batch_size < 1 or n_views < 1:
            raise ValueError(f"batch_size and n_views must be >= 1, got {batch_size} and {n_views}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.images = images.to(self.device).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8
        self.labels = labels.to(self.device)
        self.batch_size, self.transform, self.n_views = batch_size, transform, n_views
        self.shuffle, self.drop_last, self.normalize = shuffle, drop_last, normalize
        self.batch_sampler = batch_sampler
        self.rank, self.world_size = (int(shard[0]), int(shard[1])) if shard is not None else (0, 1)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}")
        if self.world_size > 1 and (batch_sampler is not None or batch_size % self.world_size):
            raise ValueError(f"a sharded loader needs a global batch_size divisible by world_size = {self.world_size} "
                             f"(got {batch_size}) and no batch_sampler")

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255)  # (B, 3, H, W) in [0, 1]
        if self.transform is not None:
            x = self.transform(x)
        return normalize_batch(x) if self.normalize else x

    def _batches(self) -> Iterator[torch.Tensor]:
        if self.batch_sampler is not None:
            yield from (torch.as_tensor(idx).to(self.device) for idx in self.batch_sampler)
            return
        n = len(self.labels)
        order = torch.randperm(n).to(self.device) if self.shuffle else torch.arange(n, device=self.device)
        local = self.batch_size // self.world_size
        if self.world_size > 1:  # the same order everywhere; from here on, each process its own augmentations
            torch.manual_seed(int(torch.randint(2**62, (1,))) + self.rank)
        for b in range(len(self)):
            start = b * self.batch_size + self.rank * local
            yield order[start : start + local]

    def __iter__(self) -> Iterator:
        for idx in self._batches():
            raw, y = self.images[idx], self.labels[idx]
            if self.n_views == 1:
                yield self._view(raw), y
            else:
                yield tuple(self._view(raw) for _ in range(self.n_views)), y


__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "check_images", "check_labels", "to_model_input", "normalize_batch",
           "DeviceLoader"]
