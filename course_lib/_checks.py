"""Input checks shared by every public function of the course (private: import from here only).

One place says what a valid input is and how a wrong one is reported, so that a loss's body holds
only its formula. Every check returns the input as a ``torch.Tensor`` (converted from NumPy or a
list when needed) and raises ``ValueError`` naming the expected shape, e.g.
``expected embeddings of shape (N, D), got (5,)``.

Shapes: ``N`` (or ``B``) rows, ``D`` dimensions, ``C`` classes, ``K`` sub-centres per class.

* :func:`tensor`, :func:`to_numpy`: conversions; :func:`work_dtype`: the dtype to compute in
  (float32 for float16/bfloat16, whose logits or distances would be too coarse);
* :func:`floats`: floating (N, D) tensors of one shape, in their common work dtype (the losses);
  :func:`features`: any numeric (N, D) matrix as float32 (the evaluation); :func:`matrix`: the
  shape only; :func:`matching_rows`, :func:`pairwise_sets`: the two inputs of a distance;
* :func:`labels`, :func:`flags`, :func:`class_ids`, :func:`indices`, :func:`label_array`;
* :func:`class_matrix`: a (C·K, D) weight or centre matrix against (N, D) embeddings; :func:`bank`:
  a (K, D) bank of keys (MoCo's queue);
* :func:`images`, :func:`image_batch`: uint8 (N, H, W, 3) images, (B, C, H, W) batches;
* :func:`distance_matrix`: a square (N, N) matrix; :func:`metric`: one name per distance.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
import torch

HALF = (torch.float16, torch.bfloat16)

#: The distances, by their canonical names (:func:`course_lib.distances.pairwise_distances`).
METRICS = ("l2", "squared_l2", "l1", "cosine")
#: Other names accepted for them (SciPy's and scikit-learn's).
METRIC_ALIASES = {"euclidean": "l2", "sqeuclidean": "squared_l2", "manhattan": "l1", "cityblock": "l1"}


# ------------------------------------------------------------------------------ conversion
def tensor(x) -> torch.Tensor:
    """``x`` as a tensor: tensors pass unchanged, arrays and lists go through ``np.asarray``."""
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def to_numpy(x) -> np.ndarray:
    """``x`` as a NumPy array (a tensor detached and moved to the CPU, half precision as float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype in HALF else x).numpy()
    return np.asarray(x)


