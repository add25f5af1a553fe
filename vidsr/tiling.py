"""Tile planning: which LR tiles an SR network runs on, with enough context for exact results.

Every tile has a *core* (the pixels it is responsible for) and a *window* (what the
network sees). All windows have one size, so tiles batch together; a window is the
core grown by ``pad`` pixels of context on each side and then shifted to stay inside the
frame. A window that touches a frame border therefore starts exactly at the border,
where the network's own zero padding applies, just as in whole-frame SR. With ``pad``
at least the network's receptive radius, tiled SR equals whole-frame SR.
"""

from __future__ import annotations

import functools
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
    if support.dtype in (np.uint8, np.bool_) and cell in (1, 2, 4, 8) and w % cell == 0 and support.flags.c_contiguous:
        # (H, W / cell): a cell's row of pixels in one word, non-zero where any of its bytes is
        words = support.view(np.uint8).view(f"<u{cell}")
        whole = h - h % cell
        cells = np.bitwise_or.reduce(words[:whole].reshape(whole // cell, cell, w // cell), axis=1)
        if whole < h:
            cells = np.vstack((cells, np.bitwise_or.reduce(words[whole:], axis=0, keepdims=True)))
        return cells != 0
    hc, wc = -(-h // cell), -(-w // cell)
    padded = np.zeros((hc * cell, wc * cell), np.uint8)
    padded[:h, :w] = support > 0
    padded *= 255  # a block mean of one 255 in cell**2 <= 256 pixels still rounds to >= 1
    return cv2.resize(padded, (wc, hc), interpolation=cv2.INTER_AREA) > 0


def _gap(rows_px: int, pad: float, call_px: int, cell: int) -> int:
    """Empty cells between two runs of a band ``rows_px`` high that one window spans more cheaply
    than two windows (each of which pays ``2 * pad`` columns of context and one call)."""
    return int((2 * pad + call_px / (rows_px + 2 * pad)) // cell)


@dataclass(frozen=True)
class _Heights:
    """What bands of each height k = 1..kmax (the last axis) pay, for one frame height and setting."""

    rows_px: np.ndarray  # (kmax,) k * cell
    near: np.ndarray  # ((hc + 1) * kmax,) by band number: half the :func:`_gap` the costs close (2 * near + 1 wide)
    widest: np.ndarray  # (kmax,) the widest core a window of the band may have, in px
    above: np.ndarray  # (hc + 1, kmax) inf for the bands [b - k, b) that start above the frame, else 0


@functools.lru_cache(maxsize=64)
def _heights(hc: int, kmax: int, *, cell: int, pad: int, max_window_px: int, call_px: float,
             context: float) -> _Heights:
    """:class:`_Heights` for ``hc`` cell rows, cached: the planner meets the same few settings every frame."""
    rows_px = np.arange(1, kmax + 1) * cell
    gap = np.array([_gap(r, context, call_px, cell) for r in rows_px.tolist()])
    near = np.tile(np.where(gap >= 2, gap // 2, 0), hc + 1)
    widest = np.maximum(1, max_window_px // (rows_px + 2 * pad) - 2 * pad)
    above = np.where(np.arange(hc + 1)[:, None] < rows_px // cell, np.inf, 0.0)
    for a in (rows_px, near, widest, above):
        a.flags.writeable = False  # shared between calls
    return _Heights(rows_px=rows_px, near=near, widest=widest, above=above)


def _reach(occ: np.ndarray, kmax: int) -> np.ndarray:
    """(hc, wc + 2) int: how many cell rows a band starting at each row needs to hold support in each
    column (the band of rows [a, a + k) does in column j where ``reach[a, j + 1] <= k``), ``kmax + 1``
    where no band of up to ``kmax`` rows does, and in an extra column at either side."""
    hc, wc = occ.shape
    dtype = np.int16 if hc + kmax < 1 << 14 else np.int32
    rows = np.arange(hc, dtype=dtype)[:, None]
    below = np.full((hc, wc + 2), hc + kmax, dtype)  # the first occupied row at or below
    np.copyto(below[:, 1:-1], rows, where=occ)
    np.minimum.accumulate(below[::-1], axis=0, out=below[::-1])
    below -= rows - 1
    return np.minimum(below, kmax + 1, out=below)


def _band_runs(reach: np.ndarray, kmax: int, *, hc: int, top: int,
               left: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of support cells of every band of up to ``kmax`` cell rows inside the frame (``hc``
    rows), found without drawing the bands: (band, first column, last column) by band, then column;
    the band of rows [b - k, b) is number ``b * kmax + k - 1``. ``reach``: :func:`_reach` of the
    cells from row ``top`` and column ``left`` on, with all the support.

    Column j starts a run in the bands from row a of the heights ``reach[a, j] <= k < reach[a, j - 1]``
    and ends one in those with ``reach[a, j] <= k < reach[a, j + 1]``."""
    step = np.diff(reach, axis=1)  # (rows, cols + 1): a start where it falls, an end where it rises
    sites = np.flatnonzero(step)
    rise = step.ravel()[sites].astype(np.int64)
    a, c = np.divmod(sites, step.shape[1])
    own = reach.ravel()[sites + a] + np.minimum(rise, 0)  # the reach of the start or end column
    a += top
    end = rise > 0
    count = np.maximum(0, np.minimum(np.abs(rise), hc + 1 - a - own))  # k from own while k < reach beside it
    # band numbers, ends after all starts: (end * (hc + 1) + a + k) * kmax + k - 1 for own <= k < own + count
    offset = np.cumsum(count) - count
    key = np.repeat((end * (hc + 1) + a) * kmax - 1 + (own - offset) * (kmax + 1), count)
    key += np.arange(key.size) * (kmax + 1)
    order = np.argsort(key.astype(np.uint16) if (2 * hc + 2) * kmax <= 1 << 16 else key, kind="stable")
    cols = np.repeat(c - end + left, count)[order]
    n = key.size // 2  # as many ends as starts
    return key[order[:n]], cols[:n], cols[n:]


def _band_costs(band: np.ndarray, c0: np.ndarray, c1: np.ndarray, *, hc: int, wc: int, cell: int,
                context: float, call_px: float, heights: _Heights) -> np.ndarray:
    """(hc + 1, kmax) float: cost[b, k - 1], what the windows of the band of cell rows [b - k, b) cost
    (:func:`plan_windows`; inf above the frame), from its runs (:func:`_band_runs`).

    The costs count the runs of each band joined across gaps of up to ``2 * near`` cells, and the
    first and last grown to the frame's edge across up to ``near`` cells (as a morphological closing
    of width ``2 * near + 1`` along the band does)."""
    kmax = heights.rows_px.size
    near = heights.near[band]
    first, last = np.ones(band.size, bool), np.ones(band.size, bool)
    np.not_equal(band[1:], band[:-1], out=first[1:])
    last[:-1] = first[1:]
    gap = np.zeros_like(c0)
    np.subtract(c0[1:], c1[:-1] + 1, out=gap[1:])
    joined = (gap <= 2 * near) & ~first
    lead, trail = c0, wc - 1 - c1
    filled = gap * joined + lead * (first & (lead <= near)) + trail * (last & (trail <= near))
    n = (hc + 1) * kmax
    cells = np.bincount(band, weights=c1 - c0 + 1 + filled, minlength=n).astype(np.int64).reshape(hc + 1, kmax)
    runs = np.bincount(band, weights=~joined, minlength=n).astype(np.int64).reshape(hc + 1, kmax)
    windows = np.maximum(runs, -(-(cells * cell) // heights.widest))
    cost = (heights.rows_px + 2 * context) * (cells * cell + windows * 2 * context) + windows * call_px
    return cost + heights.above


def _cheapest_bands(cost: np.ndarray, *, empty: int) -> list[tuple[int, int]]:
    """Bands [a, b) of cell rows, top to bottom, covering all ``hc`` rows at the least total ``cost``
    ((hc + 1, kmax), :func:`_band_costs`); of equal totals, the lowest band is the shortest. The first
    ``empty`` rows hold no support: bands of one row there (they cost nothing)."""
    hc, kmax = cost.shape[0] - 1, cost.shape[1]
    best = np.full(hc + 1 + kmax, np.inf)  # best[hc - b]: the least total of rows [0, b)
    best[hc - empty:hc + 1] = 0.0
    total = np.empty(kmax)
    choice = [1] * (hc + 1)
    for b in range(empty + 1, hc + 1):
        np.add(best[hc - b + 1:hc - b + 1 + kmax], cost[b], out=total)  # the last band k = 1..kmax rows
        k = int(total.argmin())
        best[hc - b], choice[b] = total[k], k + 1
    bands = []
    b = hc
    while b > 0:
        bands.append((b - choice[b], b))
        b -= choice[b]
    return bands[::-1]


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
    left, first, width, height = cv2.boundingRect(occ.view(np.uint8))  # the occupied cells' columns and rows
    if width == 0:
        return []
    hc, wc = occ.shape
    # bands up to 256 rows: taller ones save little context and lose the cache
    kmax = max(1, min(hc, 256 // cell, (int(max_window_px ** 0.5) - 2 * pad) // cell))
    heights = _heights(hc, kmax, cell=cell, pad=pad, max_window_px=max_window_px, call_px=call_px, context=ctx)
    # the bands holding support start at most kmax - 1 rows above it
    top = max(0, first - kmax + 1)
    reach = _reach(occ[top:first + height, left:left + width], kmax)
    band, c0, c1 = _band_runs(reach, kmax, hc=hc, top=top, left=left)
    cost = _band_costs(band, c0, c1, hc=hc, wc=wc, cell=cell, context=ctx, call_px=call_px, heights=heights)
    bands = _cheapest_bands(cost, empty=first)
    ids = np.array([b * kmax + b - a - 1 for a, b in bands])
    starts, stops = np.searchsorted(band, ids).tolist(), np.searchsorted(band, ids + 1).tolist()
    if support.dtype not in (np.uint8, np.bool_):
        support = support != 0
    mask = support.view(np.uint8)
    out: list[Tile] = []
    for (a, b), i, j in zip(bands, starts, stops):
        if i < j:
            gap = _gap(min(h, b * cell) - a * cell, ctx, call_px, cell)  # the last band may be cut short
            runs = _join(c0[i:j].tolist(), c1[i:j].tolist(), gap)
            # right to left within a band: the order this planner has always returned (vidsr.sr.pack_windows
            # keeps it for windows of the same top-left corner and height)
            out.extend(_band_windows(mask, runs, a, b, pad=pad, max_window_px=max_window_px, cell=cell)[::-1])
    return out


def _join(c0: list[int], c1: list[int], gap: int) -> list[tuple[int, int]]:
    """[c0, c1) cell runs from runs with first and last cells ``c0``, ``c1`` (in order), joined across gaps
    of at most ``gap`` cells."""
    runs = [[c0[0], c1[0] + 1]]
    for s, e in zip(c0[1:], c1[1:]):
        if s - runs[-1][1] <= gap:
            runs[-1][1] = e + 1
        else:
            runs.append([s, e + 1])
    return [(s, e) for s, e in runs]


def _band_windows(mask: np.ndarray, runs: list[tuple[int, int]], a: int, b: int, *, pad: int,
                  max_window_px: int, cell: int) -> list[Tile]:
    """The windows of the band of cell rows [a, b) (see :func:`plan_windows`): its ``runs`` of cell
    columns split to fit ``max_window_px``, each core shrunk to the support (``mask``, (H, W) uint8)."""
    h, w = mask.shape
    y0, y1 = a * cell, min(h, b * cell)
    widest = max(cell, max_window_px // (y1 - y0 + 2 * pad) - 2 * pad)
    out = []
    for c0, c1 in runs:
        x0, x1 = c0 * cell, min(w, c1 * cell)
        n = -(-(x1 - x0) // widest)
        step = -(-(x1 - x0) // n)
        for s0 in range(x0, x1, step):
            bx, by, bw, bh = cv2.boundingRect(mask[y0:y1, s0:min(x1, s0 + step)])
            if bw == 0:
                continue
            ty0, tx0, ty1, tx1 = y0 + by, s0 + bx, y0 + by + bh, s0 + bx + bw
            out.append(Tile(y0=ty0, x0=tx0, y1=ty1, x1=tx1, wy=max(0, ty0 - pad), wx=max(0, tx0 - pad),
                            wy1=min(h, ty1 + pad), wx1=min(w, tx1 + pad)))
    return out
