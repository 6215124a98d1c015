"""MoCo v2 (He et al., 2020; Chen et al., 2020): a query encoder, a momentum key encoder, a queue of keys."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import moco_loss
from ..distributed import gather, is_distributed, shuffled_forward
from .common import check_views, momentum_update, split_batchnorm, target_copy

__all__ = ["MoCoConfig", "MoCo"]


@dataclass
class MoCoConfig:
    """MoCo v2's settings as in the authors' CIFAR-10 demo (facebookresearch/moco,
    ``colab/moco_cifar10_demo.ipynb``: ResNet-18, batch 512, SGD lr 0.06, 200-800 epochs).

    * ``queue_size`` K = 4096 keys (the demo saw no gain beyond it on CIFAR; ImageNet: 65 536).
    * ``momentum`` m = 0.99 of the key encoder (ImageNet: 0.999).
    * ``temperature`` τ = 0.1, the demo's; MoCo v2 on ImageNet uses 0.2 (v1: 0.07). Chosen for
      CIFAR-sized runs: the course follows the CIFAR recipe.
    * ``projector_dim`` = 128; ``mlp=True``: MoCo v2's head Linear(D, hidden)-ReLU-Linear(hidden, 128),
      no BatchNorm, ``projector_hidden`` None = D (the v2 paper: 2048 on ResNet-50); ``mlp=False``:
      MoCo v1's linear head, which is what the demo's code actually uses.
    * ``bn_splits`` = 8: BatchNorm statistics per sub-batch of B/8 images, the demo's stand-in for
      8 GPUs (1 = ordinary BatchNorm over the batch, like SyncBatchNorm; then no shuffling).
    * ``symmetric=False``: one loss per step, x1 the query, x2 the key (MoCo v2). ``True``: the demo's
      option, ℓ(q₁, k₂) + ℓ(q₂, k₁), enqueuing both keys; it behaves like twice the epochs.
    """

    queue_size: int = 4096
    momentum: float = 0.99
    temperature: float = 0.1
    projector_dim: int = 128
    projector_hidden: Optional[int] = None
    mlp: bool = True
    bn_splits: int = 8
    symmetric: bool = False


def moco_head(in_dim: int, hidden_dim: Optional[int], out_dim: int, mlp: bool = True) -> nn.Module:
    """MoCo v2's g(h) = W₂ ReLU(W₁ h) (no BatchNorm), or v1's g(h) = W h: ``(B, in_dim)`` → ``(B, out_dim)``."""
    if not mlp:
        return nn.Linear(in_dim, out_dim)
    hidden_dim = hidden_dim or in_dim
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class MoCo(nn.Module):
    """L = −log exp(q·k₊/τ) / (exp(q·k₊/τ) + Σ_{k ∈ queue} exp(q·k/τ)); θ_k ← m θ_k + (1 − m) θ_q.

    Momentum Contrast (He et al., 2020), v2 (Chen et al., 2020); IIT Hyderabad deck. Parts: the
    query encoder f_q = ``projector`` ∘ ``backbone``; the key encoder f_k = ``target_projector`` ∘
    ``target_backbone``, a :func:`target_copy` that gets no gradient and follows f_q through
    :meth:`update_target` (pass ``on_step=target_update()`` to ``fit``); the buffers ``queue``
    ``(K, D)`` of L2-normalised keys (random unit vectors at the start) and ``queue_ptr``.

    ``forward(x1, x2)``: q = f_q(x1) ``(B, D)``; k = f_k(x2) under ``no_grad``; the 0-dim loss
    :func:`~course_lib.losses.moco_loss` (q, k, queue); then, in train mode, the keys are
    **enqueued**: they overwrite the K slots from ``queue_ptr`` on (wrapping round), so the oldest
    keys leave first and the queue keeps its size. A step may enqueue at most K keys.

    BatchNorm on one device (``bn_splits`` S > 1): every BatchNorm2d of the backbone (so of both
    encoders) becomes a :class:`SplitBatchNorm2d` (in place: the backbone passed in is changed), and
    the key batch is shuffled before f_k and un-shuffled after, so a query and its key are
    normalised with the statistics of different sub-batches. What this reproduces of MoCo's
    shuffling BN on S GPUs: the statistics each GPU would compute, and that they cannot tell a
    positive pair apart (MoCo §3.3). What it does not: the speed of S GPUs; the cross-GPU gather; one
    set of running statistics per GPU (here the average over the sub-batches, as the demo keeps).
    B must be a multiple of S. The heads' layers are Linear, so they are not split.

    Under ``torchrun`` (W processes) it is MoCo's own multi-GPU recipe: each process's BatchNorm sees only
    its share (``global_batchnorm = False``), the key batch is shuffled across processes
    (:func:`~course_lib.distributed.shuffled_forward`), and every process enqueues the keys of all W.
    """

    global_batchnorm = False

    def __init__(self, backbone: nn.Module, config: Optional[MoCoConfig] = None):
        super().__init__()
        self.config = c = config or MoCoConfig()
        if c.queue_size < 1 or c.bn_splits < 1:
            raise ValueError(f"queue_size and bn_splits must be >= 1, got {c.queue_size} and {c.bn_splits}")
        self.backbone = split_batchnorm(backbone, c.bn_splits)
        self.projector = moco_head(backbone.out_dim, c.projector_hidden, c.projector_dim, c.mlp)
        self.target_backbone = target_copy(self.backbone)
        self.target_projector = target_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(c.queue_size, c.projector_dim), dim=1))  # (K, D)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def extra_repr(self) -> str:
        return repr(self.config)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """h = backbone(x): the representation kept, ``(B, 3, H, W)`` → ``(B, backbone.out_dim)``."""
        return self.backbone(x)

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """k = f_k(x), ``(B, D)``, no gradient; with ``bn_splits`` > 1 the batch is shuffled through f_k."""
        if is_distributed():  # shuffling BN across the processes
            return shuffled_forward(lambda v: self.target_projector(self.target_backbone(v)), x)
        if self.config.bn_splits == 1:
            return self.target_projector(self.target_backbone(x))
        perm = torch.randperm(len(x), device=x.device)  # shuffle ...
        k = self.target_projector(self.target_backbone(x[perm]))  # (B, D), in shuffled order
        return k[torch.argsort(perm)]  # ... and un-shuffle: row i is the key of x[i]

    @torch.no_grad()
    def enqueue(self, k: torch.Tensor) -> None:
        """queue[ptr … ptr + n − 1 (mod K)] ← k / ‖k‖; ptr ← (ptr + n) mod K: first in, first out."""
        n, size = len(k), len(self.queue)
        if n > size:
            raise ValueError(f"a step enqueues {n} keys but queue_size K = {size}: use K >= the keys per step")
        slots = (self.queue_ptr + torch.arange(n, device=self.queue.device)) % size  # (n,)
        self.queue[slots] = F.normalize(k.detach().to(self.queue.dtype), dim=1)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        check_views(x1, x2)
        c = self.config
        queue = self.queue.clone()  # the negatives of this step: enqueue() below must not change them
        q1 = self.projector(self.backbone(x1))  # (B, D)
        k2 = self.keys(x2)  # (B, D), no gradient
        loss, new_keys = moco_loss(q1, k2, queue, temperature=c.temperature), k2
        if c.symmetric:
            q2, k1 = self.projector(self.backbone(x2)), self.keys(x1)
            loss = loss + moco_loss(q2, k1, queue, temperature=c.temperature)
            new_keys = torch.cat([k1, k2])  # (2B, D)
        if self.training:
            self.enqueue(gather(new_keys))  # the keys of every process, in the same order everywhere
        return loss

    def update_target(self, step: Optional[int] = None, total_steps: Optional[int] = None) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q for (backbone, projector) → (target_*), m = ``config.momentum``
        (constant, as MoCo; ``step`` and ``total_steps`` are accepted and unused)."""
        momentum_update(self.backbone, self.target_backbone, self.config.momentum)
        momentum_update(self.projector, self.target_projector, self.config.momentum)
