"""nbgrader preprocessors that close the holes of nbgrader 0.9's autograding pipeline.

* :class:`RestoreCells` (before ``OverwriteCells``): every cell of the source that a submission
  deleted is put back where it was -- test cells (otherwise they are silently not graded) and answer
  cells (with the release's stub), also when neighbours were deleted too (nbgrader's own
  ``add_missing_cells`` fails on that).
* :class:`ArmTests` (before ``Execute``) and :class:`CheckTests` (after it): each test cell gets a
  last line that prints a random token; a test cell whose token did not come out did not run to its
  end -- the kernel died (``os._exit``, a CPU or memory limit), the cell timed out, or the
  submission swallowed the exception -- and gets an error output, so it scores 0 (nbgrader counts a
  cell without output as passed, upstream #427). Fail-closed: tampering with printing or with
  exceptions can only lose points.
* :class:`SafeExecute`: nbgrader's ``Execute``, except that a kernel that dies (``os._exit``, a
  limit) ends the run of that notebook instead of failing the whole submission: the cells before it
  keep their results, the cell and those after it run no more (and fail, through the tokens).
* :class:`StripHiddenTests` (last): the hidden tests' source, and tracebacks that would quote it,
  are removed from the autograded notebook, from which feedback is generated (upstream #917/#1363).
  An error output keeps its type and message (the message says what is wrong), not the code.
* Every output is capped at ``max_chars`` (nbgrader limits lines, not a megabyte on one line).
"""
from __future__ import annotations

import re
import secrets

from nbformat.notebooknode import NotebookNode
from traitlets import Integer

from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbclient.exceptions import DeadKernelError

HIDDEN = re.compile(r"^[ \t]*#+[ \t]*BEGIN HIDDEN TESTS.*?^[ \t]*#+[ \t]*END HIDDEN TESTS[^\n]*\n?",
                    re.S | re.M)
_KEY = "course_grader"


def is_test_cell(cell) -> bool:
    """An autograded test cell: a code grade cell that is not an answer."""
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def strip_hidden(source: str) -> str:
    """``source`` without its ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions."""
    return HIDDEN.sub("", source).rstrip("\n")


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An error output as the kernel would give it (nbgrader scores a cell holding one as 0)."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


class RestoreCells(NbGraderPreprocessor):
    """Re-insert the source's nbgrader cells that the submission lacks, in the source's order."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            source = gb.find_notebook(info["notebook"], info["assignment"])
            wanted = [(c.name, c.cell_type, c.source, c.locked) for c in source.source_cells]
            graded = {c.name: c.max_score for c in source.grade_cells}
            answers = {c.name for c in source.solution_cells}
        present = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
        at = 0  # insert after the last present source cell seen so far
        for name, cell_type, src, locked in wanted:
            if name in present:
                at = present[name] + 1
                continue
            self.log.warning("cell %s was deleted from the submission: restored", name)
            meta = {"grade": name in graded, "solution": name in answers, "locked": bool(locked),
                    "grade_id": name, "schema_version": 3}
            if name in graded:
                meta["points"] = graded[name]
            text = src  # the gradebook keeps the release's version: an answer cell comes back as its stub
            cell = NotebookNode(id=secrets.token_hex(4), cell_type=cell_type, metadata=NotebookNode(nbgrader=NotebookNode(meta)),
                                source=text)
            if cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            nb.cells.insert(at, cell)
            present = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
            at = present[name] + 1
        return nb, resources


class SafeExecute(Execute):
    """Execute, but a dead kernel stops this notebook's run rather than the submission's grading."""

    def preprocess(self, nb, resources=None, km=None):
        self._dead = False
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._dead or cell.cell_type != "code":
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead = True
            self.log.warning("the kernel died in cell %d: the cells after it are not run", index)
            cell.outputs.append(error_output(
                "DeadKernelError", "the kernel died while running this cell (os._exit, a crash, or "
                "the sandbox's memory or CPU limit); the cells below were not run"))
            return cell, resources


class ArmTests(NbGraderPreprocessor):
    """Append ``print(<token>)`` to every test cell; remember the tokens for :class:`CheckTests`."""

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            token = "course-grader-" + secrets.token_hex(16)
            resources.setdefault(_KEY, {})[index] = (token, cell.source)
            cell.source = cell.source + f"\nprint({token!r})"
        return cell, resources


class CheckTests(NbGraderPreprocessor):
    """Fail every armed test cell whose token did not print; restore sources; cap outputs."""

    max_chars = Integer(20_000, help="longest text of one output").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        armed = resources.get(_KEY, {}).get(index)
        if armed:  # the token first: capping a long output must not cut it off
            token, cell.source = armed
            seen = False
            for out in cell.outputs:
                if out.get("output_type") == "stream" and token in out.text:
                    seen = True
                    out.text = out.text.replace(token + "\n", "").replace(token, "")
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and not o.text)]
            if not seen and not any(o.get("output_type") == "error" for o in cell.outputs):
                cell.outputs.append(error_output(
                    "GradingError", "the tests of this cell did not run to their end (the kernel died "
                    "or timed out, or the submission interfered with the tests)"))
        for out in cell.outputs:
            if out.get("output_type") == "stream" and len(out.text) > self.max_chars:
                out.text = out.text[: self.max_chars] + "\n... output truncated by the grader ...\n"
        return cell, resources


class StripHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests and the tracebacks that could quote them from the autograded notebook."""

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell) and HIDDEN.search(cell.source):
            cell.source = strip_hidden(cell.source)
            for out in cell.outputs:
                if out.get("output_type") == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources
