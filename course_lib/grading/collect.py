"""Who submitted which file: the collector that ``nbgrader zip_collect`` uses for LMS downloads.

Put the LMS's download (one zip, several, or loose files) into ``downloaded/<assignment>/archive/``;
``zip_collect`` extracts it and asks :class:`CourseCollector` for each notebook's student. Layouts
understood, tried in this order (paths below the extracted folder):

* Canvas: ``smithjane_12345_678910_a1_distances_contrastive.ipynb`` (``_late_`` and a resubmission
  suffix ``-1`` allowed) -- student ``smithjane``;
* Moodle: ``Jane Smith_12345_assignsubmission_file_/a1_distances_contrastive.ipynb`` -- student
  ``12345`` (Moodle's participant id, stable where names are not);
* one folder per student: ``<student>/a1_distances_contrastive.ipynb``.
"""
from __future__ import annotations

import os
import re

from nbgrader.plugins import FileNameCollectorPlugin

PATTERNS = (
    re.compile(r"(?P<student_id>[A-Za-z0-9.\-]+)_(?:late_)?\d+_\d+_(?P<file_id>[^/]+?)(?:-\d+)?"
               r"(?P<ext>\.ipynb)$"),
    re.compile(r"[^/]*_(?P<student_id>\d+)_assignsubmission_file_/(?P<file_id>[^/]+?)(?P<ext>\.ipynb)$"),
    re.compile(r"(?P<student_id>[A-Za-z0-9_.\-]+)/(?P<file_id>[^/]+?)(?P<ext>\.ipynb)$"),
)


def match_submission(path: str) -> dict | None:
    """``{"student_id", "file_id"}`` for one extracted file's path, or None when none matches."""
    for pattern in PATTERNS:
        m = pattern.search(path.replace(os.sep, "/"))
        if m:
            return {"student_id": m["student_id"], "file_id": m["file_id"] + m["ext"]}
    return None


class CourseCollector(FileNameCollectorPlugin):
    """nbgrader's collector plugin over :func:`match_submission`."""

    def collect(self, submitted_file: str):
        if os.path.splitext(submitted_file)[1] not in self.valid_ext:
            return None
        info = match_submission(submitted_file)
        if info is None:
            self.log.warning("no student could be read from %s: skipped", submitted_file)
        return info
