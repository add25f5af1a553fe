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
    """Core ``[y0:y1, x0:x1]`` and window ``[wy:wy1, wx:wx1]`` (what the network sees), in LR pixels."""

    y0: int
    x0: int
    y1: int
    x1: int
    wy: int
    wx: int
    wy1: int
    wx1: int

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.wy1 - self.wy, self.wx1 - self.wx

    @property
    def core_pixels(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)

    @property
    def window_pixels(self) -> int:
        return (self.wy1 - self.wy) * (self.wx1 - self.wx)

    def trim(self, radius: int) -> tuple[bool, bool]:
        """(rows, cols): whether the window has ``radius`` px of context at both ends of that axis
        (it does, unless a frame border cut it off), so SR need not compute the context there."""
        return (self.y0 - self.wy >= radius and self.wy1 - self.y1 >= radius,
                self.x0 - self.wx >= radius and self.wx1 - self.x1 >= radius)


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering an ``height`` x ``width`` frame, windows of ``window`` = (h, w)."""

    height: int
    width: int
    tile: int
    pad: int
    window: tuple[int, int]
    tiles: tuple[Tile, ...]
    rows: int
    cols: int

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
    tiles = tuple(Tile(y0=y0, x0=x0, y1=y1, x1=x1, wy=wy, wx=wx, wy1=wy + wh, wx1=wx + ww)
                  for (y0, y1, wy) in ys for (x0, x1, wx) in xs)
    return TilePlan(height=height, width=width, tile=tile, pad=pad, window=(wh, ww), tiles=tiles,
                    rows=len(ys), cols=len(xs))


def mask_support(alpha: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 1 where ``alpha`` > 0, grown by one pixel.

    The growth covers the bilinear spread of alpha when it is upscaled, so every output pixel
    with non-zero alpha lies over a supported LR pixel."""
    on = (alpha > 0).astype(np.uint8)
    return cv2.dilate(on, np.ones((3, 3), np.uint8)) if on.any() else on


def select_tiles(plan: TilePlan, support: np.ndarray) -> list[int]:
    """Indices of tiles whose core touches ``support`` (:func:`mask_support` of the LR alpha)."""
    if support.shape != (plan.height, plan.width):
        raise ValueError(f"mask shape {support.shape} != plan {(plan.height, plan.width)}")
    if not support.any():
        return []
    integral = cv2.integral(support)
    return [i for i, t in enumerate(plan.tiles)
            if integral[t.y1, t.x1] - integral[t.y0, t.x1] - integral[t.y1, t.x0] + integral[t.y0, t.x0] > 0]


def shrink_to_support(plan: TilePlan, regions: list[Tile], support: np.ndarray) -> list[Tile]:
    """Shrink each region's core to the bounding box of ``support`` (:func:`mask_support`) inside it.

    A region whose tiles only clip the subject's edge then runs the network on the part that
    matters; windows stay the core + ``plan.pad`` clipped to the frame, so results stay exact.
    Regions with no support are dropped.
    """
    out = []
    for r in regions:
        sub = support[r.y0:r.y1, r.x0:r.x1]
        rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
        if rows.size == 0:
            continue
        out.append(_core(plan, r.y0 + int(rows[0]), r.x0 + int(cols[0]),
                         r.y0 + int(rows[-1]) + 1, r.x0 + int(cols[-1]) + 1))
    return out


def _core(plan: TilePlan, y0: int, x0: int, y1: int, x1: int) -> Tile:
    """Core ``[y0:y1, x0:x1]`` with the window grown by ``plan.pad`` and clipped to the frame."""
    return Tile(y0=y0, x0=x0, y1=y1, x1=x1, wy=max(0, y0 - plan.pad), wx=max(0, x0 - plan.pad),
                wy1=min(plan.height, y1 + plan.pad), wx1=min(plan.width, x1 + plan.pad))


def _region(plan: TilePlan, r0: int, r1: int, c0: int, c1: int) -> Tile:
    """Tiles ``rows r0..r1 x cols c0..c1`` (inclusive) as one core (see :func:`_core`)."""
    first, last = plan.tiles[r0 * plan.cols + c0], plan.tiles[r1 * plan.cols + c1]
    return _core(plan, first.y0, first.x0, last.y1, last.x1)


def merge_tiles(plan: TilePlan, indices: list[int], *, max_window_px: int) -> list[Tile]:
    """Cover exactly the cores of ``plan.tiles[indices]`` with few rectangles of whole tiles.

    Runs of neighbouring tiles in a tile row become one rectangle, and a run spanning the same
    columns as the run above joins it, as long as the rectangle's window stays within
    ``max_window_px`` LR pixels (big windows lose the CPU cache). Windows are the cores grown by
    ``plan.pad`` and clipped to the frame, so SR of a rectangle equals whole-frame SR on its core.
    """
    if max_window_px < 1:
        raise ValueError(f"max_window_px must be >= 1, got {max_window_px}")
    pad, tile = plan.pad, plan.tile
    by_row: dict[int, list[int]] = {}
    for i in sorted(indices):
        by_row.setdefault(i // plan.cols, []).append(i % plan.cols)
    runs: dict[int, list[tuple[int, int]]] = {}
    max_cols = max(1, (max_window_px // (tile + 2 * pad) - 2 * pad) // tile)
    for r, cols in by_row.items():
        spans: list[tuple[int, int]] = []
        for c in cols:
            if spans and spans[-1][1] == c - 1 and c - spans[-1][0] < max_cols:
                spans[-1] = (spans[-1][0], c)
            else:
                spans.append((c, c))
        runs[r] = spans
    out: list[Tile] = []
    open_rects: dict[tuple[int, int], int] = {}  # (c0, c1) -> first row of a rectangle ending at the last row
    last_row = -2
    for r in sorted(runs):
        still_open: dict[tuple[int, int], int] = {}
        for span in runs[r]:
            r0 = open_rects.pop(span, None) if r == last_row + 1 else None
            if r0 is not None and _region(plan, r0, r, *span).window_pixels > max_window_px:
                out.append(_region(plan, r0, r - 1, *span))
                r0 = None
            still_open[span] = r if r0 is None else r0
        for span, r0 in open_rects.items():
            out.append(_region(plan, r0, last_row, *span))
        open_rects, last_row = still_open, r
    for span, r0 in open_rects.items():
        out.append(_region(plan, r0, last_row, *span))
    return out
