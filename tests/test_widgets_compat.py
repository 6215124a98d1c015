"""The margin slider and the embedding explorer work with both widget APIs: ipywidgets 7 (what Colab ships and its front end
renders, googlecolab/colabtools#3020, #4525) and ipywidgets 8 (JupyterLab 4, installed here).

ipywidgets 7 is installed with ``pip --no-deps --target`` into a folder of the pytest cache (downloaded
once, reused), with exactly what it imports beyond this environment: ``ipython_genutils``. Its other
declared dependencies are front-end assets (widgetsnbextension, jupyterlab_widgets) or already here
(ipykernel, traitlets, IPython). A subprocess with that folder first on PYTHONPATH then builds
``margin_explorer`` and moves its slider. Offline, the 7.x case skips with the reason, except in CI
(``CI=true``), where a failed download fails the test; an offline CI can point pip at a wheelhouse
with ``PIP_FIND_LINKS`` (+ ``PIP_NO_INDEX=1``), which pip reads from the environment.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# --dist loadgroup: both versions on one worker, so the download happens once per session at most
pytestmark = pytest.mark.xdist_group("ipywidgets_compat")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Colab's exact version (github.com/googlecolab/backend-info, pip-freeze.gpu.txt, 2022-2026), and the last 7.x
IPYWIDGETS_7 = {"7.7.1": ["ipython_genutils==0.2.0"], "7.8.5": ["ipython_genutils==0.2.0"]}


def exercise() -> dict:
    """Build the margin explorer on small random data, move the slider and tick the check box."""
    import ipywidgets
    import numpy as np
    import torch

    from course_lib import viz

    g = np.random.default_rng(0)
    distances = torch.tensor(g.uniform(0.0, 2.0, 300))            # (N,)
    same = torch.tensor(g.random(300) < 0.5)                       # (N,)
    w = viz.margin_explorer(distances, same, margin=1.0)
    image, summary = w.image.value, w.summary.value
    w.slider.value = 0.3
    moved_image, moved_summary = w.image.value, w.summary.value
    w.squared.value = True
    state = w.slider.get_state()                                   # what the kernel sends the front end
    json.dumps(state)
    # the explorer of chapter 09: built, moved, and displayable with its still image beside the widget view
    y = torch.arange(40) % 4
    feats = {name: torch.randn(4, 6, generator=torch.Generator().manual_seed(s))[y] + torch.randn(40, 6) for s, name in enumerate("ab")}
    e = viz.embedding_explorer(feats, y, torch.randint(0, 256, (40, 32, 32, 3), dtype=torch.uint8))
    e.c.projection.value = "pca"
    before = bytes(e.c.map.value)
    e.c.encoder.value = "b"
    bundle = e._repr_mimebundle_()
    json.dumps(bundle)
    return {
        "explorer_changed": bytes(e.c.map.value) != before,
        "explorer_bundle": sorted(bundle),
        "version": ipywidgets.__version__, "file": ipywidgets.__file__,
        "png": bytes(image[:8]) == b"\x89PNG\r\n\x1a\n",
        "image_changed": bytes(image) != bytes(moved_image),
        "squared_changed": bytes(moved_image) != bytes(w.image.value),
        "summary": summary, "moved_summary": moved_summary,
        "view_module_version": state["_view_module_version"],
    }


def check(result: dict, major: int) -> None:
    assert result["version"].split(".")[0] == str(major), result
    assert result["png"], "the explorer's image is not a PNG"
    assert result["image_changed"], "moving the slider did not redraw the image"
    assert result["moved_summary"] != result["summary"] and "α = 0.30" in result["moved_summary"], result
    assert result["squared_changed"], "the squared-hinge check box did not redraw the image"
    assert result["explorer_changed"], "picking another encoder did not redraw the explorer's map"
    assert result["explorer_bundle"] == ["application/vnd.jupyter.widget-view+json", "image/png", "text/plain"], result
    # the controls' protocol: 1.x is what ipywidgets 7 front ends (Colab) render, 2.x ipywidgets 8
    assert result["view_module_version"].split(".")[0] == str(major - 6), result


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def ipywidgets7_folder(version: str, cache_root: Path) -> Path:
    """A folder holding ipywidgets ``version`` and its extra imports, installed once (atomically)."""
    target = cache_root / f"ipywidgets-{version}"
    if (target / ".complete").exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".ipywidgets-{version}-", dir=cache_root))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--no-compile", "--target", str(staging), f"ipywidgets=={version}", *IPYWIDGETS_7[version]]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as err:
        r = subprocess.CompletedProcess(cmd, 1, "", f"timed out after {err.timeout} s")
    if r.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        reason = (f"could not download ipywidgets {version} from the package index "
                  f"({' '.join(cmd[2:])}): {(r.stderr or r.stdout).strip()[-600:]}")
        if _in_ci():
            pytest.fail(reason + "\n(CI=true: this must not be skipped; give pip a wheelhouse with PIP_FIND_LINKS)")
        pytest.skip("offline? " + reason)
    (staging / ".complete").write_text(version)
    try:
        staging.rename(target)               # atomic: a parallel session either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.mark.parametrize("version", sorted(IPYWIDGETS_7))
def test_margin_explorer_with_ipywidgets_7(version, request):
    folder = ipywidgets7_folder(version, Path(request.config.cache.mkdir("ipywidgets7")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT), str(TESTS)]),
           "MPLBACKEND": "Agg"}
    code = ("import json, test_widgets_compat as t; "
            "print('RESULT ' + json.dumps(t.exercise()))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                       cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(next(line[7:] for line in r.stdout.splitlines() if line.startswith("RESULT ")))
    assert result["version"] == version and result["file"].startswith(str(folder)), result
    check(result, major=7)


def test_margin_explorer_with_ipywidgets_8(headless_plots):
    ipywidgets = pytest.importorskip("ipywidgets")
    if not ipywidgets.__version__.startswith("8."):
        pytest.skip(f"this environment has ipywidgets {ipywidgets.__version__}; `make lab` installs 8")
    check(exercise(), major=8)
