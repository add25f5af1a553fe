"""Each comparison method on one frame (``MethodRunner``) and the frame layouts that put them side by side.

- ``plain``: the cheap interpolating upscale (``UpscaleConfig.bg``: bicubic or Lanczos);
- ``full``: SR on every pixel (the baseline);
- ``partial``: vidsr's mask + tile-gated SR + composite;
- ``mask``: the plain upscale with the foreground tinted and the SR'd tiles outlined.

``compose`` arranges them (``grid``: 2x2 labelled panels; ``split``: left half of one
method, right half of another; ``wipe``: the same with a divider that moves over time).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.compare.config import GRID_ORDER, LAYOUTS, METHODS
from vidsr.composite import upscale_background
from vidsr.errors import InputError
from vidsr.frame import FrameProcessor, FrameResult
from vidsr.masks.base import MaskEstimator
from vidsr.media.types import VideoInfo
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import processor_for
from vidsr.tiling import TilePlan

TINT_RGB = (40, 230, 90)
TILE_RGB = (255, 210, 0)
TINT_STRENGTH = 0.45
FONT = cv2.FONT_HERSHEY_SIMPLEX


def method_label(method: str, *, bg: str = "bicubic") -> str:
    return {"plain": bg, "full": "full-frame SR", "partial": "vidsr partial SR",
            "mask": "mask + SR tiles"}[method]


def mask_overlay(base: np.ndarray, alpha: np.ndarray, plan: TilePlan, tiles: list[int],
                 *, scale: int) -> np.ndarray:
    """Tint the foreground and outline the tiles that went through SR.

    Args:
        base: (H*s, W*s, 3) uint8 image to draw on (not modified).
        alpha: (H, W) float32 soft mask at LR size.
        tiles: indices into ``plan.tiles``.
    Returns:
        (H*s, W*s, 3) uint8.
    """
    h, w = base.shape[:2]
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[..., None] * TINT_STRENGTH
    out = base.astype(np.float32) * (1.0 - a) + np.asarray(TINT_RGB, np.float32) * a
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    thick = max(1, scale // 2)
    for i in tiles:
        t = plan.tiles[i]
        cv2.rectangle(out, (t.x0 * scale, t.y0 * scale), (t.x1 * scale - 1, t.y1 * scale - 1), TILE_RGB, thick)
    return out


@dataclass(frozen=True)
class Renders:
    """One LR frame through each requested method: (H*s, W*s, 3) uint8 per method name."""

    images: dict[str, np.ndarray]
    seconds: dict[str, float]
    partial: FrameResult | None


@dataclass
class MethodRunner:
    """Runs the upscaling methods on one frame at a time; ``partial`` keeps the mask tracker's state."""

    partial: FrameProcessor
    full: FrameProcessor
    bg: str = "bicubic"

    @classmethod
    def build(cls, info: VideoInfo, config: UpscaleConfig, estimator: MaskEstimator | None = None) -> MethodRunner:
        """One model and engine shared by the partial and the full-frame processor."""
        partial = processor_for(info, dataclasses.replace(config, full_frame=False), estimator)
        full = dataclasses.replace(partial, full_frame=True)
        return cls(partial=partial, full=full, bg=config.bg)

    @property
    def scale(self) -> int:
        return self.partial.engine.descriptor.scale

    def render(self, image: np.ndarray, methods: set[str] | tuple[str, ...] = METHODS) -> Renders:
        """Run ``methods`` on (H, W, 3) uint8 ``image``; ``mask`` implies ``plain`` and ``partial``.

        Call it for every frame in order: the partial method's mask is smoothed over time.
        """
        check_image(image)
        want = set(methods)
        if "mask" in want:
            want |= {"plain", "partial"}
        images: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        stages: defaultdict[str, float] = defaultdict(float)  # FrameProcessor's own split; unused here
        result = None
        for name in ("plain", "full", "partial"):
            if name not in want:
                continue
            t0 = time.perf_counter()
            if name == "plain":
                images[name] = upscale_background(image, scale=self.scale, method=self.bg)
            else:
                proc = self.full if name == "full" else self.partial
                r = proc.process(image, stages)
                images[name] = r.image
                if name == "partial":
                    result = r
            seconds[name] = time.perf_counter() - t0
        if "mask" in want:
            assert result is not None and result.mask is not None
            images["mask"] = mask_overlay(images["plain"], result.mask.alpha, self.partial.plan, result.tiles,
                                          scale=self.scale)
        return Renders(images=images, seconds=seconds, partial=result)


