"""What every mask estimator and the tracker share: the estimator protocol, one frame's mask, the
working size."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class MaskEstimator(Protocol):
    """Anything that scores how likely each pixel is in-focus foreground.

    Optional extras the tracker uses when present: ``threshold`` (a fixed score threshold
    used instead of Otsu when the tracker has none) and ``estimate_batch(images, *,
    new_shot)`` (scores several anchor frames in one call, in stream order; ``new_shot[i]``
    is True where frame i starts a shot, so stateful estimators can restart).
    """

    name: str

    def estimate(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (h, w) float32 score in [0, 1] at any working size."""
        ...


def work_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) with the long side at most ``max_side``, aspect kept."""
    s = min(1.0, max_side / max(height, width))
    return max(8, round(height * s)), max(8, round(width * s))


@dataclass(frozen=True)
class MaskFrame:
    """Mask of one frame. ``alpha``: (H, W) float32 in [0, 1] at the frame's size.

    ``threshold``: the score threshold that made ``binary`` (None when a soft mask file is the
    alpha itself)."""

    alpha: np.ndarray
    binary: np.ndarray
    score: np.ndarray
    anchor: bool
    cut: bool
    threshold: float | None = None

    @functools.cached_property
    def fg_fraction(self) -> float:
        """Share of the binary mask that is on (computed once per mask frame)."""
        b = self.binary
        # a count over the size is the mean, correctly rounded alike, without a float pass
        return float(np.count_nonzero(b) / b.size) if b.dtype == bool else float(b.mean())


@dataclass
class ThresholdStats:
    """The thresholds a run's masks used, over its frames (for the summary line)."""

    total: float = 0.0
    frames: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, threshold: float | None) -> None:
        if threshold is not None:
            self.total += threshold
            self.frames += 1
            self.low, self.high = min(self.low, threshold), max(self.high, threshold)

    @property
    def mean(self) -> float | None:
        return self.total / self.frames if self.frames else None

    def describe(self, source: str) -> str:
        """e.g. ``threshold 0.083 by Otsu (0.071-0.095 over the frames)``; empty when no frame was
        thresholded."""
        if self.mean is None:
            return ""
        spread = f" ({self.low:.3f}-{self.high:.3f} over the frames)" if self.high - self.low >= 0.0005 else ""
        return f"threshold {self.mean:.3f} {source}{spread}"


def threshold_source(estimator: MaskEstimator | None, fg_threshold: float | None) -> str:
    """Who chose the masks' threshold, for the summary: ``--fg-threshold``, the estimator's fixed one
    (depth, person, a hard mask file) or Otsu on the focus map."""
    if fg_threshold is not None:
        return "from --fg-threshold"
    if estimator is not None and getattr(estimator, "threshold", None) is not None:
        return f"fixed by the {estimator.name} mask"
    return "by Otsu"
