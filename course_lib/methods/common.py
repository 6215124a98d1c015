"""What the methods with a target network share: the momentum (EMA) update, the frozen copy, BYOL's
schedule of the momentum, and MoCo's single-device stand-in for shuffling BatchNorm.

* :func:`momentum_update`: θ_k ← m θ_k + (1 − m) θ_q (MoCo, He et al., 2020; IIT Hyderabad deck);
  BYOL writes it ξ ← τ ξ + (1 − τ) θ (Grill et al., 2020).
* :func:`target_copy`: the target (key) network at initialisation, a copy that gets no gradient.
* :func:`cosine_momentum`: BYOL's τ_k, from τ_base up to 1 over training.
* :class:`SplitBatchNorm2d`, :func:`split_batchnorm`: BatchNorm statistics per sub-batch, as MoCo's
  CIFAR-10 demo simulates its 8-GPU BatchNorm on one GPU.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["momentum_update", "target_copy", "cosine_momentum", "SplitBatchNorm2d", "split_batchnorm"]


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """θ_target ← m·θ_target + (1 − m)·θ_online, for every parameter, in place (He et al., 2020).

    ``m = 0`` copies the online network, ``m = 1`` freezes the target's parameters; ``0 ≤ m ≤ 1``
    or ``ValueError``. Runs under ``torch.no_grad()``: the update is not part of any graph.

    Buffers (BatchNorm running mean / variance / count) are **copied** from the online network.
    The reference code leaves them alone instead: MoCo's ``builder.py`` and its CIFAR-10 demo update
    the key encoder's parameters only, and BYOL's JAX code keeps a separate ``target_state`` that the
    target's own forward passes update. Both run the target in train mode, where BatchNorm
    normalises with the batch's statistics, so the running statistics never enter the loss and the
    training is the same either way. Copying them makes ``m = 0`` an exact copy (the target equals
    the online network in eval mode too) and leaves nothing in the target that the online network
    did not compute.

    ``online`` and ``target`` must have the same structure (same parameter and buffer names and
    shapes), e.g. ``target = target_copy(online)``.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1] (0 copies, 1 freezes), got {m}")
    online_p, target_p = dict(online.named_parameters()), dict(target.named_parameters())
    online_b, target_b = dict(online.named_buffers()), dict(target.named_buffers())
    if online_p.keys() != target_p.keys() or online_b.keys() != target_b.keys() or any(
            online_p[k].shape != target_p[k].shape for k in online_p):
        raise ValueError("online and target networks must have the same parameters and buffers "
                         "(make the target with target_copy(online))")
    for name, theta_target in target_p.items():
        theta_target.mul_(m).add_(online_p[name].detach(), alpha=1.0 - m)  # m θ_t + (1 − m) θ_o
    for name, buffer in target_b.items():
        buffer.copy_(online_b[name])


def target_copy(module: nn.Module) -> nn.Module:
    """ξ = θ at initialisation: a deep copy of ``module`` whose parameters have ``requires_grad=False``.

    The target (MoCo's key) network starts as the online one (MoCo, BYOL's PyTorch ports) and then
    follows it only through :func:`momentum_update`, never through a gradient.
    """
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def cosine_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """τ_k = 1 − (1 − τ_base)·(cos(π k / K) + 1) / 2: BYOL's target momentum (Grill et al., 2020, §3.2).

    ``step`` k (optimizer steps done), ``total_steps`` K. τ_0 = τ_base, τ_K = 1 (the target stops
    moving as training ends); steps past K stay at 1.
    """
    if total_steps < 1 or step < 0 or not 0.0 <= base <= 1.0:
        raise ValueError(f"need total_steps >= 1, step >= 0 and 0 <= base <= 1, got {total_steps}, {step}, {base}")
    k = min(step, total_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


def check_views(x1, x2) -> None:
    """Two views of one batch: tensors of one shape ``(B, C, H, W)``, else ``ValueError``."""
    if not (isinstance(x1, torch.Tensor) and isinstance(x2, torch.Tensor)) or x1.ndim != 4 or x1.shape != x2.shape:
        got = " and ".join(str(tuple(getattr(x, "shape", ()))) for x in (x1, x2))
        raise ValueError(f"expected views x1 and x2 both of shape (B, C, H, W), got {got}")


# ------------------------------------------------------------------------ split BatchNorm
class SplitBatchNorm2d(nn.BatchNorm2d):
    """BN_s(x) = γ (x − μ_s) / √(σ²_s + ε) + β, with μ_s, σ²_s the statistics of sub-batch s alone.

    MoCo's single-GPU stand-in for BatchNorm on ``num_splits`` GPUs (its CIFAR-10 demo's
    ``SplitBatchNorm``, itself from cifar10-fast). In train mode the batch ``(N, C, H, W)`` is cut
    into ``num_splits`` consecutive sub-batches of N / num_splits images (N must be a multiple),
    each normalised with its own mean and biased variance, as each GPU would; the running statistics
    move towards the average over the sub-batches of their mean and unbiased variance. In eval mode
    it is exactly ``BatchNorm2d`` with those running statistics. (The demo groups images
    s, s + S, s + 2S, … instead of consecutive ones; after MoCo's shuffle either is a random split.)
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs):
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        self.num_splits = num_splits

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_splits={self.num_splits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.num_splits
        if n % s:
            raise ValueError(f"expected a batch (N, C, H, W) with N a multiple of num_splits = {s}, got N = {n}")
        work = torch.promote_types(x.dtype, torch.float32)  # float32 for half inputs
        xs = x.to(work).reshape(s, n // s, c, h, w)  # sub-batch s: images s·N/S … (s+1)·N/S − 1
        mu = xs.mean(dim=(1, 3, 4), keepdim=True)  # (S, 1, C, 1, 1)
        var = xs.var(dim=(1, 3, 4), unbiased=False, keepdim=True)  # (S, 1, C, 1, 1), biased
        y = (xs - mu) / torch.sqrt(var + self.eps)  # (S, N/S, C, H, W)
        if self.affine:
            y = y * self.weight.view(1, 1, c, 1, 1) + self.bias.view(1, 1, c, 1, 1)
        if self.track_running_stats:
            self._update_running_stats(mu.flatten(1).mean(0), var.flatten(1).mean(0), n // s * h * w)
        return y.reshape(n, c, h, w).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mu: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """r ← (1 − momentum) r + momentum · (mean over sub-batches), variance unbiased (as BatchNorm)."""
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * count / max(count - 1, 1)
        self.running_mean.lerp_(mu.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` of ``module`` (in place) by a :class:`SplitBatchNorm2d` with
    the same settings, affine parameters and running statistics; return the module.

    ``num_splits = 1`` changes nothing. A ``module`` that is itself a BatchNorm2d is returned replaced.
    """
    if num_splits == 1:
        return module
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SplitBatchNorm2d):
        split = SplitBatchNorm2d(module.num_features, num_splits, eps=module.eps, momentum=module.momentum,
                                 affine=module.affine, track_running_stats=module.track_running_stats)
        ref = next((t for t in module.state_dict().values() if t.is_floating_point()), None)
        if ref is not None:
            split.to(ref.device, ref.dtype)
        split.load_state_dict(module.state_dict())
        return split.train(module.training)
    for name, child in module.named_children():
        setattr(module, name, split_batchnorm(child, num_splits))
    return module
