"""Pixel losses and the thesis' depth semantic loss (pixel loss weighted by the foreground mask).

The depth semantic loss weights every pixel's error by ``w = w_bg + (w_fg - w_bg) * m``, with
``m`` the *soft* foreground mask in [0, 1] (feathered, so the weight changes smoothly across
the subject's edge instead of jumping), and takes the weighted mean::

    loss = sum_p w_p * e_p / sum_p w_p,    e_p = mean over channels of |pred - target|
                                               (or sqrt((pred - target)^2 + eps^2) for Charbonnier)

Normalising by the weights keeps the loss on the scale of the plain pixel loss whatever the
batch's foreground share, and with ``w_fg == w_bg`` it *is* the plain loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.errors import InputError

PixelLoss = Literal["l1", "charbonnier"]
PIXEL_LOSSES: tuple[PixelLoss, ...] = ("l1", "charbonnier")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """The training loss.

    Args:
        pixel: ``l1`` or ``charbonnier`` (``sqrt(d^2 + eps^2)``, a smooth L1).
        w_fg: weight of foreground pixels (soft mask = 1).
        w_bg: weight of background pixels (soft mask = 0).
        eps: Charbonnier's epsilon (in [0, 1] pixel units).
    """

    pixel: PixelLoss = "l1"
    w_fg: float = 1.0
    w_bg: float = 1.0
    eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.pixel not in PIXEL_LOSSES:
            raise InputError(f"pixel loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.pixel!r}")
        if self.w_fg < 0 or self.w_bg < 0 or self.w_fg + self.w_bg == 0:
            raise InputError(f"need w_fg, w_bg >= 0 and not both 0, got {self.w_fg}, {self.w_bg}")
        if self.eps <= 0:
            raise InputError(f"eps must be > 0, got {self.eps}")

    @property
    def semantic(self) -> bool:
        """True when foreground and background are weighted differently (needs masks)."""
        return self.w_fg != self.w_bg

    @property
    def label(self) -> str:
        return f"semantic-{self.pixel}(fg {self.w_fg:g}, bg {self.w_bg:g})" if self.semantic else self.pixel


def pixel_error(pred: torch.Tensor, target: torch.Tensor, *, pixel: PixelLoss = "l1", eps: float = 1e-3) -> torch.Tensor:
    """Per-pixel error averaged over channels: (B, C, H, W) x2 -> (B, H, W)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    d = pred - target
    e = d.abs() if pixel == "l1" else torch.sqrt(d * d + eps * eps)
    return e.mean(dim=1)


def semantic_weights(mask: torch.Tensor, *, w_fg: float, w_bg: float) -> torch.Tensor:
    """Per-pixel weights ``w_bg + (w_fg - w_bg) * mask`` from a soft mask (B, H, W) in [0, 1]."""
    return w_bg + (w_fg - w_bg) * mask.clamp(0.0, 1.0)


def depth_semantic_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, *,
                        w_fg: float = 1.0, w_bg: float = 0.1, pixel: PixelLoss = "l1",
                        eps: float = 1e-3) -> torch.Tensor:
    """Mask-weighted mean pixel loss (see the module docstring).

    Args:
        pred, target: (B, C, H, W).
        mask: (B, H, W) or (B, 1, H, W) soft foreground mask in [0, 1]; None = all weights 1.
        w_fg, w_bg: foreground and background weights.
        pixel: ``l1`` or ``charbonnier``.
        eps: Charbonnier epsilon.

    Returns:
        Scalar loss.
    """
    e = pixel_error(pred, target, pixel=pixel, eps=eps)
    if mask is None:
        return e.mean()
    if mask.dim() == 4:
        mask = mask[:, 0]
    if mask.shape != e.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not match the images {tuple(e.shape)}")
    w = semantic_weights(mask.to(e.dtype), w_fg=w_fg, w_bg=w_bg)
    return (w * e).sum() / w.sum().clamp_min(1e-12)


class DepthSemanticLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`depth_semantic_loss` for a :class:`LossConfig`."""

    def __init__(self, config: LossConfig = LossConfig()) -> None:
        super().__init__()
        self.config = config

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if not c.semantic:
            if c.pixel == "l1":
                return F.l1_loss(pred, target)  # bit-identical to the plain recipe
            return pixel_error(pred, target, pixel=c.pixel, eps=c.eps).mean()
        if mask is None:
            raise InputError("the depth semantic loss needs foreground masks: train on a dataset folder "
                             "(vidsr dataset build)")
        return depth_semantic_loss(pred, target, mask, w_fg=c.w_fg, w_bg=c.w_bg, pixel=c.pixel, eps=c.eps)
