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


CALL_PX = 4096
"""What one more engine call costs, in window pixels: :func:`plan_windows` splits a window only where
that saves more. oneDNN pays ~0.2 ms per convolution per call (~0.5 ms more for a shape it has not
seen) against ~165 ns per window pixel for compact-x2-lite on the AVX2 host (benchmarks/README.md,
"The SR stage"): ~6000 px for its 5 convolutions; heavier networks pay relatively less per call."""


def plan_cell(height: int, width: int) -> int:
    """Planning grid of :func:`plan_windows` for an ``height`` x ``width`` frame: 4 LR px below 540
    lines (a 640x272 subject is a few dozen pixels across), else 8."""
    return 4 if min(height, width) < 540 else 8


def _occupied(support: np.ndarray, cell: int) -> np.ndarray:
    """(ceil(H/cell), ceil(W/cell)) bool: cells holding any support."""
    h, w = support.shape
    hc, wc = -(-h // cell), -(-w // cell)
    padded = np.zeros((hc * cell, wc * cell), np.uint8)
    padded[:h, :w] = support > 0
    padded *= 255  # a block mean of one 255 in cell**2 <= 256 pixels still rounds to >= 1
    return cv2.resize(padded, (wc, hc), interpolation=cv2.INTER_AREA) > 0


def _gap(rows_px: int, pad: float, call_px: int, cell: int) -> int:
    """Empty cells between two runs of a band ``rows_px`` high that one window spans more cheaply
    than two windows (each of which pays ``2 * pad`` columns of context and one call)."""
    return int((2 * pad + call_px / (rows_px + 2 * pad)) // cell)


def _runs(occ: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[c0, c1) cell runs of the 1-D ``occ``, joined across gaps of at most ``gap`` cells."""
    cols = np.flatnonzero(occ)
    if cols.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(cols) > gap + 1)
    starts = np.concatenate(([cols[0]], cols[breaks + 1]))
    ends = np.concatenate((cols[breaks], [cols[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def plan_windows(support: np.ndarray, *, pad: int, max_window_px: int, cell: int | None = None,
                 call_px: int = CALL_PX, context: float | None = None) -> list[Tile]:
    """Cover ``support`` (:func:`mask_support` of the LR alpha) with disjoint cores whose windows cost
    the fewest pixels: SR work close to the subject at any frame size and network radius.

    The frame is cut into bands of whole ``cell`` rows; in each band, the columns holding support
    form runs, joined across gaps narrower than what a separate window would pay in context (so an
    irregular subject gets several small windows where they are cheaper than one rectangle, and one
    where they are not). Band heights come from a dynamic programme over the cell rows minimising
    the total of (core + ``2 * pad``) window pixels plus ``call_px`` per window; runs wider than
    ``max_window_px`` allows are split. Each core is then shrunk to the support inside it. Windows
    are the cores grown by ``pad`` and clipped to the frame, so SR of each equals whole-frame SR on
    its core (with ``pad`` >= the receptive radius).

    Args:
        support: (H, W) uint8 or bool.
        pad: context on each side (the network's receptive radius).
        max_window_px: cap on one window's LR pixels (big windows lose the CPU cache).
        cell: planning grid in LR px (default :func:`plan_cell`).
        call_px: what one more window costs, in window pixels.
        context: the context per side the cost counts (default ``pad``): a network that trims its
            windows computes about half of it (each layer skips what it no longer needs).
    Returns:
        Tiles with disjoint cores covering every supported pixel; empty for an empty support.
    """
    if max_window_px < 1:
        raise ValueError(f"max_window_px must be >= 1, got {max_window_px}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    h, w = support.shape
    cell = cell or plan_cell(h, w)
    ctx = pad if context is None else context
    occ = _occupied(support, cell)
    if not occ.any():
        return []
    hc, wc = occ.shape
    cum = np.vstack((np.zeros((1, wc), np.int32), np.cumsum(occ, axis=0, dtype=np.int32)))
    # bands up to 256 rows: taller ones save little context and lose the cache
    kmax = max(1, min(hc, 256 // cell, (int(max_window_px ** 0.5) - 2 * pad) // cell))
    cost = np.full((kmax, hc), np.inf)  # cost[k - 1, a]: the band of cell rows [a, a + k)
    for k in range(1, kmax + 1):
        rows_px = k * cell
        band = (cum[k:] - cum[:-k]) > 0  # (hc - k + 1, wc)
        g = _gap(rows_px, ctx, call_px, cell)
        if g >= 2:  # join runs across gaps of up to g cells (a closing along the rows)
            m = g // 2
            band = cv2.morphologyEx(band.view(np.uint8), cv2.MORPH_CLOSE, np.ones((1, 2 * m + 1), np.uint8)) > 0
        cells = band.sum(axis=1)
        runs = band[:, 0].astype(np.int64) + (band[:, 1:] & ~band[:, :-1]).sum(axis=1)
        widest = max(1, max_window_px // (rows_px + 2 * pad) - 2 * pad)
        windows = np.maximum(runs, -(-(cells * cell) // widest))
        cost[k - 1, :hc - k + 1] = (rows_px + 2 * ctx) * (cells * cell + windows * 2 * ctx) + windows * call_px
    best = np.zeros(hc + 1)
    choice = np.zeros(hc + 1, np.int64)
    for b in range(1, hc + 1):
        ks = np.arange(1, min(kmax, b) + 1)
        c = best[b - ks] + cost[ks - 1, b - ks]
        i = int(np.argmin(c))
        best[b], choice[b] = c[i], ks[i]
    out: list[Tile] = []
    b = hc
    while b > 0:
        k = int(choice[b])
        out.extend(_band_windows(support, occ, b - k, b, pad=pad, max_window_px=max_window_px,
                                 call_px=call_px, cell=cell, context=ctx))
        b -= k
    return out[::-1]


def _band_windows(support: np.ndarray, occ: np.ndarray, a: int, b: int, *, pad: int, max_window_px: int,
                  call_px: int, cell: int, context: float) -> list[Tile]:
    """The windows of the band of cell rows [a, b) (see :func:`plan_windows`)."""
    h, w = support.shape
    y0, y1 = a * cell, min(h, b * cell)
    widest = max(cell, max_window_px // (y1 - y0 + 2 * pad) - 2 * pad)
    out = []
    for c0, c1 in _runs(occ[a:b].any(axis=0), _gap(y1 - y0, context, call_px, cell)):
        x0, x1 = c0 * cell, min(w, c1 * cell)
        n = -(-(x1 - x0) // widest)
        step = -(-(x1 - x0) // n)
        for s0 in range(x0, x1, step):
            sub = support[y0:y1, s0:min(x1, s0 + step)]
            rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
            if rows.size == 0:
                continue
            ty0, tx0 = y0 + int(rows[0]), s0 + int(cols[0])
            ty1, tx1 = y0 + int(rows[-1]) + 1, s0 + int(cols[-1]) + 1
            out.append(Tile(y0=ty0, x0=tx0, y1=ty1, x1=tx1, wy=max(0, ty0 - pad), wx=max(0, tx0 - pad),
                            wy1=min(h, ty1 + pad), wx1=min(w, tx1 + pad)))
    return out
