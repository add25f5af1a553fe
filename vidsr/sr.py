"""Running an SR engine over selected tiles of a frame, and over whole frames."""

from __future__ import annotations

import numpy as np

from vidsr.arch.base import NO_TRIM, Trim
from vidsr.backends import Engine
from vidsr.backends.images import to_images
from vidsr.checks import check_image, max_value
from vidsr.tiling import Tile


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


def sr_tiles(engine: Engine, image: np.ndarray, tiles: list[Tile], *, batch: int) -> list[tuple[Tile, np.ndarray]]:
    """SR of the cores of ``tiles``; tiles with one window shape go through the engine together.

    Args:
        image: (H, W, 3) uint8 or uint16 LR frame (deep frames keep their precision).
        tiles: tiles or merged regions (:func:`vidsr.tiling.merge_tiles`), each with its own window.
        batch: windows per engine call.
    Engines that trim skip the context of windows that have the receptive radius of it at both
    ends of an axis (:meth:`Tile.trim`).
    Returns:
        (tile, (core_h*s, core_w*s, 3) image.dtype) for each tile, grouped by window shape.
    """
    check_image(image, deep_ok=True)
    desc = engine.descriptor
    s, r, m = desc.scale, desc.receptive_radius, desc.size_multiple
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
