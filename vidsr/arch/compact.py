"""SRVGG-style Compact network (the shape of Real-ESRGAN's video model), written from scratch."""

from __future__ import annotations

from torch import nn

from vidsr.arch.base import Residual, SubpixelNet, check_scale


class Compact(SubpixelNet):
    """Plain VGG-style body with PReLU, pixel-shuffle tail and an upscaled-input residual.

    Args:
        scale: upscale factor (2, 3 or 4).
        num_feat: channels of the body.
        num_conv: number of 3x3 body convolutions after the head.
        residual: how the input is upscaled before the network's output is added.

    Input (B, 3, H, W) in [0, 1]; output (B, 3, H*scale, W*scale).
    """

    arch_name = "compact"
    hyperparameters = ("num_feat", "num_conv")

    def __init__(self, *, scale: int = 2, num_feat: int = 32, num_conv: int = 8,
                 residual: Residual = "bicubic") -> None:
        check_scale(scale)
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, padding=1))
        super().__init__(scale=scale, residual=residual, body=layers)
        self.num_feat = num_feat
        self.num_conv = num_conv
