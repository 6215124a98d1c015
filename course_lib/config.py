"""Where the course runs: profile, device, seeds, the data and checkpoint folders.

One switch, ``PROFILE``, scales every notebook's data, model and budget:

======= ========================================== ======================================
profile  chosen when                                what it means
======= ========================================== ======================================
gpu      CUDA is present                            full CIFAR-10, ResNet-18 (CIFAR stem),
                                                    ≤ 20 min a notebook on a T4
cpu      no CUDA: a laptop, or Apple silicon (MPS)  CIFAR-10 subset, small conv net,
                                                    ≤ 15 min a notebook on a laptop
smoke    only when asked (tests, CI)                a few hundred images, tiny net
======= ========================================== ======================================

On Apple silicon the automatic profile is ``cpu`` (its data, model and budgets) while
:func:`get_device` still returns ``mps``, so the laptop-sized run uses the Apple GPU; the ``gpu``
budgets are sized for a T4 with mixed precision and would take hours there.
``COURSE_PROFILE=gpu`` still forces them. The environment variable ``COURSE_PROFILE`` overrides
the automatic choice everywhere; :func:`profile_reason` says, in one line, which profile was
chosen and why. The profile changes sizes and budgets (see :func:`pick`), never the code path.

On Colab, :func:`use_google_drive` keeps checkpoints on Google Drive, so that a runtime reset
(which wipes ``/content``) loses no training.
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

PROFILES = ("gpu", "cpu", "smoke")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _accelerator_available() -> bool:
    """CUDA or Apple MPS (kept for callers; the automatic profile asks for CUDA only)."""
    return torch.cuda.is_available() or _mps_available()


def resolve_profile(name: str | None = None) -> str:
    """The profile to use: ``name``, else ``$COURSE_PROFILE``, else ``gpu`` with CUDA, ``cpu`` without.

    Apple MPS counts as "without": its automatic profile is ``cpu`` (laptop-sized budgets, run on
    the ``mps`` device). Raises ``ValueError`` listing the valid choices for anything else.
    """
    if name is None:
        name = os.environ.get("COURSE_PROFILE", "").strip() or None
    if name is None:
        return "gpu" if torch.cuda.is_available() else "cpu"
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
    if _mps_available():
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

    On Colab, :func:`use_google_drive` points it at Google Drive, to survive a runtime reset that
    wipes ``/content``.
    """
    env = os.environ.get("COURSE_CHECKPOINTS")
    path = Path(env).expanduser() if env else data_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def use_google_drive(folder: str = "course_lib", mountpoint: str = "/content/drive") -> Path:
    """Keep checkpoints on Google Drive when on Colab; elsewhere a no-op. Returns the checkpoint folder.

    On Colab: mounts Drive at ``mountpoint`` (Colab asks for permission once a session), sets
    ``COURSE_CHECKPOINTS`` to ``<mountpoint>/MyDrive/<folder>/checkpoints`` so that every later
    :func:`checkpoint_path` lands there, and prints where. A runtime reset then loses nothing: the
    training cells resume from Drive. If the mount fails (permission refused), it warns and keeps
    the local folder, so "Run all" goes on. Off Colab it prints that Drive is not needed and
    returns the local :func:`checkpoint_dir`.
    """
    if not on_colab():
        path = checkpoint_dir()
        print(f"not on Colab: Google Drive is not needed; checkpoints stay in {path}")
        return path
    try:
        from google.colab import drive

        drive.mount(mountpoint)
    except Exception as err:  # refused permission, no Drive, an old runtime: warn, never stop the notebook
        import warnings

        path = checkpoint_dir()
        warnings.warn(f"Google Drive could not be mounted ({type(err).__name__}: {err}); checkpoints "
                      f"stay in {path}, which a runtime reset wipes. Rerun this cell to try again.",
                      stacklevel=2)
        return path
    os.environ["COURSE_CHECKPOINTS"] = str(Path(mountpoint) / "MyDrive" / folder / "checkpoints")
    path = checkpoint_dir()
    print(f"checkpoints go to Google Drive: {path} (they survive a runtime reset)")
    return path


