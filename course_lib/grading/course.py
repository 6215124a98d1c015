"""The instructor's steps, one function each: release, validate, collect, autograde, feedback, grades.

A course root is the folder with ``nbgrader_config.py`` (this repository's root, or a copy of it
elsewhere). Under it nbgrader's usual folders: ``solutions/`` (source), ``assignments/`` (release),
``submitted/<student>/<assignment>/``, ``downloaded/<assignment>/archive/`` (an LMS download),
``autograded/``, ``feedback/``, ``gradebook.db``; this module adds ``grading-reports/`` and
``grades.csv``. Every step runs nbgrader's own command line, with this environment's tools on PATH.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import COURSE_ID


class GradingError(RuntimeError):
    """An instructor step failed; the message says which and why."""


def find_root(start=".") -> Path:
    """The nearest folder at or above ``start`` holding ``nbgrader_config.py``."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if (d / "nbgrader_config.py").exists():
            return d
    raise GradingError(f"no nbgrader_config.py in {here} or above: run this in the course's folder")


@dataclass
class Course:
    root: Path

    def __post_init__(self):
        self.root = Path(self.root).resolve()

    source_dir = property(lambda self: self.root / "solutions")
    release_dir = property(lambda self: self.root / "assignments")
    submitted_dir = property(lambda self: self.root / "submitted")
    autograded_dir = property(lambda self: self.root / "autograded")
    feedback_dir = property(lambda self: self.root / "feedback")
    db_path = property(lambda self: self.root / "gradebook.db")
    db_url = property(lambda self: f"sqlite:///{self.root / 'gradebook.db'}")

    # ------------------------------------------------------------------ plumbing
    def nbgrader(self, *args, check=True) -> subprocess.CompletedProcess:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        proc = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=self.root,
                              env=env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise GradingError(f"nbgrader {' '.join(args)} failed:\n{tail}")
        return proc

    def assignments(self) -> list[str]:
        """The assignment ids: the folders of ``solutions/``."""
        return sorted(p.name for p in self.source_dir.iterdir() if (p / f"{p.name}.ipynb").exists())

    def submissions(self, assignment: str) -> list[str]:
        """The students with a ``submitted/<student>/<assignment>/`` folder."""
        if not self.submitted_dir.exists():
            return []
        return sorted(p.name for p in self.submitted_dir.iterdir() if (p / assignment).is_dir())

    # ------------------------------------------------------------------ steps
    def release(self, assignments=None) -> list[Path]:
        """``nbgrader generate_assignment`` for each assignment: writes ``assignments/<id>/``."""
        out = []
        for a in assignments or self.assignments():
            self.nbgrader("generate_assignment", a, "--force")
            out.append(self.release_dir / a / f"{a}.ipynb")
        return out

    def ensure_released(self, assignment: str) -> None:
        """Make sure the gradebook knows ``assignment`` (its cells, points and hidden tests)."""
        from nbgrader.api import Gradebook, MissingEntry

        if self.db_path.exists():
            with Gradebook(self.db_url, COURSE_ID) as gb:
                try:
                    if gb.find_assignment(assignment).notebooks:
                        return
                except MissingEntry:
                    pass
        self.release([assignment])

    def validate(self, notebook) -> tuple[bool, str]:
        """Run a notebook's tests as nbgrader does; ``(passed, report)`` (nbgrader exits 0 either way)."""
        proc = self.nbgrader("validate", str(Path(notebook).resolve()), check=False)
        text = proc.stdout + proc.stderr
        return ("Success! Your notebook passes all the tests." in text and proc.returncode == 0), text

    def collect(self, assignment: str, files) -> list[str]:
        """Copy an LMS download (zips or notebooks) into ``downloaded/`` and ``zip_collect`` it."""
        archive = self.root / "downloaded" / assignment / "archive"
        shutil.rmtree(archive.parent, ignore_errors=True)
        archive.mkdir(parents=True)
        for f in files:
            f = Path(f)
            (shutil.copytree if f.is_dir() else shutil.copy)(f, archive / f.name)
        self.nbgrader("zip_collect", assignment, "--force")
        return self.submissions(assignment)

    def autograde(self, assignment: str, students=None, **kw):
        """Parallel, sandboxed autograding: see :func:`course_lib.grading.autograde.autograde`."""
        from .autograde import autograde

        return autograde(self, assignment, students, **kw)

    def feedback(self, assignment: str) -> list[Path]:
        """``nbgrader generate_feedback``: one HTML per student, without the hidden tests."""
        self.nbgrader("generate_feedback", assignment, "--force")
        return sorted(self.feedback_dir.glob(f"*/{assignment}/*.html"))

    def grades(self, out=None) -> list[dict]:
        """One row per submission: total, each test cell's score, status and review flags.

        Written to ``out`` (default ``grades.csv``) as CSV; returns the rows.
        """
        from nbgrader.api import Gradebook

        rows = []
        with Gradebook(self.db_url, COURSE_ID) as gb:
            for a in gb.assignments:
                cells = [g.name for nb in a.notebooks for g in nb.grade_cells]
                for sub in gb.assignment_submissions(a.name):
                    report = self.root / "grading-reports" / a.name / f"{sub.student.id}.json"
                    info = json.loads(report.read_text()) if report.exists() else {}
                    row = {"student": sub.student.id, "assignment": a.name,
                           "status": info.get("status", "ok"), "score": round(sub.score, 3),
                           "max_score": sub.max_score}
                    for nb in sub.notebooks:
                        for g in nb.grades:
                            row[g.name] = g.score
                    row["review"] = "; ".join(info.get("flags", []) + ([info["reason"]] if info.get("reason") else []))
                    rows.append({k: row.get(k, "") for k in
                                 ["student", "assignment", "status", "score", "max_score", *cells, "review"]})
        out = Path(out) if out else self.root / "grades.csv"
        fields = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields or ["student", "assignment", "score"])
            w.writeheader()
            w.writerows(rows)
        return rows


def hidden_markers(text: str) -> list[str]:
    """What of a hidden test is visible in ``text`` (a release, a feedback page): empty when none."""
    return re.findall(r"(?:BEGIN|END) HIDDEN TESTS|_no_reference|_no_loops|_TB\.tolist", text)
