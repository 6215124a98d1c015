"""Autograding speed: N submissions graded serially (1 worker) and in parallel, side by side.

    .venv/bin/python benchmarks/autograde.py [--n 20] [--assignment a3_infonce_simclr_moco] [--jobs 2]

Builds a throwaway course root with N submissions (alternately the solutions and the untouched
release, so that both the passing and the failing paths run), grades them through the real pipeline
(sandboxed kernels) with ``--jobs 1`` and ``--jobs J``, and prints seconds per submission and the
speed-up. The machine's speed varies, so only the ratio of the two runs means much.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from course_lib.grading import Course

ROOT = Path(__file__).resolve().parents[1]


def build(n: int, assignment: str) -> Course:
    root = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    course = Course(root)
    course.release([assignment])
    sol = (course.source_dir / assignment / f"{assignment}.ipynb").read_text()
    rel = (course.release_dir / assignment / f"{assignment}.ipynb").read_text()
    for i in range(n):
        d = course.submitted_dir / f"student{i:02d}" / assignment
        d.mkdir(parents=True)
        (d / f"{assignment}.ipynb").write_text(sol if i % 2 == 0 else rel)
    return course


def timed(course: Course, assignment: str, jobs: int) -> tuple[float, list]:
    t0 = time.perf_counter()
    results = course.autograde(assignment, jobs=jobs)
    return time.perf_counter() - t0, results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--assignment", default="a3_infonce_simclr_moco")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    course = build(args.n, args.assignment)
    try:
        serial, r1 = timed(course, args.assignment, 1)
        parallel, r2 = timed(course, args.assignment, args.jobs)
        scores = {r["student"]: r["score"] for r in course.grades()}
        ok = all(r.status == "ok" for r in r1 + r2)
        print(json.dumps({"submissions": args.n, "assignment": args.assignment, "cores": os.cpu_count(),
                          "all_ok": ok, "full_marks": sum(1 for s in scores.values() if s > 0)}))
        print(f"serial   (1 worker):  {serial:6.1f} s  = {serial / args.n:5.2f} s per submission")
        print(f"parallel ({args.jobs} workers): {parallel:6.1f} s  = {parallel / args.n:5.2f} s per submission")
        print(f"speed-up: {serial / parallel:.2f}x")
    finally:
        shutil.rmtree(course.root, ignore_errors=True)


if __name__ == "__main__":
    main()
