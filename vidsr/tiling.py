"""Tile planning: which LR tiles an SR network runs on, with enough context for exact results.

Every tile has a *core* (the pixels it is responsible for) and a *window* (what the
network sees). All windows have one size, so tiles batch together; a window is the
core grown by ``pad`` pixels of context on each side and then shifted to stay inside the
frame. A window that touches a frame border therefore starts exactly at the border,
where the network's own zero padding applies, just as in whole-frame SR. With ``pad``
at least the network's receptive radius, tiled SR equals whole-frame SR.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Tile:
    """Core ``[y0:y1, x0:x1]`` and window origin ``(wy, wx)``, in LR pixels."""

    y0: int
    x0: int
    y1: int
    x1: int
    wy: int
    wx: int


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering an ``height`` x ``width`` frame, windows of ``window`` = (h, w)."""

    height: int
    width: int
    tile: int
    pad: int
    window: tuple[int, int]
    tiles: tuple[Tile, ...]

    def __len__(self) -> int:
        return len(self.tiles)


def _axis(length: int, tile: int, pad: int) -> tuple[int, list[tuple[int, int, int]]]:
    win = min(length, tile + 2 * pad)
    cores = []
    for c0 in range(0, length, tile):
        c1 = min(length, c0 + tile)
        w0 = min(max(0, c0 - pad), length - win)
        cores.append((c0, c1, w0))
    return win, cores


def plan_tiles(height: int, width: int, *, tile: int, pad: int) -> TilePlan:
    """Cover the frame with ``tile`` x ``tile`` cores and same-size windows.

    Args:
        height, width: LR frame size.
        tile: core size in LR pixels.
        pad: context on each side (>= the network's receptive radius for exact results).
    """
    if tile < 8:
        raise ValueError(f"tile must be >= 8, got {tile}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    wh, ys = _axis(height, tile, pad)
    ww, xs = _axis(width, tile, pad)
    tiles = tuple(Tile(y0=y0, x0=x0, y1=y1, x1=x1, wy=wy, wx=wx)
                  for (y0, y1, wy) in ys for (x0, x1, wx) in xs)
    return TilePlan(height=height, width=width, tile=tile, pad=pad, window=(wh, ww), tiles=tiles)


def select_tiles(plan: TilePlan, alpha: np.ndarray) -> list[int]:
    """Indices of tiles whose core touches ``alpha`` > 0 (grown by one pixel).

    The one-pixel growth covers the bilinear spread of alpha when it is upscaled, so
    every output pixel with non-zero alpha lies in a selected tile.
    """
    if alpha.shape != (plan.height, plan.width):
        raise ValueError(f"alpha shape {alpha.shape} != plan {(plan.height, plan.width)}")
    on = (alpha > 0).astype(np.uint8)
    if not on.any():
        return []
    on = cv2.dilate(on, np.ones((3, 3), np.uint8))
    integral = cv2.integral(on)
    return [i for i, t in enumerate(plan.tiles)
            if integral[t.y1, t.x1] - integral[t.y0, t.x1] - integral[t.y1, t.x0] + integral[t.y0, t.x0] > 0]
