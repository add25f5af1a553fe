"""What every mask estimator and the tracker share: the estimator protocol, one frame's mask, the
working size."""

from __future__ import annotations

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
    """Mask of one frame. ``alpha``: (H, W) float32 in [0, 1] at the frame's size."""

    alpha: np.ndarray
    binary: np.ndarray
    score: np.ndarray
    anchor: bool
    cut: bool

    @property
    def fg_fraction(self) -> float:
        return float(self.binary.mean())
