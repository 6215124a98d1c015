"""Datasets as tensors: CIFAR-10 from wherever it is, an offline fallback, and a loader that
keeps the whole dataset on the device and serves augmented batches.

Images are ``uint8`` tensors of shape ``(N, 32, 32, 3)`` (height, width, RGB), labels ``int64``
of shape ``(N,)``. Models see ``float32`` batches ``(B, 3, H, W)`` scaled to [0, 1] and
normalised with the CIFAR-10 channel statistics (:func:`to_model_input`).

Where CIFAR-10 comes from, first hit wins (nothing is ever downloaded at import time):

1. torchvision's files already in ``root`` (``root/cifar-10-batches-py``);
2. an ImageFolder tree ``train/<class>/*.jpg`` + ``test/<class>/*.jpg``, or a ``.tar.gz`` of one,
   named by ``$COURSE_CIFAR10`` or found in ``root`` as ``cifar10/`` or ``cifar10-jpeg.tar.gz``;
   decoded once into a cached ``.npz`` array in ``root``;
3. ``torchvision.datasets.CIFAR10(root, download=True)`` when ``download=True``.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from .config import PROFILE, data_dir, resolve_profile

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
DIGITS_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

#: (train, test) sizes per profile; ``None`` means the whole split.
PROFILE_SIZES = {"gpu": (None, None), "cpu": (10_000, 2_000), "smoke": (500, 200)}


# ----------------------------------------------------------------------------------- checks
def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Raise ``ValueError`` unless ``images`` is a uint8 tensor of shape (N, H, W, 3)."""
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{name} must be a uint8 tensor of shape (N, H, W, 3), got "
            f"dtype {images.dtype} and shape {tuple(images.shape)}"
        )
    return images


def check_labels(labels: torch.Tensor, n: int, name: str = "labels") -> torch.Tensor:
    """Raise ``ValueError`` unless ``labels`` is an integer tensor of shape (n,)."""
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1 or labels.shape[0] != n or labels.dtype.is_floating_point:
        raise ValueError(
            f"{name} must be an integer tensor of shape ({n},), got dtype {labels.dtype} "
            f"and shape {tuple(labels.shape)}"
        )
    return labels.long()


# ------------------------------------------------------------------------------- CIFAR-10
def _missing_message(root: Path, reason: str) -> str:
    return (
        f"CIFAR-10 is not available ({reason}).\n"
        f"Do one of:\n"
        f"  * connect to the internet and call load_cifar10(download=True): torchvision downloads\n"
        f"    {CIFAR10_URL} (163 MB) into {root}\n"
        f"  * place that archive, extracted, as {root / 'cifar-10-batches-py'}\n"
        f"  * place an ImageFolder tree train/<class>/*.jpg, test/<class>/*.jpg as {root / 'cifar10'}\n"
        f"    (or a .tar.gz of it as {root / 'cifar10-jpeg.tar.gz'}), or name it in $COURSE_CIFAR10\n"
        f"  * set $COURSE_DATA to the folder that holds any of these\n"
        f"  * for a quick offline run, use COURSE_PROFILE=smoke (scikit-learn's digits stand in)"
    )


def _folder_sources(root: Path) -> list[Path]:
    candidates = []
    env = os.environ.get("COURSE_CIFAR10")
    if env:
        candidates.append(Path(env).expanduser())
    candidates += [root / "cifar10", root / "cifar10-jpeg.tar.gz"]
    return [p for p in candidates if p.exists()]


