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
    expected = "gpu" if torch.cuda.is_available() else "cpu"   # Apple MPS: cpu too (see below)
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


# ------------------------------------------------------------------ where it runs: CUDA, Apple MPS, CPU
def fake_hardware(monkeypatch, cuda=False, mps=False, name="Tesla T4", capability=(7, 5)):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_apple_mps_gets_the_cpu_profile_on_the_mps_device(monkeypatch):
    fake_hardware(monkeypatch, mps=True)
    assert config.resolve_profile() == "cpu"
    assert config.get_device().type == "mps"
    assert config.pick(gpu=30, cpu=8, smoke=1, profile=config.resolve_profile()) == 8
    reason = config.profile_reason()
    assert reason.startswith("Apple MPS: the cpu profile's budgets on the mps device") and "COURSE_PROFILE=gpu" in reason
    assert "\n" not in reason


def test_course_profile_gpu_still_forces_the_full_budgets_on_mps(monkeypatch):
    fake_hardware(monkeypatch, mps=True)
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    assert config.resolve_profile() == "gpu" and config.get_device().type == "mps"
    reason = config.profile_reason()
    assert reason.startswith("COURSE_PROFILE=gpu: the gpu profile's budgets on the mps device") and "hours" in reason


@pytest.mark.parametrize("capability, precision", [((7, 5), "fp16 mixed precision"), ((8, 0), "bf16 mixed precision")])
def test_cuda_gets_the_gpu_profile_and_names_card_and_precision(monkeypatch, capability, precision):
    fake_hardware(monkeypatch, cuda=True, mps=True, name="Tesla T4", capability=capability)
    assert config.resolve_profile() == "gpu" and config.get_device().type == "cuda"
    reason = config.profile_reason()
    assert reason.startswith("CUDA (Tesla T4") and precision in reason and "gpu profile" in reason
    assert config.amp_dtype("cuda") == (torch.bfloat16 if capability[0] >= 8 else torch.float16)


def test_amp_dtype_is_the_one_fit_uses(monkeypatch):
    from course_lib.train import loop

    fake_hardware(monkeypatch, cuda=True)
    for capability in [(7, 5), (8, 6), (9, 0)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert config.amp_dtype("cuda") == loop._amp_dtype(torch.device("cuda"), None)
    for device in ("cpu", "mps"):
        assert config.amp_dtype(device) is None and loop._amp_dtype(torch.device(device), None) is None


def test_cpu_gets_the_cpu_profile_and_says_its_threads(monkeypatch):
    fake_hardware(monkeypatch)
    assert config.resolve_profile() == "cpu" and config.get_device().type == "cpu"
    reason = config.profile_reason()
    assert reason.startswith("no GPU: the cpu profile") and f"{torch.get_num_threads()} threads" in reason


def test_check_environment_prints_versions_then_the_reason(monkeypatch, capsys):
    fake_hardware(monkeypatch, mps=True)
    monkeypatch.setenv("COURSE_PROFILE", "smoke")            # what the tests run in
    assert config.check_environment() is True
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"profile={config.PROFILE}")
    assert lines[1] == config.profile_reason(config.PROFILE)
    assert lines[1].startswith("COURSE_PROFILE=smoke: the smoke profile's budgets on the mps device")


# ------------------------------------------------------------------ Google Drive for checkpoints (Colab)
def fake_colab(monkeypatch, mount=None):
    """A ``google.colab`` module whose ``drive.mount`` records its calls (or runs ``mount``)."""
    import types

    calls = []
    drive = types.SimpleNamespace(mount=mount or (lambda mountpoint, **kw: calls.append(mountpoint)))
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    if "google" not in sys.modules:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    return calls


def test_use_google_drive_off_colab_keeps_the_local_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(config, "on_colab", lambda: False)
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "local"))
    assert config.use_google_drive() == tmp_path / "local" == config.checkpoint_dir()
    assert "not on Colab" in capsys.readouterr().out
    assert os.environ["COURSE_CHECKPOINTS"] == str(tmp_path / "local")


def test_use_google_drive_on_colab_mounts_and_moves_the_checkpoints(monkeypatch, tmp_path, capsys):
    calls = fake_colab(monkeypatch)
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "local"))    # restored after the test
    assert config.on_colab()
    mount = tmp_path / "drive"
    path = config.use_google_drive("my course", mountpoint=str(mount))
    assert calls == [str(mount)]
    assert path == mount / "MyDrive" / "my course" / "checkpoints" and path.is_dir()
    assert os.environ["COURSE_CHECKPOINTS"] == str(path)
    assert config.checkpoint_path("x", profile="cpu") == path / "x-cpu.pt"
    assert str(path) in capsys.readouterr().out


def test_use_google_drive_warns_and_goes_on_when_the_mount_fails(monkeypatch, tmp_path):
    def refuse(mountpoint, **kwargs):
        raise ValueError("mount failed: permission denied")

    fake_colab(monkeypatch, mount=refuse)
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "local"))
    with pytest.warns(UserWarning, match="could not be mounted.*permission denied"):
        assert config.use_google_drive(mountpoint=str(tmp_path / "drive")) == tmp_path / "local"
    assert os.environ["COURSE_CHECKPOINTS"] == str(tmp_path / "local")
