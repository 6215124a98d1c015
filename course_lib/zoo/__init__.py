"""The course's encoders side by side (chapter 09): each chapter saves the backbone it trained, and chapter 09
loads them all, or trains small stand-ins for the chapters not run yet, and scores them the same way.

* :mod:`~course_lib.zoo.registry`: :data:`ZOO` (which chapter trains which encoder), :func:`save_encoder`,
  :func:`load_encoder`, :class:`FrozenEncoder` (images in [0, 1] -> features);
* :mod:`~course_lib.zoo.recipes`: :func:`train_small`, :func:`load_or_train`;
* :mod:`~course_lib.zoo.compare`: :func:`encoder_features`, :func:`score_all` (kNN, linear probe, Recall@1,
  MAP@R), :func:`confusion_matrix`, :func:`most_confused`, :func:`spearman`.
"""
from .compare import (METRICS, SUPERCLASSES, confusion_matrix, encoder_features, most_confused, score_all, score_features,
                      spearman, within_superclass)
from .recipes import RECIPES, load_or_train, train_small
from .registry import (ZOO, EncoderNotFound, EncoderSpec, FrozenEncoder, encoder_dir, encoder_path, load_encoder,
                       save_encoder, saved_encoders)

__all__ = ["ZOO", "EncoderSpec", "FrozenEncoder", "EncoderNotFound", "encoder_dir", "encoder_path", "save_encoder",
           "load_encoder", "saved_encoders", "RECIPES", "train_small", "load_or_train", "METRICS", "encoder_features",
           "score_features", "score_all", "confusion_matrix", "most_confused", "within_superclass", "spearman", "SUPERCLASSES"]