def _split_dirs(tree: Path) -> Optional[Path]:
    """The folder holding ``train/`` and ``test/`` (the tree itself or its one child)."""
    for base in [tree, *sorted(p for p in tree.iterdir() if p.is_dir())]:
        if (base / "train").is_dir() and (base / "test").is_dir():
            return base
    return None


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _read_image_folder(source: Path) -> dict[str, np.ndarray]:
    """Decode every image of an ImageFolder tree (or .tar.gz of one) into arrays per split."""
    items: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    if source.is_file():
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 3 or parts[-3] not in items:
                    continue
                items[parts[-3]].append((parts[-2], member.name, tar.extractfile(member).read()))
    else:
        base = _split_dirs(source)
        if base is None:
            raise FileNotFoundError(f"{source} holds no train/ and test/ folders of class folders")
        for split in items:
            for path in sorted((base / split).glob("*/*")):
                if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
                    items[split].append((path.parent.name, str(path), path.read_bytes()))
    out = {}
    for split, rows in items.items():
        classes = sorted({c for c, _, _ in rows})
        if tuple(classes) != CIFAR10_CLASSES:
            raise FileNotFoundError(
                f"{source}: {split}/ should hold the 10 CIFAR-10 class folders {CIFAR10_CLASSES}, "
                f"found {tuple(classes)}"
            )
        rows.sort(key=lambda r: (CIFAR10_CLASSES.index(r[0]), r[1]))
        out[f"{split}_x"] = np.stack([_decode(b) for _, _, b in rows])
        out[f"{split}_y"] = np.array([CIFAR10_CLASSES.index(c) for c, _, _ in rows], dtype=np.int64)
    return out


def _cached_image_folder(source: Path, cache_root: Path) -> dict[str, np.ndarray]:
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cache = cache_root / f"cifar10-{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    arrays = _read_image_folder(source)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)  # atomic: a killed run never leaves half a cache
    return arrays


def find_cifar10(root: str | os.PathLike | None = None) -> Optional[str]:
    """Describe the local CIFAR-10 source that :func:`load_cifar10` would use, or ``None``."""
    root = Path(root).expanduser() if root is not None else data_dir()
    if (root / "cifar-10-batches-py").is_dir():
        return str(root / "cifar-10-batches-py")
    sources = _folder_sources(root)
    return str(sources[0]) if sources else None


