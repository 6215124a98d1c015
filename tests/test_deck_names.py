"""Slide decks are named by their title (UTD CS 6384, HSE, Chierchia, Cornell, IIT Hyderabad), never by
a file number, and the course points at nothing outside the repository."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FILE_NUMBER = re.compile(r"\bslides?\s+00[0-4]\b|\bdeck\s+00[0-4]\b", re.IGNORECASE)
OUTSIDE = re.compile(r"COURSE\.md|\.\./shared|/work/shared")


def _texts():
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        yield path.relative_to(ROOT), path.read_text()
    notebooks = [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "solutions").glob("*/*.ipynb"),
                 *(ROOT / "assignments").glob("*/*.ipynb")]
    for path in sorted(notebooks):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            yield f"{path.name} cell {i}", cell.source


@pytest.mark.parametrize("pattern", [FILE_NUMBER, OUTSIDE], ids=["deck-file-numbers", "outside-links"])
def test_no_deck_file_numbers_nor_outside_references(pattern):
    found = [f"{where}: {m.group(0)!r}" for where, text in _texts() for m in pattern.finditer(text)]
    assert not found, "name decks by title and refer only to the repository:\n" + "\n".join(found[:20])
