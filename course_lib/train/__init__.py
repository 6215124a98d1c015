"""Training: one resumable loop (:func:`fit`), the steps it runs, and runs that know themselves.

* :mod:`~course_lib.train.loop`: :func:`fit` and its :class:`History`.
* :mod:`~course_lib.train.steps`: ``step(model, batch) -> loss`` for every objective of the course.
* :mod:`~course_lib.train.runs`: what defines a run; :class:`RunMismatchError`.
* :mod:`~course_lib.train.accel`: channels_last, fused optimizers, ``torch.compile``, DDP; :mod:`~course_lib.train.lars`: LARS.
"""
from ..evaluate import KNNMonitor, knn_monitor
from .lars import LARS
from .loop import History, epoch_seed, fit
from .runs import RunMismatchError, describe_run, run_id
from .steps import (embedding_step, head_step, mined_triplet_step, npair_step, pair_step, prototypical_step,
                    supervised_step, triplet_ce_step, two_view_step)

__all__ = ["fit", "History", "RunMismatchError", "describe_run", "run_id", "supervised_step", "two_view_step",
           "pair_step", "embedding_step", "mined_triplet_step", "head_step", "prototypical_step",
           "triplet_ce_step", "npair_step", "epoch_seed", "KNNMonitor", "knn_monitor", "LARS"]
