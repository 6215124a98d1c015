"""Prose explains, code judges: the slides' claims checked on this run's numbers.

A notebook's text cannot know what the student's run will print: a Colab student runs the ``gpu``
profile (another model, data and budget) and may see the opposite of what the ``cpu`` run saw. So
each claim of the slides is a line of code that prints its verdict with the numbers it rests on::

    claim("semi-hard mining beats random triplets on Recall@1",
          recall["semihard"] > recall["random"], semihard=recall["semihard"], random=recall["random"])
    # ✔ reproduced in this run: semi-hard mining beats random triplets on Recall@1  (semihard=0.412, random=0.377)

and each results table prints this run beside the reference run of the same profile (its data and
machine named) and the paper's number with its setting::

    compare({"semihard": {"R@1": 0.41}}, reference=reference_run("03_triplets_mining"),
            paper={"semihard": "FaceNet: 99.63 % LFW verification (Inception, 200 M images)"})

Reference runs live in ``course_lib/references/<notebook>.json``, one entry per profile::

    {"cpu": {"data": "CIFAR-10, 10k train / 2k test", "machine": "2-core VM, no GPU", "date": "2026-12",
             "numbers": {"semihard": {"R@1": 0.41}}, "claims": {"semi-hard mining beats ...": true}}}

written from an executed copy of the notebook: ``python scripts/run_notebooks.py --profile cpu
--update-references 02`` runs it with ``$COURSE_RECORD`` set, so that every :func:`claim` and
:func:`compare` of the run is also written to that JSON file, and then stores the record here.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

__all__ = ["Claim", "claim", "claims", "claims_summary", "forget_claims", "Reference", "reference_run",
           "compare"]

REFERENCES = Path(__file__).with_name("references")
_CLAIMS: list["Claim"] = []


def _record(numbers: Optional[Mapping] = None, claim: Optional["Claim"] = None) -> None:
    """With ``$COURSE_RECORD`` set (the reference-run recorder does it), add this table or verdict
    to that JSON file, so that a finished run can become the notebook's reference run."""
    path = os.environ.get("COURSE_RECORD")
    if not path:
        return
    path = Path(path)
    record = json.loads(path.read_text()) if path.exists() else {"numbers": {}, "claims": {}}
    for row, values in (numbers or {}).items():
        cells = record["numbers"].setdefault(str(row), {})
        for metric, value in values.items():
            try:
                cells[str(metric)] = round(float(value), 4)
            except (TypeError, ValueError):
                cells[str(metric)] = str(value)
    if claim is not None:
        record["claims"][claim.statement] = claim.holds
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False))


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "–"
    return f"{v:.{digits}g}" if abs(v) >= 10 ** digits or (v != 0 and abs(v) < 10 ** -digits) else f"{v:.{digits}f}"


# -------------------------------------------------------------------------------------- claims
@dataclass
class Claim:
    """One slide claim and its verdict on this run's numbers."""

    statement: str
    holds: bool
    numbers: dict = field(default_factory=dict)
    source: Optional[str] = None  # where the claim comes from: a deck's title, a paper
    reference: Optional[bool] = None  # the verdict of the reference run, when it judged this claim

    @property
    def verdict(self) -> str:
        return "reproduced in this run" if self.holds else "not reproduced in this run"

    def __str__(self) -> str:
        mark = "✔" if self.holds else "✘"
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        src = f" [{self.source}]" if self.source else ""
        ref = "" if self.reference is None else f"  [reference run: {'reproduced' if self.reference else 'not reproduced'}]"
        return f"{mark} {self.verdict}: {self.statement}{src}" + (f"  ({nums})" if nums else "") + ref

    def __bool__(self) -> bool:
        return self.holds


