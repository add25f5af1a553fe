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


def _blend_block(out: np.ndarray, background: np.ndarray, sr: np.ndarray, a: np.ndarray) -> None:
    """Write the blend of ``sr`` over ``background`` with alpha ``a`` into ``out`` (all one block)."""
    if not a.any():
        return
    if a.min() >= 1.0:
        out[:] = sr
        return
    if out.dtype == np.uint8:  # OpenCV's blend is several times faster than numpy's
        out[:] = cv2.blendLinear(sr, background, a, 1.0 - a)
        return
    bg = background.astype(np.float32)
    blended = bg + a[..., None] * (sr.astype(np.float32) - bg)
    out[:] = np.clip(blended + 0.5, 0, max_value(out.dtype)).astype(out.dtype)


def blend_tiles(background: np.ndarray, sr_tiles: list[tuple[Tile, np.ndarray]], alpha: np.ndarray,
                *, scale: int, block: int = 128) -> np.ndarray:
    """Alpha-blend SR tile cores over the background, only inside those tiles.

    Each tile (or merged region) is blended in ``block`` x ``block`` output pieces, so opaque
    and empty pieces of a large region are copied or skipped instead of blended.

    Args:
        background: (H*s, W*s, 3) uint8 or uint16 cheap upscale; not modified.
        sr_tiles: (tile, (th*s, tw*s, 3) SR of the tile's core, same dtype as ``background``).
        alpha: (H*s, W*s) float32 in [0, 1]; must be 0 outside the given tiles.
    Returns:
        (H*s, W*s, 3) composite, ``background``'s dtype.
    """
    out = background.copy()
    for t, sr in sr_tiles:
        oy, ox = t.y0 * scale, t.x0 * scale
        h, w = sr.shape[:2]
        for by in range(0, h, block):
            for bx in range(0, w, block):
                ys, xs = slice(oy + by, oy + min(h, by + block)), slice(ox + bx, ox + min(w, bx + block))
                _blend_block(out[ys, xs], background[ys, xs], sr[by:by + block, bx:bx + block], alpha[ys, xs])
    return out
