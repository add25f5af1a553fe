"""Synthetic masks for benchmarks: a centred ellipse of a chosen area (a compact subject)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from vidsr.masks.base import work_size


@dataclass(frozen=True)
class DiscEstimator:
    """A centred ellipse covering ``fraction`` of the frame (for the FG-fraction sweep)."""

    fraction: float
    name: str = "disc"
    max_side: int = 480

    def estimate(self, image: np.ndarray) -> np.ndarray:
        # at the focus mask's working size, so the tracker cleans and feathers it as it does a
        # focus map (at full size that took 14 instead of 8 ms per 540p frame, with a feather
        # half as wide); drawn once per size (the quantile took 19 ms per 540p frame)
        return _disc(*work_size(*image.shape[:2], self.max_side), self.fraction).copy()


@functools.lru_cache(maxsize=8)
def _disc(h: int, w: int, fraction: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    thr = np.quantile(r, min(1.0, fraction)) if fraction < 1 else np.inf
    return (r <= thr).astype(np.float32)


__all__ = ["DiscEstimator"]
