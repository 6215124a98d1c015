"""Where the course runs: profile, device, seeds and the data folder.

One switch, ``PROFILE``, scales every notebook's data, model and budget:

======= ===================================== ======================================
profile  when                                  what it means
======= ===================================== ======================================
gpu      CUDA or Apple MPS is present          full CIFAR-10, ResNet-18 (CIFAR stem)
cpu      no accelerator                        CIFAR-10 subset, small conv net
smoke    only when asked (tests, CI)           a few hundred images, tiny net
======= ===================================== ======================================

The environment variable ``COURSE_PROFILE`` overrides the automatic choice. The profile changes
sizes and budgets (see :func:`pick`), never the code path.
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

PROFILES = ("gpu", "cpu", "smoke")


def _accelerator_available() -> bool:
    if torch.cuda.is_available():
        return True
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_profile(name: str | None = None) -> str:
    """The profile to use: ``name``, else ``$COURSE_PROFILE``, else ``gpu``/``cpu`` from the device.

    Raises ``ValueError`` listing the valid choices for anything else.
    """
    if name is None:
        name = os.environ.get("COURSE_PROFILE", "").strip() or None
    if name is None:
        return "gpu" if _accelerator_available() else "cpu"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: expected one of {', '.join(PROFILES)} "
            "(set COURSE_PROFILE or leave it unset to choose from the device)"
        )
    return key


PROFILE: str = resolve_profile()


def pick(gpu, cpu, smoke, profile: str | None = None):
    """The value of the current profile: ``EPOCHS = pick(gpu=30, cpu=8, smoke=1)``."""
    return {"gpu": gpu, "cpu": cpu, "smoke": smoke}[resolve_profile(profile or PROFILE)]


def get_device(prefer: str | None = None) -> torch.device:
    """``cuda`` if present, else ``mps``, else ``cpu``; ``prefer`` (e.g. ``"cpu"``) forces one.
    """
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (all devices) so that a run repeats. Returns ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def on_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def data_dir() -> Path:
    """Where datasets and their caches live: ``$COURSE_DATA``, else ``/content/data`` on Colab,
    else ``~/.cache/course_lib``. Created on first use."""
    env = os.environ.get("COURSE_DATA")
    if env:
        path = Path(env).expanduser()
    elif on_colab():
        path = Path("/content/data")
    else:
        path = Path.home() / ".cache" / "course_lib"
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_dir() -> Path:
    """Where notebooks keep checkpoints: ``$COURSE_CHECKPOINTS``, else ``<data_dir>/checkpoints``.

    On Colab, point it at Google Drive to survive a disconnect that wipes ``/content``.
    """
    env = os.environ.get("COURSE_CHECKPOINTS")
    path = Path(env).expanduser() if env else data_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe() -> str:
    """One line for a notebook's first output: profile, device, versions."""
    dev = get_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return (
        f"profile={PROFILE}  device={name}  torch={torch.__version__}  "
        f"threads={torch.get_num_threads()}  data={data_dir()}"
    )


def checkpoint_path(name: str, profile: str | None = None) -> Path:
    """``<checkpoint_dir>/<name>-<profile>.pt``: one file per run and profile, so a smoke run never
    resumes a cpu run's weights (or the other way round)."""
    return checkpoint_dir() / f"{name}-{resolve_profile(profile or PROFILE)}.pt"


MIN_TORCH = (2, 3)


def check_environment(verbose: bool = True) -> bool:
    """Warn (not fail) when torch is older than the course supports. Returns True when all is fine."""
    import warnings

    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit())
    ok = version >= MIN_TORCH
    if not ok:
        warnings.warn(
            f"torch {torch.__version__} is older than {'.'.join(map(str, MIN_TORCH))}: "
            "upgrade with `pip install -U torch torchvision`",
            stacklevel=2,
        )
    if verbose:
        print(describe())
    return ok
