"""Patch samplers: coverage properties on synthetic masks, and the dataset patch source."""

from __future__ import annotations

import numpy as np
import pytest

from vidsr.errors import InputError
from vidsr.train.samplers import (
    SAMPLERS,
    MaskedPatchSource,
    centre_candidates,
    coverage,
    full_boxes,
    jitter_boxes,
    mask_bbox,
    random_boxes,
    sample_boxes,
    unique_boxes,
)

P = 16


def _blob_mask(h: int = 120, w: int = 160) -> np.ndarray:
    """Soft (float) mask: an ellipse plus a separate rectangle, with a soft edge."""
    yy, xx = np.mgrid[:h, :w]
    m = (((xx - 60) / 40.0) ** 2 + ((yy - 60) / 30.0) ** 2 < 1).astype(np.float32)
    m[10:30, 120:150] = 1.0
    m[(m == 0) & (np.abs(xx - 60) < 44) & (np.abs(yy - 60) < 34)] = 0.3  # soft fringe, below 0.5
    return m


def _no_overlap(boxes: np.ndarray, patch: int) -> bool:
    for i in range(len(boxes)):
        d = np.abs(boxes[i + 1:] - boxes[i])
        if np.any((d[:, 0] < patch) & (d[:, 1] < patch)):
            return False
    return True


def test_unique_packs_an_aligned_rectangle_exactly() -> None:
    m = np.zeros((100, 140), np.float32)
    m[20:52, 30:78] = 1.0  # 2 x 3 cells of 16
    cells = unique_boxes(m, patch=P, min_coverage=0.5)
    assert sorted(map(tuple, cells)) == [(y, x) for y in (20, 36) for x in (30, 46, 62)]
    assert mask_bbox(m) == (20, 30, 52, 78)


@pytest.mark.parametrize("threshold", [0.25, 0.5, 0.9])
def test_unique_cells_do_not_overlap_and_pass_the_threshold(threshold: float) -> None:
    m = _blob_mask()
    cells = unique_boxes(m, patch=P, min_coverage=threshold)
    assert len(cells) > 3
    assert _no_overlap(cells, P)
    fg = m >= 0.5
    for y, x in cells:
        assert 0 <= y <= m.shape[0] - P and 0 <= x <= m.shape[1] - P
        assert fg[y:y + P, x:x + P].mean() >= threshold
    np.testing.assert_allclose(coverage(m, cells, P), [fg[y:y + P, x:x + P].mean() for y, x in cells])
    # a lower threshold keeps a superset of cells
    if threshold > 0.25:
        low = {tuple(c) for c in unique_boxes(m, patch=P, min_coverage=0.25)}
        assert {tuple(c) for c in cells} <= low


def test_unique_grid_stays_inside_a_frame_when_the_mask_touches_the_border() -> None:
    m = np.zeros((50, 70), np.float32)
    m[:, 60:] = 1.0  # 10 px wide strip at the right edge: the cell is pulled inside
    cells = unique_boxes(m, patch=P, min_coverage=0.5)
    assert len(cells) > 0 and np.all(cells[:, 1] == 70 - P)
    assert unique_boxes(np.zeros((50, 70)), patch=P).shape == (0, 2)


