from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from media import mask_flip_rate
from vidsr.masks.base import MaskFrame
from vidsr.masks.focus import ConstantEstimator, FocusEstimator, clean_mask, feather, focus_score, near_d2
from vidsr.masks.tracker import MaskTracker
from vidsr.media.sample import SampleSpec, sample_frames, sample_photo


def _texture(h: int = 360, w: int = 640) -> np.ndarray:
    """Detail at every scale everywhere (sum of upsampled noise octaves)."""
    rng = np.random.default_rng(3)
    acc = np.zeros((h, w, 3), np.float32)
    for k in (1, 2, 4, 8, 16):
        n = rng.normal(0, 1, (h // k + 1, w // k + 1, 3)).astype(np.float32)
        acc += cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR) * 20
    return np.clip(acc + 128, 0, 255).astype(np.uint8)


def _half_blurred(sigma: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A texture whose right half is defocused; returns it and the sharp-half mask."""
    crop = _texture()
    blurred = cv2.GaussianBlur(crop, (0, 0), sigma)
    img = crop.copy()
    img[:, 320:] = blurred[:, 320:]
    truth = np.zeros(img.shape[:2], bool)
    truth[:, :320] = True
    return img, truth


def test_focus_score_separates_sharp_from_defocused():
    img, truth = _half_blurred()
    score = focus_score(img, max_side=320)
    t = cv2.resize(truth.astype(np.uint8), score.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    margin = score.shape[1] // 8  # ignore the band around the boundary
    sharp = score[:, : score.shape[1] // 2 - margin]
    soft = score[:, score.shape[1] // 2 + margin:]
    assert sharp.mean() > 2 * soft.mean()
    assert np.median(sharp) > np.percentile(soft, 95)
    assert score.dtype == np.float32 and 0 <= score.min() and score.max() <= 1
    # thresholded (Otsu, as the mask is), the score finds the sharp half pixel by pixel: measured 99.7 %
    # agreement away from the boundary band
    level = cv2.threshold((score * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0] / 255
    away = np.ones_like(t)
    away[:, score.shape[1] // 2 - margin: score.shape[1] // 2 + margin] = False
    assert ((score > level) == t)[away].mean() > 0.97


def test_focus_score_on_a_real_shallow_dof_photo():
    photo = cv2.resize(sample_photo(), (1152, 648), interpolation=cv2.INTER_AREA)
    score = focus_score(photo)  # working size 480 x 270
    f = score.shape[1] / 1152
    head = score[int(100 * f):int(330 * f), int(190 * f):int(480 * f)]  # in-focus dandelion head
    bokeh = score[int(150 * f):int(350 * f), int(700 * f):int(1100 * f)]  # defocused meadow
    assert head.mean() > 3 * bokeh.mean()


def test_focus_score_blurs_at_half_size_without_moving_the_score():
    # the wide window blur runs at half size at working sizes from 267 px on; against the
    # whole-size blur of the definition the score moves by at most 0.03
    photo = cv2.resize(sample_photo(), (960, 540), interpolation=cv2.INTER_AREA)
    g = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), (480, 270), interpolation=cv2.INTER_AREA)
    g = g.astype(np.float32) / 255.0

    def energy(sigma: float) -> np.ndarray:
        lap = cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), sigma), cv2.CV_32F, ksize=3) * sigma * sigma
        return cv2.GaussianBlur(lap * lap, (0, 0), 0.015 * 480)

    fine, coarse = energy(0.6), energy(2.5)
    exact = np.clip(fine / (fine + coarse + 1e-3), 0, 1)
    d = np.abs(focus_score(photo) - exact)
    assert d.max() < 0.03 and d.mean() < 0.002
    assert ((focus_score(photo) > 0.2) != (exact > 0.2)).mean() < 0.005


def test_all_bokeh_frame_scores_low():
    img, _ = _half_blurred()
    soft = cv2.GaussianBlur(img, (0, 0), 4.0)
    assert focus_score(soft).mean() < 0.5 * focus_score(img).mean()


def test_tracker_finds_the_sharp_half():
    img, truth = _half_blurred()
    mask = MaskTracker(estimator=FocusEstimator()).update(img)
    inter = (mask.binary & cv2.resize(truth.astype(np.uint8), mask.binary.shape[::-1]).astype(bool)).sum()
    union = (mask.binary | cv2.resize(truth.astype(np.uint8), mask.binary.shape[::-1]).astype(bool)).sum()
    assert inter / union > 0.8
    assert mask.alpha.shape == img.shape[:2]


def test_temporal_smoothing_reduces_flicker_on_noisy_static_scene():
    img, _ = _half_blurred(sigma=1.2)  # weak defocus: the score sits near the threshold
    rng = np.random.default_rng(0)
    frames = [np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8) for _ in range(16)]
    raw = mask_flip_rate(MaskTracker(estimator=FocusEstimator(), every=1, ema=1.0, hysteresis=0.0), frames)
    smooth = mask_flip_rate(MaskTracker(estimator=FocusEstimator(), every=1), frames)
    assert raw > 0
    assert smooth < 0.5 * raw


@pytest.mark.parametrize("every", [1, 3, 4])
def test_mask_every_runs_estimator_once_per_anchor_and_on_cuts(every):
    img, _ = _half_blurred()
    other = cv2.resize(sample_photo(), img.shape[1::-1], interpolation=cv2.INTER_AREA)
    frames = [img] * 10 + [other] * 5  # hard cut at frame 10
    tracker = MaskTracker(estimator=FocusEstimator(), every=every)
    anchors = [tracker.update(f).anchor for f in frames]
    assert tracker.cuts == 1
    expected = math.ceil(10 / every) + math.ceil(5 / every)  # the cut restarts the anchor count
    assert tracker.passes == expected == sum(anchors)


def test_feather_is_soft_and_exact_at_the_extremes():
    b = np.zeros((60, 80), bool)
    b[20:40, 30:50] = True
    a = feather(b, radius_px=4, size=(120, 160))
    assert a.shape == (120, 160) and a.dtype == np.float32
    assert a[60, 80] == 1.0 and a[0, 0] == 0.0
    ramp = a[60, 100:130]
    assert np.all(np.diff(ramp) <= 1e-6) and 0 < ramp.mean() < 1  # monotone soft edge
    assert (feather(np.ones_like(b), radius_px=4, size=(120, 160)) == 1).all()
    assert (feather(np.zeros_like(b), radius_px=4, size=(120, 160)) == 0).all()


def test_feather_ramp_is_compact_and_centred_on_the_radius():
    b = np.zeros((60, 120), bool)
    b[:, :40] = True  # straight edge: the last mask column is 39, its edge at x = 39.5
    a = feather(b, radius_px=4, size=b.shape)
    row = a[30]
    assert (row[:40] == 1).all()
    assert abs(row[43] - 0.5) < 0.1  # 3.5 px past the edge: half way
    assert 0 < row[47] < 0.02 and (row[48:] == 0).all()  # exactly 0 from 2 * radius on
    assert np.all(np.diff(row) <= 0)


def test_feather_does_not_depend_on_buffer_alignment():
    b = np.zeros((90, 160), bool)
    cv2.circle(b.view(np.uint8), (80, 45), 25, 1, -1)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # OpenCV's serial distance transform varies in the last bit with alignment
    try:
        ref = feather(b, radius_px=4, size=(180, 320))
        for offset in range(1, 8):
            buf = np.zeros(b.size + 8, bool)[offset:offset + b.size].reshape(b.shape)
            buf[:] = b
            np.testing.assert_array_equal(feather(buf, radius_px=4, size=(180, 320)), ref)
    finally:
        cv2.setNumThreads(threads)


def _plain_feather(binary: np.ndarray, radius_px: float, size: tuple[int, int]) -> np.ndarray:
    """feather computed over the whole frame, step by step (what the box and the table must equal)."""
    m = binary.astype(np.uint8)
    if radius_px > 0 and m.any() and not m.all():
        t = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        t = np.sqrt(np.rint(t * t)) - np.float32(0.5)
        t = np.clip(t * np.float32(-0.5 / radius_px) + np.float32(1), 0, 1).astype(np.float32)
        a = t * t * (np.float32(3) - np.float32(2) * t)
    else:
        a = m.astype(np.float32)
    a = cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) if a.shape != size else a
    a[a < 1e-3] = 0.0
    a[a > 1 - 1e-3] = 1.0
    return a


@pytest.mark.parametrize("reach", [1, 3, 8, 15])
def test_near_d2_is_the_exact_squared_distance_within_reach(reach):
    """near_d2 equals OpenCV's exact transform squared wherever the nearest mask pixel is within
    ``reach`` along both axes, and is never below the true distance (thin boxes included)."""
    rng = np.random.default_rng(reach)
    for shape, density in [((60, 90), 0.002), ((40, 70), 0.05), ((3, 50), 0.03), ((45, 2), 0.1), ((1, 1), 1.0)]:
        m = (rng.random(shape) < density).astype(np.uint8)
        m.flat[rng.integers(m.size)] = 1
        t = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        exact = np.rint(t.astype(np.float64) ** 2)
        got = near_d2(m, reach)
        assert got.dtype == np.uint8 and got.shape == shape
        within = exact <= reach * reach
        np.testing.assert_array_equal(got[within], exact[within])
        assert np.all(got >= np.minimum(exact, 255))
        assert np.all(got[m == 1] == 0)


@pytest.mark.parametrize("radius", [1.0, 2.5, 4.0, 10.0])  # 10: beyond the ramp table
def test_feather_of_a_small_mask_equals_the_whole_frame_computation(radius):
    """feather works on the mask's box and looks the ramp up in a table: no bit may change (~30 ms)."""
    rng = np.random.default_rng(int(radius * 10))
    for (y0, x0, y1, x1), size in itertools.product(
            [(30, 40, 50, 70), (0, 0, 12, 9), (55, 100, 60, 120), (0, 20, 60, 30)], [(60, 120), (120, 240), (80, 160)]):
        b = np.zeros((60, 120), bool)
        b[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7
        got = feather(b, radius_px=radius, size=size)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, _plain_feather(b, radius, size))


def test_fg_fraction_is_the_binary_mean():
    b = np.random.default_rng(0).random((37, 53)) < 0.3
    m = MaskFrame(alpha=b.astype(np.float32), binary=b, score=b.astype(np.float32), anchor=True, cut=False)
    assert m.fg_fraction == float(b.mean()) and isinstance(m.fg_fraction, float)


def test_held_mask_shares_one_read_only_alpha():
    img = cv2.resize(sample_photo(), (320, 180), interpolation=cv2.INTER_AREA)
    tracker = MaskTracker(estimator=FocusEstimator(), every=3)
    masks = [tracker.update(img) for _ in range(4)]
    assert [m.anchor for m in masks] == [True, False, False, True]
    assert masks[1].alpha is masks[0].alpha and masks[2].alpha is masks[0].alpha
    assert masks[3].alpha is not masks[0].alpha
    assert not masks[0].alpha.flags.writeable


def test_clean_mask_fills_holes_and_drops_specks():
    b = np.zeros((100, 100), bool)
    b[20:80, 20:80] = True
    b[45:55, 45:55] = False  # hole
    b[5, 5] = True  # speck
    m = clean_mask(b, min_area=0.01, close_px=1)
    assert m[50, 50] and not m[5, 5]


def test_clean_mask_hole_rules():
    # holes are background that cannot reach the frame's edge in 4-connected steps; blobs are
    # 8-connected and kept from exactly min_area on
    b = np.zeros((40, 40), bool)
    b[5:20, 5:20] = True
    b[10:13, 10:20] = False  # a bay open to the right: not a hole
    b[25:35, 25:35] = True
    b[28:31, 28:31] = False  # an enclosed hole
    b[25, 34] = False  # a corner notch, 4-connected to the outside
    b[0:2, 36:38] = True  # a 4-px blob in the corner: 4 / 1600 of the frame
    m = clean_mask(b, min_area=4 / 1600, close_px=0)
    assert not m[11, 15] and m[29, 29] and not m[25, 34] and m[0:2, 36:38].all()
    assert not clean_mask(b, min_area=5 / 1600, close_px=0)[0:2, 36:38].any()
    assert clean_mask(np.ones((8, 8), bool), min_area=0.5, close_px=1).all()
    assert not clean_mask(np.zeros((8, 8), bool), min_area=0.0, close_px=1).any()


def test_constant_estimators_give_empty_and_full_masks():
    img, _ = _half_blurred()
    assert MaskTracker(estimator=ConstantEstimator(0.0), threshold=0.5).update(img).alpha.max() == 0
    assert MaskTracker(estimator=ConstantEstimator(1.0), threshold=0.5).update(img).alpha.min() == 1


def test_sensor_noise_in_the_bokeh_does_not_read_as_focus():
    photo = cv2.resize(sample_photo(), (960, 540), interpolation=cv2.INTER_AREA)
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 4, photo.shape), 0, 255).astype(np.uint8)
    clean_fg = MaskTracker(estimator=FocusEstimator()).update(photo).fg_fraction
    noisy_fg = MaskTracker(estimator=FocusEstimator()).update(noisy).fg_fraction
    assert 0.05 < clean_fg < 0.5
    assert abs(noisy_fg - clean_fg) < 0.03


