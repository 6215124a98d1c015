"""Autograde a folder of submissions in parallel, each in its own nbgrader run and sandboxed kernel.

One gradebook is not safe under concurrent ``nbgrader autograde`` processes ("database is locked"),
so every submission is graded in a private course root of its own -- a copy of the gradebook, links
to the source and to that one submission, its own kernelspec and socket directory -- and the results
are merged into the course's gradebook afterwards, one writer at a time. A submission that crashes
nbgrader or runs past ``submission_timeout`` is killed with its kernel and recorded with zero points
and its reason; the others are not affected. Each worker's kernel gets ``cores // jobs`` threads.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import COURSE_ID
from .sandbox import KERNEL_NAME, require_sandbox, write_kernelspec
from .scan import scan_notebook

WORKER_CONFIG = """\
from course_lib.grading.config import apply
c = get_config()
apply(c, cell_timeout={cell_timeout})
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
c.Execute.kernel_name = {kernel!r}
c.KernelManager.transport = "ipc"
c.KernelManager.ip = {ip!r}
c.KernelManager.connection_file = {connection_file!r}
"""


@dataclass
class Result:
    """One submission's outcome: ``status`` is ok, timeout or error (then ``reason`` says why)."""

    student: str
    assignment: str
    status: str
    seconds: float
    reason: str = ""
    flags: list = field(default_factory=list)


def _bin(name: str) -> str:
    """A console script of this environment (nbgrader runs alembic from PATH)."""
    return str(Path(sys.executable).parent / name)


