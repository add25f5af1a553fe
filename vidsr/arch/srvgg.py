"""Real-ESRGAN's SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3 and OpenModelDB "Compact"
models), written from its published description, and its detection from state-dict keys.

The common case (PReLU, RGB, x2-x4) is exactly vidsr's :class:`~vidsr.arch.compact.Compact` with a
nearest-neighbour residual: same ``body.N`` keys, same layers, so it loads into Compact directly and
keeps Compact's trimmed and phase-major CPU paths. :class:`SRVGGNetCompact` covers the rest: ReLU or
LeakyReLU bodies, x1, other channel counts.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.arch.compact import Compact
from vidsr.errors import ModelError

Act = Literal["prelu", "relu", "leakyrelu"]
ACTS: tuple[str, ...] = ("prelu", "relu", "leakyrelu")


def _act(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"act_type must be one of {', '.join(ACTS)}, got {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """VGG-style body at LR resolution, pixel shuffle, plus the nearest-upsampled input.

    ``body`` = conv(in, feat), act, ``num_conv`` x [conv(feat, feat), act], conv(feat, out * s * s);
    all convolutions 3x3, so the receptive radius is exactly ``num_conv + 2`` LR pixels.

    Args:
        num_in_ch: input channels.
        num_out_ch: output channels.
        num_feat: channels of the body.
        num_conv: 3x3 convolutions between the head and the tail.
        upscale: 1 to 4.
        act_type: ``prelu`` (one slope per channel), ``relu`` or ``leakyrelu`` (slope 0.1).

    Input (B, in, H, W) in [0, 1]; output (B, out, H*upscale, W*upscale).
    """

    arch_name = "srvgg"

    def __init__(self, *, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: Act = "prelu") -> None:
        super().__init__()
        if upscale not in (1, 2, 3, 4):
            raise ValueError(f"upscale must be 1-4, got {upscale}")
        if num_out_ch != num_in_ch:
            raise ValueError("the output adds the upsampled input: num_out_ch must equal num_in_ch")
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, padding=1), _act(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), _act(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, padding=1))
        self.body = nn.ModuleList(layers)
        self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
        self.num_feat, self.num_conv = num_feat, num_conv
        self.scale = upscale
        self.act_type = act_type

    @property
    def receptive_radius(self) -> int:
        return self.num_conv + 2

    def config(self) -> dict:
        """The constructor's keyword arguments."""
        return {"num_in_ch": self.num_in_ch, "num_out_ch": self.num_out_ch, "num_feat": self.num_feat,
                "num_conv": self.num_conv, "upscale": self.scale, "act_type": self.act_type}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = F.pixel_shuffle(out, self.scale)
        base = x if self.scale == 1 else F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return out + base


def srvgg_config(state: dict[str, torch.Tensor], *, act_type: Act | None = None) -> dict:
    """:class:`SRVGGNetCompact` keyword arguments read from a ``body.N.weight`` state dict.

    PReLU bodies are recognised by their ``body.1.weight`` slopes; ReLU and LeakyReLU leave no keys, so
    ``act_type`` (default ``relu``) decides between them.
    """
    convs = sorted(int(k.split(".")[1]) for k, v in state.items()
                   if k.startswith("body.") and k.endswith(".weight") and v.ndim == 4)
    if not convs or convs[0] != 0:
        raise ModelError("SRVGGNetCompact: no body.0.weight convolution")
    last = convs[-1]
    if convs != list(range(0, last + 1, 2)) or last < 2:
        raise ModelError(f"SRVGGNetCompact: body convolutions at {convs[:6]}... are not every other layer")
    head, tail = state["body.0.weight"], state[f"body.{last}.weight"]
    num_in_ch, num_feat = head.shape[1], head.shape[0]
    scale = math.isqrt(tail.shape[0] // num_in_ch)
    if tail.shape[0] != num_in_ch * scale * scale or scale not in (1, 2, 3, 4):
        raise ModelError(f"SRVGGNetCompact: tail has {tail.shape[0]} outputs for {num_in_ch} input channels "
                         "(need in * scale**2, scale 1-4)")
    prelu = "body.1.weight" in state
    if act_type is None:
        act_type = "prelu" if prelu else "relu"
    elif (act_type == "prelu") != prelu:
        raise ModelError(f"SRVGGNetCompact: act_type {act_type!r} does not fit the keys (PReLU weights "
                         f"{'present' if prelu else 'absent'})")
    return {"num_in_ch": num_in_ch, "num_out_ch": num_in_ch, "num_feat": num_feat,
            "num_conv": (last - 2) // 2, "upscale": scale, "act_type": act_type}


def build_srvgg(config: dict) -> nn.Module:
    """The network for :func:`srvgg_config`'s result: vidsr's :class:`Compact` with a nearest residual
    where it is the same network (PReLU, 3 -> 3 channels, x2-x4), else :class:`SRVGGNetCompact`."""
    if (config["act_type"] == "prelu" and config["num_in_ch"] == config["num_out_ch"] == 3
            and config["upscale"] in (2, 3, 4)):
        return Compact(scale=config["upscale"], num_feat=config["num_feat"], num_conv=config["num_conv"],
                       residual="nearest")
    return SRVGGNetCompact(**config)
