"""The grading kernel: a Jupyter kernel for student code, confined by bubblewrap.

nbgrader runs every submission in a kernel of its own choosing; this module writes the kernelspec it
chooses. The *kernel* is sandboxed, not the grader: the nbgrader process keeps its gradebook, the
source notebooks and the network, and talks to the kernel over unix sockets (the ``ipc`` transport)
in one directory that both sides see.

What the sandbox gives a submission (``bwrap`` from the Debian package ``bubblewrap``):

* read-only: the system (``/usr``, ``/etc``, ``/lib*``), the Python installation and the virtual
  environment -- nothing else of the course's directory, so neither ``solutions/`` nor the gradebook
  nor ``course_lib`` (an editable install points outside the environment);
* writable: its own working directory (the copy of its submission being graded), a private ``/tmp``
  and the socket directory;
* no network (a new network namespace has only a loopback that is down), no System V IPC, its own
  hostname; the kernel dies with the grader (``--die-with-parent``);
* limits: an address space of ``memory_gb`` (torch's import alone takes ~3.2 GB of it; an allocation
  beyond the limit raises in one cell instead of waking the OOM killer), ``cpu_seconds`` of CPU, and
  ``threads`` BLAS/OpenMP threads so that parallel workers do not oversubscribe the cores.

What it does not give: it is not a VM. The kernel shares the machine's kernel and its process table
(no pid namespace: interrupts go as messages, and ``kill`` of other processes of the same user is not
prevented), and it can read world-readable system files under ``/etc`` and ``/usr``.

``no_sandbox=True`` keeps the limits and drops the confinement: for a machine without bubblewrap,
when the instructor trusts the submissions.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

KERNEL_NAME = "course-grader"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this machine."""


def bwrap_problem() -> str | None:
    """Why the sandbox cannot run here, or None when it can (bwrap exists and works)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return ("bubblewrap (bwrap) is not installed: run scripts/install_system_packages.sh "
                "(Debian/Ubuntu: apt-get install bubblewrap)")
    probe = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-net", "--dev", "/dev", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create a sandbox here: {probe.stderr.strip() or probe.returncode}"
    return None


def require_sandbox(no_sandbox: bool = False) -> None:
    """Raise :class:`SandboxUnavailable` unless bwrap works here or ``no_sandbox`` is given."""
    problem = None if no_sandbox else bwrap_problem()
    if problem:
        raise SandboxUnavailable(problem + "\n(to grade without confinement, which lets "
                                 "submissions read the gradebook and solutions, pass --no-sandbox)")


def _system_binds() -> list[str]:
    """Read-only binds of the system directories (symlinks such as Debian's /bin -> usr/bin kept)."""
    args: list[str] = []
    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"):
        p = Path(d)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            args += ["--ro-bind", d, d]
    return args


def _python_dirs() -> list[str]:
    """The interpreter's installation and the virtual environment (both read-only in the sandbox)."""
    dirs = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix}
    exe = os.path.realpath(sys.executable)
    dirs.add(os.path.dirname(os.path.dirname(exe)))
    return sorted(d for d in dirs if d not in ("/usr", "/") and os.path.isdir(d))


def bwrap_command(socket_dir: str | os.PathLike) -> list[str]:
    """The bwrap argv up to ``--`` (the working directory is bound by the launcher at start)."""
    args = ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--hostname", "grader", *_system_binds()]
    for d in _python_dirs():
        args += ["--ro-bind", d, d]
    sock = os.path.realpath(socket_dir)
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm",
             "--bind", sock, sock]
    return args


LAUNCHER = """#!/bin/bash
# The course's grading kernel (written by course_lib.grading.sandbox; edit that, not this).
# $1: the kernel's connection file. The working directory is the submission's.
ulimit -v {memory_kb}
ulimit -t {cpu_seconds}
ulimit -f {file_kb}
# if memory runs out anyway, the machine's OOM killer takes the kernel, not the grader
echo 1000 > /proc/self/oom_score_adj 2>/dev/null || true
here="$(pwd -P)"
exec env -i PATH={path} HOME=/tmp LANG=C.UTF-8 MPLBACKEND=Agg MPLCONFIGDIR=/tmp \\
    OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} \\
    COURSE_GRADING=1 PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \\
    {confine}{python} -m ipykernel_launcher -f "$1"
"""


def write_kernelspec(dest: str | os.PathLike, socket_dir: str | os.PathLike, *, threads: int = 1,
                     memory_gb: float = 8.0, cpu_seconds: int = 600, no_sandbox: bool = False) -> Path:
    """Write ``<dest>/kernels/course-grader/`` (kernel.json + launch.sh); return ``dest``.

    Put ``dest`` on ``JUPYTER_PATH`` and set ``Execute.kernel_name = "course-grader"``; the kernel
    manager must use the ``ipc`` transport with sockets in ``socket_dir`` (see ``grader_config``).
    Raises :class:`SandboxUnavailable` unless bwrap works here or ``no_sandbox`` is given.
    """
    require_sandbox(no_sandbox)
    if not no_sandbox:
        confine = " ".join(shlex.quote(a) for a in bwrap_command(socket_dir))
        confine += ' --bind "$here" "$here" --chdir "$here" -- '
    else:
        confine = ""
    spec = Path(dest) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    launcher = spec / "launch.sh"
    launcher.write_text(LAUNCHER.format(
        memory_kb=int(memory_gb * 1024 * 1024), cpu_seconds=int(cpu_seconds), file_kb=256 * 1024,
        path=shlex.quote(f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"), threads=int(threads),
        confine=confine, python=shlex.quote(sys.executable)))
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(launcher), "{connection_file}"],
        "display_name": "Python 3 (course grader, sandboxed)" if not no_sandbox
        else "Python 3 (course grader, NOT sandboxed)",
        "language": "python",
        # signals cannot cross into bwrap's child reliably: interrupts go as messages
        "interrupt_mode": "message",
    }, indent=1))
    return Path(dest)
