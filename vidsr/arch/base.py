"""What the sub-pixel architectures share: the residual upscale, window trimming, :class:`SubpixelNet`."""

from __future__ import annotations

import copy
import functools
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

Residual = Literal["nearest", "bilinear", "bicubic", "none"]
SCALES = (2, 3, 4)


def check_scale(scale: int) -> None:
    """Raise ValueError unless ``scale`` is one the architectures are built for."""
    if scale not in SCALES:
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")


def upsample_residual(x: torch.Tensor, scale: int, mode: Residual) -> torch.Tensor | None:
    """Cheap upscale that the network's output is added to. ``x``: (B, 3, H, W)."""
    if mode == "none":
        return None
    if mode == "nearest":
        return F.interpolate(x, scale_factor=scale, mode="nearest")
    return F.interpolate(x, scale_factor=scale, mode=mode, align_corners=False)


Trim = tuple[bool, bool]
NO_TRIM: Trim = (False, False)
_TAPS = 5  # every residual mode reads at most 2 LR pixels either side


@functools.lru_cache(maxsize=None)
def _phase_taps(scale: int, mode: Residual) -> torch.Tensor:
    """(scale, 5) weights: output phase p of LR pixel i is sum_d w[p, d] * x[i + d - 2].

    Read off :func:`upsample_residual` itself by upscaling 1-D impulses, so they match it exactly."""
    n = 16
    w = torch.zeros(scale, _TAPS, dtype=torch.float64)
    for d in range(_TAPS):
        impulse = torch.zeros(1, 1, 1, n, dtype=torch.float64)
        k = n // 2
        impulse[..., k] = 1.0
        up = upsample_residual(impulse, scale, mode)[0, 0, 0]
        # output s*i + p with i = k - (d - 2) sees the impulse through tap d
        i = k - (d - 2)
        w[:, d] = up[scale * i:scale * i + scale]
    return w


def residual_kernel(scale: int, mode: Residual, channels: int = 3) -> torch.Tensor:
    """(channels * scale**2, 1, 5, 5) grouped-conv weights that give :func:`upsample_residual` in
    pixel-shuffle layout: ``shuffle(conv(pad(x, 2, replicate), kernel))`` == ``upsample_residual(x)``."""
    w = _phase_taps(scale, mode)
    k2 = torch.einsum("ya,xb->yxab", w, w).reshape(scale * scale, _TAPS, _TAPS)
    return k2.repeat(channels, 1, 1).unsqueeze(1).float()


