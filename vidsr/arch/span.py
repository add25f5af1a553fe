"""SPAN, the Swift Parameter-free Attention Network (Wan et al., NTIRE 2024 efficient SR winner),
written from the paper and the authors' published layout, in its training form (Conv3XC branches)
and its reparameterised form (one 3x3 convolution per Conv3XC)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.errors import ModelError

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean the published models subtract (not in the weights)
IMG_RANGE = 255.0
NUM_BLOCKS = 6
# Conv3XC layers: conv_1, 3 per block, conv_2; with the upsampler's 3x3 conv, 21 3x3 convolutions in a row
CONV3XC = ("conv_1", *(f"block_{b}.c{i}_r" for b in range(1, NUM_BLOCKS + 1) for i in (1, 2, 3)), "conv_2")


def fuse_conv3xc(sk: nn.Conv2d, convs: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    """The one 3x3 convolution equal to ``sk(x) + convs(x)`` (1x1 -> 3x3 -> 1x1, no nonlinearity).

    Returns:
        weight (c_out, c_in, 3, 3) and bias (c_out,).
    """
    c1, c2, c3 = convs
    w1, w2, w3 = c1.weight[:, :, 0, 0], c2.weight, c3.weight[:, :, 0, 0]
    weight = torch.einsum("on,nmyx,mi->oiyx", w3, w2, w1)
    bias = w3 @ (torch.einsum("nmyx,m->n", w2, c1.bias) + c2.bias) + c3.bias
    weight = weight + F.pad(sk.weight, (1, 1, 1, 1))
    return weight, bias + sk.bias


class Conv3XC(nn.Module):
    """A 3x3 convolution trained as a 1x1 skip plus a widened 1x1 -> 3x3 -> 1x1 branch.

    The training form holds ``sk``, ``conv`` (the branch) and ``eval_conv`` (the authors' cached
    fusion, kept for their key layout and ignored: the forward fuses the branches, as theirs does).
    The reparameterised form holds ``eval_conv`` only.
    """

    def __init__(self, *, c_in: int, c_out: int, gain: int = 2, reparameterized: bool = False) -> None:
        super().__init__()
        self.reparameterized = reparameterized
        if not reparameterized:
            self.sk = nn.Conv2d(c_in, c_out, 1)
            self.conv = nn.Sequential(nn.Conv2d(c_in, c_in * gain, 1), nn.Conv2d(c_in * gain, c_out * gain, 3),
                                      nn.Conv2d(c_out * gain, c_out, 1))
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 weight and bias this layer applies."""
        if self.reparameterized:
            return self.eval_conv.weight, self.eval_conv.bias
        return fuse_conv3xc(self.sk, self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, *self.fused(), padding=1)