def _submission_root(course, work: Path, assignment: str, student: str, cell_timeout: int,
                     threads: int, no_sandbox: bool, memory_gb: float) -> tuple[Path, dict]:
    """A private course root for one submission, and the environment its nbgrader runs in."""
    work.mkdir(parents=True)
    sock = work / "s"
    sock.mkdir()
    root = work / "root"
    (root / "submitted" / student).mkdir(parents=True)
    os.symlink(course.source_dir, root / "solutions")
    shutil.copytree(course.submitted_dir / student / assignment, root / "submitted" / student / assignment)
    shutil.copy(course.db_path, root / "gradebook.db")
    write_kernelspec(work / "k", sock, threads=threads, memory_gb=memory_gb, no_sandbox=no_sandbox)
    (root / "nbgrader_config.py").write_text(WORKER_CONFIG.format(
        cell_timeout=cell_timeout, root=str(root), db_url=f"sqlite:///{root / 'gradebook.db'}",
        kernel=KERNEL_NAME, ip=str(sock / "k"), connection_file=str(sock / "kernel.json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "COURSE_"))}
    env.update(JUPYTER_PATH=str(work / "k"), JUPYTER_RUNTIME_DIR=str(sock), JUPYTER_CONFIG_DIR=str(work / "cfg"),
               JUPYTER_DATA_DIR=str(work / "data"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONDONTWRITEBYTECODE="1")
    return root, env


def review_flags(course, assignment: str, student: str) -> list[str]:
    """:func:`~course_lib.grading.scan.scan_notebook` of one submission against the release."""
    return scan_notebook(course.submitted_dir / student / assignment / f"{assignment}.ipynb",
                         course.release_dir / assignment / f"{assignment}.ipynb")


def _reason(log: str, returncode: int) -> str:
    """The last exception nbgrader logged (its own summary lines say nothing)."""
    found = re.findall(r"^\s*((?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Timeout)\w*: .+)$", log, re.M)
    return (found[-1].strip() if found else f"nbgrader exited with {returncode}")[:300]


def _run_nbgrader(cmd, root, env, timeout):
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # nbgrader and, through --die-with-parent, its kernel
        proc.communicate()
        return None, None
    return proc.returncode, log


def grade_one(course, assignment: str, student: str, work: Path, *, cell_timeout: int = 30,
              submission_timeout: int = 600, threads: int = 1, no_sandbox: bool = False,
              memory_gb: float = 8.0, flags=None) -> Result:
    """Autograde one submission in ``work`` (a fresh folder); nothing of the course is modified.

    A kernel that did not start (a loaded machine) is given one more try. ``flags``: the review
    flags, when already read (:func:`review_flags`).
    """
    t0 = time.perf_counter()
    flags = review_flags(course, assignment, student) if flags is None else flags
    root, env = _submission_root(course, work, assignment, student, cell_timeout, threads,
                                 no_sandbox, memory_gb)
    cmd = [_bin("nbgrader"), "autograde", assignment, "--student", student, "--force"]
    done = root / "autograded" / student / assignment / f"{assignment}.ipynb"
    for attempt in range(2):
        rc, log = _run_nbgrader(cmd, root, env, submission_timeout)
        if rc is None:
            return Result(student, assignment, "timeout", time.perf_counter() - t0,
                          f"ran past the {submission_timeout} s limit of a submission", flags)
        (work / "nbgrader.log").write_text(log)
        if rc == 0 and done.exists():
            return Result(student, assignment, "ok", time.perf_counter() - t0, "", flags)
        if not re.search(r"didn't respond|kernel_info|Kernel died before", log):
            break
    return Result(student, assignment, "error", time.perf_counter() - t0, _reason(log, rc), flags)


def merge(course, result: Result, work: Path) -> None:
    """Copy one graded submission (scores, comments, autograded notebook) into the course."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():  # nbgrader's own add_submission warns "not in session" (harmless)
        warnings.simplefilter("ignore")
        _merge(course, result, work, Gradebook)


def _merge(course, result, work, Gradebook) -> None:
    a, s = result.assignment, result.student
    with Gradebook(course.db_url, COURSE_ID) as gb:
        gb.update_or_create_student(s)
        if result.status != "ok":
            sub = gb.update_or_create_submission(a, s)
            for nb in sub.notebooks:
                for g in nb.grades:
                    g.auto_score, g.manual_score, g.needs_manual_grade = 0.0, None, False
                nb.flagged = True
            gb.db.commit()
            return
        with Gradebook(f"sqlite:///{work / 'root' / 'gradebook.db'}", COURSE_ID) as wb:
            wsub = wb.find_submission(a, s)
            sub = gb.update_or_create_submission(a, s, timestamp=wsub.timestamp)
            for wnb in wsub.notebooks:
                nb = gb.find_submission_notebook(wnb.name, a, s)
                nb.flagged = wnb.flagged or bool(result.flags)
                nb.late_submission_penalty = wnb.late_submission_penalty
                for wg in wnb.grades:
                    g = gb.find_grade(wg.name, wnb.name, a, s)
                    g.auto_score, g.manual_score = wg.auto_score, wg.manual_score
                    g.extra_credit, g.needs_manual_grade = wg.extra_credit, wg.needs_manual_grade
                for wc in wnb.comments:
                    cm = gb.find_comment(wc.name, wnb.name, a, s)
                    cm.auto_comment, cm.manual_comment = wc.auto_comment, wc.manual_comment
            gb.db.commit()
    dest = course.autograded_dir / s / a
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(work / "root" / "autograded" / s / a, dest)


def autograde(course, assignment: str, students=None, *, jobs: int | None = None,
              cell_timeout: int = 30, submission_timeout: int = 600, no_sandbox: bool = False,
              memory_gb: float = 8.0, progress=None) -> list[Result]:
    """Grade ``students`` (default: every ``submitted/<student>/<assignment>``), ``jobs`` at a time.

    Returns one :class:`Result` per submission, in the order of ``students``; writes each one's
    report to ``grading-reports/<assignment>/<student>.json``.
    """
    require_sandbox(no_sandbox)  # before any submission: a missing sandbox is not 0 points for all
    course.ensure_released(assignment)
    students = list(students) if students is not None else course.submissions(assignment)
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(students) or 1))
    threads = max(1, cores // jobs)
    # read in this thread: CPython 3.11's ast is not thread-safe ("AST constructor recursion depth
    # mismatch" when worker threads parse at once)
    flags = {s: review_flags(course, assignment, s) for s in students}
    tmp = Path(tempfile.mkdtemp(prefix="cg-"))  # short: unix socket paths must fit in 108 bytes
    try:
        def run(i_student):
            i, student = i_student
            try:
                r = grade_one(course, assignment, student, tmp / str(i), cell_timeout=cell_timeout,
                              submission_timeout=submission_timeout, threads=threads,
                              no_sandbox=no_sandbox, memory_gb=memory_gb, flags=flags[student])
            except Exception as e:  # a broken submission folder must not stop the batch
                r = Result(student, assignment, "error", 0.0, f"{type(e).__name__}: {e}", flags[student])
            if progress:
                progress(r)
            return r

        with ThreadPoolExecutor(jobs) as pool:
            results = list(pool.map(run, enumerate(students)))
        reports = course.root / "grading-reports" / assignment
        reports.mkdir(parents=True, exist_ok=True)
        for i, r in enumerate(results):  # one writer: the gradebook is sqlite
            merge(course, r, tmp / str(i))
            (reports / f"{r.student}.json").write_text(json.dumps(asdict(r), indent=1))
            log = tmp / str(i) / "nbgrader.log"
            if r.status != "ok" and log.exists():
                shutil.copy(log, reports / f"{r.student}.log")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results
