"""The nbgrader settings of the course: one function that ``nbgrader_config.py`` calls.

``python -m course_lib.grading`` and a plain ``nbgrader autograde`` then share the same hardened
pipeline (:mod:`course_lib.grading.preprocessors`); the sandboxed kernel and the parallel workers are
added by :mod:`course_lib.grading.autograde`, which writes each worker's own config.
"""
from __future__ import annotations

COURSE_ID = "representation-learning"
PP = "course_lib.grading.preprocessors."


def apply(c, cell_timeout: int = 30) -> None:
    """Set the course's nbgrader options on the traitlets config ``c``."""
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "assignments"
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]
    c.Autograde.sanitize_preprocessors = [
        "nbgrader.preprocessors.ClearOutput", "nbgrader.preprocessors.DeduplicateIds",
        "nbgrader.preprocessors.OverwriteKernelspec", PP + "RestoreCells",
        "nbgrader.preprocessors.OverwriteCells", "nbgrader.preprocessors.CheckCellMetadata"]
    c.Autograde.autograde_preprocessors = [
        PP + "ArmTests", PP + "SafeExecute", PP + "CheckTests",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
        PP + "StripHiddenTests", "nbgrader.preprocessors.CheckCellMetadata"]
    c.Execute.timeout = int(cell_timeout)
    c.Execute.interrupt_on_timeout = True
    c.LimitOutput.max_lines = 200
    c.ZipCollectApp.collector_plugin = "course_lib.grading.collect.CourseCollector"
    c.ZipCollectApp.strict = True
