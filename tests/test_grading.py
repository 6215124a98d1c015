"""The grading tools' parts, without a full nbgrader run (that is tests/test_autograde_e2e.py)."""
import json
import subprocess

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import require_sandbox
from course_lib.grading import sandbox
from course_lib.grading.collect import match_submission
from course_lib.grading.mutants import mutants, run_cells
from course_lib.grading.preprocessors import ArmTests, CheckTests, StripHiddenTests, strip_hidden
from course_lib.grading.scan import scan_notebook, scan_source


@pytest.mark.parametrize("path, student, file_id", [
    ("/x/extracted/smithjane_12345_678910_a1_distances_contrastive.ipynb", "smithjane", "a1_distances_contrastive.ipynb"),
    ("/x/extracted/smithjane_late_12345_678910_a1_distances_contrastive-1.ipynb", "smithjane", "a1_distances_contrastive.ipynb"),
    ("/x/extracted/dl/Jane Smith_4321_assignsubmission_file_/a2_triplets_mining.ipynb", "4321", "a2_triplets_mining.ipynb"),
    ("/x/extracted/dl/jsmith/a3_infonce_simclr_moco.ipynb", "jsmith", "a3_infonce_simclr_moco.ipynb"),
])
def test_collector_reads_the_student_of_each_lms_layout(path, student, file_id):
    assert match_submission(path) == {"student_id": student, "file_id": file_id}


def test_collector_skips_a_file_without_a_student():
    assert match_submission("notes.ipynb") is None


@pytest.mark.parametrize("code, flag", [
    ("torch.allclose = lambda *a, **k: True", "replaces torch.allclose"),
    ("import builtins\nbuiltins.abs = len", "replaces builtins.abs"),
    ("get_ipython().set_custom_exc((Exception,), None)", "IPython"),
    ("from course_lib.losses import nt_xent_loss", "course's reference"),
    ("import os\nos._exit(0)", "exits the kernel"),
    ("print(open('/etc/passwd').read())", "opens files"),
    ("while True:\n    pass", "endless loop"),
    ("def f(:", "syntax error"),
])
def test_scan_flags_code_that_reaches_for_the_grader(code, flag):
    assert any(flag in f for f in scan_source(code)), scan_source(code)


def test_scan_leaves_ordinary_answers_alone(tmp_path):
    answer = "def f(x):\n    d = (x[:, None] - x[None]).pow(2).sum(-1)\n    return d.clamp_min(0).sqrt().mean()"
    assert scan_source(answer) == []
    released = new_notebook(cells=[new_code_cell("import torch"), new_code_cell("raise NotImplementedError()")])
    submitted = new_notebook(cells=[new_code_cell("import torch"), new_code_cell("import socket")])
    nbformat.write(released, tmp_path / "r.ipynb")
    nbformat.write(submitted, tmp_path / "s.ipynb")
    assert scan_notebook(tmp_path / "s.ipynb", tmp_path / "r.ipynb") == ["opens network connections (import socket)"]
    assert scan_notebook(tmp_path / "missing.ipynb") == ["no notebook submitted"]


def test_strip_hidden_removes_every_hidden_region_and_keeps_the_rest():
    src = "a = 1\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nb = 2\n    # BEGIN HIDDEN TESTS\nmore()\n    # END HIDDEN TESTS"
    assert strip_hidden(src) == "a = 1\nb = 2"


def _test_cell(source, outputs=()):
    cell = new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False, "locked": True,
                                                        "grade_id": "test_f", "points": 2, "schema_version": 3}})
    cell.outputs = list(outputs)
    return cell


def _run_token_check(printed: bool, error: bool = False, before: str = "ok\n"):
    nb = new_notebook(cells=[_test_cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS")])
    resources = {}
    nb, resources = ArmTests().preprocess(nb, resources)
    armed = nb.cells[0].source
    token = armed.splitlines()[-1][len("print('"):-2]
    assert armed.startswith("assert f(1) == 2") and token.startswith("course-grader-")
    outs = []
    if printed:
        outs.append(nbformat.v4.new_output("stream", name="stdout", text=f"{before}{token}\n"))
    if error:
        outs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="f(2) should be 4",
                                           traceback=["File <cell>, line 3", "assert f(2) == 4  # hidden"]))
    nb.cells[0].outputs = outs
    nb, resources = CheckTests().preprocess(nb, resources)
    nb, resources = StripHiddenTests().preprocess(nb, resources)
    return nb.cells[0], token


