"""``python -m course_lib.train METHOD ...``: see :mod:`course_lib.train.cli`."""
from .cli import main

raise SystemExit(main())
