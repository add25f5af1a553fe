"""SRVGG-style Compact network (the shape of Real-ESRGAN's video model), written from scratch."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Residual = Literal["nearest", "bilinear", "bicubic", "none"]


def upsample_residual(x: torch.Tensor, scale: int, mode: Residual) -> torch.Tensor | None:
    """Cheap upscale that the network's output is added to. ``x``: (B, 3, H, W)."""
    if mode == "none":
        return None
    if mode == "nearest":
        return F.interpolate(x, scale_factor=scale, mode="nearest")
    return F.interpolate(x, scale_factor=scale, mode=mode, align_corners=False)


def residual_radius(mode: Residual) -> int:
    """LR pixels of context the residual upscale reads on each side."""
    return {"nearest": 0, "bilinear": 1, "bicubic": 2, "none": 0}[mode]


class Compact(nn.Module):
    """Plain VGG-style body with PReLU, pixel-shuffle tail and an upscaled-input residual.

    Args:
        scale: upscale factor (2 or 4).
        num_feat: channels of the body.
        num_conv: number of 3x3 body convolutions after the head.
        residual: how the input is upscaled before the network's output is added.

    Input (B, 3, H, W) in [0, 1]; output (B, 3, H*scale, W*scale).
    """

    arch_name = "compact"

    def __init__(self, *, scale: int = 2, num_feat: int = 32, num_conv: int = 8,
                 residual: Residual = "bicubic") -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        self.scale = scale
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.residual = residual
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)

    def config(self) -> dict:
        return {"scale": self.scale, "num_feat": self.num_feat, "num_conv": self.num_conv,
                "residual": self.residual}

    @property
    def receptive_radius(self) -> int:
        return self.num_conv + 2 + residual_radius(self.residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.body(x))
        base = upsample_residual(x, self.scale, self.residual)
        return out if base is None else out + base
