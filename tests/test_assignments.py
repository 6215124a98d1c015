"""The assignments themselves: the release is in sync and hides its tests, the solutions pass, the
release fails, and the hidden tests kill the mutants of every solution."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import require_sandbox
from course_lib.grading import Course
from course_lib.grading.course import hidden_markers
from course_lib.grading.mutants import cells_by_id, graded_functions, kill_rates

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
# the graded functions that ../shared/COURSE.md lists for each assignment
GRADED = {
    "a1_distances_contrastive": {"pairwise_distances", "contrastive_loss", "contrastive_loss_grad"},
    "a2_triplets_mining": {"triplet_loss", "batch_all_triplet_loss", "batch_hard_triplet_loss",
                           "semihard_negative_mask"},
    "a3_infonce_simclr_moco": {"nt_xent_loss", "moco_loss", "momentum_update"},
    "a4_byol_barlow_arcface": {"byol_loss", "barlow_twins_loss", "arcface_logits", "prototypical_loss"},
}


def _nb(path):
    return json.loads(Path(path).read_text())


def _strip(nb):
    """A notebook's content, without what nbgrader may vary between runs."""
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
             c["metadata"].get("nbgrader")) for c in nb["cells"]]


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    course = Course(root)
    course.release()
    return course


def test_the_four_assignments_exist_with_their_graded_functions():
    assert ASSIGNMENTS == sorted(GRADED)
    for a, wanted in GRADED.items():
        got = set(graded_functions(_nb(ROOT / "solutions" / a / f"{a}.ipynb")))
        assert wanted <= got, (a, wanted - got)


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_the_committed_release_is_what_nbgrader_generates_from_the_solutions(a, fresh_release):
    committed = ROOT / "assignments" / a / f"{a}.ipynb"
    assert committed.exists(), f"run `make release` and commit assignments/{a}"
    assert _strip(_nb(committed)) == _strip(_nb(fresh_release.release_dir / a / f"{a}.ipynb")), \
        f"assignments/{a} is out of sync with solutions/{a}: run `make release` and commit"


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_the_release_holds_no_solution_and_no_hidden_test(a):
    text = (ROOT / "assignments" / a / f"{a}.ipynb").read_text()
    assert not hidden_markers(text) and "BEGIN SOLUTION" not in text
    release = cells_by_id(_nb(ROOT / "assignments" / a / f"{a}.ipynb"))
    for fn in graded_functions(_nb(ROOT / "solutions" / a / f"{a}.ipynb")):
        assert "raise NotImplementedError()" in release[fn], fn
    for cell in _nb(ROOT / "assignments" / a / f"{a}.ipynb")["cells"]:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_validate_passes_the_solutions_and_fails_the_release(a):
    course = Course(ROOT)
    ok, report = course.validate(ROOT / "solutions" / a / f"{a}.ipynb")
    assert ok, report[-2000:]
    ok, report = course.validate(ROOT / "assignments" / a / f"{a}.ipynb")
    assert not ok and "NotImplementedError" in report


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_hidden_tests_kill_at_least_90_percent_of_the_mutants(a):
    reports = kill_rates(ROOT / "solutions" / a / f"{a}.ipynb")
    changed, killed = sum(r.changed for r in reports), sum(r.killed for r in reports)
    print(f"\n{a}: {killed}/{changed} mutants killed")
    for r in reports:
        print(f"  {r.function}: {r.killed}/{r.changed}; survivors: {r.survivors}")
    assert changed >= 10 * len(reports) // 2, "too few mutants to say anything"
    assert killed / changed >= 0.9, [(r.function, r.survivors) for r in reports if r.survivors]


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_the_solutions_agree_with_the_course_reference(a):
    """The assignments teach the course's functions: same signatures, same values."""
    import torch

    from course_lib import distances, losses

    ns = {"__name__": "__main__"}
    from course_lib.grading.mutants import run_cells
    ids = cells_by_id(_nb(ROOT / "solutions" / a / f"{a}.ipynb"))
    run_cells([ids["setup"], *[ids[f] for f in graded_functions(_nb(ROOT / "solutions" / a / f"{a}.ipynb"))]], ns)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    same = torch.tensor([True, False, True, False, True, False])
    checks = {
        "pairwise_distances": lambda f: [f(x, y, m) - distances.pairwise_distances(x, y, m) for m in ("l2", "squared_l2", "l1", "cosine")],
        "contrastive_loss": lambda f: [f(x, y, same, 1.5, sq) - losses.contrastive_loss(x, y, same, 1.5, sq) for sq in (False, True)],
        "contrastive_loss_grad": lambda f: [f(x, y, same, 1.5, sq) - losses.contrastive_loss_grad(x, y, same, 1.5, sq) for sq in (False, True)],
        "triplet_loss": lambda f: [f(x, y, x.flip(0), 0.3) - losses.triplet_loss(x, y, x.flip(0), 0.3)],
        "batch_all_triplet_loss": lambda f: [f(x, labels, 1.0) - losses.batch_all_triplet_loss(x, labels, 1.0)],
        "batch_hard_triplet_loss": lambda f: [f(x, labels, 1.0) - losses.batch_hard_triplet_loss(x, labels, 1.0)],
        "npair_loss": lambda f: [f(x, y) - losses.npair_loss(x, y)],
        "nt_xent_loss": lambda f: [f(x, y, 0.3) - losses.nt_xent_loss(x, y, 0.3)],
        "moco_loss": lambda f: [f(x, y, x.flip(0), 0.2) - losses.moco_loss(x, y, x.flip(0), 0.2)],
        "byol_loss": lambda f: [f(x, y) - losses.byol_loss(x, y)],
        "barlow_twins_loss": lambda f: [f(x, y, 5e-3) - losses.barlow_twins_loss(x, y, 5e-3)],
        "arcface_logits": lambda f: [f(x, y[:3], labels) - losses.arcface_logits(x, y[:3], labels)],
        "prototypical_loss": lambda f: [f(x, labels, y, labels) - losses.prototypical_loss(x, labels, y, labels)],
    }
    compared = 0
    for fn in graded_functions(_nb(ROOT / "solutions" / a / f"{a}.ipynb")):
        if fn in checks:
            for diff in checks[fn](ns[fn]):
                assert float(diff.abs().max()) < 1e-6, fn
            compared += 1
    assert compared >= 2


