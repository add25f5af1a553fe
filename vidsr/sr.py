"""Running an SR engine over selected tiles of a frame, and over whole frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from vidsr.arch.base import NO_TRIM, Trim
from vidsr.backends import Engine
from vidsr.backends.images import to_images
from vidsr.checks import check_image, max_value
from vidsr.tiling import CALL_PX, Tile


def to_tensor(images: list[np.ndarray]) -> np.ndarray:
    """list of (h, w, 3) uint8 or uint16 -> (B, 3, h, w) float32 in [0, 1], a view of (B, h, w, 3)
    memory (channels_last strides): torch on the CPU runs channels_last, and the copy to planar
    (B, 3, h, w) cost ~5 ms per 144k-pixel window; engines that need planar input make it."""
    x = np.stack(images).astype(np.float32)
    x *= 1.0 / max_value(images[0].dtype)
    return x.transpose(0, 3, 1, 2)


def run_images(engine: Engine, batch: np.ndarray, dtype: np.dtype = np.uint8, *, trim: Trim = NO_TRIM) -> np.ndarray:
    """(B, 3, h, w) float32 -> (B, h*s, w*s, 3) ``dtype`` images: the engine's own ``run_images``
    where it has one (torch on the CPU rounds before the pixel shuffle), else :func:`to_images`."""
    own = getattr(engine, "run_images", None)
    if own is not None:
        return own(batch, dtype=dtype, trim=trim)
    return to_images(engine.run(batch, trim=trim) if any(trim) else engine.run(batch), dtype)


def sr_tiles(engine: Engine, image: np.ndarray, tiles: list[Tile], *, batch: int,
             pack_px: int | None = None, call_px: int = 0,
             whole: list[Tile] | None = None) -> list[tuple[Tile, np.ndarray]]:
    """SR of the cores of ``tiles``; tiles with one window shape go through the engine together.

    Args:
        image: (H, W, 3) uint8 or uint16 LR frame (deep frames keep their precision).
        tiles: tiles or merged regions (:func:`vidsr.tiling.merge_tiles`), each with its own window.
        batch: windows per engine call.
        pack_px: when set (and the engine :func:`packs`), windows are packed into canvases of at
            most this many LR pixels (side by side in shelves, shelves stacked), one engine call
            each (:func:`pack_windows`).
        call_px: what one more call costs in window pixels (:func:`pack_windows`).
        whole: windows that cover the frame (full-frame SR's), run instead of ``tiles`` when their
            pixels and calls cost no more than the packed canvases' (a subject that fills most of
            the frame): SR is exact either way, so the output inside ``tiles`` is the same.
    Engines that trim skip the context of windows that have the receptive radius of it at both
    ends of an axis (:meth:`Tile.trim`).
    Returns:
        (tile, (core_h*s, core_w*s, 3) image.dtype) for each tile, grouped by window shape.
    """
    check_image(image, deep_ok=True)
    desc = engine.descriptor
    s, r, m = desc.scale, desc.receptive_radius, desc.size_multiple
    if pack_px is not None and packs(engine):
        canvases = pack_windows(tiles, frame=image.shape[:2], radius=r, max_px=pack_px, call_px=call_px)
        packed = sum(c.height * c.width + call_px for c in canvases)
        if whole is None or packed < sum(w.window_pixels + call_px for w in whole):
            return _sr_canvases(engine, image, canvases, batch=batch)
        tiles = whole
    by_kind: dict[tuple[tuple[int, int], Trim], list[tuple[Tile, Tile]]] = {}
    for t in tiles:
        w = t if desc.fixed_shape is None else grown_window(t, desc.fixed_shape, image.shape[:2])
        w = w if m == 1 else aligned_window(w, m)
        trim = t.trim(r) if engine.trims and m == 1 else NO_TRIM
        by_kind.setdefault((w.window_shape, trim), []).append((t, w))
    out: list[tuple[Tile, np.ndarray]] = []
    for (_, trim), same in by_kind.items():
        # the output starts r pixels into the window along trimmed axes
        dy, dx = r if trim[0] else 0, r if trim[1] else 0
        for start in range(0, len(same), batch):
            group = same[start:start + batch]
            x = to_tensor([window_pixels(image, w) for _, w in group])
            ys = run_images(engine, x, image.dtype, trim=trim)
            for (t, w), y in zip(group, ys):
                oy, ox = (t.y0 - w.wy - dy) * s, (t.x0 - w.wx - dx) * s
                out.append((t, y[oy:oy + (t.y1 - t.y0) * s, ox:ox + (t.x1 - t.x0) * s]))
    return out


def packs(engine: Engine) -> bool:
    """Whether ``engine`` takes packed canvases (:func:`pack_windows`): a CPU engine (any input shape
    costs the same there; CUDA graphs and TensorRT profiles want few shapes), a network with no size
    multiple or fixed input shape."""
    d = engine.descriptor
    return bool(getattr(engine, "packs", False)) and d.size_multiple == 1 and d.fixed_shape is None


CONV_CALL_MACS = 8_000_000
"""What one convolution call costs on the CPU beyond its pixels, in multiply-adds (~0.3 ms at ~40 ps per
multiply-add). Fitted over the canvases of a 10-s pan (dragonfly 640x272, compact-x2-lite, one thread,
2-core Xeon): 1.8-2.3 ms a call of its 4 convolutions + 0.42-0.45 us a pixel; the call's share counts
oneDNN's set-up, kernels made for each new input shape, the tensor work around the network and
small canvases' slower convolutions. A Compact 64x16 runs at the same ~40 ps per multiply-add."""


