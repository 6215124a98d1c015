r"""Margins beyond CosFace and ArcFace (chapter 04; slide deck "Chierchia", "sphere loss" and "adaptive margins").

* SphereFace (A-Softmax), Liu et al. 2017: a *multiplicative* angular margin, the target logit
  :math:`\|x\|\,\psi(\theta)` with :math:`\psi(\theta) = (-1)^k\cos(m\theta) - 2k` instead of
  :math:`\|x\|\cos\theta`.
* Adaptive (dynamic) margins, Ha et al. 2020: a per-class ArcFace margin
  :math:`m_c = a N_c^{-\lambda} + b` that gives rare classes the larger margin.
* :class:`MarginWarmup`: an ``on_step`` hook for :func:`course_lib.train.fit` that ramps a head's
  margin from 0, the softmax warm-up that keeps ArcFace trained from scratch out of the
  :math:`\theta \approx \pi - m` dead zone.

Same conventions as :mod:`course_lib.losses.metric`: embeddings (N, D), class weights (C, D) as
``nn.Linear`` (rows L2-normalised inside), labels (N,) in 0..C-1 or ``None`` (no margin, for
inference); the functions return logits (N, C) for ``F.cross_entropy`` in float32 for half inputs;
wrong shapes raise ``ValueError`` naming the expected shape; no Python loop over the batch.
"""
from __future__ import annotations

import math

import torch

from .. import _checks as check
from .classification import _cosines


# ------------------------------------------------------------------------------ SphereFace
def _check_m(m) -> int:
    if isinstance(m, bool) or int(m) != m or int(m) < 1:
        raise ValueError(f"SphereFace's margin m must be an integer >= 1 (cos(mθ) with m = 1, 2, 3, 4, ...), got {m!r}")
    return int(m)


def sphereface_psi(theta, m: int = 4) -> torch.Tensor:
    r""":math:`\psi(\theta) = (-1)^k \cos(m\theta) - 2k`, :math:`\theta \in [\frac{k\pi}{m}, \frac{(k+1)\pi}{m}]`, :math:`k \in \{0, \dots, m-1\}`.

    The monotonic extension of :math:`\cos(m\theta)` to :math:`[0, \pi]` of SphereFace (A-Softmax),
    Liu, Wen, Yu, Li, Raj & Song 2017 (deck "Chierchia": "sphere loss"). :math:`\cos(m\theta)` alone
    rises again after :math:`\theta = \pi/m`; :math:`\psi` keeps falling, from 1 at 0 to
    :math:`1 - 2m` at :math:`\pi`, and is continuous with a continuous derivative. ``theta`` any
    shape, radians in :math:`[0, \pi]` (clamped there); ``m`` an integer >= 1 (m = 1: :math:`\cos\theta`).
    Returns the same shape, float32 for half input.
    """
    m = _check_m(m)
    theta = check.tensor(theta)
    theta = theta.to(check.work_dtype(theta) if theta.dtype.is_floating_point else torch.float32)
    theta = theta.clamp(0.0, math.pi)
    k = torch.floor(theta * m / math.pi).clamp(0, m - 1)  # which of the m pieces
    sign = 1.0 - 2.0 * torch.remainder(k, 2)  # (-1)^k
    return sign * torch.cos(m * theta) - 2.0 * k


def _chebyshev(c: torch.Tensor, m: int) -> torch.Tensor:
    """:math:`\\cos(m\\theta) = T_m(\\cos\\theta)`: the Chebyshev polynomial, no ``acos`` (whose
    derivative is infinite at ±1): T_0 = 1, T_1 = c, T_{j+1} = 2c T_j − T_{j−1}."""
    t_prev, t = torch.ones_like(c), c
    for _ in range(m - 1):
        t_prev, t = t, 2 * c * t - t_prev
    return t if m >= 1 else t_prev


