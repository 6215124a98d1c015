"""All the course's losses, importable from one place: ``from course_lib.losses import triplet_loss``.

* :mod:`course_lib.losses.metric`: metric learning (chapters 02-04): contrastive, triplet,
  batch-all, batch-hard, hard-cluster, triplet + CE, lifted structured, N-pair, InfoNCE, CLIP,
  center loss, CosFace / ArcFace (sub-centres), AdaCos scale, prototypical networks.
* :mod:`course_lib.losses.ssl`: self-supervised losses (chapters 06-08: NT-Xent, MoCo, BYOL,
  Barlow Twins), re-exported here when that module is present.
"""
from importlib.util import find_spec as _find_spec

from . import metric
from .metric import *  # noqa: F401,F403
from .metric import __all__ as _metric_all

__all__ = list(_metric_all)

if _find_spec(__name__ + ".ssl") is not None:  # written in its own issue; re-exported once it exists
    from . import ssl
    from .ssl import *  # noqa: F401,F403
    from .ssl import __all__ as _ssl_all

    __all__ += list(_ssl_all)