def load_cifar10(
    train: bool = True, root: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 (Krizhevsky, 2009): ``uint8`` images ``(N, 32, 32, 3)`` and ``int64`` labels ``(N,)``.

    N is 50 000 for ``train=True`` and 10 000 otherwise. Class ``i`` is ``CIFAR10_CLASSES[i]``.
    ``root`` defaults to :func:`course_lib.config.data_dir`. Raises ``FileNotFoundError`` that
    says what to do when no source is found and the download is off or fails.
    """
    root = Path(root).expanduser() if root is not None else data_dir()
    root.mkdir(parents=True, exist_ok=True)
    if (root / "cifar-10-batches-py").is_dir():
        return _torchvision_cifar10(root, train, download=False)
    sources = _folder_sources(root)
    if sources:
        arrays = _cached_image_folder(sources[0], root)
        split = "train" if train else "test"
        return torch.from_numpy(arrays[f"{split}_x"]), torch.from_numpy(arrays[f"{split}_y"])
    if not download:
        raise FileNotFoundError(_missing_message(root, "no local copy, and download=False"))
    try:
        return _torchvision_cifar10(root, train, download=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise FileNotFoundError(_missing_message(root, f"download failed: {err}")) from err


def _torchvision_cifar10(root: Path, train: bool, download: bool):
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(str(root), train=train, download=download)
    return torch.from_numpy(np.asarray(ds.data, dtype=np.uint8)), torch.as_tensor(ds.targets, dtype=torch.int64)


# --------------------------------------------------------------------------- offline fallback
def load_digits(train: bool = True, size: int = 32, test_fraction: float = 0.25):
    """scikit-learn's bundled 8×8 digits as CIFAR-shaped images: ``uint8 (N, size, size, 3)``.

    1 797 images, 10 classes, no download: the smoke profile's stand-in when CIFAR-10 is absent.
    The split is stratified and fixed (seed 0).
    """
    from sklearn.datasets import load_digits as _digits

    d = _digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
    x = x.permute(0, 2, 3, 1).contiguous()  # (N, size, size, 3)
    y = torch.as_tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    is_test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):
        idx = torch.nonzero(y == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        is_test[idx[: int(round(len(idx) * test_fraction))]] = True
    keep = ~is_test if train else is_test
    return x[keep], y[keep]


# ----------------------------------------------------------------------------------- subsets
def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``n`` examples with the classes as equal as possible, in random order."""
    labels = torch.as_tensor(labels)
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
        for b in range(len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def __iter__(self) -> Iterator:
        for idx in self._batches():
            raw, y = self.images[idx], self.labels[idx]
            if self.n_views == 1:
                yield self._view(raw), y
            else:
                yield tuple(self._view(raw) for _ in range(self.n_views)), y


# ------------------------------------------------------------------ pairs, triplets, PK batches
class _ClassIndex:
    """Examples grouped by class: ``order`` sorts the dataset by label; class ``c`` owns
    ``order[start[c] : start[c] + count[c]]``. Lets samplers draw positives and negatives in O(n)
    memory, with no (N, N) mask, so they work on all 50 000 CIFAR-10 images."""

    def __init__(self, labels: torch.Tensor):
        labels = torch.as_tensor(labels).long().cpu()
        if labels.ndim != 1:
            raise ValueError(f"labels must have shape (N,), got {tuple(labels.shape)}")
        self.labels = labels
        self.order = torch.argsort(labels, stable=True)  # (N,)
        self.rank = torch.empty_like(self.order)
        self.rank[self.order] = torch.arange(len(labels))  # position of each example in order
        classes, counts = torch.unique(labels, return_counts=True)
        self.classes = classes  # (C,) sorted ids
        self.count = torch.zeros(int(classes.max()) + 1, dtype=torch.int64)
        self.count[classes] = counts
        self.start = torch.cumsum(self.count, 0) - self.count  # (max id + 1,)

    def positives(self, anchors: torch.Tensor, generator=None) -> torch.Tensor:
        """One other example of each anchor's class, uniformly (needs a class of >= 2)."""
        c = self.labels[anchors]
        r = (torch.rand(len(anchors), generator=generator) * (self.count[c] - 1)).long()
        r = r + (r >= self.rank[anchors] - self.start[c]).long()  # skip the anchor itself
        return self.order[self.start[c] + r]

    def negatives(self, anchors: torch.Tensor, generator=None) -> torch.Tensor:
        """One example of another class for each anchor, uniformly over those examples."""
        c = self.labels[anchors]
        r = (torch.rand(len(anchors), generator=generator) * (len(self.labels) - self.count[c])).long()
        r = r + self.count[c] * (r >= self.start[c]).long()  # jump over the anchor's class block
        return self.order[r]


def _anchor_pool(index: _ClassIndex) -> torch.Tensor:
    ok = index.count[index.labels] >= 2
    ok &= index.count[index.labels] < len(index.labels)
    pool = torch.nonzero(ok).squeeze(1)
    if len(pool) == 0:
        raise ValueError("need at least two classes and a class with two examples to form pairs")
    return pool


def random_pairs(labels, n: int, positive_fraction: float = 0.5, seed: int = 0):
    """``n`` random pairs ``(i, j, same)`` for a Siamese network (Hadsell et al., 2006).

    A ``positive_fraction`` of them are same-class pairs (i ≠ j), the rest different-class pairs;
    ``i`` is uniform over examples whose class has a partner. ``labels`` (N,); returns three (n,)
    tensors: int64 ``i``, ``j`` and bool ``same``.
    """
    index, g = _ClassIndex(labels), torch.Generator().manual_seed(seed)
    pool = _anchor_pool(index)
    i = pool[torch.randint(len(pool), (n,), generator=g)]  # (n,)
    same = torch.rand(n, generator=g) < positive_fraction  # (n,)
    j = torch.where(same, index.positives(i, g), index.negatives(i, g))  # (n,)
    return i, j, same


def random_triplets_by_class(labels, n: int, seed: int = 0):
    """``n`` random triplets ``(a, p, n)``: p shares a's class (p ≠ a), n does not.

    Unlike :func:`course_lib.mining.random_triplets` (masks over one batch) this works on a whole
    dataset. ``labels`` (N,) → three (n,) int64 tensors.
    """
    index, g = _ClassIndex(labels), torch.Generator().manual_seed(seed)
    pool = _anchor_pool(index)
    a = pool[torch.randint(len(pool), (n,), generator=g)]  # (n,)
    return a, index.positives(a, g), index.negatives(a, g)


class PairDataset(torch.utils.data.Dataset):
    """Fixed random pairs over a labelled image set: item ``k`` is ``(x_i, x_j, same)`` with
    ``x`` float (3, H, W) normalised as model input and ``same`` a 0/1 float."""

    def __init__(self, images, labels, n_pairs: int, positive_fraction: float = 0.5, seed: int = 0):
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images))
        self.i, self.j, self.same = random_pairs(self.labels, n_pairs, positive_fraction, seed)

    def __len__(self) -> int:
        return len(self.i)

    def __getitem__(self, k):
        x = to_model_input(self.images[[int(self.i[k]), int(self.j[k])]])  # (2, 3, H, W)
        return x[0], x[1], self.same[k].float()