def test_jitter_patch_centre_stays_inside_its_cell() -> None:
    m = _blob_mask()
    cells = unique_boxes(m, patch=P, min_coverage=0.5)
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(50):
        boxes = jitter_boxes(cells, patch=P, shape=m.shape, rng=rng)
        cy, cx = boxes[:, 0] + P // 2, boxes[:, 1] + P // 2
        assert np.all((cells[:, 0] <= cy) & (cy < cells[:, 0] + P))
        assert np.all((cells[:, 1] <= cx) & (cx < cells[:, 1] + P))
        assert np.all((boxes >= 0) & (boxes[:, 0] <= m.shape[0] - P)[:, None] & (boxes[:, 1] <= m.shape[1] - P)[:, None])
        offsets.append(boxes - cells)
    off = np.concatenate(offsets)
    assert off.min() < -P // 4 and off.max() > P // 4  # really moves, both ways
    a = jitter_boxes(cells, patch=P, shape=m.shape, rng=np.random.default_rng(3))
    b = jitter_boxes(cells, patch=P, shape=m.shape, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_jitter_at_the_frame_border_is_clamped_but_centre_stays_in_cell() -> None:
    m = np.ones((32, 32), np.float32)
    cells = unique_boxes(m, patch=P)
    for seed in range(20):
        boxes = jitter_boxes(cells, patch=P, shape=m.shape, rng=np.random.default_rng(seed))
        assert boxes.min() >= 0 and boxes.max() <= 32 - P
        c = boxes + P // 2
        assert np.all((cells <= c) & (c < cells + P))


def test_random_centres_lie_in_the_mask_and_boxes_in_the_frame() -> None:
    m = _blob_mask()
    boxes = random_boxes(m, patch=P, count=2000, rng=np.random.default_rng(1))
    assert boxes.shape == (2000, 2)
    assert np.all(boxes >= 0) and np.all(boxes[:, 0] <= m.shape[0] - P) and np.all(boxes[:, 1] <= m.shape[1] - P)
    assert np.all(m[boxes[:, 0] + P // 2, boxes[:, 1] + P // 2] >= 0.5)
    # both blobs are sampled, the small rectangle in proportion to its area (~13 % of the fg)
    in_rect = (boxes[:, 1] + P // 2 >= 120).mean()
    assert 0.05 < in_rect < 0.25


def test_random_with_no_usable_centre_gives_nothing() -> None:
    m = np.zeros((64, 64), np.float32)
    m[:3, :3] = 1.0  # a patch centred there would leave the frame
    assert centre_candidates(m, patch=P).size == 0
    assert random_boxes(m, patch=P, count=5, rng=np.random.default_rng(0)).shape == (0, 2)


def test_full_is_uniform_over_the_frame() -> None:
    boxes = full_boxes((100, 200), patch=P, count=4000, rng=np.random.default_rng(0))
    assert boxes[:, 0].min() == 0 and boxes[:, 0].max() == 100 - P
    assert abs(boxes[:, 1].mean() - (200 - P) / 2) < 4


def test_sample_boxes_by_name_and_unknown_name() -> None:
    m = _blob_mask()
    rng = np.random.default_rng(0)
    for name in SAMPLERS:
        b = sample_boxes(name, m, patch=P, rng=rng, count=7)
        assert b.ndim == 2 and b.shape[1] == 2 and len(b) > 0
    assert len(sample_boxes("full", m, patch=P, rng=rng, count=7)) == 7
    with pytest.raises(InputError, match="unknown sampler 'grid'"):
        sample_boxes("grid", m, patch=P, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="does not fit"):
        unique_boxes(np.ones((8, 8)), patch=P)


def _frames(n: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(n)]
    return frames, [_blob_mask() for _ in range(n)]


def test_patch_source_draws_match_frames_and_sampler_rules() -> None:
    frames, masks = _frames()
    src = MaskedPatchSource(frames, masks, sampler="unique", patch=P, min_coverage=0.75)
    assert src.distinct == 3 * len(unique_boxes(masks[0], patch=P, min_coverage=0.75))
    hr, m = src.draw(64, np.random.default_rng(0), augment_patches=False)
    assert hr.shape == (64, P, P, 3) and hr.dtype == np.uint8 and m.shape == (64, P, P) and m.dtype == np.float32
    assert np.all((m >= 0.5).mean(axis=(1, 2)) >= 0.75)
    # every patch is a crop of one of the frames at a unique cell
    cells = {tuple(c) for c in unique_boxes(masks[0], patch=P, min_coverage=0.75)}
    for patch in hr[:8]:
        assert any(np.array_equal(f[y:y + P, x:x + P], patch) for f in frames for y, x in cells)

    rnd = MaskedPatchSource(frames, masks, sampler="random", patch=P)
    _, m = rnd.draw(200, np.random.default_rng(1), augment_patches=False)
    assert np.all(m[:, P // 2, P // 2] >= 0.5)

    full = MaskedPatchSource(frames, masks, sampler="full", patch=P)
    _, m = full.draw(400, np.random.default_rng(2))
    fg_share = float((masks[0] >= 0.5).mean())
    assert abs(float((m >= 0.5).mean()) - fg_share) < 0.08  # full ignores the mask
    assert float((m >= 0.5).mean()) < 0.7 < float((MaskedPatchSource(frames, masks, sampler="jitter", patch=P)
                                                   .draw(400, np.random.default_rng(2))[1] >= 0.5).mean())
    # augmentation flips image and mask patches together
    a_hr, a_m = src.draw(16, np.random.default_rng(5))
    b_hr, b_m = src.draw(16, np.random.default_rng(5))
    np.testing.assert_array_equal(a_hr, b_hr)
    np.testing.assert_array_equal(a_m, b_m)


def test_patch_source_errors() -> None:
    frames, masks = _frames(1)
    with pytest.raises(InputError, match="finds no foreground patch"):
        MaskedPatchSource(frames, [np.zeros_like(masks[0])], sampler="jitter", patch=P)
    with pytest.raises(InputError, match="does not match"):
        MaskedPatchSource(frames, [masks[0][:10]], sampler="full", patch=P)
    with pytest.raises(InputError, match="at least 512 px"):
        MaskedPatchSource(frames, masks, sampler="full", patch=512)
    assert MaskedPatchSource(frames, [np.zeros_like(masks[0])], sampler="full", patch=P).draw(
        2, np.random.default_rng(0))[0].shape == (2, P, P, 3)
