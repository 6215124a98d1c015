"""course_lib.report: claims judged in code, this run beside the reference run."""
import json
from pathlib import Path

import pytest
import torch

from course_lib import report
from course_lib.report import Reference, claim, claims, claims_summary, compare, forget_claims, reference_run


@pytest.fixture(autouse=True)
def fresh_claims():
    forget_claims()
    yield
    forget_claims()


def test_claim_prints_the_verdict_with_its_numbers(capsys):
    ok = claim("semi-hard beats random", 0.41 > 0.37, semihard=0.41, random=0.37)
    bad = claim("batch-hard collapses", torch.tensor(False), spread=0.8)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✔ reproduced in this run: semi-hard beats random  (semihard=0.410, random=0.370)"
    assert out[1] == "✘ not reproduced in this run: batch-hard collapses  (spread=0.800)"
    assert bool(ok) and not bool(bad) and claims() == [ok, bad]
    assert claims_summary().startswith("1 of 2 claims reproduced in this run")


def test_claim_shows_the_reference_runs_verdict(capsys):
    ref = Reference("03", "cpu", "CIFAR-10", "2-core VM", claims={"a beats b": False})
    claim("a beats b", True, reference=ref, a=1.0, b=0.5)
    claim("not judged there", True, reference=ref)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("[reference run: not reproduced]")
    assert "reference run" not in out[1]


def test_compare_puts_reference_and_paper_beside_this_run(capsys):
    ref = Reference("03", "cpu", "CIFAR-10 10k/2k", "2-core VM", date="2026-12",
                    numbers={"semihard": {"R@1": 0.4}})
    text = compare({"semihard": {"R@1": 0.45, "MAP@R": 0.1}, "random": {"R@1": 0.3}}, reference=ref,
                   paper={"semihard": "FaceNet 99.63 % LFW"})
    header, _, semihard, random_row, legend = text.splitlines()
    assert header.split() == ["R@1", "R@1", "(ref)", "MAP@R", "MAP@R", "(ref)", "paper", "(setting)"]
    assert semihard.split() == ["semihard", "0.450", "0.400", "0.100", "–", "FaceNet", "99.63", "%", "LFW"]
    assert random_row.split() == ["random", "0.300", "–", "–", "–"]
    assert legend == "(ref) = reference run (cpu profile, CIFAR-10 10k/2k, 2-core VM, 2026-12)"
    assert capsys.readouterr().out.rstrip("\n") == text


def test_reference_run_reads_the_profile_entry(tmp_path, monkeypatch):
    (tmp_path / "nb.json").write_text(json.dumps({"cpu": {"data": "D", "machine": "M", "numbers": {"x": {"m": 1}},
                                                          "claims": {"c": True}}}))
    monkeypatch.setattr(report, "REFERENCES", tmp_path)
    ref = reference_run("nb", profile="cpu")
    assert (ref.data, ref.machine, ref.numbers, ref.claims) == ("D", "M", {"x": {"m": 1}}, {"c": True})
    assert reference_run("nb", profile="gpu") is None
    assert reference_run("missing", profile="cpu") is None


def test_shipped_references_are_well_formed():
    """Every reference file names its data and machine, and its claims are booleans."""
    for path in report.REFERENCES.glob("*.json"):
        for profile, entry in json.loads(path.read_text()).items():
            assert profile in ("gpu", "cpu", "smoke"), path
            assert entry["data"] and entry["machine"], path
            assert all(isinstance(v, bool) for v in entry.get("claims", {}).values()), path


def test_a_run_with_COURSE_RECORD_writes_its_tables_and_verdicts(tmp_path, monkeypatch):
    import importlib.util
    record = tmp_path / "run.record.json"
    monkeypatch.setenv("COURSE_RECORD", str(record))
    report.forget_claims()
    report.compare({"semi-hard": {"R@1": 0.41234}})
    report.compare({"semi-hard": {"MAP@R": 0.2}, "random": {"R@1": 0.3}})
    report.claim("semi-hard beats random", True, quiet=True)
    report.claim("a claim that fails", False, quiet=True)
    saved = json.loads(record.read_text())
    assert saved["numbers"] == {"semi-hard": {"R@1": 0.4123, "MAP@R": 0.2}, "random": {"R@1": 0.3}}
    assert saved["claims"] == {"semi-hard beats random": True, "a claim that fails": False}

    # the recorder stores it as the notebook's reference for that profile, keeping other profiles
    spec = importlib.util.spec_from_file_location("run_notebooks", Path(__file__).parents[1] / "scripts" / "run_notebooks.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    (tmp_path / "course_lib" / "references").mkdir(parents=True)
    (tmp_path / "course_lib" / "references" / "99_x.json").write_text(json.dumps({"gpu": {"data": "full"}}))
    path = runner.update_reference(record, "99_x", "cpu", "CIFAR-10, 10k / 2k", "2-core VM")
    monkeypatch.setattr(report, "REFERENCES", path.parent)
    ref = report.reference_run("99_x", "cpu")
    assert ref.numbers["semi-hard"]["R@1"] == 0.4123 and ref.claims["a claim that fails"] is False
    assert (ref.data, ref.machine) == ("CIFAR-10, 10k / 2k", "2-core VM")
    assert json.loads(path.read_text())["gpu"] == {"data": "full"}
    report.forget_claims()


def test_without_COURSE_RECORD_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    monkeypatch.chdir(tmp_path)
    report.claim("x", True, quiet=True)
    report.compare({"a": {"m": 1.0}})
    assert list(tmp_path.iterdir()) == []
    report.forget_claims()
