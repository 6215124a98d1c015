"""How strong are the hidden tests? Mutation testing of an assignment's solutions.

Each graded function's answer is mutated the way students get it wrong -- a flipped sign or
operator, mean for sum, a dropped clamp / relu / normalisation / ``.detach()``, a changed constant,
a transpose, ``<`` for ``<=`` in a mask -- one change at a time. A mutant that changes the function's
output on the inputs the tests use must make that function's test cell fail: the kill rate is the
share of those that do. Mutants that compute the same values (an equivalent rewrite) are not counted.

Runs in this process, without nbgrader or a sandbox: the cells are the instructor's own.
``python -m course_lib.grading mutants ID`` prints the survivors.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import linecache
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

SWAP_OPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}
SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq}
SWAP_CALLS = {"mean": "sum", "sum": "mean", "max": "min", "min": "max", "amax": "amin", "amin": "amax",
              "logsumexp": "amax", "log_softmax": "softmax", "sqrt": "abs", "exp": "abs", "log": "abs"}
DROP_CALLS = {"clamp", "clamp_min", "clamp_max", "relu", "normalize", "detach", "t", "abs", "sqrt",
              "triu", "tril", "fill_diagonal_", "masked_fill", "where", "float", "neg", "exp", "log"}


def cells_by_id(nb: dict) -> dict:
    """``{grade_id: source}`` of a notebook's nbgrader cells."""
    out = {}
    for c in nb["cells"]:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid:
            out[gid] = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    return out


def graded_functions(nb: dict) -> list[str]:
    """The graded functions: answer cells ``f`` with a test cell ``test_f``."""
    ids = cells_by_id(nb)
    return [g for g in ids if f"test_{g}" in ids]


def run_cells(sources, ns: dict | None = None) -> dict:
    """Execute cell sources in ``ns`` (registered in linecache so that ``inspect.getsource`` works)."""
    ns = {"__name__": "__main__"} if ns is None else ns
    for i, src in enumerate(sources):
        name = f"<cell-{abs(hash(src))}-{i}>"
        linecache.cache[name] = (len(src), None, src.splitlines(True), name)
        exec(compile(src, name, "exec"), ns)
    return ns


class _Mutator(ast.NodeTransformer):
    """Apply the ``k``-th possible mutation of a tree (counting them all as it goes)."""

    def __init__(self, k):
        self.k, self.seen, self.label = k, 0, None

    def _hit(self, label) -> bool:
        self.seen += 1
        if self.seen - 1 == self.k:
            self.label = label
            return True
        return False

    def visit_BinOp(self, node):
        self.generic_visit(node)
        new = SWAP_OPS.get(type(node.op))
        if new and self._hit(f"{type(node.op).__name__} -> {new.__name__} (line {node.lineno})"):
            node.op = new()
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, (ast.USub, ast.Invert, ast.Not)) and self._hit(
                f"drop {type(node.op).__name__} (line {node.lineno})"):
            return node.operand
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        new = SWAP_CMP.get(type(node.ops[0]))
        if new and self._hit(f"{type(node.ops[0]).__name__} -> {new.__name__} (line {node.lineno})"):
            node.ops[0] = new()
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool) and self._hit(
                f"constant {node.value!r} changed (line {node.lineno})"):
            return ast.copy_location(ast.Constant(node.value * 2 if node.value not in (0, 1) else node.value + 1), node)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr in ("T", "mT") and self._hit(f"drop .{node.attr} (line {node.lineno})"):
            return node.value
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name in SWAP_CALLS and self._hit(f"{name} -> {SWAP_CALLS[name]} (line {node.lineno})"):
            if isinstance(f, ast.Attribute):
                f.attr = SWAP_CALLS[name]
            else:
                f.id = SWAP_CALLS[name]
            return node
        if name in DROP_CALLS and self._hit(f"drop {name}() (line {node.lineno})"):
            if isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name) and f.value.id in ("torch", "F")):
                return f.value  # x.clamp(min=0) -> x
            if node.args:
                return node.args[0]  # F.normalize(x) -> x
        return node

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is not None and self._hit(f"return value negated (line {node.lineno})"):
            node.value = ast.UnaryOp(op=ast.USub(), operand=node.value)
        return node


