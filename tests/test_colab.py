"""Colab: every notebook installs this very release, from the repository the badges open.

Checked over every notebook in notebooks/ and the README, by regular expressions on the sources:

* the repository URL is written the same everywhere: each first code cell's install line, every
  "Open in Colab" badge (``https://colab.research.google.com/github/<org>/<repo>/blob/main/notebooks/<file>``,
  whose <file> must exist), the README's install line, and pyproject's ``[project.urls]``;
* the first cell installs with ``%pip`` inside an ``if`` (skipped when ``course_lib`` is importable),
  pinned to the tag ``v`` + ``course_lib.__version__``, which is also pyproject's version;
* every notebook has a row with its badge in the README's chapter table;
* no dependency floor is above what Colab preinstalls (an install there must upgrade nothing).
"""
import json
import re
from pathlib import Path

import pytest

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # pragma: no cover
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python >= 3.11 or tomli")

import course_lib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

REPO = r"https://github\.com/(?P<org>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?"
# pip install [flags] "course_lib @ git+https://github.com/<org>/<repo>[@<ref>]" (either quote, or none)
INSTALL = re.compile(r"""(?P<tool>[%!]pip|pip)\s+install\b[^\n]*?["']?course_lib\s*@\s*git\+""" + REPO
                     + r"""(?:@(?P<ref>[\w.+-]+))?["']?(?=[\s"'`)]|$)""", re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/(?P<org>[\w.-]+)/(?P<repo>[\w.-]+)/blob/"
                   r"(?P<branch>[\w.-]+)/notebooks/(?P<file>[\w.-]+\.ipynb)")


def canonical_repository() -> str:
    """``<org>/<repo>`` from pyproject's ``[project.urls] Repository``: the one place it is written down."""
    url = PYPROJECT["project"].get("urls", {}).get("Repository", "")
    m = re.fullmatch(REPO + "/?", url)
    assert m, f"pyproject.toml [project.urls] Repository = {url!r} is not a https://github.com/<org>/<repo> URL"
    return f"{m['org']}/{m['repo']}"


def cells(path: Path) -> list:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in nb["cells"]]


def first_code_cell(path: Path) -> str:
    return next(source for kind, source in cells(path) if kind == "code")


def install_line(path: Path) -> re.Match:
    source = first_code_cell(path)
    found = list(INSTALL.finditer(source))
    assert len(found) == 1, (f"{path.name}: the first code cell should hold exactly one "
                             f"'%pip install \"course_lib @ git+https://github.com/...@v<version>\"' line, "
                             f"found {len(found)}")
    return found[0]


def enclosing_statement(source: str, offset: int) -> str:
    """The line that opens the block holding the line at ``offset`` (the nearest less indented one)."""
    lines = source[:offset].split("\n")
    current = source[source.rfind("\n", 0, offset) + 1:].split("\n")[0]
    indent = len(current) - len(current.lstrip())
    for line in reversed(lines[:-1]):
        if line.strip() and not line.lstrip().startswith("#") and len(line) - len(line.lstrip()) < indent:
            return line.strip()
    return ""


