"""course_lib: the reference implementations of the representation-learning course.

Notebooks import from here and never redefine what lives here. One module per topic:
``config`` (profile, device, seeds, folders), ``data``, ``augment``, ``distances``, ``models``,
``train``, ``evaluate``, ``viz``.
"""
from .config import (
    PROFILE, PROFILES, check_environment, checkpoint_dir, checkpoint_path, data_dir, describe,
    get_device, pick, set_seed,
)
from . import config, data

__version__ = "0.1.0"
