"""A frozen copy of :func:`vidsr.tiling.plan_windows` as it was before it was made fast (issue 25's
planner, drawing each band height in turn): the tests check the fast one returns the very same tiles."""

from __future__ import annotations

import cv2
import numpy as np

from vidsr.tiling import CALL_PX, Tile, plan_cell


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