def version() -> str:
    return PYPROJECT["project"]["version"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


def test_package_version_is_pyprojects():
    assert course_lib.__version__ == version(), (
        f"course_lib.__version__ = {course_lib.__version__!r} but pyproject.toml says {version()!r}: "
        "set both, the first cells install the tag v<version>")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_cell_installs_the_pinned_release(path):
    m = install_line(path)
    source = first_code_cell(path)
    assert m["tool"] == "%pip", f"{path.name}: install with %pip (it installs into the running kernel), not {m['tool']}"
    assert f"{m['org']}/{m['repo']}" == canonical_repository(), (
        f"{path.name} installs from {m['org']}/{m['repo']}, the badges and pyproject say {canonical_repository()}")
    assert m["ref"] == f"v{version()}", (
        f"{path.name} installs ref {m['ref']!r}; it must be the release tag 'v{version()}' "
        f"(v + course_lib.__version__ + pyproject's version)")
    opener = enclosing_statement(source, m.start())
    assert re.match(r"(el)?if\b", opener), (
        f"{path.name}: the install line should sit inside an `if` (install only when needed), "
        f"it sits under {opener!r}")
    assert "course_lib" in source[: m.start()], (
        f"{path.name}: the first cell should check whether course_lib is importable before installing it")


def test_readme_install_line_uses_the_same_repository_and_tag():
    found = list(INSTALL.finditer(README))
    assert found, "README.md shows no 'pip install \"course_lib @ git+https://github.com/...\"' line"
    for m in found:
        assert f"{m['org']}/{m['repo']}" == canonical_repository(), (
            f"README installs from {m['org']}/{m['repo']}, pyproject says {canonical_repository()}")
        assert m["ref"] in (None, f"v{version()}"), f"README installs ref {m['ref']!r}, not v{version()}"


def badges():
    """(where, match) for every Colab badge in the README and in the notebooks' markdown cells."""
    found = [("README.md", m) for m in BADGE.finditer(README)]
    for path in NOTEBOOKS:
        for kind, source in cells(path):
            found += [(path.name, m) for m in BADGE.finditer(source)]
    return found


def test_every_colab_badge_opens_an_existing_notebook_of_this_repository():
    found = badges()
    assert found, "no Colab badge found"
    for where, m in found:
        assert f"{m['org']}/{m['repo']}" == canonical_repository(), (
            f"{where}: badge for {m['file']} opens {m['org']}/{m['repo']}, not {canonical_repository()}")
        assert m["branch"] == "main", f"{where}: badge for {m['file']} opens branch {m['branch']!r}, not main"
        assert (ROOT / "notebooks" / m["file"]).exists(), f"{where}: badge opens notebooks/{m['file']}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_a_badge_row_in_the_readme(path):
    rows = [line for line in README.splitlines() if line.startswith("|") and f"notebooks/{path.name}" in line]
    assert rows, f"README.md's chapter table has no row linking notebooks/{path.name}"
    assert any(m["file"] == path.name for row in rows for m in BADGE.finditer(row)), (
        f"README.md's row for {path.name} has no Open-in-Colab badge for it")


# What Colab preinstalls, from github.com/googlecolab/backend-info (pip-freeze.gpu.txt), at the oldest
# runtime the course supports (2024-08: the first with torch >= 2.3; umap-learn from 2025-04). A floor
# above these would make `%pip install` upgrade the package on Colab (ipywidgets 8 breaks its widgets).
COLAB_PREINSTALLED = {
    "torch": "2.3.1", "torchvision": "0.18.1", "numpy": "1.26.4", "matplotlib": "3.7.1",
    "scikit-learn": "1.3.2", "tqdm": "4.66.4", "pillow": "9.4.0", "ipywidgets": "7.7.1", "umap-learn": "0.5.7",
}


def _version_tuple(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def test_dependency_floors_do_not_upgrade_what_colab_preinstalls():
    floors = {}
    for requirement in PYPROJECT["project"]["dependencies"]:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(?:>=\s*([\w.]+))?\s*", requirement)
        assert m, f"{requirement!r}: the course's dependencies are plain floors `name>=version`, never pins or caps"
        floors[m[1].lower()] = m[2]
    for name, colab in COLAB_PREINSTALLED.items():
        assert name in floors, f"{name} is no longer a dependency: update COLAB_PREINSTALLED"
        if floors[name]:
            assert _version_tuple(floors[name]) <= _version_tuple(colab), (
                f"{name}>={floors[name]} is above Colab's {colab}: installing the course would upgrade it")


def test_environment_yml_has_the_same_floors():
    """environment.yml = pyproject's dependencies + its lab extra (JupyterLab 4 needs ipywidgets 8)."""
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    conda = {m[1].lower(): m[2] for m in re.finditer(r"^\s*-\s*([A-Za-z0-9_.-]+)\s*>=\s*([\w.]+)", text, re.M)}
    conda["torch"] = conda.pop("pytorch", None)
    wanted = {}
    for requirement in PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["lab"]:
        name, floor = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([\w.]+).*", requirement).groups()
        wanted[name.lower()] = max(wanted.get(name.lower(), floor), floor, key=_version_tuple)
    for name, floor in wanted.items():
        assert conda.get(name) == floor, f"environment.yml has {name}>={conda.get(name)}, pyproject {name}>={floor}"
