"""A library function's code in a notebook, beside its formula, without redefining it there.

``show_source(contrastive_loss)`` under the cell that states
:math:`J = \\frac{1}{m}\\sum y D^2 + (1 - y)[\\alpha - D]_+` shows the lines that compute it: the
notebook imports the course's code and reads it, and never keeps a second copy that could drift.
"""
from __future__ import annotations

import html
import inspect


def show_source(fn, show: bool = True) -> str:
    """Display the source code of ``fn`` (a course_lib function, class or method) and return it.

    In a notebook the code is shown syntax-highlighted (HTML by Pygments, through
    ``IPython.display``, with plain text for front ends that do not render HTML); elsewhere, or
    without IPython/Pygments, it is printed as plain text. A heading names the function and its
    file and line. ``show=False`` only returns the source string. Decorated functions show the
    function they wrap. Objects without Python source (built-ins) raise ``TypeError``.
    """
    target = inspect.unwrap(fn)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError) as err:
        raise TypeError(f"show_source needs a function or class defined in Python source, got {fn!r}") from err
    if show:
        _display(source, _heading(target))
    return source


def _heading(target) -> str:
    """``module.qualname (path/to/file.py, line k)``, the path from the package root."""
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    try:
        path = inspect.getsourcefile(target) or "?"
        line = inspect.getsourcelines(target)[1]
    except (OSError, TypeError):
        return name
    marker = path.replace("\\", "/").rfind("/course_lib/")
    return f"{name} ({path[marker + 1:] if marker >= 0 else path}, line {line})"


def _display(source: str, heading: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:  # a script or a test: plain text
        print(f"# {heading}\n{source}")
        return
    code = highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))
    page = f"<div><b><code>{html.escape(heading)}</code></b></div>{code}"
    display({"text/html": page, "text/plain": f"# {heading}\n{source}"}, raw=True)


__all__ = ["show_source"]
