"""Masks read from a grey mask video (``--mask FILE``): written by ``vidsr mask`` or made elsewhere."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.errors import InputError
from vidsr.masks.base import work_size
from vidsr.masks.focus import SOFT_EDGE_PX, edge_width


@dataclass
class FileMaskEstimator:
    """Masks from a grey mask video, one frame per call (use with ``every=1``): masks written by
    ``vidsr mask``, or made or edited in other tools. White = foreground.

    Its frames are ``final``: the tracker takes each as it is, with no smoothing over time
    (:meth:`vidsr.masks.tracker.MaskTracker._take`). ``soft`` says whether the last frame's edge is a ramp
    (a feathered matte, used as the blend alpha) rather than a step (feathered by the tracker)."""

    path: Path
    max_side: int = 480
    name: str = "file"
    threshold: float = 0.5
    final: bool = True
    soft: bool = field(default=False, init=False)
    _frames: Iterator[np.ndarray] | None = field(default=None, init=False, repr=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False, repr=False)
    used: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        from vidsr.media.reader import probe

        self.path = Path(self.path)
        probe(self.path)  # a clear error now if it is not a video

    def _iter(self) -> Iterator[np.ndarray]:
        from vidsr.media.reader import read_items
        from vidsr.media.types import Frame

        for item in read_items(self.path, copy_streams=False):
            if isinstance(item, Frame):
                yield item.image

    def estimate(self, image: np.ndarray) -> np.ndarray:
        check_image(image)
        if self._frames is None:
            self._frames = self._stack.enter_context(contextlib.closing(self._iter()))
        try:
            m = next(self._frames)
        except StopIteration:
            raise InputError(f"mask video {self.path} has {self.used} frames, fewer than the input") from None
        self.used += 1
        h, w = work_size(*image.shape[:2], self.max_side)
        g = cv2.cvtColor(m, cv2.COLOR_RGB2GRAY)
        self.soft = edge_width(g) > SOFT_EDGE_PX
        g = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
        return g.astype(np.float32) * (1.0 / 255.0)

    def close(self) -> None:
        self._stack.close()
