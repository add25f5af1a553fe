"""The weight-free focus map and the helpers that turn a score into a mask: Otsu threshold, cleaning,
feathering, soft mattes.

:func:`focus_score` scores how much of each pixel's detail sits at the finest scale (the in-focus
subject of a shallow depth-of-field shot); :class:`FocusEstimator` is it as a ``MaskEstimator``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.masks.base import work_size


def focus_score(image: np.ndarray, *, max_side: int = 480, fine_sigma: float = 0.6,
                coarse_sigma: float = 2.5, window: float = 0.015, floor: float = 1e-3) -> np.ndarray:
    """Share of local Laplacian energy that sits at the finest scale, in [0, 1].

    Defocus removes fine detail first: in the bokeh nearly all Laplacian energy is at
    coarse scales, on the in-focus subject much of it is at the finest one. The share
    ``fine / (fine + coarse + floor)``, each energy averaged over a window of ``window``
    x image width, is independent of local contrast and needs no per-frame
    normalisation (an all-bokeh frame stays low); ``floor`` keeps flat areas low.

    Args:
        image: (H, W, 3) uint8 RGB.
        max_side: working resolution's long side.
    Returns:
        (h, w) float32 score in [0, 1] at working resolution.
    """
    check_image(image)
    h, w = work_size(*image.shape[:2], max_side)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if gray.shape != (h, w):
        gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    g = np.multiply(gray, np.float32(1.0 / 255.0), dtype=np.float32)  # one pass, as astype then *
    win = max(1.0, window * w)

    def energy(sigma: float) -> np.ndarray:
        lap = cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), sigma), cv2.CV_32F, ksize=3) * (sigma * sigma)
        return lap * lap

    both = cv2.merge([energy(fine_sigma), energy(coarse_sigma)])
    if win >= 4.0:
        # a blur this wide keeps nothing of the finest scale: blur at half size (a quarter of the
        # work; on real photos the score moves by at most 0.03, by 0.001 on average), interpolate back
        half = cv2.resize(both, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
        both = cv2.resize(cv2.GaussianBlur(half, (0, 0), win / 2), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        both = cv2.GaussianBlur(both, (0, 0), win)
    fine, coarse = both[..., 0], both[..., 1]
    share = fine + coarse
    share += floor
    np.divide(fine, share, out=share)
    return np.clip(share, 0.0, 1.0, out=share)


@dataclass(frozen=True)
class FocusEstimator:
    """Weight-free default: the focus map above."""

    max_side: int = 480
    name: str = "focus"

    def estimate(self, image: np.ndarray) -> np.ndarray:
        return focus_score(image, max_side=self.max_side)


@dataclass(frozen=True)
class ConstantEstimator:
    """Every pixel gets ``value``: 0 gives an empty mask, 1 a full one (tests, --full-frame)."""

    value: float
    name: str = "constant"

    def estimate(self, image: np.ndarray) -> np.ndarray:
        return np.full((8, 8), self.value, np.float32)


def otsu_threshold(score: np.ndarray) -> float:
    """Otsu threshold of a [0, 1] map."""
    u = score * 255.0
    u += 0.5
    u8 = np.clip(u, 0, 255, out=u).astype(np.uint8)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0


def clean_mask(binary: np.ndarray, *, min_area: float, close_px: int) -> np.ndarray:
    """Close gaps, fill holes, drop blobs smaller than ``min_area`` x frame area."""
    m = binary.astype(np.uint8)
    if close_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * close_px + 1, 2 * close_px + 1))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    # 16-bit labels (half the memory traffic) whenever every possible blob gets its own label
    few = ((m.shape[0] + 1) // 2) * ((m.shape[1] + 1) // 2) < 65535
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8, ltype=cv2.CV_16U if few else cv2.CV_32S)
    for i in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area * m.size) + 1:
        x, y, w, h = stats[i, :4]  # a small blob: clear it inside its own box
        box = m[y:y + h, x:x + w]
        box[labels[y:y + h, x:x + w] == i] = 0
    # fill holes: background that a 4-connected flood from outside the frame does not reach
    outside = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8)
    outside[1:-1, 1:-1] = m
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)
    return outside[1:-1, 1:-1] != 2


def _ramp_of(d2: np.ndarray, r: float) -> np.ndarray:
    """The ramp of radius ``r`` at squared edge distances ``d2`` (float32 whole numbers), in place."""
    t = np.sqrt(d2, out=d2)
    t -= 0.5
    t *= -0.5 / r
    t += 1.0
    np.clip(t, 0.0, 1.0, out=t)  # 1 - edge distance / (2 r), clipped
    w = np.multiply(t, 2.0)
    np.subtract(3.0, w, out=w)
    np.multiply(t, t, out=t)
    t *= w  # t * t * (3 - 2 t)
    return t


@functools.lru_cache(maxsize=8)
def _ramp_table(r: float) -> tuple[np.ndarray, int] | None:
    """:func:`_ramp_of` for squared distances 0..255 and the largest offset along an axis at which
    it is not 0, when the ramp is 0 from 255 on (r up to 7.7)."""
    table = _ramp_of(np.arange(256, dtype=np.float32), r)
    table.flags.writeable = False
    if table[255] != 0.0:
        return None
    return table, math.isqrt(int(np.flatnonzero(table).max()))


def near_d2(m: np.ndarray, reach: int) -> np.ndarray:
    """Squared distance (uint8) from each pixel's centre to the nearest pixel's centre where the
    (h, w) uint8 0/1 mask ``m`` is on; exact where the nearest is at most ``reach`` (<= 15) px away
    along each axis, else some larger value (255 for none).

    The squared distance is separable (the minimum over rows of the row offset's square plus the
    nearest along that row), so each axis is a minimum over 2 ``reach`` shifted copies; at the
    feather's reach ~3x faster than OpenCV's exact transform of the whole box, and whole numbers,
    with no last bit that depends on buffer alignment."""
    far = np.subtract(1, m, dtype=np.uint8)
    far *= 255  # 0 on the mask, 255 off it
    cols = far.copy()  # the nearest within ``reach`` rows, squared
    tmp = np.empty_like(far)
    h, w = m.shape
    for k in range(1, min(reach, h - 1) + 1):
        kk = k * k  # uint8 additions saturate at 255
        cv2.min(cols[:-k], cv2.add(far[k:], kk, dst=tmp[:-k]), dst=cols[:-k])
        cv2.min(cols[k:], cv2.add(far[:-k], kk, dst=tmp[k:]), dst=cols[k:])
    d2 = cols.copy()
    for k in range(1, min(reach, w - 1) + 1):
        kk = k * k
        cv2.min(d2[:, :-k], cv2.add(cols[:, k:], kk, dst=tmp[:, :-k]), dst=d2[:, :-k])
        cv2.min(d2[:, k:], cv2.add(cols[:, :-k], kk, dst=tmp[:, k:]), dst=d2[:, k:])
    return d2


def _ramp(m: np.ndarray, r: float) -> np.ndarray:
    """:func:`feather`'s alpha before resizing for a (h, w) uint8 0/1 mask ``m`` with pixels both on
    and off: 1 on the mask, the smoothstep ramp of radius ``r`` around it."""
    # squared distance of each outside pixel's centre from the nearest mask pixel's centre (the edge is
    # 0.5 px out): whole numbers, looked up where the ramp fits the table
    ramp = _ramp_table(r)
    if ramp is not None:
        table, reach = ramp
        return cv2.LUT(near_d2(m, reach), table)
    t = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # exact distances are roots of whole numbers; OpenCV's last bit depends on buffer alignment
    np.multiply(t, t, out=t)
    return _ramp_of(np.rint(t, out=t), r)


def feather(binary: np.ndarray, *, radius_px: float, size: tuple[int, int]) -> np.ndarray:
    """Soft alpha from a binary mask, resized to ``size`` (h, w).

    1 on the mask, then a smoothstep ramp over the distance from the mask's edge: 0.5 at
    ``radius_px``, exactly 0 from ``2 * radius_px`` on. The ramp has the slope of a Gaussian
    blur (sigma ``radius_px / 2``) of the mask dilated by ``radius_px``, without the blur's
    long tail of near-zero alpha, which would send a wide band of bokeh through SR for no
    visible change. Values within 1e-3 of 0 or 1 snap to exactly 0 or 1, so an empty mask
    blends to the background and a full one to SR with no rounding residue.
    """
    m = binary.astype(np.uint8)
    r = float(radius_px)
    if r > 0 and m.any() and not m.all():
        # the ramp is 0 from 2 r + 0.5 px out: work on the mask's box grown by more than that
        x, y, bw, bh = cv2.boundingRect(m)
        reach = math.ceil(2 * r) + 1
        y0, x0 = max(0, y - reach), max(0, x - reach)
        y1, x1 = min(m.shape[0], y + bh + reach), min(m.shape[1], x + bw + reach)
        if (y1 - y0, x1 - x0) == m.shape:
            a = _ramp(m, r)
        else:
            a = np.zeros(m.shape, np.float32)
            a[y0:y1, x0:x1] = _ramp(m[y0:y1, x0:x1], r)
    else:
        y0, x0, (y1, x1) = 0, 0, m.shape
        a = m.astype(np.float32)
    if a.shape != size:
        a = cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        # a resize of zeros stays 0: snap only where the box lands (each output reads 2 px each way)
        sy, sx = size[0] / m.shape[0], size[1] / m.shape[1]
        py, px = math.ceil(sy) + 1, math.ceil(sx) + 1
        y0, x0 = max(0, math.floor(y0 * sy) - py), max(0, math.floor(x0 * sx) - px)
        y1, x1 = math.ceil(y1 * sy) + py, math.ceil(x1 * sx) + px
    snap(a[y0:y1, x0:x1])
    return a


_SNAP_LOW = float(np.nextafter(np.float32(1e-3), np.float32(0)))  # keep alpha >= float32(1e-3)
_SNAP_HIGH = float(np.float32(1 - 1e-3))


def snap(a: np.ndarray) -> None:
    """Float32 alpha within 1e-3 of 0 or 1 set to 0 or 1, in place (``a[a < 1e-3] = 0``,
    ``a[a > 1 - 1e-3] = 1`` in three native passes, without the GIL)."""
    if a.size == 0:
        return
    cv2.threshold(a, _SNAP_LOW, 0.0, cv2.THRESH_TOZERO, dst=a)
    cv2.max(a, cv2.threshold(a, _SNAP_HIGH, 1.0, cv2.THRESH_BINARY)[1], dst=a)


SOFT_EDGE_PX = 3.0
"""A grey mask whose edge is wider than this on average (native px) is a soft matte, not a step."""
SOLID = 0.99
"""Matte values above this count as foreground (the mask a feathered alpha was made from)."""


def edge_width(grey: np.ndarray) -> float:
    """Mean width in px of the edge of a (H, W) uint8 grey mask: pixels strictly between black and
    white (8..247, above compression noise) per pixel of the contour of its > 127 part. A step
    edge (a hard mask, even after lossy coding) is about 1 px wide; :func:`feather`'s ramp is
    ``2 * radius`` working px wide."""
    on = grey > 127
    contour = np.count_nonzero(on[:, 1:] != on[:, :-1]) + np.count_nonzero(on[1:] != on[:-1])
    ramp = np.count_nonzero((grey > 8) & (grey < 247))
    return ramp / max(contour, 1)


def matte_alpha(matte: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A soft matte (score in [0, 1] at working size) as the blend alpha at ``size`` (h, w): resized
    bilinearly, values within 0.02 of 0 or 1 (8-bit rounding, lossy coding) snapped to them."""
    a = cv2.resize(matte, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) if matte.shape != size else matte.copy()
    a[a < 0.02] = 0.0
    a[a > 0.98] = 1.0
    return a
