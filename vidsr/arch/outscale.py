"""A network run below its own scale: its output resized down, antialiased (Real-ESRGAN's ``--outscale``).

The resize is torch's antialiased bicubic (``F.interpolate(..., antialias=True)``) written as strided
convolutions, so that it exports to ONNX (opset 17 has no antialiased Resize; ``aten::_upsample_bicubic2d_aa``
does not export) and ``--backend ort`` runs the same graph as torch.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

# LR pixels an antialiased bicubic resize down to scale >= 1 reads beyond the output pixel's own
# (its kernel spans 2 output pixels either side: at most 2 LR pixels at scale 1, 1 at scale 2)
RESIZE_RADIUS = 2


@functools.lru_cache(maxsize=None)
def resize_taps(p: int, q: int) -> tuple[torch.Tensor, int]:
    """1-D weights of torch's antialiased bicubic resize by ``q / p`` (``p > q``, coprime).

    Returns ``(taps, left)``: taps (q, T), output pixel ``q * m + k`` is
    ``sum_d taps[k, d] * x[p * m + d - left]`` away from the borders. Read off ``F.interpolate`` itself
    (a batch of impulses), so they match it; at the borders torch renormalises the in-bounds weights,
    which :func:`resize_down` does by dividing by the same sum over ones."""
    n, m = p * 64, 32
    with torch.inference_mode(False), torch.no_grad():  # cached: must be usable under autograd too
        eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, 1, n)
        out = F.interpolate(eye, size=(1, n * q // p), mode="bicubic", antialias=True, align_corners=False)
        weights = out[:, 0, 0, :].T  # (n_out, n_in): output j = sum_i weights[j, i] * x[i]
        rows = weights[q * m:q * m + q]
        nz = rows.abs().sum(0).nonzero().flatten()
        lo, hi = int(nz.min()), int(nz.max()) + 1
        return rows[:, lo:hi].float().contiguous(), p * m - lo


def _resize_axis(x: torch.Tensor, taps: torch.Tensor, left: int, p: int, axis: int) -> torch.Tensor:
    """Resize along ``axis`` (2 = rows, 3 = columns) of (B, C, H, W); the length must divide by ``p``."""
    q, t = taps.shape
    b, c = x.shape[0], x.shape[1]
    if axis == 3:
        x = x.transpose(2, 3)
    length = x.shape[2]
    right = max(t - p - left, 0)
    pad = F.pad(x, (0, 0, left, right))
    ones = F.pad(torch.ones_like(x[:1, :1]), (0, 0, left, right))
    kernel = taps.to(x.dtype).reshape(q, 1, t, 1)
    num = F.conv2d(pad.reshape(b * c, 1, pad.shape[2], pad.shape[3]), kernel, stride=(p, 1))
    den = F.conv2d(ones, kernel, stride=(p, 1))
    y = (num / den)[:, :, :length // p]  # (B*C, q, M, W)
    y = y.reshape(b, c, q, -1, y.shape[-1]).permute(0, 1, 3, 2, 4).reshape(b, c, -1, y.shape[-1])
    return y.transpose(2, 3) if axis == 3 else y


def resize_down(y: torch.Tensor, ratio: Fraction) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H / ratio, W / ratio): ``F.interpolate(y, size, mode="bicubic",
    antialias=True, align_corners=False)`` for ``ratio = p / q > 1`` with H and W multiples of p."""
    p, q = ratio.numerator, ratio.denominator
    taps, left = resize_taps(p, q)
    return _resize_axis(_resize_axis(y, taps, left, p, 2), taps, left, p, 3)


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
        self.ratio = Fraction(net.scale, scale)
        self.receptive_radius = radius + RESIZE_RADIUS
        self.size_multiple = getattr(net, "size_multiple", 1)

    def config(self) -> dict:
        """The wrapped network's config with the output ``scale`` added."""
        return {**(self.net.config() if hasattr(self.net, "config") else {}), "outscale": self.scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_down(self.net(x), self.ratio)
