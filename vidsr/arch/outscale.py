"""A network run below its own scale: its output resized down, antialiased (Real-ESRGAN's ``--outscale``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# LR pixels an antialiased bicubic resize down to scale >= 1 reads beyond the output pixel's own
# (its kernel spans 2 output pixels either side: at most 2 LR pixels at scale 1, 1 at scale 2)
RESIZE_RADIUS = 2


class Outscaled(nn.Module):
    """``net``'s x``net.scale`` output resized to x``scale`` (bicubic, antialiased, half-pixel centres).

    Integer LR offsets stay whole output pixels at both scales, so tiles of the resized output fit
    together exactly as the network's own do.

    Args:
        net: the SR network, (B, C, H, W) -> (B, C, H*net.scale, W*net.scale); ``net.scale`` > ``scale``.
        scale: the output scale.
        radius: ``net``'s receptive radius (LR pixels); this module's is :data:`RESIZE_RADIUS` more.
    """

    arch_name = "outscaled"

    def __init__(self, *, net: nn.Module, scale: int, radius: int) -> None:
        super().__init__()
        if not 1 <= scale < net.scale:
            raise ValueError(f"scale must be 1..{net.scale - 1} for an x{net.scale} network, got {scale}")
        self.net = net
        self.scale = scale
        self.receptive_radius = radius + RESIZE_RADIUS
        self.size_multiple = getattr(net, "size_multiple", 1)

    def config(self) -> dict:
        """The wrapped network's config with the output ``scale`` added."""
        return {**(self.net.config() if hasattr(self.net, "config") else {}), "outscale": self.scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        h, w = x.shape[-2] * self.scale, x.shape[-1] * self.scale
        return F.interpolate(y, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
