"""All the course's losses, importable from one place: ``from course_lib.losses import triplet_loss``.

* metric learning (chapters 02-04), one module per kind, gathered in :mod:`course_lib.losses.metric`:

  - :mod:`~course_lib.losses.pairs`: contrastive loss and its gradient;
  - :mod:`~course_lib.losses.triplets`: triplet, from indices, batch-all, batch-hard, hard-cluster,
    triplet + CE, lifted structured;
  - :mod:`~course_lib.losses.softmax`: N-pair, InfoNCE, CLIP;
  - :mod:`~course_lib.losses.classification`: center loss, CosFace / ArcFace (sub-centres), AdaCos
    scale, ``AngularMarginHead``, prototypical networks;
* :mod:`course_lib.losses.ssl`: self-supervised losses (chapters 06-08: NT-Xent, MoCo, BYOL,
  Barlow Twins; InfoNCE and CLIP importable from there too).
"""
from . import classification, metric, pairs, softmax, ssl, triplets
from .metric import *  # noqa: F401,F403
from .metric import __all__ as _metric_all
from .ssl import *  # noqa: F401,F403  (NT-Xent, MoCo, BYOL, Barlow Twins: chapters 06-08)
from .ssl import __all__ as _ssl_all

__all__ = list(_metric_all) + [name for name in _ssl_all if name not in _metric_all]  # InfoNCE, CLIP: once

from .margins import *  # noqa: F401,F403,E402  (SphereFace, adaptive margins, margin warm-up: chapter 04)
from .margins import __all__ as _margins_all  # noqa: E402

__all__ += list(_margins_all)
