"""Test-wide settings: the smoke profile, a headless matplotlib, and where real CIFAR-10 is.

These are set before ``course_lib`` is imported, because ``course_lib.PROFILE`` is read once.
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

os.environ.setdefault("COURSE_PROFILE", "smoke")
# pytest-xdist runs two workers on two cores: one thread each, or tiny ops slow down ~100x
# from oversubscription (kernels started by the notebook tests inherit this too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("COURSE_DATA", str(ROOT / "data"))
if SHARED_CIFAR.exists():
    os.environ.setdefault("COURSE_CIFAR10", str(SHARED_CIFAR))

import torch  # noqa: E402  (after the environment above)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def cifar_source():
    """The real CIFAR-10 archive/tree the tests may use, or None (then those tests skip)."""
    path = os.environ.get("COURSE_CIFAR10")
    return Path(path) if path and Path(path).exists() else None


@pytest.fixture(scope="session")
def cifar10_test_split():
    """Real CIFAR-10 test images (uint8 (10000, 32, 32, 3)) and labels; skips when absent."""
    if cifar_source() is None:
        pytest.skip("real CIFAR-10 not present (set COURSE_CIFAR10 to the ImageFolder .tar.gz)")
    from course_lib.data import load_cifar10

    return load_cifar10(train=False, download=False)


@pytest.fixture
def headless_plots(monkeypatch):
    """Figures are returned, never shown: plt.show() fails the test; every figure is closed after."""
    import matplotlib.pyplot as plt

    def no_show(*args, **kwargs):
        raise AssertionError("course_lib.viz must not call plt.show()")

    monkeypatch.setattr(plt, "show", no_show)
    yield
    plt.close("all")


def require_sandbox():
    """The grading sandbox (bubblewrap) must work here: in CI its absence fails, elsewhere it skips."""
    from course_lib.grading.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must have the grading sandbox: {problem}")
        pytest.skip(problem)