def test_a_frame_with_nothing_in_focus_has_no_foreground():
    # the sample pan's last frames show only the photo's bokeh. Otsu still splits such a frame in
    # two, into fragments a fresh tracker (a cut, a resumed segment) would send through SR; the
    # threshold floor keeps its mask empty
    spec = SampleSpec(width=320, height=180, seconds=12)
    bokeh = next(itertools.islice(sample_frames(spec), 300, None))
    assert MaskTracker(estimator=FocusEstimator(), min_threshold=0.0).update(bokeh).binary.mean() > 0.2
    assert MaskTracker(estimator=FocusEstimator()).update(bokeh).binary.mean() == 0
    subject = next(iter(sample_frames(spec)))  # the subject is in view: the floor changes nothing
    a = MaskTracker(estimator=FocusEstimator(), min_threshold=0.0).update(subject).binary
    b = MaskTracker(estimator=FocusEstimator()).update(subject).binary
    assert 0.1 < b.mean() < 0.6 and np.array_equal(a, b)


def _file_tracker(path, **kw) -> MaskTracker:
    from vidsr.masks.file import FileMaskEstimator

    return MaskTracker(estimator=FileMaskEstimator(path=path), every=1, **kw)


def test_a_mask_written_by_vidsr_mask_comes_back_unchanged(tmp_path):
    """``vidsr mask`` writes the feathered alpha; fed back as ``--mask FILE`` it is that alpha again
    (not re-thresholded at 0.5 and feathered once more, which grew the mask on every round trip)."""
    from vidsr.media.codecs import EncodeOptions
    from vidsr.media.reader import probe, read_items
    from vidsr.media.types import Frame
    from vidsr.masks.video import write_mask_video
    from vidsr.media.sample import write_sample

    src = write_sample(tmp_path / "in.mp4", spec=SampleSpec(width=320, height=180, seconds=0.4, audio=False))
    frames = [it.image for it in read_items(src, copy_streams=False) if isinstance(it, Frame)]
    first = MaskTracker(estimator=FocusEstimator(max_side=320), every=1)
    write_mask_video(src, tmp_path / "mask.mp4", tracker=first, encode=EncodeOptions())
    want = MaskTracker(estimator=FocusEstimator(max_side=320), every=1).update_many(frames)
    back = _file_tracker(tmp_path / "mask.mp4", feather_px=first.feather_px)
    got, soft = [], []
    for im in frames:
        got.append(back.update(im))
        soft.append(back.estimator.soft)
    assert probe(src).frames == len(got) == len(frames)
    assert sum(w.fg_fraction > 0.05 for w in want) >= 5
    for w, g, is_soft in zip(want, got, soft):
        assert is_soft == (w.fg_fraction > 0)  # a feathered mask is a matte; an empty one has no edge
        assert abs(g.fg_fraction - w.fg_fraction) < 0.01
        assert np.abs(g.alpha - w.alpha).mean() < 0.003
        # the same pixels go through SR, give or take the faint outer rim of the ramp and coding noise
        assert ((g.alpha > 0) & (w.alpha == 0)).mean() < 1e-3
        assert ((w.alpha > 0.05) & (g.alpha == 0)).mean() < 1e-3


