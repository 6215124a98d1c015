"""Pretext tasks: labels made from the images themselves (chapter 05).

Each task is a :class:`PretextTask` (``backbone`` + the task's head / decoder) whose
``forward(x)`` turns a batch of [0, 1] images into a loss; :func:`train_pretext` trains one and
:func:`score_task` measures its encoder downstream.
"""
from .common import Encoder, PretextTask, encoder, pretext_step
from .runs import score_task, train_pretext

__all__ = ["PretextTask", "Encoder", "encoder", "pretext_step", "train_pretext", "score_task"]