def sphereface_logits(embeddings, weight, labels, m: int = 4, s: float | None = None, lambda_: float = 0.0):
    r""":math:`t_{n,c} = \|x_n\|\,\psi(\theta_{n,c})` if :math:`c = y_n`, else :math:`\|x_n\|\cos\theta_{n,c}`; :math:`\psi(\theta) = (-1)^k\cos(m\theta) - 2k`.

    SphereFace / A-Softmax (angular softmax), Liu, Wen, Yu, Li, Raj & Song 2017 (deck "Chierchia":
    "sphere loss"). The class weights ``weight`` (C, D) (as ``nn.Linear``, no bias) are
    L2-normalised inside, the feature is **not** (the paper's logit keeps :math:`\|x\|`); the margin
    is multiplicative: class :math:`y` must win with the angle :math:`m\theta` where the others only
    need :math:`\theta`. ``m`` an integer >= 1 (paper: 4); :math:`\psi` is :func:`sphereface_psi`,
    computed from :math:`\cos\theta` with the Chebyshev polynomial :math:`\cos(m\theta) = T_m(\cos\theta)`
    and :math:`k` from :math:`\cos\theta \le \cos(k\pi/m)`, as the paper's code does (no ``acos``).

    ``s`` given: the feature is normalised too and :math:`\|x\|` replaced by ``s`` (the normalised
    variant of later work). ``lambda_`` :math:`\lambda \ge 0`: the paper's annealing of the target
    logit, :math:`\|x\|\,\frac{\lambda\cos\theta + \psi(\theta)}{1 + \lambda}` (start large, decrease
    towards 0 during training; 0 = the pure A-Softmax). ``embeddings`` (N, D), ``labels`` (N,) in
    0..C-1 (``None``: no margin, for inference). Returns the logits (N, C), float32 for half
    inputs; the loss is ``F.cross_entropy(logits, labels)`` (mean over the batch).
    """
    m = _check_m(m)
    if lambda_ < 0:
        raise ValueError(f"lambda_ must be >= 0, got {lambda_}")
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    cos, y = _cosines(x, weight, labels)  # (N, C), (N,) or None
    scale = x.norm(dim=1, keepdim=True).to(cos.dtype) if s is None else torch.full_like(cos[:, :1], float(s))  # (N, 1)
    if y is None:
        return scale * cos
    cos_y = cos.gather(1, y.unsqueeze(1)).clamp(-1.0, 1.0)  # (N, 1) cos θ_{n,y_n}
    bounds = torch.cos(torch.arange(1, m, dtype=cos.dtype, device=cos.device) * math.pi / m)  # (m-1,) cos(kπ/m)
    k = (cos_y <= bounds).sum(dim=1, keepdim=True).to(cos.dtype)  # (N, 1) θ ∈ [kπ/m, (k+1)π/m]
    psi = (1.0 - 2.0 * torch.remainder(k, 2)) * _chebyshev(cos_y, m) - 2.0 * k  # (N, 1) ψ(θ)
    target = (lambda_ * cos_y + psi) / (1.0 + lambda_)  # (N, 1)
    return scale * cos.scatter(1, y.unsqueeze(1), target)  # (N, C)


# ---------------------------------------------------------------------- adaptive margins
def adaptive_margins(class_counts, a: float | None = None, b: float | None = None, lambda_: float = 0.25,
                     m_min: float = 0.05, m_max: float = 0.5) -> torch.Tensor:
    r""":math:`m_c = a N_c^{-\lambda} + b`, :math:`N_c` the number of training samples of class c.

    Adaptive ("dynamic") margins of Ha, Liu, Liu & Liao 2020 (Google Landmark Recognition 2020,
    third place; deck "Chierchia": "adaptive margins"): on an imbalanced dataset a rare class gets
    a larger ArcFace margin than a frequent one. ``class_counts`` (C,) positive numbers. With ``a``
    and ``b`` given, the formula as written; with both ``None`` (default) they are chosen as Ha
    et al. did, so that the margins span ``[m_min, m_max]``: the largest class gets ``m_min``, the
    smallest ``m_max`` (their setting: :math:`\lambda = 1/4`, margins in [0.05, 0.5]). When all
    classes have the same count, ``a`` is undetermined and every class gets ``m_max``.
    Returns the margins (C,) in float32 (float64 for float64 counts), for
    :func:`adaptive_arcface_logits`.
    """
    n = check.tensor(class_counts)
    if n.ndim != 1 or len(n) == 0:
        raise ValueError(f"expected class_counts of shape (C,) with C >= 1, got {tuple(n.shape)}")
    n = n.to(torch.float64 if n.dtype == torch.float64 else torch.float32)
    if not bool((n > 0).all()):
        raise ValueError("every class count N_c must be > 0")
    if lambda_ <= 0:
        raise ValueError(f"lambda_ must be > 0 (rarer classes get larger margins), got {lambda_}")
    t = n.pow(-lambda_)  # (C,) N_c^{-λ}
    if (a is None) != (b is None):
        raise ValueError("give both a and b, or neither (then they span [m_min, m_max])")
    if a is None:
        if not m_min <= m_max:
            raise ValueError(f"need m_min <= m_max, got {m_min} and {m_max}")
        spread = t.max() - t.min()
        if spread <= 0:
            return torch.full_like(t, float(m_max))
        a = (m_max - m_min) / spread  # the largest class (smallest t) gets m_min, the smallest m_max
        b = m_min - a * t.min()
    return a * t + b