def claim(statement: str, holds, source: Optional[str] = None, reference: Optional["Reference"] = None,
          quiet: bool = False, **numbers) -> Claim:
    """Judge ``statement`` by ``holds`` (a bool computed from this run) and print the verdict:
    *reproduced in this run* or *not reproduced in this run*, with ``numbers`` beside it, and,
    given the notebook's ``reference`` run, that run's verdict on the same statement.

    ``holds`` may be a 0-dim tensor or numpy bool. Returns the :class:`Claim` (truthy when it holds),
    which is also remembered for :func:`claims_summary`.
    """
    if hasattr(holds, "item"):
        holds = holds.item()
    ref = reference.claims.get(str(statement)) if reference is not None else None
    c = Claim(str(statement), bool(holds), dict(numbers), source, ref)
    _CLAIMS.append(c)
    _record(claim=c)
    if not quiet:
        print(c)
    return c


def claims() -> list[Claim]:
    """Every claim judged so far in this session, in order."""
    return list(_CLAIMS)


def forget_claims() -> None:
    """Start a fresh list (a notebook's first cell may call it, so that re-running it does not
    count its claims twice)."""
    _CLAIMS.clear()


def claims_summary() -> str:
    """Print (and return) every claim judged so far, with a count of verdicts."""
    ok = sum(c.holds for c in _CLAIMS)
    lines = [f"{ok} of {len(_CLAIMS)} claims reproduced in this run"] + [f"  {c}" for c in _CLAIMS]
    text = "\n".join(lines)
    print(text)
    return text


# ----------------------------------------------------------------------------- reference runs
@dataclass
class Reference:
    """A finished run of a notebook that the course's authors made: its profile, data, machine and
    numbers ``{row: {metric: value}}``."""

    notebook: str
    profile: str
    data: str
    machine: str
    date: str = ""
    numbers: dict = field(default_factory=dict)
    claims: dict = field(default_factory=dict)  # {statement: verdict} of that run

    @property
    def label(self) -> str:
        return f"reference run ({self.profile} profile, {self.data}, {self.machine}{', ' + self.date if self.date else ''})"


def reference_run(notebook: str, profile: Optional[str] = None) -> Optional[Reference]:
    """The reference run of ``notebook`` (e.g. ``"03_triplets_mining"``) in ``profile`` (default the
    current one), or None when the course has none for that profile (then tables show this run and
    the paper only)."""
    from .config import PROFILE, resolve_profile

    profile = resolve_profile(profile or PROFILE)
    path = REFERENCES / f"{notebook}.json"
    if not path.exists():
        return None
    entry = json.loads(path.read_text()).get(profile)
    if entry is None:
        return None
    return Reference(notebook=notebook, profile=profile, data=entry.get("data", "?"),
                     machine=entry.get("machine", "?"), date=entry.get("date", ""),
                     numbers=entry.get("numbers", {}), claims=entry.get("claims", {}))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def compare(
    this_run: Mapping[str, Mapping[str, float]],
    reference: Optional[Reference] = None,
    paper: Optional[Mapping[str, str]] = None,
    metrics: Optional[Sequence[str]] = None,
    digits: int = 3,
    title: Optional[str] = None,
) -> str:
    """Print (and return) this run's table ``{row: {metric: value}}`` with, per metric, the reference
    run's value beside it (its profile, data and machine in the legend), and a last column with the
    paper's number and setting where ``paper[row]`` gives one."""
    metrics = list(metrics or dict.fromkeys(m for r in this_run.values() for m in r))
    ref = reference.numbers if reference is not None else {}
    header = ["", *[h for m in metrics for h in ([m, f"{m} (ref)"] if reference is not None else [m])]]
    if paper:
        header.append("paper (setting)")
    rows = []
    for name, values in this_run.items():
        cells = [name]
        for m in metrics:
            cells.append(_fmt(values.get(m, math.nan), digits))
            if reference is not None:
                cells.append(_fmt(ref.get(name, {}).get(m, math.nan), digits))
        if paper:
            cells.append(paper.get(name, ""))
        rows.append(cells)
    legend = [f"(ref) = {reference.label}"] if reference is not None else ["no reference run for this profile"]
    text = "\n".join(([title] if title else []) + [_table(header, rows)] + legend)
    _record(numbers=this_run)
    print(text)
    return text
