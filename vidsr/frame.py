"""One frame through partial SR: mask, tile-gated SR, composite (no I/O), and its assembly."""

from __future__ import annotations

import dataclasses
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
from vidsr.sr import call_cost_px, packs, sr_tiles, stitch
from vidsr.tiling import (CALL_PX, Tile, TilePlan, mask_support, merge_tiles, plan_tiles, plan_windows,
                           select_tiles)


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the (H*s, W*s, 3) uint8 output, its mask (None in full-frame mode),
    the indices of the plan's tiles that went through SR and the windows the network ran on;
    ``dropped``: tiles the mask selected that a ``max_tiles`` limit left to the plain upscale."""

    image: np.ndarray
    mask: MaskFrame | None
    tiles: list[int]
    windows: list[Tile] = field(default_factory=list)
    dropped: int = 0


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
    call_px: int = CALL_PX  # one more engine call, in window pixels (build_processor: vidsr.sr.call_cost_px)
    window_px: int = CALL_PX  # what the planner charges per window
    context: float | None = None  # context per side the planner charges (None: the receptive radius)
    retired_passes: int = 0  # estimator passes and cuts of trackers replaced by fresh ones (resume segments)
    retired_cuts: int = 0
    # (alpha, tile indices, windows) of the last mask planned: the frames that hold a mask share its alpha
    _held_plan: tuple[np.ndarray, list[int], list[Tile]] | None = field(default=None, init=False, repr=False)

    @property
    def mask_chunk(self) -> int:
        """Frames handed to the mask tracker at once: ``mask_lookahead`` anchors' worth (1 when no mask)."""
        return 1 if self.full_frame else self.mask_lookahead * self.tracker.every

    def windows(self, indices: list[int], support: np.ndarray | None = None) -> list[Tile]:
        """The SR windows for the selected tile ``indices``: the tiles themselves, or (``merge_px``)
        windows planned around ``support`` (:func:`mask_support` of the LR mask) when given
        (:func:`plan_windows`), else the merged tiles.

        The planner charges :attr:`window_px` per window and :attr:`context` per side (see
        :func:`build_processor`)."""
        if self.merge_px is None:
            return [self.plan.tiles[i] for i in indices]
        if support is not None:
            return plan_windows(support, pad=self.plan.pad, max_window_px=self.merge_px, call_px=self.window_px,
                                context=self.context)
        return merge_tiles(self.plan, indices, max_window_px=self.merge_px)

    @functools.cached_property
    def full_windows(self) -> list[Tile]:
        """The windows of every tile: the same for each frame in full-frame mode."""
        return self.windows(list(range(len(self.plan))))

    def process(self, image: np.ndarray, timings: dict[str, float], mask: MaskFrame | None = None, *,
                max_tiles: int | None = None) -> FrameResult:
        """SR one (H, W, 3) uint8 LR frame; adds seconds per stage to ``timings``.

        A uint16 frame (10-bit or deeper input) stays uint16 through SR, background and blend;
        only the mask estimator sees its 8-bit view.
        ``mask``: this frame's mask when already computed (``tracker.update_many``).
        ``max_tiles``: SR at most this many of the selected tiles, the most in focus by the mask's
        score (:func:`most_in_focus`); the others get the plain upscale, the blend fading out inside
        the kept tiles (live mode's deadline control). Ignored in full-frame mode."""
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
        held = self._held_plan
        if held is not None and held[0] is mask.alpha and max_tiles is None:
            indices, windows, dropped = held[1], held[2], 0
        else:
            indices, windows, dropped, mask = self._plan(mask, max_tiles)
        t1 = time.perf_counter()
        tiles = sr_tiles(self.engine, image, windows, batch=self.batch, pack_px=self.merge_px,
                         call_px=self.call_px, whole=self.full_windows) if windows else []
        windows = [t for t, _ in tiles]  # the full-frame windows where those cost less (sr_tiles)
        t2 = time.perf_counter()
        background = upscale_background(image, scale=s, method=self.bg)
        t3 = time.perf_counter()
        out = blend_tiles(background, tiles, mask.alpha, scale=s) if tiles else background
        t4 = time.perf_counter()
        timings["mask"] += t1 - t0
        timings["sr"] += t2 - t1
        timings["background"] += t3 - t2
        timings["composite"] += t4 - t3
        return FrameResult(image=out, mask=mask, tiles=indices, windows=windows, dropped=dropped)

    def _plan(self, mask: MaskFrame, max_tiles: int | None) -> tuple[list[int], list[Tile], int, MaskFrame]:
        """The selected tile indices, SR windows and tiles dropped by ``max_tiles`` for ``mask`` (and the
        mask, faded inside the kept tiles when some were dropped); remembered for the next frame that
        holds the same mask (its alpha is the same read-only array), which then skips planning."""
        support = mask_support(mask.alpha)
        indices = select_tiles(self.plan, support)
        dropped = 0
        if max_tiles is not None and len(indices) > max_tiles:
            if max_tiles <= 0:  # nothing kept: no ranking, no fade; the plain upscale is the output
                kept, alpha = [], np.zeros_like(mask.alpha)
            else:
                kept = most_in_focus(self.plan, indices, mask.score, max_tiles)
                alpha = alpha_within(self.plan, kept, mask.alpha)
            dropped, indices = len(indices) - len(kept), kept
            mask = dataclasses.replace(mask, alpha=alpha)
            support = mask_support(mask.alpha)
        windows = self.windows(indices, support) if indices else []
        if not dropped and not mask.alpha.flags.writeable:
            self._held_plan = (mask.alpha, indices, windows)
        return indices, windows, dropped, mask


