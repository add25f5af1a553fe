"""ESPCN/FSRCNN-class tiny network: three convolutions and a pixel shuffle."""

from __future__ import annotations

from torch import nn

from vidsr.arch.compact import Residual, SubpixelNet, residual_kernel


class ESPCN(SubpixelNet):
    """Tiny sub-pixel network (Shi et al. 2016) with PReLU and an upscaled-input residual.

    Args:
        scale: upscale factor (2 or 4).
        feat1: channels after the 5x5 head.
        feat2: channels after the 3x3 middle layer.
        residual: how the input is upscaled before the network's output is added.

    Input (B, 3, H, W) in [0, 1]; output (B, 3, H*scale, W*scale).
    """

    arch_name = "espcn"

    def __init__(self, *, scale: int = 2, feat1: int = 32, feat2: int = 16,
                 residual: Residual = "bicubic") -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        self.scale = scale
        self.feat1 = feat1
        self.feat2 = feat2
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(3, feat1, 5, padding=2), nn.PReLU(feat1),
            nn.Conv2d(feat1, feat2, 3, padding=1), nn.PReLU(feat2),
            nn.Conv2d(feat2, 3 * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)
        if residual != "none":
            self.register_buffer("residual_kernel", residual_kernel(scale, residual), persistent=False)

    def config(self) -> dict:
        return {"scale": self.scale, "feat1": self.feat1, "feat2": self.feat2,
                "residual": self.residual}
