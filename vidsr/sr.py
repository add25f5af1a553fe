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
    s, r = engine.descriptor.scale, engine.descriptor.receptive_radius
    by_kind: dict[tuple[tuple[int, int], Trim], list[Tile]] = {}
    for t in tiles:
        by_kind.setdefault((t.window_shape, t.trim(r) if engine.trims else NO_TRIM), []).append(t)
    out: list[tuple[Tile, np.ndarray]] = []
    for (_, trim), same in by_kind.items():
        # the output starts r pixels into the window along trimmed axes
        dy, dx = r if trim[0] else 0, r if trim[1] else 0
        for start in range(0, len(same), batch):
            group = same[start:start + batch]
            windows = [image[t.wy:t.wy1, t.wx:t.wx1] for t in group]
            x = to_tensor(windows)
            ys = run_images(engine, x, image.dtype, trim=trim)
            for t, y in zip(group, ys):
                oy, ox = (t.y0 - t.wy - dy) * s, (t.x0 - t.wx - dx) * s
                out.append((t, y[oy:oy + (t.y1 - t.y0) * s, ox:ox + (t.x1 - t.x0) * s]))
    return out


def sr_whole(engine: Engine, image: np.ndarray) -> np.ndarray:
    """Whole-frame SR in one engine call: (H, W, 3) -> (H*s, W*s, 3), same dtype (the reference)."""
    check_image(image, deep_ok=True)
    return run_images(engine, to_tensor([image]), image.dtype)[0]


def stitch(tiles: list[tuple[Tile, np.ndarray]], *, height: int, width: int, scale: int) -> np.ndarray:
    """Place SR tile cores into a (height*s, width*s, 3) canvas of the tiles' dtype."""
    dtype = tiles[0][1].dtype if tiles else np.uint8
    out = np.zeros((height * scale, width * scale, 3), dtype)
    for t, y in tiles:
        out[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] = y
    return out