def subpixel_residual(x: torch.Tensor, kernel: torch.Tensor, *, unpadded: Trim = NO_TRIM) -> torch.Tensor:
    """The residual upscale at LR resolution in pixel-shuffle layout: (B, C, H, W) -> (B, C*s*s, H, W).

    Cheaper than upscaling and adding at HR; borders replicate, as interpolation clamps. Runs in the
    input's dtype even under autocast, so a bf16 body does not round the residual. ``kernel`` is
    :func:`residual_kernel` (grouped, one input channel per output) or a dense (C*s*s, C, 5, 5) one.
    Axes (rows, cols) in ``unpadded`` are not padded: the output lacks ``_TAPS // 2`` pixels at both
    of their ends (for a caller that would cut at least that much; replicating a channels_last
    input cost 1.6 ms per 144k-pixel window on the AVX2 host)."""
    p = _TAPS // 2
    py, px = 0 if unpadded[0] else p, 0 if unpadded[1] else p
    with torch.autocast(device_type=x.device.type, enabled=False):
        pad = F.pad(x, (px, px, py, py), mode="replicate") if py or px else x
        return F.conv2d(pad, kernel.to(x.dtype), groups=x.shape[1] // kernel.shape[1])


def phase_order(scale: int, channels: int = 3) -> torch.Tensor:
    """Output-channel permutation from PixelShuffle's (c, dy, dx) order to (dy, dx, c): channel
    ``(dy * s + dx) * C + c`` of the permuted output is channel ``(c * s + dy) * s + dx`` of the original."""
    return torch.tensor([(c * scale + dy) * scale + dx
                         for dy in range(scale) for dx in range(scale) for c in range(channels)])


def residual_radius(mode: Residual) -> int:
    """LR pixels of context the residual upscale reads on each side."""
    return {"nearest": 0, "bilinear": 1, "bicubic": 2, "none": 0}[mode]


def trim_px(x: torch.Tensor, trim: Trim, px: int) -> torch.Tensor:
    """``x`` without ``px`` pixels at both ends of the trimmed axes (rows, cols)."""
    ty, tx = px if trim[0] else 0, px if trim[1] else 0
    return x[..., ty:x.shape[-2] - ty, tx:x.shape[-1] - tx]


class SubpixelNet(nn.Module):
    """Conv ``body`` at LR resolution + cheap residual upscale, then a pixel shuffle (Compact, ESPCN).

    Subclasses build the ``body`` layers (convolutions padded by k // 2, and pointwise layers; the
    last one a conv with ``3 * scale**2`` outputs), pass them here, and name their own
    hyperparameters in ``hyperparameters`` (read by :meth:`config`).

    Args:
        scale: upscale factor (2, 3 or 4).
        residual: how the input is upscaled before the network's output is added.
        body: the layers, in order.
    """

    arch_name: ClassVar[str]
    hyperparameters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, scale: int, residual: Residual, body: list[nn.Module]) -> None:
        super().__init__()
        check_scale(scale)
        self.scale = scale
        self.residual = residual
        self.body = nn.Sequential(*body)
        self.shuffle = nn.PixelShuffle(scale)
        if residual != "none":
            self.register_buffer("residual_kernel", residual_kernel(scale, residual), persistent=False)

    def config(self) -> dict:
        """The constructor's keyword arguments: ``scale``, the hyperparameters, ``residual``."""
        return {"scale": self.scale, **{k: getattr(self, k) for k in self.hyperparameters},
                "residual": self.residual}

    @functools.cached_property
    def body_radius(self) -> int:
        # read on every call of a window; the body's layers do not change after construction
        return sum(m.kernel_size[0] // 2 for m in self.body if isinstance(m, nn.Conv2d))

    @property
    def receptive_radius(self) -> int:
        # body and residual read the input side by side
        return max(self.body_radius, residual_radius(self.residual))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.subpixels(x))

    def forward_trimmed(self, x: torch.Tensor, trim: Trim) -> torch.Tensor:
        """``forward`` of a window whose trimmed axes (rows, cols) carry at least ``receptive_radius``
        pixels of context at both ends, without them: convolutions skip their zero padding along
        those axes instead of computing context that is thrown away. The output lacks
        ``receptive_radius * scale`` pixels at both ends of the trimmed axes and equals
        ``forward`` there (and whole-frame SR)."""
        return self.shuffle(self.subpixels(x, trim))

    def subpixels(self, x: torch.Tensor, trim: Trim = NO_TRIM) -> torch.Tensor:
        """The output before the pixel shuffle: (B, 3, h, w) -> (B, 3*s*s, h', w') (``forward_trimmed``
        for ``trim``)."""
        if not any(trim):
            out = self.body(x)
            return self._unpadded(out if self.residual == "none" else out + subpixel_residual(x, self.residual_kernel))
        out = x
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                ph, pw = layer.padding
                out = F.conv2d(out, layer.weight, layer.bias, padding=(0 if trim[0] else ph, 0 if trim[1] else pw))
            else:
                out = layer(out)
        r = self.receptive_radius
        out = trim_px(out, trim, r - self.body_radius)
        if self.residual != "none":
            p = _TAPS // 2
            if r >= p:  # the trimmed axes lose r pixels: the residual's padding there would be cut
                res = trim_px(subpixel_residual(x, self.residual_kernel, unpadded=trim), trim, r - p)
            else:
                res = trim_px(subpixel_residual(x, self.residual_kernel), trim, r)
            out = out + res
        return self._unpadded(out)

    def _unpadded(self, out: torch.Tensor) -> torch.Tensor:
        """Drop the zero output channels a :meth:`phase_major` copy pads its last layers with."""
        n = 3 * self.scale ** 2
        return out if out.shape[1] == n else out[:, :n]

    def phase_major(self, *, pad_to: int = 1) -> SubpixelNet:
        """A copy whose :meth:`subpixels` come in (dy, dx, c) channel order (:func:`phase_order`), so
        that in channels_last memory each LR pixel holds its s*s output pixels' RGB in output order:
        the pixel shuffle becomes a copy of whole rows of ``s * 3`` values. Its ``forward`` is not SR.

        ``pad_to``: the last convolution and the residual compute zero output channels up to a
        multiple of this, dropped from :meth:`subpixels` (a view). oneDNN's AVX2 kernels work in
        blocks of 8 channels: x2's 12 outputs padded to 16 took ~10 % less time per call of
        compact-x2 on the AVX2 host."""
        net = copy.deepcopy(self)
        last = net.body[-1]
        n = 3 * self.scale ** 2
        if not isinstance(last, nn.Conv2d) or last.out_channels != n:
            raise ValueError(f"{type(self).__name__}: the body must end in a conv with 3*s*s outputs")
        order = phase_order(self.scale)
        extra = -n % pad_to
        last.weight.data = _pad_rows(last.weight.data[order], extra)
        if last.bias is not None:
            last.bias.data = _pad_rows(last.bias.data[order], extra)
        last.out_channels = n + extra
        if self.residual != "none":
            k = self.residual_kernel  # grouped: output channel o reads input channel o // (s*s)
            dense = torch.zeros(k.shape[0], 3, *k.shape[2:], dtype=k.dtype)
            for o in range(k.shape[0]):
                dense[o, o // self.scale ** 2] = k[o, 0]
            net.residual_kernel = _pad_rows(dense[order], extra).contiguous()
        return net


def _pad_rows(t: torch.Tensor, extra: int) -> torch.Tensor:
    """``t`` with ``extra`` zero entries appended along its first axis (a new tensor)."""
    return torch.cat([t, t.new_zeros(extra, *t.shape[1:])]) if extra else t.clone()
