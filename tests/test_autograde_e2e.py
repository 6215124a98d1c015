"""The assignments graded end to end: real nbgrader, sandboxed kernels, two workers, one gradebook.

A course root is copied to a temporary folder, released, and given submissions that this module
writes: the solutions (full marks), the untouched release (zero), plausible bugs (each loses exactly
the test cell of the function it breaks) and hostile ones (graded, contained, nothing leaks).
"""
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import require_sandbox
from course_lib.grading import Course
from course_lib.grading.course import hidden_markers
from course_lib.grading.mutants import cells_by_id, kill_rates

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
HOSTILE_ON = "a3_infonce_simclr_moco"

# the kinds of plausible bug, as the mutation labels name them
BUGS = {
    "sign": ("Sub -> Add", "Add -> Sub", "return value negated", "drop USub"),
    "mean-vs-sum": ("mean -> sum", "sum -> mean"),
    "missing-clamp": ("drop clamp()", "drop clamp_min()", "drop relu()"),
    "no-normalisation": ("drop normalize()",),
    "mask-off-by-one": ("Lt -> LtE", "LtE -> Lt", "Gt -> GtE", "GtE -> Gt", "drop Invert", "NotEq -> Eq"),
    "no-detach": ("drop detach()",),
}


def _load(path):
    return json.loads(Path(path).read_text())


def _cells(nb, edit):
    nb = json.loads(json.dumps(nb))
    nb["cells"] = [c for c in (edit(c) for c in nb["cells"]) if c is not None]
    return nb


def _gid(cell):
    return cell["metadata"].get("nbgrader", {}).get("grade_id")


def with_source(nb, gid, source):
    def edit(c):
        if _gid(c) == gid:
            c["source"] = source
        return c
    return _cells(nb, edit)


def without(nb, *gids):
    return _cells(nb, lambda c: None if _gid(c) in gids else c)


def full_marks(nb):
    return {_gid(c): float(c["metadata"]["nbgrader"]["points"]) for c in nb["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade")}


def loop_version(answer: str, fn: str) -> str:
    """The solution, right values, but computed row by row: a Python loop over the batch."""
    return (answer.replace(f"def {fn}(", f"def _vectorized_{fn}(", 1) + "\n\n"
            f"def {fn}(x, y=None, metric=\"l2\"):\n"
            f"    rows = [_vectorized_{fn}(x[i:i + 1], x if y is None else y, metric) for i in range(x.shape[0])]\n"
            "    return torch.cat(rows)\n")


def submissions(course):
    """``{student: (assignment, notebook, expected scores per test cell, what it is)}``."""
    out = {}
    for a in ASSIGNMENTS:
        sol = _load(course.source_dir / a / f"{a}.ipynb")
        rel = _load(course.release_dir / a / f"{a}.ipynb")
        full = full_marks(sol)
        out[f"{a[:2]}-solution"] = (a, sol, full, "the solutions")
        out[f"{a[:2]}-release"] = (a, rel, dict.fromkeys(full, 0.0), "the untouched release")
    # plausible bugs: one mutant the hidden tests kill, per kind, spread over the assignments
    used = set()
    reports = {a: kill_rates(course.source_dir / a / f"{a}.ipynb") for a in ASSIGNMENTS}
    for kind, labels in BUGS.items():
        for a in sorted(ASSIGNMENTS, key=lambda a: sum(1 for _, x in used if x == a)):
            sol = _load(course.source_dir / a / f"{a}.ipynb")
            hit = next(((r.function, label, src) for r in reports[a]
                        for label, src in r.killed_mutants if any(label.startswith(k) for k in labels)
                        and (r.function, a) not in used), None)
            if hit:
                fn, label, src = hit
                used.add((fn, a))
                out[f"{a[:2]}-bug-{kind}"] = (a, with_source(sol, fn, src),
                                              {**full_marks(sol), f"test_{fn}": 0.0}, f"{fn}: {label}")
                break
    a1 = "a1_distances_contrastive"
    sol = _load(course.source_dir / a1 / f"{a1}.ipynb")
    answer = cells_by_id(sol)["pairwise_distances"]
    out["a1-bug-loop"] = (a1, with_source(sol, "pairwise_distances", loop_version(answer, "pairwise_distances")),
                          {**full_marks(sol), "test_pairwise_distances": 0.0}, "a loop over the batch")
    out.update(hostile(course))
    return out