def amp_dtype(device: torch.device | str | None = None) -> torch.dtype | None:
    """The autocast dtype :func:`course_lib.train.fit` uses by default on ``device``: bf16 on CUDA
    cards that have it natively (compute capability ≥ 8: A100, L4, H100), fp16 with a gradient
    scaler on older ones (T4, V100), ``None`` (no mixed precision) on MPS and CPU."""
    device = torch.device(device) if device is not None else get_device()
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def _device_details(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        precision = ("bf16 mixed precision" if amp_dtype(device) == torch.bfloat16
                     else "fp16 mixed precision with a gradient scaler, no bf16")
        return f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}: {precision}"
    if device.type == "mps":
        return "Apple MPS, no mixed precision"
    return f"CPU, {torch.get_num_threads()} threads"


def profile_reason(profile: str | None = None, device: torch.device | str | None = None) -> str:
    """One line: which profile runs on which device, and why.

    ``profile`` defaults to what :func:`resolve_profile` chooses now (``$COURSE_PROFILE``, else
    the device), ``device`` to :func:`get_device`. E.g. ``"Apple MPS: the cpu profile's budgets
    on the mps device (COURSE_PROFILE=gpu for the full ones)"``.
    """
    profile = resolve_profile(profile)
    device = torch.device(device) if device is not None else get_device()
    forced = os.environ.get("COURSE_PROFILE", "").strip()
    auto = "gpu" if torch.cuda.is_available() else "cpu"
    details = _device_details(device)
    if forced and resolve_profile(forced) == profile:
        why = f"COURSE_PROFILE={forced}: the {profile} profile's budgets on the {device.type} device ({details})"
        if profile == "gpu" and device.type != "cuda":
            why += "; these budgets are sized for a T4 with mixed precision and take hours here"
        return why
    if profile != auto:
        return f"the {profile} profile, as asked, on the {device.type} device ({details})"
    if device.type == "cuda":
        return f"CUDA ({details}): the gpu profile's full budgets"
    if device.type == "mps":
        return ("Apple MPS: the cpu profile's budgets on the mps device (COURSE_PROFILE=gpu for the "
                "full ones, sized for a T4: hours here)")
    if _mps_available():
        return f"the cpu profile on the CPU ({details}); Apple MPS is present but not used"
    return f"no GPU: the cpu profile's budgets on the CPU ({details})"


def describe() -> str:
    """One line for a notebook's first output: profile, device, versions (see also :func:`profile_reason`)."""
    dev = get_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return (
        f"profile={PROFILE}  device={name}  torch={torch.__version__}  "
        f"threads={torch.get_num_threads()}  data={data_dir()}"
    )


def checkpoint_path(name: str, profile: str | None = None, per_run: bool = False) -> Path:
    """``<checkpoint_dir>/<name>-<profile>.pt``: one file per name and profile, so a smoke run never
    resumes a cpu run's weights (or the other way round).

    ``per_run=True`` gives ``<name>-<profile>-{run}.pt``: :func:`course_lib.train.fit` replaces
    ``{run}`` by a short hash of everything that defines the run (model, optimizer, step, batch,
    augmentation, seed, ...), so each configuration of an ablation loop gets its own file.
    """
    suffix = "-{run}" if per_run else ""
    return checkpoint_dir() / f"{name}-{resolve_profile(profile or PROFILE)}{suffix}.pt"


MIN_TORCH = (2, 3)


def check_environment(verbose: bool = True) -> bool:
    """Warn (not fail) when torch is older than the course supports; with ``verbose``, print
    :func:`describe` and :func:`profile_reason` (which profile, on which device, and why).
    Returns True when all is fine."""
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
        print(profile_reason(PROFILE))
    return ok
