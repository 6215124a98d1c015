"""LARS: v ← m·v + λ·(g + β·w), w ← w − γ·v with λ = η·‖w‖ / (‖g‖ + β·‖w‖) per parameter tensor.

Layer-wise Adaptive Rate Scaling (You, Gitman & Ginsburg, 2017, "Large batch training of convolutional
networks", eq. 6 and Algorithm 1): SGD with momentum in which every parameter tensor ("layer") w gets its
own learning rate γ·λ, so that a step changes it by about η of its own size whatever the scale of its
gradient. SimCLR (Chen et al., 2020) and BYOL (Grill et al., 2020) train with it at batch sizes of 4096,
and exclude biases and BatchNorm parameters from both the adaptation and the weight decay; so does
:class:`LARS` by default (``exclude_bias_and_norm``: every tensor with ``ndim <= 1``)::

    optimizer = LARS(model.parameters(), lr=0.3 * batch_size / 256, weight_decay=1e-6)  # SimCLR's setting
    fit(model, loader, epochs, step=two_view_step, optimizer=optimizer)

Where the learning rate sits: Algorithm 1 of the paper (and SimCLR's code) accumulates γ·λ·(g + βw) in v;
here γ multiplies v after accumulating (BYOL's code, PyTorch's SGD, lightly's LARS), so that the excluded
tensors get exactly ``torch.optim.SGD(momentum=m)``. The two agree while γ is constant; they differ only in
how fast a change of γ (a warm-up, a cosine decay) reaches the step. SimCLR's and BYOL's code put ‖g + βw‖
in λ's denominator where the paper has ‖g‖ + β‖w‖, and pick the excluded tensors by name (biases, norm
layers); with β = 1e-6 the denominators hardly differ, and ``ndim <= 1`` picks the same tensors.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Union

import torch

__all__ = ["LARS", "trust_ratio"]


def trust_ratio(w: torch.Tensor, g: torch.Tensor, trust_coefficient: float, weight_decay: float,
                eps: float = 1e-8) -> torch.Tensor:
    """λ = η·‖w‖ / (‖g‖ + β·‖w‖ + ε), or 1 where ‖w‖ = 0 or ‖g‖ = 0 (You et al., 2017, eq. 6).

    ``w`` and its gradient ``g``: tensors of the same (any) shape; η = ``trust_coefficient``,
    β = ``weight_decay``, ε = ``eps`` against a vanishing denominator. Returns a 0-dim tensor on
    ``w``'s device (no synchronisation with the host). A freshly zero-initialised tensor or one
    without gradient gets λ = 1, as in SimCLR's and BYOL's code (λ = 0 would freeze it for good).
    """
    w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(g)  # () each
    ratio = trust_coefficient * w_norm / (g_norm + weight_decay * w_norm + eps)  # ()
    return torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))


class LARS(torch.optim.Optimizer):
    """v ← m·v + λ·(g + β·w), w ← w − γ·v, λ = η·‖w‖ / (‖g‖ + β·‖w‖): LARS (You et al., 2017).

    * ``lr`` γ: the global learning rate (SimCLR: 0.3 × batch / 256; schedule it with warm-up +
      cosine). ``momentum`` m (0.9), ``weight_decay`` β (1e-6, SimCLR's), ``trust_coefficient`` η
      (1e-3, the paper's), ``eps`` ε in λ's denominator.
    * ``exclude_bias_and_norm`` (default True): tensors with ``ndim <= 1`` (biases, BatchNorm's γ and β)
      get plain SGD with momentum, v ← m·v + g, no λ and no weight decay, as in SimCLR and BYOL.
    * Every option may differ per parameter group (``[{"params": ..., "weight_decay": 0}, ...]``).
      The momentum buffers are in :meth:`state_dict`, so a checkpoint resumes exactly.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 1e-3, exclude_bias_and_norm: bool = True, eps: float = 1e-8):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay),
                            ("trust_coefficient", trust_coefficient), ("eps", eps)):
            if not value >= 0:
                raise ValueError(f"LARS: {name} must be >= 0, got {value}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        exclude_bias_and_norm=exclude_bias_and_norm, eps=eps)
        super().__init__(params, defaults)

    @staticmethod
    def adapted(w: torch.Tensor, group: dict) -> bool:
        """Whether ``w`` gets the trust ratio and weight decay in ``group`` (not a bias or a norm)."""
        return not (group["exclude_bias_and_norm"] and w.ndim <= 1)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], torch.Tensor]] = None) -> Union[torch.Tensor, None]:
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta, m = group["weight_decay"], group["momentum"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if self.adapted(w, group):
                    lam = trust_ratio(w, g, group["trust_coefficient"], beta, group["eps"])  # ()
                    update = (g + beta * w) * lam  # λ·(g + βw), same shape as w
                else:
                    update = g  # biases and norms: plain SGD with momentum
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()  # v₁ = update (v₀ = 0)
                else:
                    state["momentum_buffer"].mul_(m).add_(update)
                w.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
