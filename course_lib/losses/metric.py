r"""Metric-learning losses of chapters 02-04 (UTD CS 6384, HSE and Chierchia slides), in one namespace.

They live by kind, one module each; this module gathers them (``from course_lib.losses.metric import
arcface_logits`` keeps working):

* :mod:`~course_lib.losses.pairs`: contrastive loss and its gradient;
* :mod:`~course_lib.losses.triplets`: triplet, from indices, batch-all, batch-hard, hard-cluster,
  triplet + CE, lifted structured (smooth and hard);
* :mod:`~course_lib.losses.softmax`: N-pair, InfoNCE, CLIP;
* :mod:`~course_lib.losses.classification`: center loss, CosFace, ArcFace with sub-centres, AdaCos
  scale, the margin head, prototypical networks.

Inputs are checked by :mod:`course_lib._checks`, so each loss's body is its formula.

Conventions of every loss in the course:

* Shapes: ``N`` batch, ``D`` embedding dimension, ``C`` classes. Each loss returns a 0-dim tensor,
  the mean over the terms the paper averages over (each docstring says which).
* Where a batch has no valid term (no positive pair, no valid triplet) the loss is ``0.0``, still
  connected to the graph (``backward()`` works and gives zero gradients), never NaN.
* Wrong shapes or dtypes raise ``ValueError`` naming the expected shape.
* Nothing is L2-normalised unless the method does it (said in the docstring).
* float16/bfloat16 inputs are computed in float32, and the loss (or logits) is returned in
  float32: at ``s = 64`` or ``τ = 0.01`` a half-precision logit would be too coarse.
* Euclidean distances come from :mod:`course_lib.distances`, whose square root has gradient 0
  (not NaN) where two embeddings coincide.
* Softmax losses go through ``F.cross_entropy`` / ``torch.logsumexp``, never ``exp`` then ``log``.
* No Python loop over the batch: masks, gathers and matrix products only.
"""
from __future__ import annotations

from .. import _checks
from .classification import *  # noqa: F401,F403
from .classification import __all__ as _classification_all
from .pairs import *  # noqa: F401,F403
from .pairs import __all__ as _pairs_all
from .softmax import *  # noqa: F401,F403
from .softmax import __all__ as _softmax_all
from .triplets import *  # noqa: F401,F403
from .triplets import __all__ as _triplets_all

# the private helpers this module used to define, for code written against them
from ._ops import _distance_matrix, _masked_mean, _mm, _row_distances  # noqa: F401,E402
from .classification import _cosines, _query_targets  # noqa: F401,E402

_as_tensor, _work_dtype, _HALF = _checks.tensor, _checks.work_dtype, _checks.HALF
_floats, _labels, _class_ids = _checks.floats, _checks.labels, _checks.class_ids

__all__ = [*_pairs_all, *_triplets_all, *_softmax_all, *_classification_all]
