"""Depth -> mask: focal-plane choice, soft band, rack focus, anchor cache, flow carry, stability."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from media import mask_flip_rate
from vidsr.masks.depth import depth_input_size
from vidsr.errors import InputError
from vidsr.masks.focal import (DepthMaskEstimator, FocalOptions, band_score, focal_at_point, focal_from_focus,
                         nearest_focal, normalize_depth, parse_focus_point)
from vidsr.masks.tracker import MaskTracker
from vidsr.media.sample import sample_photo

H, W = 180, 320


def _texture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w, 3), np.float32)
    for k in (1, 2, 4, 8):
        n = rng.normal(0, 1, (h // k + 1, w // k + 1, 3)).astype(np.float32)
        acc += cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR) * 22
    return np.clip(acc + 128, 0, 255).astype(np.uint8)


def _ellipse(cx: float, cy: float, rx: float, ry: float, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1


def scene(*, cx: float = W * 0.45, subject_sharp: bool = True, seed: int = 0):
    """A near subject (ellipse) over a far background whose inverse depth is a rendered ramp
    (a ground plane: nearer towards the bottom). Returns image, inverse depth, subject mask."""
    subject = _ellipse(cx, H * 0.5, W * 0.17, H * 0.33)
    yy = np.mgrid[:H, :W][0] / (H - 1)
    disparity = (0.10 + 0.30 * yy).astype(np.float32)  # background ramp 0.10 .. 0.40
    disparity[subject] = 0.90 + 0.03 * yy[subject]  # subject: near, almost flat
    fg, bg = np.roll(_texture(seed + 1), int(round(cx - W * 0.45)), axis=1), _texture(seed + 2)  # fg moves with it
    if subject_sharp:
        bg = cv2.GaussianBlur(bg, (0, 0), 4.0)
    else:
        fg = cv2.GaussianBlur(fg, (0, 0), 4.0)
    image = np.where(subject[..., None], fg, bg).astype(np.uint8)
    return image, disparity, subject


@dataclass
class RenderedDepth:
    """A DepthNet stand-in that returns known inverse-depth maps (one per run call or fixed),
    optionally with noise; counts calls and frames."""

    maps: list[np.ndarray]
    batch: int = 4
    noise: float = 0.0
    name: str = "rendered"
    calls: int = 0
    frames: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return depth_input_size(height, width, long_side=224)

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = []
        for _ in range(batch.shape[0]):
            d = self.maps[min(self.frames, len(self.maps) - 1)]
            d = cv2.resize(d, (batch.shape[3], batch.shape[2]), interpolation=cv2.INTER_LINEAR)
            if self.noise:
                d = d + self.rng.normal(0, self.noise, d.shape).astype(np.float32)
            out.append(d)
            self.frames += 1
        return np.stack(out).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        b = cv2.resize(b.astype(np.uint8), a.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("focal", [FocalOptions(mode="focus"), FocalOptions(mode="nearest"),
                                   FocalOptions(mode="point", point=(0.45, 0.5))])
def test_depth_band_gives_the_near_subject(focal):
    image, disparity, subject = scene()
    est = DepthMaskEstimator(net=RenderedDepth([disparity]), focal=focal)
    mask = MaskTracker(estimator=est).update(image)
    assert _iou(mask.binary, subject) >= 0.9
    assert mask.alpha.shape == (H, W) and mask.alpha.dtype == np.float32


def test_focus_picks_the_sharp_plane_not_the_nearest():
    """The background is in focus and the near subject is blurred: depth+focus follows the focus."""
    image, disparity, subject = scene(subject_sharp=False)
    dn = normalize_depth(disparity)
    from vidsr.masks.focus import focus_score

    focus = focus_score(image, max_side=W)
    f = focal_from_focus(dn, focus, tolerance=0.15)
    assert f < 0.6  # background band
    assert nearest_focal(dn, tolerance=0.15) > 0.85
    m = MaskTracker(estimator=DepthMaskEstimator(net=RenderedDepth([disparity]))).update(image).binary
    assert (m & subject).sum() < 0.02 * m.sum()  # the mask lies in the background ...
    assert m.sum() > 0.3 * (~subject).sum()  # ... and covers the band of it around the focal depth


def test_band_score_is_soft_and_half_at_the_edge():
    d = np.linspace(0, 1, 101, dtype=np.float32)[None]
    s = band_score(d, 0.5, tolerance=0.2)
    assert s.dtype == np.float32
    assert s[0, 50] > 0.95 and s[0, 0] < 0.05 and s[0, 100] < 0.05
    assert abs(s[0, 30] - 0.5) < 1e-3 and abs(s[0, 70] - 0.5) < 1e-3
    wide = band_score(d, 0.5, tolerance=0.4)
    assert wide[0, 20] > s[0, 20]  # --depth-tolerance widens the band


def test_focal_at_point_and_parse():
    dn = np.zeros((10, 20), np.float32)
    dn[:, 10:] = 0.8
    assert focal_at_point(dn, (0.9, 0.5)) == pytest.approx(0.8)
    assert parse_focus_point("0.25,0.5") == (0.25, 0.5)
    assert parse_focus_point("960, 540", width=1921, height=1081) == (0.5, 0.5)
    with pytest.raises(InputError, match="must look like"):
        parse_focus_point("middle")
    with pytest.raises(InputError, match="outside"):
        parse_focus_point("3000,10", width=1920, height=1080)
    with pytest.raises(InputError, match="depth-tolerance"):
        FocalOptions(tolerance=0)


def test_rack_focus_is_tracked_smoothly():
    """Focus racks from the near subject to the background: the focal depth follows in steps."""
    near, disparity, _ = scene(subject_sharp=True)
    far, _, _ = scene(subject_sharp=False)
    est = DepthMaskEstimator(net=RenderedDepth([disparity]), focal=FocalOptions(mode="focus", smoothing=0.5))
    tracker = MaskTracker(estimator=est, every=1, cut_threshold=255)  # a focus pull is not a cut
    for img in [near] * 3 + [far] * 8:
        tracker.update(img)
    h = np.array(est.track.history)
    assert h[:3] == pytest.approx([h[0]] * 3) and h[0] > 0.85
    steps = np.diff(h[2:])
    assert np.all(steps <= 1e-6)  # moves one way, towards the far plane
    assert np.all(np.abs(steps) <= est.focal.max_step + 1e-6)  # never jumps
    assert abs(steps[0]) < h[0] - h[-1]  # took several anchors
    assert h[-1] < 0.6


@pytest.mark.parametrize("every", [1, 3, 4])
def test_depth_runs_once_per_anchor_and_on_cuts_batched(every):
    image, disparity, _ = scene()
    other = cv2.resize(sample_photo(), (W, H), interpolation=cv2.INTER_AREA)
    frames = [image] * 10 + [other] * 5  # hard cut at frame 10
    net = RenderedDepth([disparity], batch=2)
    tracker = MaskTracker(estimator=DepthMaskEstimator(net=net), every=every)
    masks = []
    for i in range(0, len(frames), 2 * every):  # the pipeline's lookahead: depth_batch x every frames
        masks += tracker.update_many(frames[i:i + 2 * every])
    expected = math.ceil(10 / every) + math.ceil(5 / every)  # the cut restarts the anchor count
    assert tracker.cuts == 1
    assert net.frames == tracker.passes == expected == sum(m.anchor for m in masks)
    assert net.calls < expected  # anchors were batched (up to 2 per call)


def test_update_many_equals_update_one_by_one():
    image, disparity, _ = scene()
    frames = [np.roll(image, 2 * i, axis=1) for i in range(9)]
    a = MaskTracker(estimator=DepthMaskEstimator(net=RenderedDepth([disparity])), every=2)
    b = MaskTracker(estimator=DepthMaskEstimator(net=RenderedDepth([disparity])), every=2)
    one = [a.update(f) for f in frames]
    many = b.update_many(frames[:5]) + b.update_many(frames[5:])
    for x, y in zip(one, many):
        assert x.anchor == y.anchor
        np.testing.assert_array_equal(x.alpha, y.alpha)


def test_smoothing_reduces_mask_change_on_a_static_shot():
    image, disparity, _ = scene()
    # a subject whose depth sits near the band edge, and a noisy depth net
    rng = np.random.default_rng(0)
    frames = [np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8) for _ in range(16)]

    def tracker(**kw) -> MaskTracker:
        net = RenderedDepth([disparity], noise=0.08)
        est = DepthMaskEstimator(net=net, focal=FocalOptions(mode="point", point=(0.45, 0.5), tolerance=0.1))
        return MaskTracker(estimator=est, **kw)

    raw = mask_flip_rate(tracker(every=1, ema=1.0, hysteresis=0.0), frames)
    smooth = mask_flip_rate(tracker(every=1), frames)
    cached = mask_flip_rate(tracker(every=8, carry="flow"), frames)
    assert raw > 0
    assert smooth < 0.7 * raw
    assert cached < 0.5 * raw


def test_flow_carry_follows_a_moving_subject_between_anchors():
    frames, truths, maps = [], [], []
    for i in range(8):
        img, disp, subj = scene(cx=W * 0.3 + 6 * i)
        frames.append(img)
        truths.append(subj)
        maps.append(disp)

    def run(carry: str) -> list[float]:
        est = DepthMaskEstimator(net=RenderedDepth(maps), focal=FocalOptions(mode="nearest"))
        tr = MaskTracker(estimator=est, every=8, carry=carry)
        return [_iou(tr.update(f).binary, t) for f, t in zip(frames, truths)]

    hold, flow = run("hold"), run("flow")
    assert hold[0] >= 0.9 and flow[0] >= 0.9
    assert flow[-1] > 0.8 and hold[-1] < 0.5  # 7 frames after the anchor (6 px per frame)
    assert np.mean(flow[1:]) > np.mean(hold[1:])


def test_real_network_through_the_tracker():
    """Plumbing with Depth Anything (tiny random weights): shapes, passes, batching."""
    pytest.importorskip("transformers")
    from vidsr.masks.depth import TorchDepth, build_depth_anything

    from test_depth import TINY

    net = TorchDepth(model=build_depth_anything(TINY), long_side=98, batch=3)
    image, _, _ = scene()
    tracker = MaskTracker(estimator=DepthMaskEstimator(net=net), every=2)
    masks = tracker.update_many([image] * 6)
    assert tracker.passes == 3 and [m.anchor for m in masks] == [True, False] * 3
    assert all(m.alpha.shape == (H, W) and m.alpha.dtype == np.float32 for m in masks)
    assert 0.0 <= masks[-1].alpha.min() and masks[-1].alpha.max() <= 1.0
