from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidsr.composite import blend_tiles, tile_alpha
from vidsr.tiling import Tile


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tile_alpha_equals_the_whole_frame_upscale(scale):
    rng = np.random.default_rng(scale)
    a = rng.random((40, 70)).astype(np.float32)
    whole = cv2.resize(a, (70 * scale, 40 * scale), interpolation=cv2.INTER_LINEAR)
    for y0, x0, y1, x1 in [(0, 0, 40, 70), (0, 0, 9, 13), (31, 57, 40, 70), (5, 6, 6, 7), (12, 0, 30, 70)]:
        t = Tile(y0=y0, x0=x0, y1=y1, x1=x1, wy=y0, wx=x0, wy1=y1, wx1=x1)
        np.testing.assert_array_equal(tile_alpha(a, t, scale=scale),
                                      whole[y0 * scale:y1 * scale, x0 * scale:x1 * scale])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_blend_tiles_blends_in_place_inside_the_tiles_only(dtype):
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    h, w, s = 48, 80, 2
    alpha = np.zeros((h, w), np.float32)
    alpha[10:30, 20:60] = 1.0
    alpha[8:10, 20:60] = alpha[30:32, 20:60] = 0.5  # soft rows above and below
    t = Tile(y0=6, x0=18, y1=34, x1=62, wy=0, wx=12, wy1=40, wx1=68)
    background = rng.integers(0, top, (h * s, w * s, 3)).astype(dtype)
    sr = rng.integers(0, top, ((t.y1 - t.y0) * s, (t.x1 - t.x0) * s, 3)).astype(dtype)
    before = background.copy()
    out = blend_tiles(background, [(t, sr)], alpha, scale=s, block=16)
    assert out is background
    a = cv2.resize(alpha, (w * s, h * s), interpolation=cv2.INTER_LINEAR)[..., None]
    core = (slice(t.y0 * s, t.y1 * s), slice(t.x0 * s, t.x1 * s))
    want = before.astype(np.float64)
    want[core] = want[core] + a[core] * (sr.astype(np.float64) - want[core])
    assert np.abs(out.astype(np.float64) - np.rint(want)).max() <= 1  # rounding of the blend
    outside = np.ones((h * s, w * s), bool)
    outside[core] = False
    np.testing.assert_array_equal(out[outside], before[outside])
    np.testing.assert_array_equal(out[20 * s:28 * s, 24 * s:56 * s], sr[(20 - 6) * s:(28 - 6) * s, (24 - 18) * s:(56 - 18) * s])
