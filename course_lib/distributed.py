"""Many processes, one global batch (``torchrun``): gathers that keep the gradient, BatchNorm over the global
batch, MoCo's shuffled BatchNorm across processes, and the set-up ``python -m course_lib.train`` uses.

With W processes of n images each, a self-supervised loss must see the **global** batch of N = W·n images:
SimCLR's 2N − 2 negatives, Barlow Twins' cross-correlation over N, BatchNorm statistics over N (SimCLR §B.9,
"global BN"). Each process computes its n embeddings, gathers all N with :func:`gather_with_grad`, and
computes the loss. The gradient must come out exactly as one process on the N images would get it:

* ``DistributedDataParallel`` **averages** the parameter gradients over the W processes;
* so each process's loss L_r must average to the global loss, (1/W) Σ_r L_r = L (a local mean for a
  per-image loss; the full loss L on every process for SimCLR and Barlow Twins);
* and the gradient reaching process r's own embeddings must be Σ_q ∂L_q/∂z_r: the backward of the gather
  **sums** the incoming gradients over the processes (``all_reduce``) before taking its own rows.

Forgetting the sum (a plain ``all_gather``, which has no gradient, or a gather whose backward keeps only
the local gradient) leaves every gradient off by the factor W, the bug reported again and again in SSL
libraries. ``tests/test_distributed.py`` checks the loss and every parameter's gradient of every method on 2
processes (gloo, CPU) against one process on the same global batch. Outside ``torch.distributed`` (one
process) every function here is the identity, so the methods call them unconditionally.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["is_distributed", "world_size", "rank", "gather_with_grad", "gather", "all_reduce_with_grad",
           "mean_over_processes", "GlobalBatchNorm", "convert_global_batchnorm", "shuffled_forward",
           "init_from_environment", "launched_by_torchrun"]


def is_distributed() -> bool:
    """True when this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


# ------------------------------------------------------------------------------ gathers
class _GatherWithGrad(torch.autograd.Function):
    """Z = [z_0; …; z_{W−1}] in the forward; in the backward, ∂/∂z_r = (Σ_q ∂L_q/∂Z)[rows of r]."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.contiguous())
        ctx.rows = len(z)
        return torch.cat(parts)  # (W·n, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # Σ over processes: every process's loss used every process's rows
        r, n = dist.get_rank(), ctx.rows
        return grad[r * n : (r + 1) * n]


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """``(n, ...)`` on each of W processes → ``(W·n, ...)``, rows of process 0 first, gradient kept (see the
    module's docstring for why its backward sums over processes). Every process must pass the same n."""
    return _GatherWithGrad.apply(z) if is_distributed() else z


@torch.no_grad()
def gather(z: torch.Tensor) -> torch.Tensor:
    """``(n, ...)`` → ``(W·n, ...)`` without gradient (e.g. MoCo's keys for the queue)."""
    if not is_distributed():
        return z
    parts = [torch.empty_like(z) for _ in range(world_size())]
    dist.all_gather(parts, z.contiguous())
    return torch.cat(parts)


class _AllReduceWithGrad(torch.autograd.Function):
    """S = Σ_r s_r in the forward; the backward sums the gradients the same way: ∂/∂s_r = Σ_q ∂L_q/∂S."""

    @staticmethod
    def forward(ctx, s: torch.Tensor) -> torch.Tensor:
        s = s.clone()
        dist.all_reduce(s)
        return s

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(s: torch.Tensor) -> torch.Tensor:
    """Σ over the processes of ``s``, differentiable (the identity for one process)."""
    return _AllReduceWithGrad.apply(s) if is_distributed() else s


@torch.no_grad()
def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The mean over the processes of a tensor of logged numbers (each process's own, for one process)."""
    if not is_distributed():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / world_size()


# ------------------------------------------------------------------------------ BatchNorm
class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BN(x) = γ (x − μ) / √(σ² + ε) + β with μ, σ² over the **global** batch of all processes.

    μ = Σ_r Σ_i x_ri / N and σ² = Σ_r Σ_i x_ri² / N − μ² (biased, as BatchNorm normalises), the three sums
    added over processes by :func:`all_reduce_with_grad`, so the gradient also flows through the statistics
    into every process. One process: exactly ``BatchNorm1d`` / ``BatchNorm2d``. torch's ``SyncBatchNorm`` does
    the same with fused kernels, on GPUs only; :func:`convert_global_batchnorm` uses it there and this
    one elsewhere (the CPU tests with gloo). Running statistics move with the unbiased global variance.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected input of shape (N, C, ...), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        c, dims = x.shape[1], [0, *range(2, x.dim())]
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # half precision: statistics in float32
        count = torch.tensor([x.numel() / c], device=x.device, dtype=xf.dtype)
        sums = all_reduce_with_grad(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))  # (2C + 1,)
        n = sums[-1]
        mu = sums[:c] / n  # (C,)
        var = (sums[c : 2 * c] / n - mu * mu).clamp_min(0.0)  # (C,), biased
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mu.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mu.detach(), factor)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1.0), factor)
        return y.to(x.dtype)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Every ``BatchNorm1d/2d/3d`` of ``module`` (in place, weights and statistics kept) becomes a BatchNorm over
    the global batch: torch's ``SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere. Returns ``module``.
    MoCo's :class:`~course_lib.methods.common.SplitBatchNorm2d` is left alone (MoCo shuffles instead)."""
    from .methods.common import SplitBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, (SplitBatchNorm2d, GlobalBatchNorm, nn.SyncBatchNorm)):
            ref = next((t for t in child.state_dict().values() if t.is_floating_point()), None)
            cls = nn.SyncBatchNorm if ref is not None and ref.is_cuda else GlobalBatchNorm
            new = cls(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                      track_running_stats=child.track_running_stats)
            if ref is not None:
                new.to(ref.device, ref.dtype)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            new.requires_grad_(any(p.requires_grad for p in child.parameters()) or not child.affine)
            setattr(module, name, new)
        else:
            convert_global_batchnorm(child)
    return module


@torch.no_grad()
def shuffled_forward(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """MoCo's shuffling BN across processes (He et al., 2020, §3.3): gather the global batch, shuffle it with
    one permutation (drawn on process 0, broadcast), encode this process's share with its own BatchNorm,
    gather the outputs, un-shuffle, and return this process's rows. No gradient (the key encoder)."""
    if not is_distributed():
        return encoder(x)
    x_all = gather(x)  # (N, ...)
    perm = torch.randperm(len(x_all)).to(x.device)
    dist.broadcast(perm, src=0)
    n, r = len(x), rank()
    k_all = gather(encoder(x_all[perm[r * n : (r + 1) * n]]))  # (N, D), in shuffled order
    k_all = k_all[torch.argsort(perm)]  # row i is the key of image i of the global batch
    return k_all[r * n : (r + 1) * n]


# ------------------------------------------------------------------------------ set-up
def launched_by_torchrun() -> bool:
    """True in a process that ``torchrun`` started with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment() -> torch.device:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` …): NCCL with
    one GPU per process (``LOCAL_RANK``) when CUDA is there, gloo on CPUs. Returns this process's device."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device
