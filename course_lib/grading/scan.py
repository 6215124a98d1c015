"""Flag submissions for a human look: code that reaches for the grader rather than the exercise.

The hidden tests do not trust what a submission can replace and the kernel is sandboxed, so none of
this earns points; the flags are for the instructor (the grades CSV's ``review`` column, and
nbgrader's "flagged" mark). Cells left as released are not read.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

MODULES = {"torch", "F", "nn", "np", "numpy", "math", "builtins", "sys", "os", "inspect", "ast",
           "IPython", "linecache", "unittest", "pytest", "subprocess", "socket", "importlib"}
CALLS = {
    "get_ipython": "uses the IPython shell (hooks, custom exception handlers)",
    "exec": "executes generated code", "eval": "evaluates generated code",
    "__import__": "imports by name at run time", "setattr": "sets attributes by name",
    "open": "opens files", "_exit": "exits the kernel", "system": "runs shell commands",
}
IMPORTS = {"course_lib": "imports the course's reference", "subprocess": "starts processes",
           "socket": "opens network connections", "urllib": "opens network connections",
           "requests": "opens network connections", "ctypes": "calls C directly",
           "pytorch_metric_learning": "imports a reference library", "lightly": "imports a reference library"}


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def scan_source(source: str) -> list[str]:
    """The reasons to look at one cell's code (empty when none)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"syntax error (line {e.lineno})"]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) in MODULES:
                    found.append(f"replaces {ast.unparse(t)}")
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in CALLS:
                found.append(f"{CALLS[name]} ({ast.unparse(f)})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                if n.split(".")[0] in IMPORTS:
                    found.append(f"{IMPORTS[n.split('.')[0]]} (import {n})")
        elif isinstance(node, (ast.While,)) and isinstance(node.test, ast.Constant) and node.test.value:
            found.append("an endless loop (while True)")
    return sorted(set(found))


def _sources(path) -> list[str]:
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c.get("cell_type") == "code"]


def scan_notebook(path, release=None) -> list[str]:
    """The review flags of a submitted notebook: code cells that differ from the ``release``'s.

    A missing or unreadable file is a flag too.
    """
    path = Path(path)
    if not path.exists():
        return ["no notebook submitted"]
    try:
        sources = _sources(path)
    except (ValueError, KeyError, TypeError) as e:
        return [f"not a readable notebook ({type(e).__name__})"]
    given = set(_sources(release)) if release is not None and Path(release).exists() else set()
    flags = []
    for src in sources:
        if src not in given:
            flags += scan_source(src)
    return sorted(set(flags))
