"""ESPCN/FSRCNN-class tiny network: three convolutions and a pixel shuffle."""

from __future__ import annotations

from torch import nn

from vidsr.arch.base import Residual, SubpixelNet, check_scale


class ESPCN(SubpixelNet):
    """Tiny sub-pixel network (Shi et al. 2016) with PReLU and an upscaled-input residual.

    Args:
        scale: upscale factor (2, 3 or 4).
        feat1: channels after the 5x5 head.
        feat2: channels after the 3x3 middle layer.
        residual: how the input is upscaled before the network's output is added.

    Input (B, 3, H, W) in [0, 1]; output (B, 3, H*scale, W*scale).
    """

    arch_name = "espcn"
    hyperparameters = ("feat1", "feat2")

    def __init__(self, *, scale: int = 2, feat1: int = 32, feat2: int = 16,
                 residual: Residual = "bicubic") -> None:
        check_scale(scale)
        super().__init__(scale=scale, residual=residual, body=[
            nn.Conv2d(3, feat1, 5, padding=2), nn.PReLU(feat1),
            nn.Conv2d(feat1, feat2, 3, padding=1), nn.PReLU(feat2),
            nn.Conv2d(feat2, 3 * scale * scale, 3, padding=1),
        ])
        self.feat1 = feat1
        self.feat2 = feat2