class SPAB(nn.Module):
    """Swift parameter-free attention block: three Conv3XC with SiLU between; the last one's output
    gives the attention ``sigmoid(out3) - 0.5`` that scales ``out3 + x``."""

    def __init__(self, *, channels: int, reparameterized: bool) -> None:
        super().__init__()
        for i in (1, 2, 3):
            setattr(self, f"c{i}_r", Conv3XC(c_in=channels, c_out=channels, reparameterized=reparameterized))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (block output, first conv's output)."""
        out1 = self.c1_r(x)
        out3 = self.c3_r(F.silu(self.c2_r(F.silu(out1))))
        return (out3 + x) * (torch.sigmoid(out3) - 0.5), out1


class SPAN(nn.Module):
    """SPAN: Conv3XC head, six SPABs, Conv3XC, 1x1 fusion of four feature maps, conv + pixel shuffle.

    Every spatial layer is 3x3 and the attention is pointwise, so the receptive radius is exactly 21
    LR pixels. The published models subtract :data:`RGB_MEAN` and scale by 255 first (``norm``);
    checkpoints with a ``no_norm`` entry do not.

    Args:
        num_in_ch: input channels.
        num_out_ch: output channels.
        feature_channels: width (48 in the published x4/x2 models).
        upscale: 1 to 4.
        norm: subtract the mean and scale by 255 before the head.
        reparameterized: one 3x3 conv per Conv3XC (``eval_conv`` keys only) instead of the branches.

    Input (B, in, H, W) in [0, 1]; output (B, out, H*upscale, W*upscale).
    """

    arch_name = "span"
    receptive_radius = len(CONV3XC) + 1

    def __init__(self, *, num_in_ch: int = 3, num_out_ch: int = 3, feature_channels: int = 48, upscale: int = 4,
                 norm: bool = True, reparameterized: bool = False) -> None:
        super().__init__()
        c, rep = feature_channels, reparameterized
        self.num_in_ch, self.num_out_ch, self.feature_channels = num_in_ch, num_out_ch, c
        self.scale, self.norm, self.reparameterized = upscale, norm, reparameterized
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        if not norm:
            self.register_buffer("no_norm", torch.zeros(1))
        self.conv_1 = Conv3XC(c_in=num_in_ch, c_out=c, reparameterized=rep)
        for b in range(1, NUM_BLOCKS + 1):
            setattr(self, f"block_{b}", SPAB(channels=c, reparameterized=rep))
        self.conv_cat = nn.Conv2d(4 * c, c, 1)
        self.conv_2 = Conv3XC(c_in=c, c_out=c, reparameterized=rep)
        self.upsampler = nn.Sequential(nn.Conv2d(c, num_out_ch * upscale * upscale, 3, padding=1),
                                       nn.PixelShuffle(upscale))

    def config(self) -> dict:
        """The constructor's keyword arguments."""
        return {"num_in_ch": self.num_in_ch, "num_out_ch": self.num_out_ch,
                "feature_channels": self.feature_channels, "upscale": self.scale, "norm": self.norm,
                "reparameterized": self.reparameterized}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm:
            x = (x - self.mean.to(x.dtype)) * IMG_RANGE
        head = self.conv_1(x)
        out, b1 = head, None
        for b in range(1, NUM_BLOCKS + 1):
            out, first = getattr(self, f"block_{b}")(out)
            if b == 1:
                b1 = out
        # the fusion reads the head, conv_2 of the last block, block 1's output and the last block's first conv
        cat = torch.cat([head, self.conv_2(out), b1, first], 1)
        return self.upsampler(self.conv_cat(cat))

    def reparameterize(self) -> SPAN:
        """A copy in the reparameterised form (same outputs, about a third of the work per pixel)."""
        if self.reparameterized:
            return self
        net = SPAN(**{**self.config(), "reparameterized": True})
        state = {k: v for k, v in self.state_dict().items() if not any(k.startswith(p + ".") for p in CONV3XC)}
        with torch.no_grad():
            for p in CONV3XC:
                w, b = self.get_submodule(p).fused()
                state[f"{p}.eval_conv.weight"], state[f"{p}.eval_conv.bias"] = w, b
        net.load_state_dict(state, strict=True)
        return net.train(self.training)


def span_config(state: dict[str, torch.Tensor]) -> dict:
    """:class:`SPAN` keyword arguments read from a state dict in either form."""
    reparameterized = "conv_1.sk.weight" not in state
    head = state["conv_1.eval_conv.weight" if reparameterized else "conv_1.sk.weight"]
    feature_channels, num_in_ch = head.shape[:2]
    up = state["upsampler.0.weight"].shape[0]
    scale = next((s for s in (1, 2, 3, 4) if up == num_in_ch * s * s), None)
    if scale is None:
        raise ModelError(f"SPAN: upsampler has {up} outputs for {num_in_ch} input channels (need in * scale**2)")
    return {"num_in_ch": num_in_ch, "num_out_ch": num_in_ch, "feature_channels": feature_channels,
            "upscale": scale, "norm": "no_norm" not in state, "reparameterized": reparameterized}
