"""Foreground masks: a weight-free focus map, temporal smoothing with hysteresis, feathering.

An estimator turns frames into a foreground *score* in [0, 1] at its own working
resolution. ``MaskTracker`` turns the score stream into a stable, feathered alpha
mask at the frame's resolution: it reuses scores between anchor frames
(``every``), smooths them over time (EMA), thresholds with hysteresis, cleans the
binary mask and resets on scene cuts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Protocol, Sequence

import cv2
import numpy as np

from vidsr.checks import check_image


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
    g = gray.astype(np.float32) * (1.0 / 255.0)
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
    return np.clip(fine / (fine + coarse + floor), 0.0, 1.0).astype(np.float32)


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
    u8 = np.clip(score * 255.0 + 0.5, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0


def clean_mask(binary: np.ndarray, *, min_area: float, close_px: int) -> np.ndarray:
    """Close gaps, fill holes, drop blobs smaller than ``min_area`` x frame area."""
    m = binary.astype(np.uint8)
    if close_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * close_px + 1, 2 * close_px + 1))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    for i in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area * m.size) + 1:
        x, y, w, h = stats[i, :4]  # a small blob: clear it inside its own box
        box = m[y:y + h, x:x + w]
        box[labels[y:y + h, x:x + w] == i] = 0
    # fill holes: background that a 4-connected flood from outside the frame does not reach
    outside = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8)
    outside[1:-1, 1:-1] = m
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)
    return outside[1:-1, 1:-1] != 2


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
        # distance of each outside pixel's centre from the nearest mask pixel's centre; the edge is 0.5 px out
        t = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        # exact distances are roots of whole numbers; OpenCV's last bit depends on buffer alignment
        np.multiply(t, t, out=t)
        np.rint(t, out=t)
        np.sqrt(t, out=t)
        t -= 0.5
        t *= -0.5 / r
        t += 1.0
        np.clip(t, 0.0, 1.0, out=t)  # 1 - edge distance / (2 r), clipped
        a = t * t * (3.0 - 2.0 * t)
    else:
        a = m.astype(np.float32)
    if a.shape != size:
        a = cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    a[a < 1e-3] = 0.0
    a[a > 1 - 1e-3] = 1.0
    return a


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


def thumb(image: np.ndarray) -> np.ndarray:
    """Tiny grey thumbnail for cut detection."""
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


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
        return MaskFrame(alpha=st.alpha, binary=st.binary, score=st.ema, anchor=anchor, cut=cut)

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