def call_cost_px(engine: Engine) -> int:
    """What one more engine call costs, in LR window pixels, for ``engine``'s network on the CPU:
    its convolutions' set-up (:data:`CONV_CALL_MACS` each) over its multiply-adds per pixel (each
    convolution counted at input size). ~1200 px for compact-x2-lite, ~60 for a Compact 64x16, fewer for an
    RRDBNet: heavy networks can afford many small windows. :data:`vidsr.tiling.CALL_PX` for an
    engine whose network is not a torch module (an ONNX file)."""
    model = getattr(engine, "model", None)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)] if isinstance(model, nn.Module) else []
    if not convs:
        return CALL_PX
    macs = sum(c.in_channels * c.out_channels * c.kernel_size[0] * c.kernel_size[1] // c.groups for c in convs)
    return max(1, round(len(convs) * CONV_CALL_MACS / macs))


@dataclass(frozen=True)
class Canvas:
    """Windows in one network input of ``height`` x ``width`` LR pixels: side by side in shelves,
    shelves stacked (:func:`pack_windows`).

    ``parts``: (tile, window grown to its shelf's height inside the frame, row and column of the
    window in the canvas). ``trim``: the (rows, cols) the network may skip the context of
    (:meth:`Tile.trim`). What no window covers is zero and its output unused."""

    height: int
    width: int
    parts: tuple[tuple[Tile, Tile, int, int], ...]
    trim: Trim


@dataclass(frozen=True)
class _Shelf:
    """Windows side by side, grown to ``height`` rows; ``parts``: (tile, grown window, column)."""

    height: int
    width: int
    parts: tuple[tuple[Tile, Tile, int], ...]
    top: bool  # holds a window the frame's top cuts short: goes at its canvas's top
    bottom: bool  # one the frame's bottom cuts short: at its canvas's bottom
    left: bool  # its first window is cut short on the left
    right: bool  # its last window is cut short on the right: ends at its canvas's right edge


def _clipped(t: Tile, r: int) -> tuple[bool, bool]:
    """(left, right): whether the frame border cuts ``t``'s window short of ``r`` px of context there."""
    return t.x0 - t.wx < r, t.wx1 - t.x1 < r


def _rows_clipped(t: Tile, r: int) -> tuple[bool, bool]:
    """(top, bottom): whether the frame border cuts ``t``'s window short of ``r`` px of context there."""
    return t.y0 - t.wy < r, t.wy1 - t.y1 < r


def _taller(t: Tile, height: int, frame_h: int) -> Tile:
    """``t``'s window grown down (then shifted up inside the frame) to ``height`` rows: a window the
    frame's bottom cut short ends at the frame's bottom again, one its top cut short starts at 0."""
    wy = min(t.wy, frame_h - height)
    return Tile(y0=t.y0, x0=t.x0, y1=t.y1, x1=t.x1, wy=wy, wx=t.wx, wy1=wy + height, wx1=t.wx1)


def pack_windows(tiles: list[Tile], *, frame: tuple[int, int], radius: int, max_px: int,
                 call_px: int) -> list[Canvas]:
    """Group windows into canvases: one engine call for several small windows.

    Windows go side by side into shelves (:func:`_shelves`), and shelves are stacked into canvases
    (:func:`_stack`), as long as what that adds (frame rows a window grows by, unused canvas
    columns) costs less than the ``call_px`` pixels of the call it saves, within ``max_px`` a canvas.

    Exact: a core pixel depends on the input within ``radius`` of it, which lies inside its own window
    wherever the window has ``radius`` px of context. Where the frame cuts a window short, the
    network's zero padding must stand for the frame border as in whole-frame SR, so the window lies
    on the canvas's matching edge: first (last) in its shelf for the left (right), in the canvas's
    top (bottom) shelf for the top (bottom), and the canvas computes that axis's context.
    """
    return _stack(_shelves(tiles, frame=frame, radius=radius, max_px=max_px, call_px=call_px),
                  radius=radius, max_px=max_px, call_px=call_px)


def _shelves(tiles: list[Tile], *, frame: tuple[int, int], radius: int, max_px: int,
             call_px: int) -> list[_Shelf]:
    """Windows side by side in shelves: windows the frame cuts short at one end of the rows go with
    their kind (top, bottom, both), tallest first within each; a window joins the open shelf while
    the rows it adds cost fewer than ``call_px`` pixels and the shelf stays within ``max_px``.
    A window cut short on the left (right) goes first (last) in its shelf, one of each at most."""
    frame_h, r = frame[0], radius
    groups: list[list[Tile]] = []
    for t in sorted(tiles, key=lambda t: (_rows_clipped(t, r), -(t.wy1 - t.wy), t.wy, t.wx)):
        left, right = _clipped(t, r)
        open_ = groups[-1] if groups else None
        if open_ is not None and not (left and right) and _rows_clipped(open_[0], r) == _rows_clipped(t, r):
            height = open_[0].wy1 - open_[0].wy
            h, w = t.wy1 - t.wy, t.wx1 - t.wx
            lefts = sum(_clipped(u, r)[0] for u in open_) + left
            rights = sum(_clipped(u, r)[1] for u in open_) + right
            fits = height * (sum(u.wx1 - u.wx for u in open_) + w) <= max_px
            borders_ok = lefts <= 1 and rights <= 1 and not any(all(_clipped(u, r)) for u in open_)
            if fits and borders_ok and (height - h) * w < call_px:
                open_.append(t)
                continue
        groups.append([t])
    out = []
    for group in groups:
        height = group[0].wy1 - group[0].wy
        order = sorted(group, key=lambda t: (not _clipped(t, r)[0], _clipped(t, r)[1]))
        parts, col = [], 0
        for t in order:
            g = _taller(t, height, frame_h)
            parts.append((t, g, col))
            col += g.wx1 - g.wx
        top, bottom = (any(v) for v in zip(*(_rows_clipped(g, r) for _, g, _ in parts)))
        out.append(_Shelf(height=height, width=col, parts=tuple(parts), top=top, bottom=bottom,
                          left=_clipped(parts[0][1], r)[0], right=_clipped(parts[-1][1], r)[1]))
    return out


def _stack(shelves: list[_Shelf], *, radius: int, max_px: int, call_px: int) -> list[Canvas]:
    """Shelves stacked into canvases, widest first: a shelf joins the first canvas it fits (within
    ``max_px``, one top and one bottom shelf a canvas) whose unused columns beside it, and the context
    the canvas then computes, cost fewer than ``call_px`` pixels. A narrower shelf's unused columns
    go before its last window when the frame cuts that window short on the right."""
    r = radius
    stacks: list[list[_Shelf]] = []
    for s in sorted(shelves, key=lambda s: (-s.width, -s.height)):
        for stack in stacks:
            width, height = stack[0].width, sum(u.height for u in stack)
            if ((s.top and s.bottom) or any(u.top and u.bottom for u in stack)
                    or (s.top and any(u.top for u in stack)) or (s.bottom and any(u.bottom for u in stack))
                    or (s.left and s.right and len(s.parts) == 1 and s.width != width)
                    or (height + s.height) * width > max_px):
                continue
            extra = (width - s.width) * s.height
            if (s.top or s.bottom) and not any(u.top or u.bottom for u in stack):
                extra += r * width  # the canvas now computes its rows' context
            if (s.left or s.right) and not any(u.left or u.right for u in stack):
                extra += r * height
            if extra < call_px:
                stack.append(s)
                break
        else:
            stacks.append([s])
    out = []
    for stack in stacks:
        width, height = stack[0].width, sum(s.height for s in stack)
        order = sorted(stack, key=lambda s: (not s.top, s.bottom))
        parts, row = [], 0
        for s in order:
            for k, (t, g, col) in enumerate(s.parts):
                if s.right and k == len(s.parts) - 1:
                    col += width - s.width  # a right-border window ends at the canvas's right edge
                parts.append((t, g, row, col))
            row += s.height
        rows = not any(s.top or s.bottom for s in stack)
        cols = not any(s.left or s.right for s in stack)
        out.append(Canvas(height=height, width=width, parts=tuple(parts), trim=(rows, cols)))
    return out


def _sr_canvases(engine: Engine, image: np.ndarray, canvases: list[Canvas], *,
                 batch: int) -> list[tuple[Tile, np.ndarray]]:
    """SR of the cores in ``canvases`` (:func:`pack_windows`); canvases of one shape go together."""
    s, r = engine.descriptor.scale, engine.descriptor.receptive_radius
    by_kind: dict[tuple[int, int, Trim], list[Canvas]] = {}
    for c in canvases:
        trim = c.trim if engine.trims else NO_TRIM
        by_kind.setdefault((c.height, c.width, trim), []).append(c)
    out: list[tuple[Tile, np.ndarray]] = []
    for (_, _, trim), same in by_kind.items():
        dy, dx = r if trim[0] else 0, r if trim[1] else 0
        for start in range(0, len(same), batch):
            group = same[start:start + batch]
            x = to_tensor([_canvas_pixels(image, c) for c in group])
            ys = run_images(engine, x, image.dtype, trim=trim)
            for c, y in zip(group, ys):
                for t, g, row, col in c.parts:
                    oy, ox = (row + t.y0 - g.wy - dy) * s, (col + t.x0 - g.wx - dx) * s
                    out.append((t, y[oy:oy + (t.y1 - t.y0) * s, ox:ox + (t.x1 - t.x0) * s]))
    return out


def _canvas_pixels(image: np.ndarray, c: Canvas) -> np.ndarray:
    """The (height, width, 3) input of canvas ``c``: its windows' pixels, zero elsewhere."""
    out = np.zeros((c.height, c.width, image.shape[2]), image.dtype)
    for _, g, row, col in c.parts:
        out[row:row + g.wy1 - g.wy, col:col + g.wx1 - g.wx] = window_pixels(image, g)
    return out


def aligned_window(t: Tile, m: int) -> Tile:
    """``t`` with its window grown to start on a multiple of ``m`` (in frame coordinates) and span a
    multiple of ``m``: networks that pixel-unshuffle their input by ``m`` (RRDBNet x2/x1) see the same
    phase grid as in whole-frame SR. The window may end past the frame (:func:`window_pixels` pads)."""
    wy, wx = t.wy - t.wy % m, t.wx - t.wx % m
    return Tile(y0=t.y0, x0=t.x0, y1=t.y1, x1=t.x1, wy=wy, wx=wx,
                wy1=wy + -(-(t.wy1 - wy) // m) * m, wx1=wx + -(-(t.wx1 - wx) // m) * m)


def grown_window(t: Tile, shape: tuple[int, int], frame: tuple[int, int]) -> Tile:
    """``t`` with its window grown (inside the frame) to at least ``shape``, or the frame where it is
    smaller: a network that takes one input shape then sees frame pixels, not padding, as in
    whole-frame SR."""
    (wy, wy1), (wx, wx1) = (_grown(a, b, n, size) for a, b, n, size in
                            ((t.wy, t.wy1, shape[0], frame[0]), (t.wx, t.wx1, shape[1], frame[1])))
    return Tile(y0=t.y0, x0=t.x0, y1=t.y1, x1=t.x1, wy=wy, wx=wx, wy1=wy1, wx1=wx1)


def _grown(a: int, b: int, n: int, size: int) -> tuple[int, int]:
    need = min(n, size)
    if b - a >= need:
        return a, b
    start = min(max(0, a - (need - (b - a)) // 2), size - need)
    return start, start + need


def window_pixels(image: np.ndarray, w: Tile) -> np.ndarray:
    """``image[w.wy:w.wy1, w.wx:w.wx1]``, its part past the bottom/right border filled by replication
    (as :func:`sr_whole` pads a frame whose size is not a multiple of the network's)."""
    h, wd = image.shape[:2]
    win = image[w.wy:min(w.wy1, h), w.wx:min(w.wx1, wd)]
    short_y, short_x = w.wy1 - min(w.wy1, h), w.wx1 - min(w.wx1, wd)
    if short_y or short_x:
        win = np.pad(win, ((0, short_y), (0, short_x), (0, 0)), mode="edge")
    return win


def sr_whole(engine: Engine, image: np.ndarray) -> np.ndarray:
    """Whole-frame SR in one engine call: (H, W, 3) -> (H*s, W*s, 3), same dtype (the reference); a frame
    whose size is not a multiple of the network's ``size_multiple`` is padded by replication, then cropped."""
    check_image(image, deep_ok=True)
    h, w = image.shape[:2]
    m, s = engine.descriptor.size_multiple, engine.descriptor.scale
    frame = Tile(y0=0, x0=0, y1=h, x1=w, wy=0, wx=0, wy1=-(-h // m) * m, wx1=-(-w // m) * m)
    return run_images(engine, to_tensor([window_pixels(image, frame)]), image.dtype)[0, :h * s, :w * s]


def stitch(tiles: list[tuple[Tile, np.ndarray]], *, height: int, width: int, scale: int) -> np.ndarray:
    """Place SR tile cores into a (height*s, width*s, 3) canvas of the tiles' dtype."""
    dtype = tiles[0][1].dtype if tiles else np.uint8
    out = np.zeros((height * scale, width * scale, 3), dtype)
    for t, y in tiles:
        out[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] = y
    return out
