"""Depth -> foreground score: pick the focal plane, keep a soft band around it, track it.

Monocular depth nets give *relative* inverse depth (larger = nearer) with an unknown
scale and shift per frame, so each map is first normalised to [0, 1] by robust
percentiles. The focal plane is then chosen in that normalised space:

- ``focus``: the depth band where the image is sharpest (the focus map averaged per
  depth band; bands holding too few pixels are ignored);
- ``point``: the depth under a given point (``--focus-point x,y``);
- ``nearest``: the nearest depth mode that holds a real share of the frame.

The score is a soft band: 1 within ``tolerance`` of the focal depth, 0.5 at the
band's edge, falling to 0 over ``softness x tolerance``. Over time the focal depth is
smoothed per anchor frame (rack focus moves it gradually), and restarts on cuts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.masks.depth import DepthNet, predict
from vidsr.errors import InputError
from vidsr.masks.base import work_size
from vidsr.masks.focus import focus_score

FocalMode = Literal["focus", "point", "nearest"]


def normalize_depth(depth: np.ndarray, *, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Relative inverse depth -> [0, 1] by its ``low``/``high`` percentiles (1 = nearest)."""
    lo, hi = np.percentile(depth, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo < 1e-12:
        return np.zeros(depth.shape, np.float32)
    return np.clip((depth - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _band_sums(depth: np.ndarray, weight: np.ndarray | None, *, bins: int, tolerance: float) -> np.ndarray:
    """Per bin centre c: sum of ``weight`` (or count) over pixels with |depth - c| <= tolerance."""
    idx = np.clip((depth * bins).astype(np.int64), 0, bins - 1).ravel()
    hist = np.bincount(idx, weights=None if weight is None else weight.ravel(), minlength=bins).astype(np.float64)
    half = max(0, int(round(tolerance * bins)))
    csum = np.concatenate([[0.0], np.cumsum(hist)])
    lo = np.clip(np.arange(bins) - half, 0, bins)
    hi = np.clip(np.arange(bins) + half + 1, 0, bins)
    return csum[hi] - csum[lo]


def focal_from_focus(depth: np.ndarray, focus: np.ndarray, *, tolerance: float, bins: int = 64,
                     min_share: float = 0.02) -> float:
    """The normalised depth whose band (± ``tolerance``) is sharpest on average.

    Args:
        depth: (h, w) normalised inverse depth in [0, 1].
        focus: (h, w) focus score in [0, 1] (resized to ``depth`` if needed).
        min_share: bands holding less than this share of the pixels are not candidates.
    """
    if focus.shape != depth.shape:
        focus = cv2.resize(focus, depth.shape[::-1], interpolation=cv2.INTER_LINEAR)
    count = _band_sums(depth, None, bins=bins, tolerance=tolerance)
    sharp = _band_sums(depth, focus.astype(np.float64), bins=bins, tolerance=tolerance)
    ok = count >= min_share * depth.size
    if not ok.any():
        return float(np.median(depth))
    mean = np.where(ok, sharp / np.maximum(count, 1.0), -1.0)
    best = int(np.argmax(mean))
    # refine: the focus-weighted mean depth of the pixels the winning band counted
    half = max(0, int(round(tolerance * bins)))
    idx = np.clip((depth * bins).astype(np.int64), 0, bins - 1)
    inside = np.abs(idx - best) <= half
    w = focus[inside].astype(np.float64) + 1e-6
    return float(np.sum(depth[inside] * w) / np.sum(w))


def focal_at_point(depth: np.ndarray, point: tuple[float, float], *, radius: int = 2) -> float:
    """Median normalised depth around ``point`` = (x, y) as fractions of width and height."""
    h, w = depth.shape
    x = int(np.clip(round(point[0] * (w - 1)), 0, w - 1))
    y = int(np.clip(round(point[1] * (h - 1)), 0, h - 1))
    return float(np.median(depth[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]))


def nearest_focal(depth: np.ndarray, *, tolerance: float, bins: int = 64, min_share: float = 0.02) -> float:
    """Centre of the nearest local mode of the depth histogram holding >= ``min_share`` of the pixels."""
    count = _band_sums(depth, None, bins=bins, tolerance=tolerance)
    left = np.concatenate([[-1.0], count[:-1]])
    right = np.concatenate([count[1:], [-1.0]])
    modes = np.flatnonzero((count >= left) & (count >= right) & (count >= min_share * depth.size))
    if modes.size == 0:
        return float(np.percentile(depth, 90))
    b = modes.max()
    band = np.abs(depth - (b + 0.5) / bins) <= tolerance
    return float(np.median(depth[band]))


def band_score(depth: np.ndarray, focal: float, *, tolerance: float, softness: float = 0.25) -> np.ndarray:
    """Soft band around ``focal``: ~1 inside ± ``tolerance``, 0.5 at its edge, ~0 beyond.

    Returns:
        (h, w) float32 in [0, 1].
    """
    width = max(1e-3, softness * tolerance)
    z = (tolerance - np.abs(depth - focal)) / width
    return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


@dataclass(frozen=True)
class FocalOptions:
    """How the focal plane is chosen and followed.

    Args:
        mode: ``focus`` (sharpest band), ``point`` (depth under ``point``) or ``nearest``.
        point: (x, y) as fractions of width/height, for ``mode="point"``.
        tolerance: half-width of the in-focus band in normalised inverse depth (0-1).
        softness: band edge width as a fraction of ``tolerance``.
        smoothing: weight of a new anchor's focal depth (1 = no smoothing).
        max_step: largest change of the tracked focal depth per anchor (rack focus is gradual).
    """

    mode: FocalMode = "focus"
    point: tuple[float, float] | None = None
    tolerance: float = 0.15
    softness: float = 0.25
    smoothing: float = 0.5
    max_step: float = 0.2
    bins: int = 64
    min_share: float = 0.02

    def __post_init__(self) -> None:
        if self.mode not in ("focus", "point", "nearest"):
            raise InputError(f"focal mode must be focus, point or nearest, got {self.mode!r}")
        if self.mode == "point":
            if self.point is None:
                raise InputError("focal mode 'point' needs a focus point")
            if not all(0.0 <= v <= 1.0 for v in self.point):
                raise InputError(f"focus point must be fractions in [0, 1], got {self.point}")
        if not 0.0 < self.tolerance <= 1.0:
            raise InputError(f"--depth-tolerance must be in (0, 1], got {self.tolerance}")
        if not 0.0 < self.smoothing <= 1.0:
            raise InputError(f"focal smoothing must be in (0, 1], got {self.smoothing}")


def parse_focus_point(text: str, *, width: int | None = None, height: int | None = None) -> tuple[float, float]:
    """``"x,y"`` -> (x, y) fractions. Values <= 1 are fractions; larger ones are pixels
    and need the frame size."""
    try:
        x, y = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise InputError(f"--focus-point must look like 0.5,0.4 (fractions) or 960,400 (pixels), got {text!r}") from None
    if x < 0 or y < 0:
        raise InputError(f"--focus-point must not be negative, got {text!r}")
    if x > 1 or y > 1:
        if width is None or height is None:
            raise InputError(f"--focus-point {text!r} is in pixels: the frame size is needed")
        if x >= width or y >= height:
            raise InputError(f"--focus-point {text!r} lies outside the {width}x{height} frame")
        return x / max(1, width - 1), y / max(1, height - 1)
    return x, y


def choose_focal(depth: np.ndarray, focus: np.ndarray | None, options: FocalOptions) -> float:
    """Focal depth of one frame (normalised inverse depth) by ``options.mode``."""
    if options.mode == "point":
        assert options.point is not None
        return focal_at_point(depth, options.point)
    if options.mode == "focus":
        if focus is None:
            raise InputError("focal mode 'focus' needs a focus map")
        return focal_from_focus(depth, focus, tolerance=options.tolerance, bins=options.bins,
                                min_share=options.min_share)
    return nearest_focal(depth, tolerance=options.tolerance, bins=options.bins, min_share=options.min_share)


@dataclass
class FocalTrack:
    """The focal depth over time: EMA per anchor with a bounded step; restarts on a new shot."""

    smoothing: float = 0.5
    max_step: float = 0.2
    value: float | None = None
    history: list[float] = field(default_factory=list)

    def update(self, target: float, *, new_shot: bool = False) -> float:
        if self.value is None or new_shot:
            self.value = float(target)
        else:
            step = self.smoothing * (target - self.value)
            self.value += float(np.clip(step, -self.max_step, self.max_step))
        self.history.append(self.value)
        return self.value


@dataclass
class DepthMaskEstimator:
    """Foreground score from a depth net: focal-plane band, tracked over anchors.

    Implements the ``MaskEstimator`` protocol plus ``estimate_batch``, which runs the depth
    net once for several anchor frames (``net.batch`` per call). The score is 0.5 at the
    band edge, so the tracker thresholds at ``threshold``.

    Args:
        net: the depth network.
        focal: focal-plane choice and tracking.
        max_side: working resolution's long side (depth is upsampled to it).
    """

    net: DepthNet
    focal: FocalOptions = field(default_factory=FocalOptions)
    max_side: int = 480
    name: str = "depth"
    threshold: float = 0.5
    track: FocalTrack = field(init=False)
    depth_frames: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.track = FocalTrack(smoothing=self.focal.smoothing, max_step=self.focal.max_step)
        self.name = "depth+focus" if self.focal.mode == "focus" else "depth"

    def estimate(self, image: np.ndarray) -> np.ndarray:
        """One frame, continuing the focal track."""
        return self.estimate_batch([image], new_shot=[False])[0]

    def estimate_batch(self, images: Sequence[np.ndarray], *, new_shot: Sequence[bool]) -> list[np.ndarray]:
        """Scores of several anchor frames in stream order; ``new_shot[i]`` restarts the focal track."""
        if len(new_shot) != len(images):
            raise ValueError(f"new_shot has {len(new_shot)} flags for {len(images)} images")
        if not images:
            return []
        for img in images:
            check_image(img)
        size = work_size(*images[0].shape[:2], self.max_side)
        depth = predict(self.net, list(images), out_size=size)
        self.depth_frames += len(images)
        scores = []
        for img, d, new in zip(images, depth, new_shot):
            dn = normalize_depth(d)
            focus = focus_score(img, max_side=self.max_side) if self.focal.mode == "focus" else None
            f = self.track.update(choose_focal(dn, focus, self.focal), new_shot=new)
            scores.append(band_score(dn, f, tolerance=self.focal.tolerance, softness=self.focal.softness))
        return scores