def test_a_test_cell_that_ran_to_its_end_keeps_its_outputs_without_the_token():
    cell, token = _run_token_check(printed=True)
    assert cell.source == "assert f(1) == 2" and token not in json.dumps(cell)
    assert [o.output_type for o in cell.outputs] == ["stream"] and cell.outputs[0].text == "ok\n"


def test_a_long_output_is_capped_without_costing_the_cell_its_points():
    """A student's debug print inside a graded function must not push the token out of the cap."""
    cell, _ = _run_token_check(printed=True, before="x" * 100_000 + "\n")
    assert not [o for o in cell.outputs if o.output_type == "error"]
    assert len(cell.outputs[0].text) < 21_000 and cell.outputs[0].text.endswith("truncated by the grader ...\n")


def test_a_test_cell_without_its_token_fails():
    """A dead kernel, a timeout or swallowed exceptions leave no token: the cell gets an error."""
    cell, _ = _run_token_check(printed=False)
    assert [o.ename for o in cell.outputs if o.output_type == "error"] == ["GradingError"]


def test_a_failed_hidden_test_keeps_its_message_not_its_code():
    cell, _ = _run_token_check(printed=False, error=True)
    err = [o for o in cell.outputs if o.output_type == "error"]
    assert len(err) == 1 and err[0].traceback == ["AssertionError: f(2) should be 4"]
    assert "f(2) == 4" not in json.dumps(cell)


def test_the_sandbox_works_here():
    require_sandbox()
    assert sandbox.bwrap_problem() is None


def test_the_sandboxed_kernel_sees_only_its_folder(tmp_path):
    require_sandbox()
    sock = tmp_path / "s"
    sock.mkdir()
    spec = sandbox.write_kernelspec(tmp_path / "k", sock, memory_gb=8)
    launcher = spec / "kernels" / sandbox.KERNEL_NAME / "launch.sh"
    # the launcher's confinement, run with a plain python instead of the kernel
    text = launcher.read_text().replace('-m ipykernel_launcher -f "$1"', '-c "$1"')
    probe = tmp_path / "probe.sh"
    probe.write_text(text)
    probe.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "gradebook.db"
    secret.write_text("hidden")
    code = ("import os, socket\n"
            f"print(os.path.exists({str(secret)!r}), os.path.exists({str(tmp_path / 'k')!r}))\n"
            "open('mine.txt', 'w').write('ok')\n"
            "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('net')\n"
            "except OSError: print('no net')\n"
            "try:\n    import course_lib; print('course_lib')\nexcept ImportError: print('no course_lib')\n")
    out = subprocess.run([str(probe), code], cwd=work, capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:3] == ["False False", "no net", "no course_lib"], out.stdout + out.stderr
    assert (work / "mine.txt").read_text() == "ok"


def test_without_bubblewrap_the_grader_refuses_unless_told(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="--no-sandbox"):
        sandbox.write_kernelspec(tmp_path / "k", tmp_path)
    spec = sandbox.write_kernelspec(tmp_path / "k", tmp_path, no_sandbox=True)
    kernel = json.loads((spec / "kernels" / sandbox.KERNEL_NAME / "kernel.json").read_text())
    assert "NOT sandboxed" in kernel["display_name"] and kernel["interrupt_mode"] == "message"


def test_without_bubblewrap_autograde_refuses_before_grading_anyone(tmp_path, monkeypatch):
    from course_lib.grading import Course

    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "submitted" / "alice" / "a1").mkdir(parents=True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        Course(tmp_path).autograde("a1")
    assert not (tmp_path / "gradebook.db").exists() and not (tmp_path / "grading-reports").exists()


def test_mutants_make_the_mistakes_students_make():
    src = ("def f(x, y):\n    \"\"\"Doc 2.\"\"\"\n"
           "    d = F.normalize(x) - y.detach()\n    return d.clamp(min=0).mean() * 0.5\n")
    labels = [label for label, _ in mutants(src)]
    for kind in ("Sub -> Add", "drop normalize()", "drop detach()", "drop clamp()", "mean -> sum",
                 "constant 0.5 changed", "return value negated"):
        assert any(kind in label for label in labels), (kind, labels)
    assert not any("Doc" in m for _, m in mutants(src))  # the docstring is not mutated


def test_run_cells_makes_sources_inspectable():
    ns = run_cells(["import inspect\ndef g(x):\n    return x + 1\n", "src = inspect.getsource(g)"])
    assert ns["src"].startswith("def g(x):")
