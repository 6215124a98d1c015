"""Instructor tooling: nbgrader releases, sandboxed parallel autograding, feedback, grades.

``python -m course_lib.grading --help`` (or the Makefile's ``release``, ``collect``, ``autograde``,
``feedback`` and ``grades`` targets). Needs the ``instructor`` extra (nbgrader); nothing here is
imported by ``course_lib`` itself, and the grading kernel cannot import it.
"""
from .course import Course, GradingError, find_root

__all__ = ["Course", "GradingError", "find_root"]
