"""One frame through partial SR: mask, tile-gated SR, composite (no I/O), and its assembly."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from vidsr.backends import Engine
from vidsr.composite import BgMethod, blend_tiles, upscale_background
from vidsr.masks.base import MaskEstimator, MaskFrame
from vidsr.masks.focus import FocusEstimator
from vidsr.masks.tracker import MaskTracker
from vidsr.sr import sr_tiles, stitch
from vidsr.tiling import Tile, TilePlan, mask_support, merge_tiles, plan_tiles, select_tiles, shrink_to_support


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the (H*s, W*s, 3) uint8 output, its mask (None in full-frame mode),
    the indices of the plan's tiles that went through SR and the windows the network ran on."""

    image: np.ndarray
    mask: MaskFrame | None
    tiles: list[int]
    windows: list[Tile] = field(default_factory=list)


@dataclass
class FrameProcessor:
    """Mask + tile-gated SR + composite for one frame at a time (no I/O)."""

    engine: Engine
    plan: TilePlan
    tracker: MaskTracker
    bg: BgMethod = "bicubic"
    batch: int = 8
    full_frame: bool = False
    mask_lookahead: int = 1
    merge_px: int | None = None  # merge selected tiles into windows of at most this many LR pixels
    retired_passes: int = 0  # estimator passes and cuts of trackers replaced by fresh ones (resume segments)
    retired_cuts: int = 0

    @property
    def mask_chunk(self) -> int:
        """Frames handed to the mask tracker at once: ``mask_lookahead`` anchors' worth (1 when no mask)."""
        return 1 if self.full_frame else self.mask_lookahead * self.tracker.every

    def windows(self, indices: list[int], support: np.ndarray | None = None) -> list[Tile]:
        """The SR windows for the selected tile ``indices``: the tiles themselves, or (``merge_px``)
        merged rectangles shrunk to ``support`` (:func:`mask_support` of the LR mask) when given."""
        if self.merge_px is None:
            return [self.plan.tiles[i] for i in indices]
        regions = merge_tiles(self.plan, indices, max_window_px=self.merge_px)
        return regions if support is None else shrink_to_support(self.plan, regions, support)

    @functools.cached_property
    def full_windows(self) -> list[Tile]:
        """The windows of every tile: the same for each frame in full-frame mode."""
        return self.windows(list(range(len(self.plan))))

    def process(self, image: np.ndarray, timings: dict[str, float], mask: MaskFrame | None = None) -> FrameResult:
        """SR one (H, W, 3) uint8 LR frame; adds seconds per stage to ``timings``.

        A uint16 frame (10-bit or deeper input) stays uint16 through SR, background and blend;
        only the mask estimator sees its 8-bit view.
        ``mask``: this frame's mask when already computed (``tracker.update_many``)."""
        s = self.engine.descriptor.scale
        if self.full_frame:
            t0 = time.perf_counter()
            indices = list(range(len(self.plan)))
            windows = self.full_windows
            tiles = sr_tiles(self.engine, image, windows, batch=self.batch)
            t1 = time.perf_counter()
            out = stitch(tiles, height=image.shape[0], width=image.shape[1], scale=s)
            timings["sr"] += t1 - t0
            timings["composite"] += time.perf_counter() - t1
            return FrameResult(image=out, mask=None, tiles=indices, windows=windows)
        t0 = time.perf_counter()
        mask = mask if mask is not None else self.tracker.update(to_uint8(image))
        support = mask_support(mask.alpha)
        indices = select_tiles(self.plan, support)
        windows = self.windows(indices, support)
        t1 = time.perf_counter()
        tiles = sr_tiles(self.engine, image, windows, batch=self.batch) if windows else []
        t2 = time.perf_counter()
        background = upscale_background(image, scale=s, method=self.bg)
        t3 = time.perf_counter()
        out = blend_tiles(background, tiles, mask.alpha, scale=s) if tiles else background
        t4 = time.perf_counter()
        timings["mask"] += t1 - t0
        timings["sr"] += t2 - t1
        timings["background"] += t3 - t2
        timings["composite"] += t4 - t3
        return FrameResult(image=out, mask=mask, tiles=indices, windows=windows)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """The 8-bit view of a frame: uint8 as is, uint16 rounded to 0..255."""
    return image if image.dtype == np.uint8 else cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)


def build_processor(*, engine: Engine, height: int, width: int, tile: int, merge_px: int | None,
                    estimator: MaskEstimator | None = None, mask_every: int = 2, fg_threshold: float | None = None,
                    feather_px: float = 4.0, mask_carry: str = "hold", mask_lookahead: int = 1,
                    bg: BgMethod = "bicubic", batch: int = 8, full_frame: bool = False) -> FrameProcessor:
    """A processor for (height, width) LR frames: tiles planned for ``engine``'s receptive radius and
    a fresh mask tracker.

    Args:
        engine: the SR engine (its descriptor gives scale and receptive radius).
        height, width: LR frame size.
        tile: tile side (LR pixels).
        merge_px: merge selected tiles into windows of at most this many LR pixels (None: fixed tiles).
        estimator: mask estimator (default: the weight-free focus map).
        mask_every, fg_threshold, feather_px, mask_carry: the tracker's ``every``, ``threshold``,
            ``feather_px`` and ``carry``.
        mask_lookahead: anchor frames scored per estimator call.
        bg, batch, full_frame: background method, windows per engine call, SR of every tile.
    """
    plan = plan_tiles(height, width, tile=tile, pad=engine.descriptor.receptive_radius)
    tracker = MaskTracker(estimator=estimator or FocusEstimator(), every=mask_every, threshold=fg_threshold,
                          feather_px=feather_px, carry=mask_carry)
    return FrameProcessor(engine=engine, plan=plan, tracker=tracker, bg=bg, batch=batch, full_frame=full_frame,
                          mask_lookahead=mask_lookahead, merge_px=merge_px)
