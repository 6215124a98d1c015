"""Step 5 of the SimCLR chain: a Gaussian blur with its own σ per image (ImageNet only in the paper)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur each image with its own Gaussian, ``σ`` per image: ``(B, C, H, W)``, ``(B,)`` → same.

    The 2-D Gaussian is separable: one horizontal then one vertical 1-D convolution. Treating the
    ``B·C`` channels as groups of one ``conv2d`` gives every image its own kernel. Borders are
    reflected, the kernel sampled at integer offsets and normalised to sum 1 (as torchvision).
    """
    batch, channels, height, width = x.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)  # (k,)
    kernel = torch.exp(-0.5 * (offsets / sigma.to(x.dtype).view(-1, 1)) ** 2)  # (B, k)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, k)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B·C, k) one kernel per channel
    y = x.reshape(1, batch * channels, height, width)  # (1, B·C, H, W)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")  # (1, B·C, H+2r, W+2r)
    y = F.conv2d(y, kernel.view(-1, 1, 1, kernel_size), groups=batch * channels)  # rows
    y = F.conv2d(y, kernel.view(-1, 1, kernel_size, 1), groups=batch * channels)  # columns
    return y.view(batch, channels, height, width)


__all__ = ["gaussian_blur"]
