import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_lib import config


def test_profile_from_env_and_device(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "CPU ")
    assert config.resolve_profile() == "cpu"
    monkeypatch.delenv("COURSE_PROFILE")
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "gpu"
    assert config.resolve_profile() == expected


def test_unknown_profile_lists_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="gpu, cpu, smoke"):
        config.resolve_profile()


def test_unknown_profile_fails_at_import():
    env = {**os.environ, "COURSE_PROFILE": "turbo"}
    r = subprocess.run([sys.executable, "-c", "import course_lib"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "expected one of gpu, cpu, smoke" in r.stderr


def test_pick_follows_the_profile():
    assert config.pick(gpu=30, cpu=8, smoke=1, profile="cpu") == 8
    assert config.pick(gpu=30, cpu=8, smoke=1, profile="smoke") == 1
    assert config.pick(gpu=30, cpu=8, smoke=1) == 1  # the tests run in smoke


def test_set_seed_repeats_every_generator():
    def draw():
        import random
        return random.random(), np.random.rand(), torch.rand(3)

    config.set_seed(7)
    a = draw()
    config.set_seed(7)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_data_dir_env_colab_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "d"))
    assert config.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    monkeypatch.delenv("COURSE_DATA")
    monkeypatch.setattr(config, "on_colab", lambda: False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.data_dir() == tmp_path / ".cache" / "course_lib"


def test_checkpoint_path_is_per_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    assert config.checkpoint_path("x", profile="cpu") == tmp_path / "x-cpu.pt"
    assert config.checkpoint_path("x", profile="smoke") != config.checkpoint_path("x", profile="cpu")


def test_device_is_usable():
    x = torch.ones(2, device=config.get_device())
    assert x.sum().item() == 2
    assert config.get_device("cpu").type == "cpu"
