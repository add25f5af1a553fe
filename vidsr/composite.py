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


def blend_tiles(background: np.ndarray, sr_tiles: list[tuple[Tile, np.ndarray]], alpha: np.ndarray,
                *, scale: int) -> np.ndarray:
    """Alpha-blend SR tile cores over the background, only inside those tiles.

    Args:
        background: (H*s, W*s, 3) uint8 or uint16 cheap upscale; not modified.
        sr_tiles: (tile, (th*s, tw*s, 3) SR of the tile's core, same dtype as ``background``).
        alpha: (H*s, W*s) float32 in [0, 1]; must be 0 outside the given tiles.
    Returns:
        (H*s, W*s, 3) composite, ``background``'s dtype.
    """
    top = max_value(background.dtype)
    out = background.copy()
    for t, sr in sr_tiles:
        ys, xs = slice(t.y0 * scale, t.y1 * scale), slice(t.x0 * scale, t.x1 * scale)
        a = alpha[ys, xs]
        if not a.any():
            continue
        if a.min() >= 1.0:
            out[ys, xs] = sr
            continue
        bg = background[ys, xs].astype(np.float32)
        blended = bg + a[..., None] * (sr.astype(np.float32) - bg)
        out[ys, xs] = np.clip(blended + 0.5, 0, top).astype(background.dtype)
    return out
