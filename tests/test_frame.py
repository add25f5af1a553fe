"""FrameProcessor's window plan on a CPU engine that packs windows into shared calls."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from vidsr.arch import REGISTRY, describe
from vidsr.backends import TorchBackend, create_engine
from vidsr.composite import upscale_background
from vidsr.frame import PACKED_WINDOW_SHARE, build_processor
from vidsr.masks.base import MaskFrame
from vidsr.sr import call_cost_px, sr_whole
from vidsr.tiling import mask_support


def _engine(seed: int = 3):
    torch.manual_seed(seed)
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 3}).eval()
    return create_engine(model, describe(model, name="t"), TorchBackend())


def _irregular_alpha(h: int, w: int) -> np.ndarray:
    """A slanted arm, a blob cut by the top-left corner and specks at the right border, feathered."""
    binary = np.zeros((h, w), np.uint8)
    for k in range(80):
        binary[20 + k, 30 + k:38 + k] = 1
    binary[:9, :11] = 1
    binary[30:33, w - 3:] = 1
    binary[50:52, w - 20:w - 17] = 1
    dist = cv2.distanceTransform(1 - binary, cv2.DIST_L2, 5)
    return np.clip(1 - dist / 4, 0, 1).astype(np.float32)


def test_packed_plan_charges_a_share_of_a_call_and_half_the_context():
    engine = _engine()
    proc = build_processor(engine=engine, height=72, width=96, tile=16, merge_px=4000)
    assert proc.call_px == call_cost_px(engine)
    assert proc.window_px == round(proc.call_px * PACKED_WINDOW_SHARE) < proc.call_px
    assert proc.context == proc.plan.pad / 2  # the compact trims its windows on the CPU
    fixed = build_processor(engine=engine, height=72, width=96, tile=16, merge_px=None)
    assert fixed.windows([0, 1]) == [fixed.plan.tiles[0], fixed.plan.tiles[1]]  # tiles, no planner


def test_packed_plan_covers_the_subject_once_and_equals_whole_frame_sr():
    """The default CPU plan (tight windows, packed into shared calls): every supported pixel in one core,
    cores closer to the subject than with a whole call charged per window, and the composite equal
    to whole-frame SR blended over the plain upscale."""
    engine = _engine()
    h, w = 112, 160
    img = np.random.default_rng(4).integers(0, 256, (h, w, 3), dtype=np.uint8)
    alpha = _irregular_alpha(h, w)
    proc = build_processor(engine=engine, height=h, width=w, tile=16, merge_px=4000)
    mask = MaskFrame(alpha=alpha, binary=alpha >= 1, score=alpha, anchor=True, cut=False)
    res = proc.process(img, {k: 0.0 for k in ("mask", "sr", "background", "composite")}, mask=mask)
    support = mask_support(alpha)
    cover = np.zeros((h, w), np.int32)
    for t in res.windows:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
    assert cover.max() == 1 and cover[support > 0].min() == 1
    wide = dataclasses.replace(proc, window_px=proc.call_px, context=None)  # a whole call per window
    wide_windows = wide.windows([], support)
    assert sum(t.core_pixels for t in res.windows) < 0.95 * sum(t.core_pixels for t in wide_windows)
    a = cv2.resize(alpha, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)[..., None]
    bg = upscale_background(img, scale=2).astype(np.float64)
    expected = bg + a * (sr_whole(engine, img).astype(np.float64) - bg)
    assert np.abs(res.image.astype(np.float64) - expected).max() <= 1.0


def test_a_subject_filling_the_frame_runs_the_full_frame_windows_with_the_same_output():
    """Where packing a mask's windows would cost more pixels and calls than SR of the whole frame
    (a subject over most of the frame, full of holes), the frame's full-frame windows run instead;
    the composite is the same: exact SR blended by the same alpha."""
    engine = _engine()
    h, w = 112, 160
    img = np.random.default_rng(5).integers(0, 256, (h, w, 3), dtype=np.uint8)
    binary = np.ones((h, w), np.uint8)
    binary[::8, :] = binary[:, ::8] = 0  # a grid of thin holes
    alpha = np.clip(1 - cv2.distanceTransform(1 - binary, cv2.DIST_L2, 5) / 3, 0, 1).astype(np.float32)
    proc = build_processor(engine=engine, height=h, width=w, tile=16, merge_px=20_000)
    assert len(proc.full_windows) == 1  # the whole frame in one call
    mask = MaskFrame(alpha=alpha, binary=alpha >= 1, score=alpha, anchor=True, cut=False)
    timings = {k: 0.0 for k in ("mask", "sr", "background", "composite")}
    res = proc.process(img, timings, mask=mask)
    assert sorted(map(dataclasses.astuple, res.windows)) == sorted(map(dataclasses.astuple, proc.full_windows))
    a = cv2.resize(alpha, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)[..., None]
    bg = upscale_background(img, scale=2).astype(np.float64)
    expected = bg + a * (sr_whole(engine, img).astype(np.float64) - bg)
    assert np.abs(res.image.astype(np.float64) - expected).max() <= 1.0
    planned = proc.windows(list(range(len(proc.plan))), mask_support(alpha))
    packed = dataclasses.replace(proc)
    packed.__dict__["full_windows"] = planned  # the planned windows themselves as the alternative
    same = packed.process(img, timings, mask=mask)
    assert (same.image == res.image).all()


def test_a_frame_holding_the_last_mask_reuses_its_plan(monkeypatch):
    """Frames that hold a mask share its read-only alpha: the next one skips planning and gets the same
    windows and the composite the plan gives it; a new or writeable alpha is planned afresh."""
    import vidsr.frame as frame

    engine = _engine()
    h, w = 112, 160
    rng = np.random.default_rng(6)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3)]
    alpha = _irregular_alpha(h, w)
    alpha.flags.writeable = False
    held = MaskFrame(alpha=alpha, binary=alpha >= 1, score=alpha, anchor=False, cut=False)
    proc = build_processor(engine=engine, height=h, width=w, tile=16, merge_px=4000)
    planned = []
    real = frame.plan_windows
    monkeypatch.setattr(frame, "plan_windows", lambda *a, **k: planned.append(1) or real(*a, **k))
    timings = {k: 0.0 for k in ("mask", "sr", "background", "composite")}
    first = proc.process(imgs[0], timings, mask=dataclasses.replace(held, anchor=True))
    second = proc.process(imgs[1], timings, mask=held)
    assert len(planned) == 1 and second.windows == first.windows and second.tiles == first.tiles
    fresh = build_processor(engine=engine, height=h, width=w, tile=16, merge_px=4000)
    assert (fresh.process(imgs[1], timings, mask=held).image == second.image).all()
    writeable = alpha.copy()
    proc.process(imgs[2], timings, mask=dataclasses.replace(held, alpha=writeable))
    proc.process(imgs[2], timings, mask=dataclasses.replace(held, alpha=writeable))
    assert len(planned) == 4  # the fresh processor's plan, and two of a writeable alpha