def test_collect_files_an_lms_download_under_each_student(fresh_release, tmp_path):
    """A Canvas zip (files named after the login) and a Moodle folder end up in submitted/."""
    import zipfile

    a = "a1_distances_contrastive"
    notebook = (fresh_release.release_dir / a / f"{a}.ipynb").read_text()
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"smithjane_1234_5678_{a}.ipynb", notebook)
        z.writestr(f"doejohn_late_2345_6789_{a}-1.ipynb", notebook)
    moodle = tmp_path / "moodle" / "Ada Lovelace_4711_assignsubmission_file_"
    moodle.mkdir(parents=True)
    (moodle / f"{a}.ipynb").write_text(notebook)
    students = fresh_release.collect(a, [archive, tmp_path / "moodle"])
    assert students == ["4711", "doejohn", "smithjane"]
    for s in students:
        assert (fresh_release.submitted_dir / s / a / f"{a}.ipynb").read_text() == notebook


def test_a_submission_past_its_time_limit_is_recorded_with_zero_and_its_reason(fresh_release):
    require_sandbox()
    a = "a3_infonce_simclr_moco"
    d = fresh_release.submitted_dir / "slowpoke" / a
    d.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / a / f"{a}.ipynb", d / f"{a}.ipynb")
    (result,) = fresh_release.autograde(a, ["slowpoke"], jobs=1, submission_timeout=2)
    assert result.status == "timeout" and "2 s limit" in result.reason
    row = next(r for r in fresh_release.grades() if r["student"] == "slowpoke")
    assert row["score"] == 0 and row["status"] == "timeout" and "2 s limit" in row["review"]
