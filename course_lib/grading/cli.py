"""``python -m course_lib.grading STEP``: the instructor's steps from the command line.

    release   [ID ...]                  solutions/ -> assignments/ (nbgrader generate_assignment)
    validate  NOTEBOOK ...              run a notebook's tests; exit 1 when any fails
    collect   ID FILE_OR_ZIP ...        an LMS download -> submitted/<student>/ID/ (zip_collect)
    autograde ID [--student S ...] [--jobs N] [--timeout S] [--no-sandbox]
    feedback  ID                        feedback/<student>/ID/*.html, hidden tests removed
    grades    [--out grades.csv]        one row per submission, one column per test cell
    mutants   [ID ...]                  how many mutants of each solution the hidden tests kill
"""
from __future__ import annotations

import argparse
import sys

from .course import Course, GradingError, find_root
from .sandbox import SandboxUnavailable


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.grading", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="the course folder (default: the one holding nbgrader_config.py)")
    sub = p.add_subparsers(dest="step", required=True)
    sub.add_parser("release").add_argument("ids", nargs="*")
    sub.add_parser("validate").add_argument("notebooks", nargs="+")
    c = sub.add_parser("collect")
    c.add_argument("id")
    c.add_argument("files", nargs="+")
    a = sub.add_parser("autograde")
    a.add_argument("id")
    a.add_argument("--student", action="append", help="only these students (repeat)")
    a.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: cores)")
    a.add_argument("--timeout", type=int, default=30, help="seconds per cell (default 30)")
    a.add_argument("--submission-timeout", type=int, default=600, help="seconds per submission")
    a.add_argument("--memory-gb", type=float, default=8.0, help="address-space limit of a kernel")
    a.add_argument("--no-sandbox", action="store_true",
                   help="run student code without bubblewrap (it can then read the gradebook and solutions)")
    sub.add_parser("feedback").add_argument("id")
    sub.add_parser("grades").add_argument("--out", default=None)
    sub.add_parser("mutants").add_argument("ids", nargs="*")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        course = Course(args.root or find_root())
        if args.step == "release":
            for path in course.release(args.ids or None):
                print(f"released {path.relative_to(course.root)}")
        elif args.step == "validate":
            ok = True
            for nb in args.notebooks:
                passed, text = course.validate(nb)
                ok &= passed
                print(f"{'passed' if passed else 'FAILED'}  {nb}")
                if not passed:
                    print(text.strip())
            return 0 if ok else 1
        elif args.step == "collect":
            students = course.collect(args.id, args.files)
            print(f"{len(students)} submissions of {args.id} in submitted/: {', '.join(students)}")
        elif args.step == "autograde":
            def show(r):
                print(f"{r.status:8s} {r.student:24s} {r.seconds:6.1f} s  {r.reason}", flush=True)
            results = course.autograde(args.id, args.student, jobs=args.jobs, cell_timeout=args.timeout,
                                       submission_timeout=args.submission_timeout,
                                       no_sandbox=args.no_sandbox, memory_gb=args.memory_gb, progress=show)
            bad = [r for r in results if r.status != "ok"]
            print(f"graded {len(results)} submissions of {args.id}; {len(bad)} not completed")
        elif args.step == "feedback":
            pages = course.feedback(args.id)
            print(f"{len(pages)} feedback pages in {course.feedback_dir.relative_to(course.root)}/")
        elif args.step == "grades":
            rows = course.grades(args.out)
            for r in rows:
                print(f"{r['student']:24s} {r['assignment']:26s} {r['score']:6} / {r['max_score']:<4} {r['status']}")
            print(f"wrote {args.out or course.root / 'grades.csv'}")
        elif args.step == "mutants":
            from .mutants import kill_rates

            for a in args.ids or course.assignments():
                reports = kill_rates(course.source_dir / a / f"{a}.ipynb")
                changed, killed = sum(r.changed for r in reports), sum(r.killed for r in reports)
                print(f"{a}: {killed}/{changed} mutants killed ({100 * killed / max(changed, 1):.0f} %)")
                for r in reports:
                    print(f"  {r.function:28s} {r.killed:3d}/{r.changed:<3d} survivors: {'; '.join(r.survivors) or '-'}")
    except (GradingError, SandboxUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