def work_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype to compute in: the promoted dtype, float32 when that is float16/bfloat16."""
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    return torch.float32 if dtype in HALF else dtype


def _shape(x) -> tuple:
    return tuple(x.shape)


def _is_integer(t: torch.Tensor) -> bool:
    return not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool)


# ---------------------------------------------------------------- embeddings and features
def floats(names: str, *tensors, shape: str = "(N, D)", same_shape: bool = True, same_dim: bool = False):
    """Floating tensors with ``ndim == shape.count(',') + 1``, all of one shape (``same_shape``) or
    of one last dimension (``same_dim``); returned in their common work dtype."""
    ts = [tensor(t) for t in tensors]
    ndim = len([axis for axis in shape.strip("()").split(",") if axis.strip()])  # "(N,)": 1
    got = " and ".join(str(_shape(t)) for t in ts)
    if any(t.ndim != ndim for t in ts) or (same_shape and any(t.shape != ts[0].shape for t in ts)):
        raise ValueError(f"expected {names} of shape {shape}, got {got}")
    if same_dim and any(t.shape[-1] != ts[0].shape[-1] for t in ts):
        raise ValueError(f"expected {names} of shape {shape} with the same D, got {got}")
    if any(not t.dtype.is_floating_point for t in ts):
        raise ValueError(f"expected {names} of shape {shape} with a floating dtype, got "
                         + " and ".join(str(t.dtype) for t in ts))
    dtype = work_dtype(*ts)
    return [t.to(dtype) for t in ts]


def embeddings(x, name: str = "embeddings") -> torch.Tensor:
    """One floating (N, D) tensor, float16/bfloat16 as float32."""
    return floats(name, x)[0]


def matrix(x, name: str = "features", rows="N", cols="D") -> torch.Tensor:
    """A 2-D tensor of shape ``(rows, cols)``; an ``int`` for ``rows`` or ``cols`` must match."""
    x = tensor(x)
    if x.ndim != 2 or any(isinstance(want, int) and got != want for got, want in zip(x.shape, (rows, cols))):
        raise ValueError(f"expected {name} of shape ({rows}, {cols}), got {_shape(x)}")
    return x


def features(x, name: str = "features", dim: Optional[int] = None, n: Optional[int] = None) -> torch.Tensor:
    """A feature matrix (N, D) of any numeric dtype, as float32 (``dim``, ``n``: D and N to match)."""
    return matrix(x, name, "N" if n is None else n, "D" if dim is None else dim).float()


def matching_rows(x, y, names: str = "x and y"):
    """Two floating (N, D) tensors of one shape for a row-wise distance (integers become float32):
    ``(x, y, dtype to return)``, x and y in the work dtype."""
    x, y = tensor(x), tensor(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"expected {names} both of shape (N, D), got {_shape(x)} and {_shape(y)}")
    return _in_work_dtype(x, y)


def pairwise_sets(x, y=None, names: str = "x and y"):
    """(N, D) and (M, D) floating tensors with the same D (``y=None``: ``y = x``) for a pairwise
    distance: ``(x, y, dtype to return)``, x and y in the work dtype."""
    x = tensor(x)
    y = x if y is None else tensor(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected {names} of shapes (N, D) and (M, D) with the same D, got "
                         f"{_shape(x)} and {_shape(y)}")
    return _in_work_dtype(x, y)


def _in_work_dtype(x: torch.Tensor, y: torch.Tensor):
    x = x if x.dtype.is_floating_point else x.float()
    y = y if y.dtype.is_floating_point else y.float()
    out = torch.promote_types(x.dtype, y.dtype)
    work = work_dtype(x, y)
    return x.to(work), y.to(work), out


def class_matrix(x: torch.Tensor, weight, name: str = "weight", shape: str = "(C*K, D)", k: int = 1):
    """A (C·K, D) matrix of class rows (``k`` rows a class) against (N, D) embeddings ``x``:
    ``(x, weight)`` in their common work dtype."""
    (w,) = floats(name, weight, shape=shape)
    if w.shape[1] != x.shape[1] or k < 1 or w.shape[0] % k:
        with_k = f" and K = subcenters = {k}" if "K" in shape else ""
        raise ValueError(f"expected {name} of shape {shape} with D = {x.shape[1]}{with_k}, got {_shape(w)}")
    dtype = work_dtype(x, w)
    return x.to(dtype), w.to(dtype)


def rows_of(name: str, t: torch.Tensor, n: int, shape: str = "(N, C)") -> torch.Tensor:
    """``t`` must have ``n`` rows (e.g. logits (N, C) for N embeddings)."""
    if len(t) != n:
        raise ValueError(f"expected {name} of shape {shape} with N = {n}, got {_shape(t)}")
    return t


def bank(name: str, t, d: int, shape: str = "(K, D)") -> torch.Tensor:
    """A floating (K, D) bank of keys (e.g. MoCo's queue) for (N, D) queries with ``D = d``."""
    (t,) = floats(name, t, shape=shape)
    if t.shape[1] != d:
        raise ValueError(f"expected {name} of shape {shape} with D = {d}, got {_shape(t)}")
    return t


def negative_keys(neg, n: int, d: int) -> torch.Tensor:
    """InfoNCE negatives: (M, D) shared by the N queries, or (N, M, D) one set per query."""
    neg = tensor(neg)
    if not (neg.ndim == 2 and neg.shape[1] == d) and not (neg.ndim == 3 and neg.shape[0] == n and neg.shape[2] == d):
        raise ValueError(f"expected negative_keys of shape (M, D) or (N, M, D) with N, D = ({n}, {d}), "
                         f"got {_shape(neg)}")
    return floats("negative_keys", neg, shape="(M, D)" if neg.ndim == 2 else "(N, M, D)")[0]


# ----------------------------------------------------------------------------------- labels
def _length(name: str, n: int, what: str, got) -> str:
    return f"expected {name} of shape (N,) with N = {n} ({what}): {name} must have shape ({n},), got {got}"


def labels(y, n: Optional[int] = None, name: str = "labels", device=None) -> torch.Tensor:
    """Integer labels of shape (N,) (of length ``n`` if given), on ``device`` if given; dtype kept."""
    y = tensor(y)
    if y.ndim != 1 or (n is not None and len(y) != n):
        raise ValueError(_length(name, n, "integer class ids", _shape(y)) if n is not None
                         else f"expected {name} of shape (N,), got {_shape(y)}")
    if not _is_integer(y):
        raise ValueError(f"expected {name} of shape (N,) with an integer dtype (labels are integers, "
                         f"class ids), got {y.dtype}")
    return y if device is None else y.to(device)


def flags(same, n: int, name: str = "same") -> torch.Tensor:
    """A same/different flag per pair: shape (N,), bool or 0/1."""
    y = tensor(same)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(_length(name, n, "bool or 0/1", _shape(y)))
    return y


def class_ids(y: torch.Tensor, num_classes: int, name: str = "labels") -> torch.Tensor:
    """``y`` must index rows 0..C-1 of a (C, D) weight or centre matrix; returned as int64."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"expected {name} in [0, C) with C = {num_classes}, got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return y.long()


def indices(names: str, *idx) -> list:
    """Index tensors of one shape (T,) with an integer dtype (e.g. mined triplets ``a, p, n``)."""
    ts = [tensor(i) for i in idx]
    if any(t.ndim != 1 or len(t) != len(ts[0]) or not _is_integer(t) for t in ts):
        raise ValueError(f"expected {names} of shape (T,) with an integer dtype, got "
                         + ", ".join(str(_shape(t)) for t in ts))
    return ts


def label_array(y, n: Optional[int] = None) -> Optional[np.ndarray]:
    """Labels for a figure: ``None``, or a flat NumPy array (ids or names) of length ``n``."""
    if y is None:
        return None
    y = to_numpy(y).reshape(-1)
    if n is not None and len(y) != n:
        raise ValueError(_length("labels", n, "class ids or names", y.shape))
    return y


# ----------------------------------------------------------------------------------- images
def images(x, name: str = "images", float_nchw: bool = False) -> torch.Tensor:
    """uint8 images (N, H, W, 3), as the data module keeps them; with ``float_nchw`` a float batch
    (N, C, H, W), as models see it, is accepted too."""
    x = tensor(x)
    if float_nchw and x.is_floating_point() and x.ndim == 4:
        return x
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        expected = "uint8 of shape (N, H, W, 3)" + (" or float of shape (N, C, H, W)" if float_nchw else "")
        raise ValueError(f"expected {name} {expected}, got dtype {x.dtype} and shape {_shape(x)}")
    return x


def image_batch(x, channels: int = 3, name: str = "images", floating: bool = False, hint: str = ""):
    """A tensor batch (B, C, H, W) with ``channels`` channels (and a floating dtype if asked)."""
    ok = isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] == channels
    if not ok or (floating and not x.is_floating_point()):
        what = f"dtype {x.dtype} and shape {_shape(x)}" if isinstance(x, torch.Tensor) else type(x).__name__
        kind = " with a floating dtype" if floating else ""
        raise ValueError(f"expected {name} of shape (B, {channels}, H, W){kind}, got {what}{hint}")
    return x


# -------------------------------------------------------------------------------- distances
def distance_matrix(dist, name: str = "dist") -> torch.Tensor:
    """A square distance matrix (N, N) (a tensor: it comes from a distance function)."""
    if not isinstance(dist, torch.Tensor) or dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        got = _shape(dist) if isinstance(dist, torch.Tensor) else type(dist).__name__
        raise ValueError(f"expected {name} of shape (N, N), got {got}")
    return dist


def metric(name: str, allowed: Sequence[str] = METRICS) -> str:
    """The canonical name of a distance (``"euclidean"`` -> ``"l2"``, ...); one of ``allowed``."""
    key = str(name).lower()
    key = METRIC_ALIASES.get(key, key)
    if key not in allowed:
        aliases = ", ".join(f"{a!r} for {c!r}" for a, c in METRIC_ALIASES.items() if c in allowed)
        raise ValueError(f"unknown metric {name!r}: expected one of {', '.join(allowed)}"
                         + (f" (or {aliases})" if aliases else ""))
    return key