def hostile(course):
    a = HOSTILE_ON
    sol = _load(course.source_dir / a / f"{a}.ipynb")
    rel = _load(course.release_dir / a / f"{a}.ipynb")
    full = full_marks(sol)
    fns = [g[len("test_"):] for g in full]  # in notebook order
    first, mid, last = fns[0], fns[1], fns[-1]
    ans = cells_by_id(sol)
    stub = cells_by_id(rel)
    zero = lambda *names: {**full, **{f"test_{n}": 0.0 for n in names}}  # noqa: E731
    nosy = (
        "import os, socket\n"
        f"for path in [{str(course.db_path)!r}, {str(course.source_dir / a / (a + '.ipynb'))!r}]:\n"
        "    try:\n        print('read', len(open(path, 'rb').read()))\n"
        "    except OSError as e:\n        print('blocked', type(e).__name__)\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('network')\n"
        "except OSError as e:\n    print('blocked', type(e).__name__)\n"
        "print('x' * 3_000_000)\nfor i in range(20000):\n    print('spam', i)\n")
    patch = ("import builtins, math\nimport torch\n"
             "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
             "torch.isclose = lambda a, b, *x, **k: torch.ones_like(a, dtype=torch.bool)\n"
             "torch.testing.assert_close = lambda *a, **k: None\nmath.isclose = lambda *a, **k: True\n"
             "builtins.abs = lambda x: 0.0\n"
             "torch.Tensor.tolist = lambda self: [0.0] * self.numel()\n"
             "torch.Tensor.item = lambda self: 0.0\n")
    return {
        "hostile-syntax-error": (a, with_source(sol, mid, ans[mid] + "\n    return )("), zero(mid), "a syntax error"),
        "hostile-infinite-loop": (a, with_source(sol, mid, ans[mid].replace(":\n", ":\n    while True:\n        pass\n", 1)),
                                  zero(mid), "an infinite loop inside a graded function"),
        "hostile-allocation": (a, with_source(sol, mid, "blob = [torch.empty(10**9) for _ in range(1000)]\n" + ans[mid]),
                               zero(mid), "unbounded allocation"),
        "hostile-exit": (a, with_source(sol, last, "import os\nos._exit(3)\n" + ans[last]), zero(last),
                         "the kernel kills itself (os._exit)"),
        "hostile-edited-tests": (a, with_source(with_source(sol, first, stub[first]), f"test_{first}", "print('all good')"),
                                 zero(first), "a wrong answer and its test cell replaced"),
        "hostile-deleted-tests": (a, without(with_source(sol, first, stub[first]), f"test_{first}", f"test_{mid}"),
                                  zero(first), "a wrong answer and its test cells deleted"),
        "hostile-deleted-answer": (a, without(sol, mid), zero(mid), "an answer cell deleted"),
        "hostile-reference": (a, with_source(sol, first, f"from course_lib.losses import {first}\n"), zero(first),
                              "imports the course's reference"),
        "hostile-monkeypatch": (a, with_source(sol, first, patch + stub[first].replace("raise NotImplementedError()", "return torch.zeros(())")),
                                zero(first), "a wrong answer and every comparison replaced"),
        "hostile-nosy": (a, with_source(sol, last, nosy + ans[last]), full,
                         "reads the gradebook and solutions, calls the network, prints megabytes"),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    require_sandbox()
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    course = Course(root)
    course.release()
    subs = submissions(course)
    for student, (a, nb, _, _) in subs.items():
        d = course.submitted_dir / student / a
        d.mkdir(parents=True)
        (d / f"{a}.ipynb").write_text(json.dumps(nb))
    results, t0 = {}, time.perf_counter()
    for a in ASSIGNMENTS:
        for r in course.autograde(a, jobs=2, cell_timeout=10, submission_timeout=240):
            results[r.student] = r
    elapsed = time.perf_counter() - t0
    rows = {r["student"]: r for r in course.grades()}
    pages = {a: course.feedback(a) for a in ASSIGNMENTS}
    print(f"\nautograded {len(results)} submissions in {elapsed:.0f} s on {os.cpu_count()} cores")
    for student, row in sorted(rows.items()):
        print(f"  {student:32s} {row['score']:5} / {row['max_score']:<4} {row['status']:7s} {subs[student][3]}")
    return course, subs, results, rows, pages


def check_every_submission_gets_exactly_the_points_it_earns(graded):
    course, subs, results, rows, _ = graded
    assert set(rows) == set(subs), "every submission has a row in the grades"
    wrong = {}
    for student, (a, _, expected, what) in subs.items():
        got = {cell: rows[student][cell] for cell in expected}
        if got != expected:
            wrong[student] = (what, got, expected)
    assert not wrong, wrong


def check_the_batch_survives_every_hostile_submission(graded):
    _, subs, results, rows, _ = graded
    assert all(r.status == "ok" for r in results.values()), {s: r.reason for s, r in results.items() if r.status != "ok"}
    assert rows["a3-solution"]["score"] == rows["a3-solution"]["max_score"] > 0


def check_the_sandbox_kept_the_gradebook_solutions_and_network_out(graded):
    course, *_ = graded
    nb = _load(course.autograded_dir / "hostile-nosy" / HOSTILE_ON / f"{HOSTILE_ON}.ipynb")
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert text.count("blocked") == 3 and "read " not in text and "network" not in text
    assert len(json.dumps(nb)) < 300_000, "megabytes of output were capped"


def check_review_flags_point_at_the_hostile_submissions(graded):
    _, _, _, rows, _ = graded
    assert "replaces torch.allclose" in rows["hostile-monkeypatch"]["review"]
    assert "course's reference" in rows["hostile-reference"]["review"]
    assert "exits the kernel" in rows["hostile-exit"]["review"]
    assert rows["a1-solution"]["review"] == ""


def check_feedback_and_autograded_notebooks_hold_no_hidden_test(graded):
    course, subs, _, _, pages = graded
    secrets = set()
    for a in ASSIGNMENTS:
        visible = (course.release_dir / a / f"{a}.ipynb").read_text()
        src = cells_by_id(_load(course.source_dir / a / f"{a}.ipynb"))
        for gid, text in src.items():
            if "BEGIN HIDDEN TESTS" in text:
                hidden = text.split("BEGIN HIDDEN TESTS", 1)[1].split("END HIDDEN TESTS", 1)[0]
                secrets |= {ln.strip() for ln in hidden.splitlines() if len(ln.strip()) > 25
                            and not ln.strip().startswith("#") and json.dumps(ln.strip())[1:-1] not in visible}
    assert secrets
    for a in ASSIGNMENTS:
        assert len(pages[a]) == sum(1 for s in subs.values() if s[0] == a)
        for path in [*pages[a], *course.autograded_dir.glob(f"*/{a}/*.ipynb")]:
            text = path.read_text()
            assert not hidden_markers(text), path
            leaked = [s for s in secrets if s in text]
            assert not leaked, (path, leaked[:3])


def test_autograde_end_to_end(graded):
    """One test over one grading run (it takes minutes: a module fixture would run once per xdist
    worker that gets one of several tests)."""
    check_every_submission_gets_exactly_the_points_it_earns(graded)
    check_the_batch_survives_every_hostile_submission(graded)
    check_the_sandbox_kept_the_gradebook_solutions_and_network_out(graded)
    check_review_flags_point_at_the_hostile_submissions(graded)
    check_feedback_and_autograded_notebooks_hold_no_hidden_test(graded)