class TripletDataset(torch.utils.data.Dataset):
    """Fixed random triplets over a labelled image set: item ``k`` is ``(x_a, x_p, x_n)``."""

    def __init__(self, images, labels, n_triplets: int, seed: int = 0):
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images))
        self.a, self.p, self.n = random_triplets_by_class(self.labels, n_triplets, seed)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, k):
        x = to_model_input(self.images[[int(self.a[k]), int(self.p[k]), int(self.n[k])]])  # (3, 3, H, W)
        return x[0], x[1], x[2]


class PKSampler:
    """Batches of P classes × K examples each (Hermans et al., 2017, "In Defense of the Triplet Loss").

    Every batch holds ``p`` distinct classes drawn at random and ``k`` examples of each (without
    replacement when the class has at least ``k``, else with), so each anchor has K − 1 positives
    and (P − 1)·K negatives: what batch-hard and batch-all mining need. Yields ``(p·k,)`` int64
    index tensors, grouped class by class; ``len()`` is ``N // (p·k)`` batches an epoch. Draws from
    torch's global generator, or from ``generator`` when given. Use it as
    ``DeviceLoader(images, labels, batch_sampler=PKSampler(labels, p=16, k=4))``.
    """

    def __init__(self, labels, p: int, k: int, generator: Optional[torch.Generator] = None):
        self.index = _ClassIndex(labels)
        n_classes = len(self.index.classes)
        if not 1 <= p <= n_classes or k < 1:
            raise ValueError(f"need 1 <= p <= number of classes ({n_classes}) and k >= 1, got p={p}, k={k}")
        self.p, self.k, self.generator = p, k, generator

    def __len__(self) -> int:
        return max(1, len(self.index.labels) // (self.p * self.k))

    def __iter__(self) -> Iterator[torch.Tensor]:
        idx, g = self.index, self.generator
        for _ in range(len(self)):
            classes = idx.classes[torch.randperm(len(idx.classes), generator=g)[: self.p]]  # (P,)
            count = idx.count[classes]  # (P,)
            width = int(count.max())
            keys = torch.rand(self.p, width, generator=g)  # (P, width) random keys
            keys[torch.arange(width) >= count[:, None]] = 2.0  # keys past a class's end sort last
            picks = keys.argsort(dim=1)[:, : self.k]  # (P, min(K, width))
            if picks.shape[1] < self.k:  # fewer examples than K in every class: repeat
                picks = picks.repeat(1, -(-self.k // picks.shape[1]))[:, : self.k]
            picks = picks % count[:, None]  # with replacement for classes smaller than K
            yield idx.order[idx.start[classes][:, None] + picks].reshape(-1)  # (P*K,)


def class_examples(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of each class (after a seeded shuffle),
    grouped class by class: handy for an image grid per class."""
    labels = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).squeeze(1)
        out.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(out)


__all__: Sequence[str] = [
    "CIFAR10_CLASSES", "DIGITS_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "PROFILE_SIZES",
    "load_cifar10", "find_cifar10", "load_digits", "load_data", "ImageData", "balanced_subset",
    "class_examples", "to_model_input", "normalize_batch", "DeviceLoader", "check_images",
    "check_labels", "random_pairs", "random_triplets_by_class", "PairDataset", "TripletDataset",
    "PKSampler",
]
