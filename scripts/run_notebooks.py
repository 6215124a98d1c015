"""Execute the course's notebooks headless in one profile and keep the executed copies.

    python scripts/run_notebooks.py --profile cpu            # every notebook, into executed/cpu/
    python scripts/run_notebooks.py --profile smoke 00 01    # only the chapters named
    python scripts/run_notebooks.py --profile cpu --update-references 02   # ... and make it the reference run

`make notebooks PROFILE=cpu` calls this. It prints each notebook's wall time; the executed copies,
figures included, land in a git-ignored folder so that a maintainer can look at the real cpu/gpu
runs, which are too slow for CI. The test suite uses :func:`execute_notebook` in the smoke profile.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def notebook_paths(selection=()) -> list[Path]:
    """The chapters in order; ``selection`` filters by prefix (``"01"``) or name."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if selection:
        paths = [p for p in paths if any(p.name.startswith(s) or p.stem == s for s in selection)]
    return paths


@contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_notebook(path: Path, profile: str, out_dir: Path | None = None, timeout: int = 1800,
                     extra_env: dict | None = None):
    """Run ``path`` top to bottom in a fresh kernel with ``COURSE_PROFILE=profile``.

    Returns ``(executed notebook, seconds)``; raises nbclient's ``CellExecutionError`` on the
    first failing cell. The kernel runs from the notebook's folder, as JupyterLab would.
    """
    nb = nbformat.read(path, as_version=4)
    env = {"COURSE_PROFILE": profile, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "TQDM_MININTERVAL": "5", **(extra_env or {})}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with _env(**env):
        try:
            client.execute()
        finally:
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, out_dir / path.name)
    return nb, time.perf_counter() - start


def update_reference(record_path: Path, notebook: str, profile: str, data: str, machine: str) -> Path:
    """Store the record of one executed run (every ``compare`` table and ``claim`` verdict it
    printed) as ``course_lib/references/<notebook>.json[profile]``; other profiles are kept."""
    record = json.loads(record_path.read_text())
    path = ROOT / "course_lib" / "references" / f"{notebook}.json"
    entries = json.loads(path.read_text()) if path.exists() else {}
    entries[profile] = {"data": data, "machine": machine, "date": datetime.date.today().isoformat(),
                        "numbers": record["numbers"], "claims": record["claims"]}
    path.write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="prefixes such as 00 01 (default: all)")
    parser.add_argument("--profile", default=os.environ.get("COURSE_PROFILE") or "cpu",
                        choices=["gpu", "cpu", "smoke"])
    parser.add_argument("--out", type=Path, default=None, help="default: executed/<profile>/")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--update-references", action="store_true",
                        help="store each run's tables and claims as the notebook's reference run")
    parser.add_argument("--data", default="CIFAR-10 (project JPEG copy)", help="data named in the reference")
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core x86 VM, no GPU",
                        help="machine named in the reference")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "executed" / args.profile
    paths = notebook_paths(args.chapters)
    if not paths:
        print(f"no notebook matches {args.chapters}", file=sys.stderr)
        return 2
    failed = []
    for path in paths:
        print(f"{path.name:<32} ...", end=" ", flush=True)
        record = out / f"{path.stem}.record.json"
        record.unlink(missing_ok=True)
        extra = {"COURSE_RECORD": record} if args.update_references else {}
        try:
            _, seconds = execute_notebook(path, args.profile, out, args.timeout, extra_env=extra)
            print(f"{seconds:7.1f} s")
            if args.update_references:
                print("  reference:", update_reference(record, path.stem, args.profile, args.data, args.machine))
        except Exception as err:  # keep going: report every broken chapter at once
            failed.append(path.name)
            print(f"FAILED ({type(err).__name__})")
            print(str(err)[-3000:], file=sys.stderr)
    print(f"executed copies in {out}")
    if failed:
        print(f"{len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