def test_a_hard_mask_file_is_cleaned_and_feathered(tmp_path):
    """A two-level mask from another tool (lossy-coded) is a step, not a matte: its white part is the
    foreground and the tracker feathers it outward, as it does computed masks."""
    import av

    h, w = 72, 128
    yy, xx = np.mgrid[:h, :w]
    disc = (((xx - 64) / 30.0) ** 2 + ((yy - 36) / 20.0) ** 2 < 1)
    grey = np.where(disc, 255, 0).astype(np.uint8)
    path = tmp_path / "hard.mp4"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.repeat(grey[..., None], 3, axis=2), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())
    tracker = _file_tracker(path, feather_px=3.0)
    masks = tracker.update_many([np.zeros((h, w, 3), np.uint8)] * 3)
    assert not tracker.estimator.soft
    m = masks[-1]
    binary = cv2.resize(m.binary.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    assert (binary != disc).mean() < 0.01
    assert (m.alpha[disc] > 0.9).mean() > 0.97  # opaque inside
    ramp = (m.alpha > 0) & (m.alpha < 1) & ~disc
    assert ramp.sum() > 2 * 3.0 * np.count_nonzero(disc[:, 1:] != disc[:, :-1]) / 2  # a band outside


def test_edge_width_tells_a_step_from_a_ramp():
    from vidsr.masks.focus import SOFT_EDGE_PX, edge_width

    yy, xx = np.mgrid[:90, :160]
    disc = (((xx - 80) / 40.0) ** 2 + ((yy - 45) / 25.0) ** 2 < 1)
    step = np.where(disc, 255, 0).astype(np.uint8)
    assert edge_width(step) == 0
    soft = (feather(disc[::2, ::2], radius_px=4.0, size=(90, 160)) * 255 + 0.5).astype(np.uint8)
    assert edge_width(soft) > 2 * SOFT_EDGE_PX
    blurred = cv2.GaussianBlur(step, (0, 0), 0.7)  # a step with anti-aliased or coded edges
    assert edge_width(blurred) < SOFT_EDGE_PX