def adaptive_arcface_logits(embeddings, weight, labels, margins, s: float = 30.0, subcenters: int = 1,
                            eps: float = 1e-7):
    r""":math:`t_{n,c} = s\cos(\alpha_{n,c} + m_{y_n})` if :math:`c = y_n`, else :math:`s\cos\alpha_{n,c}`, with a margin :math:`m_c` per class.

    ArcFace (Deng et al. 2019) with per-class margins, as Ha et al. 2020 train it with
    :func:`adaptive_margins`. ``embeddings`` (N, D) and the rows of ``weight`` (C·K, D) are
    L2-normalised inside; ``subcenters=K`` as in :func:`~course_lib.losses.arcface_logits`;
    ``margins`` (C,) radians; ``labels`` (N,) in 0..C-1 (``None``: no margin, for inference).
    Where :math:`\alpha + m > \pi` the target logit is :math:`\cos\alpha - m\sin m` (the same rule
    as :func:`~course_lib.losses.arcface_logits`, so with equal margins the two agree). Returns the
    logits (N, C), float32 for half inputs; loss ``F.cross_entropy(logits, labels)``.
    """
    cos, y = _cosines(embeddings, weight, labels, subcenters)  # (N, C), (N,) or None
    C = cos.shape[1]
    margins = check.tensor(margins)
    if margins.ndim != 1 or len(margins) != C:
        raise ValueError(f"expected margins of shape (C,) with C = {C}, got {tuple(margins.shape)}")
    if y is None:
        return s * cos
    m = margins.to(device=cos.device, dtype=cos.dtype)[y].unsqueeze(1)  # (N, 1) m_{y_n}
    cos_y = cos.gather(1, y.unsqueeze(1)).clamp(-1 + eps, 1 - eps)  # (N, 1)
    alpha = torch.acos(cos_y)  # (N, 1)
    target = torch.where(alpha + m <= math.pi, torch.cos(alpha + m), cos_y - m * torch.sin(m))  # (N, 1)
    return s * cos.scatter(1, y.unsqueeze(1), target)  # (N, C)


# ---------------------------------------------------------------------------- margin warm-up
class MarginWarmup:
    r""":math:`m(t) = m \cdot \min(1, t / T)`: an ``on_step`` hook that ramps a head's margin up from 0.

    ``fit(..., on_step=MarginWarmup(m=0.5, steps=T))`` sets ``model.head.m`` (attribute ``attr`` of
    submodule ``head``) after every optimizer step ``t`` (1-based): the first steps train an
    almost plain (normalised) softmax, and the full margin is in place from step ``T`` on. A remedy
    for ArcFace trained from scratch, whose features can get stuck near
    :math:`\alpha = \pi - m`, where the target logit :math:`s\cos(\alpha + m)` has zero slope
    (the same concern as SphereFace's annealing ``lambda_``; insightface's code offers an "easy
    margin" instead). Build the head with ``m=0.0`` so that the very first step has no margin either.
    """

    def __init__(self, m: float, steps: int, head: str = "head", attr: str = "m"):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.m, self.steps, self.head, self.attr = float(m), int(steps), head, attr

    def value(self, step: int) -> float:
        """The margin after ``step`` optimizer steps."""
        return self.m * min(1.0, max(0, int(step)) / self.steps)

    def __call__(self, model, step: int) -> None:
        setattr(getattr(model, self.head), self.attr, self.value(step))

    def __repr__(self) -> str:
        return f"MarginWarmup(m={self.m:g}, steps={self.steps}, head={self.head!r}, attr={self.attr!r})"


__all__ = ["sphereface_psi", "sphereface_logits", "adaptive_margins", "adaptive_arcface_logits", "MarginWarmup"]