def mutants(source: str, limit: int = 200) -> list[tuple[str, str]]:
    """Every single-change mutant of ``source`` (an answer cell): ``[(label, mutated source)]``."""
    tree = ast.parse(source)
    for node in ast.walk(tree):  # docstrings and type hints are not the algorithm
        if isinstance(node, ast.FunctionDef):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                node.body = node.body[1:] or [ast.Pass()]
            node.returns = None
    out = []
    for k in range(limit):
        m = _Mutator(k)
        new = m.visit(copy.deepcopy(tree))
        if m.label is None:
            break
        try:
            out.append((m.label, ast.unparse(ast.fix_missing_locations(new))))
        except Exception:  # an unparseable rewrite is not a mutant
            continue
    return out


def _signature(value) -> list[torch.Tensor]:
    """The tensors a call produced or changed (its result, its modules' states), for comparison."""
    if isinstance(value, torch.Tensor):
        return [value.detach().double()]
    if isinstance(value, torch.nn.Module):
        return [t.detach().double() for t in value.state_dict().values()]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _signature(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _signature(v)]
    return [torch.tensor(float(value))] if isinstance(value, (int, float)) else []


def _same(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape or not torch.allclose(x, y, atol=1e-6, rtol=1e-5, equal_nan=True):
            return False
    return True


@dataclass
class Report:
    function: str
    changed: int = 0
    killed: int = 0
    survivors: list = field(default_factory=list)
    killed_mutants: list = field(default_factory=list)  # (label, source) of the killed ones

    @property
    def rate(self) -> float:
        return self.killed / self.changed if self.changed else 1.0


def _copy(v):
    """A deep copy that also takes non-leaf tensors (as fresh leaves with the same requires_grad)."""
    if isinstance(v, torch.Tensor):
        return v.detach().clone().requires_grad_(v.requires_grad and v.is_floating_point())
    if isinstance(v, (list, tuple)):
        return type(v)(_copy(x) for x in v)
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    try:
        return copy.deepcopy(v)
    except Exception:
        return v


def _calls(setup: str, answer: str, test: str, fn: str) -> list:
    """The inputs the test cell gives ``fn`` (the solution's run, recorded)."""
    ns = run_cells([setup, answer])
    real, calls = ns[fn], []

    def record(*args, **kw):
        if len(calls) < 40:
            calls.append(_copy((args, kw)))
        return real(*args, **kw)

    record.__wrapped__ = real
    ns[fn] = record
    try:
        run_cells([test], ns)
    except AssertionError:  # the _no_loops check reads the recorder's source; values still recorded
        pass
    return calls


def _outputs(ns, fn, calls):
    out = []
    for args, kw in calls:
        args, kw = _copy((args, kw))
        try:
            result = ns[fn](*args, **kw)
            out.append(_signature(result) + _signature(list(args)) + _signature(kw))
        except Exception as e:
            out.append(type(e).__name__)
    return out


def kill_report(notebook, function: str) -> Report:
    """Mutate ``function``'s answer in a solutions notebook and run its test cell on each mutant."""
    nb = json.loads(Path(notebook).read_text())
    ids = cells_by_id(nb)
    setup, answer, test = ids.get("setup", ""), ids[function], ids[f"test_{function}"]
    run_cells([setup, answer, test])  # the solution passes its own tests, or no kill means anything
    calls = _calls(setup, answer, test, function)
    reference = _outputs(run_cells([setup, answer]), function, calls)
    report = Report(function)
    for label, src in mutants(answer):
        try:
            ns = run_cells([setup, src])
        except Exception:  # the mutant does not even define the function: its test cell fails
            report.changed += 1
            report.killed += 1
            continue
        outs = _outputs(ns, function, calls)
        if all(_same(o, r) if not isinstance(o, str) and not isinstance(r, str) else o == r
               for o, r in zip(outs, reference)):
            continue  # equivalent on the tests' inputs
        report.changed += 1
        try:
            run_cells([test], ns)
            report.survivors.append(label)
        except Exception:
            report.killed += 1
            report.killed_mutants.append((label, src))
    return report


@contextlib.contextmanager
def _as_in_a_kernel():
    """The tests' check that no reference library is loaded reads sys.modules: this process has
    course_lib loaded (it runs this code), a grading kernel has not. Hide them while tests run."""
    hidden = {k: v for k, v in sys.modules.items()
              if k.split(".")[0] in ("course_lib", "pytorch_metric_learning", "lightly")}
    for k in hidden:
        del sys.modules[k]
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.modules.update(hidden)


def kill_rates(notebook) -> list[Report]:
    """:func:`kill_report` for every graded function of a solutions notebook (tests' prints hidden)."""
    nb = json.loads(Path(notebook).read_text())
    with _as_in_a_kernel():
        return [kill_report(notebook, f) for f in graded_functions(nb)]
