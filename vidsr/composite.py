"""Cheap background upscale and the feathered blend of SR tiles over it."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from vidsr.checks import max_value
from vidsr.tiling import Tile

BgMethod = Literal["bicubic", "lanczos", "bilinear"]
_INTERP = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "bilinear": cv2.INTER_LINEAR}


def upscale_background(image: np.ndarray, *, scale: int, method: BgMethod = "bicubic") -> np.ndarray:
    """(H, W, 3) uint8 -> (H*scale, W*scale, 3) uint8 with a plain interpolating resize."""
    h, w = image.shape[:2]
    try:
        interp = _INTERP[method]
    except KeyError:
        raise ValueError(f"unknown background method {method!r} (choose from {', '.join(_INTERP)})") from None
    return cv2.resize(image, (w * scale, h * scale), interpolation=interp)


def _blend_block(block: np.ndarray, sr: np.ndarray, a: np.ndarray) -> None:
    """Blend ``sr`` over the background ``block`` with alpha ``a``, in place (all one block)."""
    lo, hi = cv2.minMaxLoc(a)[:2]  # one native pass (numpy's any + min: 14 vs 2.5 us per block, holding the GIL)
    if hi <= 0.0:
        return
    if lo >= 1.0:
        block[:] = sr
        return
    if block.dtype == np.uint8:  # OpenCV's blend is several times faster than numpy's; written in place
        cv2.blendLinear(sr, block, a, 1.0 - a, dst=block)
        return
    bg = block.astype(np.float32)
    blended = bg + a[..., None] * (sr.astype(np.float32) - bg)
    block[:] = np.clip(blended + 0.5, 0, max_value(block.dtype)).astype(block.dtype)


def tile_alpha(alpha: np.ndarray, t: Tile, *, scale: int) -> np.ndarray:
    """The output-size alpha over tile ``t``'s core: equal to that part of ``alpha`` (LR, (H, W)
    float32) upscaled whole with bilinear interpolation, at a fraction of the cost.

    The crop keeps one LR pixel around the core (bilinear reads one neighbour each way) and
    integer scales put the crop's pixel centres where the whole frame's are."""
    h, w = alpha.shape
    y0, x0, y1, x1 = max(0, t.y0 - 1), max(0, t.x0 - 1), min(h, t.y1 + 1), min(w, t.x1 + 1)
    crop = alpha[y0:y1, x0:x1]
    up = cv2.resize(crop, ((x1 - x0) * scale, (y1 - y0) * scale), interpolation=cv2.INTER_LINEAR)
    oy, ox = (t.y0 - y0) * scale, (t.x0 - x0) * scale
    return up[oy:oy + (t.y1 - t.y0) * scale, ox:ox + (t.x1 - t.x0) * scale]


def blend_tiles(background: np.ndarray, sr_tiles: list[tuple[Tile, np.ndarray]], alpha: np.ndarray,
                *, scale: int, block: int = 128) -> np.ndarray:
    """Alpha-blend SR tile cores over the background, only inside those tiles, in place.

    Each tile (or merged region) is blended in ``block`` x ``block`` output pieces, so opaque
    and empty pieces of a large region are copied or skipped instead of blended.

    Args:
        background: (H*s, W*s, 3) uint8 or uint16 cheap upscale; the blend is written into it.
        sr_tiles: (tile, (th*s, tw*s, 3) SR of the tile's core, same dtype as ``background``).
        alpha: (H, W) float32 LR alpha in [0, 1], upscaled bilinearly (per tile, see
            :func:`tile_alpha`); its upscale must be 0 outside the given tiles.
    Returns:
        ``background``, now the composite.
    """
    for t, sr in sr_tiles:
        oy, ox = t.y0 * scale, t.x0 * scale
        h, w = sr.shape[:2]
        a_tile = tile_alpha(alpha, t, scale=scale)
        for by in range(0, h, block):
            for bx in range(0, w, block):
                ys, xs = slice(oy + by, oy + min(h, by + block)), slice(ox + bx, ox + min(w, bx + block))
                _blend_block(background[ys, xs], sr[by:by + block, bx:bx + block], a_tile[by:by + block, bx:bx + block])
    return background
