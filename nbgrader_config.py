"""nbgrader's configuration for the course (instructors: see the README, "Grading").

`solutions/` is the nbgrader source (with solutions and hidden tests), `assignments/` the student
release that `nbgrader generate_assignment` writes (committed). The autograding pipeline is the
course's hardened one (course_lib/grading); `python -m course_lib.grading autograde` adds the
sandboxed kernel and the parallel workers.
"""
from course_lib.grading.config import apply

c = get_config()  # noqa: F821 (provided by nbgrader)
apply(c)
