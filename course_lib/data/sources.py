"""Where the images come from: CIFAR-10's torchvision files, an ImageFolder tree (or a ``.tar.gz`` of
one) decoded once into a cached array, torchvision's download, and scikit-learn's digits offline.

Images are ``uint8`` tensors ``(N, 32, 32, 3)``, labels ``int64`` ``(N,)``. Nothing downloads at
import time; the order in which sources are tried is in :func:`load_cifar10`.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import data_dir

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
DIGITS_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


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


__all__ = ["CIFAR10_CLASSES", "DIGITS_CLASSES", "CIFAR10_URL", "find_cifar10", "load_cifar10", "load_digits"]
