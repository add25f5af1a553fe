"""ESRGAN / Real-ESRGAN RRDBNet (Wang et al. 2018, 2021), written from the papers' description, with
the mapping of the original ESRGAN key layout (``model.N``) onto it."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.errors import ModelError

# input pixel-unshuffle factor per scale: x2 and x1 networks run the x4 body on space-to-depth input
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class DenseBlock(nn.Module):
    """Residual dense block: five 3x3 convs, each reading the block input and all earlier outputs;
    output = input + 0.2 * conv5."""

    def __init__(self, *, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for i in range(5):
            out = num_feat if i == 4 else num_grow_ch
            setattr(self, f"conv{i + 1}", nn.Conv2d(num_feat + i * num_grow_ch, out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks; output = input + 0.2 * their result."""

    def __init__(self, *, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = DenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = DenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = DenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, ``num_block`` RRDBs + conv with a long skip, two nearest x2 upsamplings
    each followed by a conv, then two convs at HR. The body is x4; x2 and x1 networks (Real-ESRGAN's
    RealESRGAN_x2plus) pixel-unshuffle the input by 2 or 4 first, so their input size must be a
    multiple of that (:attr:`size_multiple`).

    Args:
        num_in_ch: image channels (the first conv sees ``num_in_ch * unshuffle**2``).
        num_out_ch: output channels.
        scale: 1, 2 or 4.
        num_feat: channels of the body.
        num_block: RRDB count (23 in ESRGAN and Real-ESRGAN x4plus).
        num_grow_ch: growth channels of the dense blocks.

    Input (B, in, H, W) in [0, 1]; output (B, out, H*scale, W*scale).
    """

    arch_name = "rrdb"

    def __init__(self, *, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"scale must be 1, 2 or 4, got {scale}")
        self.num_in_ch, self.num_out_ch, self.scale = num_in_ch, num_out_ch, scale
        self.num_feat, self.num_block, self.num_grow_ch = num_feat, num_block, num_grow_ch
        self.size_multiple = _UNSHUFFLE[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.size_multiple ** 2, num_feat, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def config(self) -> dict:
        """The constructor's keyword arguments."""
        return {"num_in_ch": self.num_in_ch, "num_out_ch": self.num_out_ch, "scale": self.scale,
                "num_feat": self.num_feat, "num_block": self.num_block, "num_grow_ch": self.num_grow_ch}

    @property
    def theoretical_radius(self) -> int:
        """Input pixels any output pixel can depend on (each side); the effective radius is far smaller
        (:func:`vidsr.arch.detect.measure_radius`)."""
        # conv_first, 15 convs per RRDB and conv_body at body resolution (1/u of the input); the four
        # convs at x2/x4 add 1.25 body pixels; one more for the unshuffle/upsampling phases
        return self.size_multiple * (15 * self.num_block + 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.size_multiple) if self.size_multiple > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def rrdb_config(state: dict[str, torch.Tensor]) -> dict:
    """:class:`RRDBNet` keyword arguments read from a state dict in the BasicSR / Real-ESRGAN layout."""
    if "conv_up3.weight" in state:
        raise ModelError("RRDBNet x8 (conv_up3) is not supported")
    first, last = state["conv_first.weight"], state["conv_last.weight"]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))}
    if not blocks:
        raise ModelError("RRDBNet: no body.N.rdb1.conv1.weight keys")
    num_out_ch = last.shape[0]
    ratio = first.shape[1] // num_out_ch
    scale = {1: 4, 4: 2, 16: 1}.get(ratio) if first.shape[1] % num_out_ch == 0 else None
    if scale is None:
        raise ModelError(f"RRDBNet: conv_first reads {first.shape[1]} channels for {num_out_ch} output "
                         "channels (need 1x, 4x or 16x: scale 4, 2 or 1)")
    return {"num_in_ch": num_out_ch, "num_out_ch": num_out_ch, "scale": scale, "num_feat": first.shape[0],
            "num_block": max(blocks) + 1, "num_grow_ch": state["body.0.rdb1.conv1.weight"].shape[0]}


_OLD_TOP = {"model.0.": "conv_first.", "model.3.": "conv_up1.", "model.6.": "conv_up2.",
            "model.8.": "conv_hr.", "model.10.": "conv_last."}
_OLD_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_BODY_CONV = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")


def from_old_esrgan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original ESRGAN x4 layout (``model.0``, ``model.1.sub.N.RDBk.convM.0``, ``model.1.sub.<last>``,
    ``model.3/6/8/10``) renamed to :class:`RRDBNet`'s keys. Unknown keys raise :class:`ModelError`."""
    if any(k.startswith(("model.12.", "model.13.")) for k in state):
        raise ModelError("old-layout ESRGAN with more than two upsamplings (x8) is not supported")
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if m := _OLD_BLOCK.match(k):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = v
        elif m := _OLD_BODY_CONV.match(k):
            out[f"conv_body.{m.group(2)}"] = v
        elif top := next((p for p in _OLD_TOP if k.startswith(p)), None):
            out[_OLD_TOP[top] + k[len(top):]] = v
        else:
            raise ModelError(f"old-layout ESRGAN: unexpected key {k!r} (only the x4 layout is supported)")
    return out