# ----------------------------------------------------------------------------- layouts

def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def panel_size(width: int, height: int, *, columns: int, max_width: int) -> tuple[int, int]:
    """(w, h) of one panel: the method output shrunk (never grown) so ``columns`` of them fit ``max_width``.

    Both are even so a grid of panels encodes to yuv420p without padding.
    """
    f = min(1.0, max_width / (columns * width))
    if f == 1.0 and width % 2 == 0 and height % 2 == 0:
        return width, height
    return _even(width * f), _even(height * f)


def layout_size(layout: str, width: int, height: int, *, max_width: int) -> tuple[int, int]:
    """(w, h) of a composed frame for method outputs of ``width`` x ``height``."""
    cols = 2 if layout == "grid" else 1
    pw, ph = panel_size(width, height, columns=cols, max_width=max_width)
    return (pw * cols, ph * cols)


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if image.shape[1] == w and image.shape[0] == h:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _font(width: int) -> tuple[float, int]:
    """Font scale and thickness for text on something ``width`` px wide."""
    fs = float(np.clip(width / 900.0, 0.35, 1.2))
    return fs, 1 if fs < 0.8 else 2


def draw_label(image: np.ndarray, text: str, *, anchor: Literal["left", "right"] = "left",
               x_limit: int | None = None) -> None:
    """Draw ``text`` white on a black box in the top-left (or top-right) corner, in place."""
    fs, th = _font(x_limit or image.shape[1])
    (tw, tht), base = cv2.getTextSize(text, FONT, fs, th)
    pad = max(2, tht // 3)
    bw, bh = tw + 2 * pad, tht + base + 2 * pad
    x0 = 0 if anchor == "left" else image.shape[1] - bw
    cv2.rectangle(image, (x0, 0), (x0 + bw - 1, bh - 1), (0, 0, 0), -1)
    cv2.putText(image, text, (x0 + pad, pad + tht), FONT, fs, (255, 255, 255), th, cv2.LINE_AA)


def wipe_position(i: int, *, period: int) -> float:
    """Divider position in [0.05, 0.95] of the width for output frame ``i``: left -> right over
    ``period`` frames, then back (a triangle wave)."""
    period = max(1, period)
    phase = (i % (2 * period)) / period
    t = phase if phase <= 1 else 2 - phase
    return 0.05 + 0.9 * t


def compose(layout: str, images: dict[str, np.ndarray], *, methods: tuple[str, str] = ("plain", "partial"),
            labels: dict[str, str] | None = None, max_width: int = 1920, position: float = 0.5) -> np.ndarray:
    """One comparison frame from per-method outputs of one size.

    Args:
        layout: ``grid`` (2x2 in GRID_ORDER), ``split`` (left half of ``methods[0]``, right half
            of ``methods[1]``) or ``wipe`` (like split, divider at ``position`` x width).
        images: method name -> (H, W, 3) uint8, all the same size.
        labels: method name -> text drawn on its panel; ``None`` draws nothing.
    Returns:
        (h, w, 3) uint8 of ``layout_size(layout, W, H, max_width=max_width)``.
    """
    if layout not in LAYOUTS:
        raise InputError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    names = GRID_ORDER if layout == "grid" else methods
    missing = [n for n in names if n not in images]
    if missing:
        raise ValueError(f"compose({layout!r}) needs images for {missing}")
    h, w = images[names[0]].shape[:2]
    cols = 2 if layout == "grid" else 1
    pw, ph = panel_size(w, h, columns=cols, max_width=max_width)
    panels = [np.array(_fit(images[n], (pw, ph))) for n in names]
    if layout == "grid":
        if labels is not None:
            for n, p in zip(names, panels):
                draw_label(p, labels[n])
        return np.concatenate([np.concatenate(panels[:2], axis=1), np.concatenate(panels[2:], axis=1)], axis=0)
    split = pw // 2 if layout == "split" else int(round(np.clip(position, 0.0, 1.0) * pw))
    out = panels[1].copy()
    out[:, :split] = panels[0][:, :split]
    line = max(1, pw // 400)
    x0, x1 = max(0, split - line), min(pw, split + line)
    out[:, x0:x1] = 255
    if labels is not None:
        draw_label(out, labels[names[0]], anchor="left", x_limit=pw)
        draw_label(out, labels[names[1]], anchor="right", x_limit=pw)
    return out


__all__ = ["FONT", "MethodRunner", "Renders", "compose", "draw_label", "layout_size", "mask_overlay", "method_label",
           "panel_size", "wipe_position"]
