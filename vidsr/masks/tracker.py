"""Stable masks over a frame stream: anchors, temporal smoothing with hysteresis, cuts, carry.

An estimator turns frames into a foreground *score* in [0, 1] at its own working
resolution. ``MaskTracker`` turns the score stream into a stable, feathered alpha
mask at the frame's resolution: it reuses scores between anchor frames
(``every``), smooths them over time (EMA), thresholds with hysteresis, cleans the
binary mask and resets on scene cuts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

import cv2
import numpy as np

from vidsr.masks.base import MaskEstimator, MaskFrame
from vidsr.masks.focus import SOLID, clean_mask, feather, matte_alpha, otsu_threshold


def thumb(image: np.ndarray) -> np.ndarray:
    """Tiny grey thumbnail for cut detection."""
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class _State:
    ema: np.ndarray | None = None
    threshold: float = 0.5
    binary: np.ndarray | None = None
    thumb: np.ndarray | None = None
    last_score: np.ndarray | None = None
    alpha: np.ndarray | None = None  # feathered ``alpha_of`` (reused while the binary mask is held)
    matte: np.ndarray | None = None  # a final soft mask, the alpha itself (estimators with ``final``)
    alpha_of: np.ndarray | None = None
    prev_gray: np.ndarray | None = None
    since_anchor: int = 0
    passes: int = 0
    cuts: int = 0


@dataclass
class MaskTracker:
    """Stable, feathered masks over a frame stream.

    Args:
        estimator: scores frames (run on anchor frames only).
        every: run the estimator every ``every`` frames (and on scene cuts).
        ema: weight of the new score in the exponential moving average (1 = no smoothing).
        threshold: fixed score threshold; ``None`` = Otsu on the smoothed score, itself smoothed.
        hysteresis: a pixel turns on above threshold + h, off below threshold - h.
        min_threshold: Otsu thresholds are raised to at least this. Otsu always splits a frame in
            two; on a frame with nothing in focus (bokeh scores stay under ~0.05) that split is
            noise, and a tracker that starts there (a cut, a resumed segment) would send
            fragments of bokeh through SR. Not applied to a fixed ``threshold``.
        min_area: blobs smaller than this fraction of the frame are dropped.
        close_px: morphology radius at working resolution.
        feather_px: feather radius at working resolution.
        cut_threshold: mean absolute thumbnail difference (0-255) that counts as a cut.
        carry: between anchors, ``hold`` reuses the last mask; ``flow`` warps it (and the
            smoothed score) along dense optical flow (DIS), so it follows motion.
    """

    estimator: MaskEstimator
    every: int = 2
    ema: float = 0.5
    threshold: float | None = None
    hysteresis: float = 0.04
    min_threshold: float = 0.06
    min_area: float = 0.003
    close_px: int = 3
    feather_px: float = 4.0
    cut_threshold: float = 30.0
    carry: Literal["hold", "flow"] = "hold"
    state: _State = field(default_factory=_State, repr=False)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if not 0.0 < self.ema <= 1.0:
            raise ValueError(f"ema must be in (0, 1], got {self.ema}")
        if self.carry not in ("hold", "flow"):
            raise ValueError(f"carry must be hold or flow, got {self.carry!r}")

    @property
    def passes(self) -> int:
        """How many times the estimator ran."""
        return self.state.passes

    @property
    def cuts(self) -> int:
        return self.state.cuts

    def _next(self, t: np.ndarray, prev_thumb: np.ndarray | None, since_anchor: int,
              started: bool) -> tuple[bool, bool, bool]:
        """(cut, reset, anchor) for a frame with thumbnail ``t``, given the stream so far."""
        cut = prev_thumb is not None and float(np.abs(t - prev_thumb).mean()) > self.cut_threshold
        reset = cut or not started
        return cut, reset, reset or since_anchor + 1 >= self.every

    def update_many(self, images: Sequence[np.ndarray]) -> list[MaskFrame]:
        """Masks for the next frames of the stream; when the estimator has ``estimate_batch``,
        the anchor frames among ``images`` are scored in one call."""
        return list(self.iter_many(images))

    def iter_many(self, images: Sequence[np.ndarray]) -> Iterator[MaskFrame]:
        """:meth:`update_many` that yields each mask as soon as it is ready (the anchors are
        scored first, in one call)."""
        batch = getattr(self.estimator, "estimate_batch", None)
        if batch is None or len(images) < 2:
            for im in images:
                yield self.update(im)
            return
        st = self.state
        prev, since, started, anchors, new_shot = st.thumb, st.since_anchor, st.ema is not None, [], []
        for i, im in enumerate(images):
            t = thumb(im)
            _, reset, anchor = self._next(t, prev, since, started)
            prev, since, started = t, 0 if anchor else since + 1, True
            if anchor:
                anchors.append(i)
                new_shot.append(reset)
        scores = batch([images[i] for i in anchors], new_shot=new_shot) if anchors else []
        pre = dict(zip(anchors, scores))
        for i, im in enumerate(images):
            yield self.update(im, score=pre.get(i))

    def update(self, image: np.ndarray, *, score: np.ndarray | None = None) -> MaskFrame:
        """Mask for the next frame of the stream. ``image``: (H, W, 3) uint8 RGB.

        ``score``: the estimator's score for this frame if already computed (``update_many``);
        used only when the frame is an anchor.
        """
        st = self.state
        t = thumb(image)
        cut, reset, anchor = self._next(t, st.thumb, st.since_anchor, st.ema is not None)
        st.thumb = t
        if cut:
            st.cuts += 1
        if self.carry == "flow" and not reset:
            self._carry(image)
        if anchor:
            if score is None:
                batch = getattr(self.estimator, "estimate_batch", None)
                score = batch([image], new_shot=[reset])[0] if batch else self.estimator.estimate(image)
            score = score.astype(np.float32)
            st.passes += 1
            st.since_anchor = 0
            if st.ema is not None and st.ema.shape != score.shape:
                reset = True
            if getattr(self.estimator, "final", False):
                self._take(score)
            else:
                st.ema = score if reset else self.ema * score + (1 - self.ema) * st.ema
                fixed = self.threshold if self.threshold is not None else getattr(self.estimator, "threshold", None)
                thr = fixed if fixed is not None else max(otsu_threshold(st.ema), self.min_threshold)
                st.threshold = thr if reset or fixed is not None else 0.7 * st.threshold + 0.3 * thr
                st.binary = self._binarize(st.ema, None if reset else st.binary)
            st.last_score = score
        else:
            st.since_anchor += 1
        if self.carry == "flow":
            from vidsr.masks.flow import flow_gray

            st.prev_gray = flow_gray(image, st.ema.shape)
        if st.alpha_of is not st.binary or st.alpha.shape != image.shape[:2]:
            st.alpha = (matte_alpha(st.matte, image.shape[:2]) if st.matte is not None else
                        feather(st.binary, radius_px=self.feather_px, size=image.shape[:2]))
            st.alpha.flags.writeable = False  # shared by the frames that hold this mask
            st.alpha_of = st.binary
        return MaskFrame(alpha=st.alpha, binary=st.binary, score=st.ema, anchor=anchor, cut=cut,
                         threshold=None if st.matte is not None else st.threshold)

    def _take(self, score: np.ndarray) -> None:
        """A finished mask (an estimator with ``final``, e.g. a mask file) as it is, with no
        smoothing over time: a soft matte (the estimator's ``soft``) is the alpha itself, its
        foreground the part above :data:`SOLID`; a hard one is thresholded (at the middle unless the
        tracker has a ``threshold``), cleaned and feathered like a computed mask. So a mask written
        by ``vidsr mask`` comes back unchanged."""
        st = self.state
        st.ema = score
        st.matte = score if getattr(self.estimator, "soft", False) else None
        if st.matte is not None:
            st.binary = score > SOLID
        else:
            thr = self.threshold if self.threshold is not None else getattr(self.estimator, "threshold", 0.5)
            st.threshold = thr
            st.binary = clean_mask(score > thr, min_area=self.min_area, close_px=self.close_px)

    def _carry(self, image: np.ndarray) -> None:
        """Warp the smoothed score and the binary mask from the previous frame into this one."""
        from vidsr.masks.flow import backward_flow, flow_gray, warp_back

        st = self.state
        if st.prev_gray is None or st.ema is None or st.prev_gray.shape != st.ema.shape:
            return
        flow = backward_flow(flow_gray(image, st.ema.shape), st.prev_gray)
        st.ema = warp_back(st.ema, flow)
        st.binary = warp_back(st.binary, flow)

    def _binarize(self, ema: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        thr = self.state.threshold
        if prev is None:
            on = ema > thr
        else:
            on = (ema > thr + self.hysteresis) | (prev & (ema > thr - self.hysteresis))
        return clean_mask(on, min_area=self.min_area, close_px=self.close_px)