LIMIT_FADE_PX = 4
"""Width (LR px) of the fade from SR to the plain upscale inside the edge of tiles kept by a limit."""


def most_in_focus(plan: TilePlan, indices: list[int], score: np.ndarray, keep: int) -> list[int]:
    """The ``keep`` tiles of ``indices`` whose cores have the highest mean ``score`` (the mask's
    (h, w) foreground score at its working size), in plan order; ties go to the lower index."""
    if keep >= len(indices):
        return list(indices)
    lr = cv2.resize(score.astype(np.float32), (plan.width, plan.height), interpolation=cv2.INTER_AREA)
    integral = cv2.integral(lr, sdepth=cv2.CV_64F)

    def mean(i: int) -> float:
        t = plan.tiles[i]
        total = integral[t.y1, t.x1] - integral[t.y0, t.x1] - integral[t.y1, t.x0] + integral[t.y0, t.x0]
        return total / max(1, t.core_pixels)

    return sorted(sorted(indices, key=lambda i: (-mean(i), i))[:keep])


def alpha_within(plan: TilePlan, kept: list[int], alpha: np.ndarray) -> np.ndarray:
    """``alpha`` (H, W) faded to 0 over :data:`LIMIT_FADE_PX` inside the edge of the union of the
    ``kept`` tiles' cores (frame borders stay), so its bilinear upscale is 0 outside them and the SR
    region ends without a seam where a neighbouring selected tile was left out."""
    keep = np.zeros(alpha.shape, np.float32)
    for i in kept:
        t = plan.tiles[i]
        keep[t.y0:t.y1, t.x0:t.x1] = 1.0
    r = LIMIT_FADE_PX
    keep = cv2.erode(keep, np.ones((2 * r + 3, 2 * r + 3), np.uint8))  # r + 1 px in: past bilinear's reach
    return alpha * cv2.blur(keep, (2 * r + 1, 2 * r + 1))


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
    call_px, window_px, context = CALL_PX, CALL_PX, None
    if packs(engine):
        # windows share calls (vidsr.sr.pack_windows): one more window costs its context and a share
        # of a call, and a trimming network computes about half the context at a canvas's ends
        call_px = call_cost_px(engine)
        window_px = round(call_px * PACKED_WINDOW_SHARE)
        context = plan.pad / 2 if engine.trims else None
    return FrameProcessor(engine=engine, plan=plan, tracker=tracker, bg=bg, batch=batch, full_frame=full_frame,
                          mask_lookahead=mask_lookahead, merge_px=merge_px, call_px=call_px, window_px=window_px,
                          context=context)


PACKED_WINDOW_SHARE = 1 / 16
"""What the planner charges for one more window when windows are packed into shared calls, as a share
of the network's call cost (:func:`vidsr.sr.call_cost_px`), with half the context. Against a whole call
and all the context per window (quiet 2-core Xeon, 16 frames, one thread, compact-x2-lite,
benchmarks/partial_sr.py): SR pixels over the subject 1.42 -> 1.27 (dragonfly pan 640x272), 1.36 ->
1.20 (vtest 640x272), 1.14 -> 1.11 (sample 960x540) for an SR stage 11 % slower on the dragonfly's
small subject (more, smaller calls) and within 2 % on the other two. (A quarter of the call cost
measured then, which :data:`vidsr.sr.CONV_CALL_MACS` has since put at four times that.)"""
