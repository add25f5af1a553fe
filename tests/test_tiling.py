from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest
import torch

from vidsr.arch import REGISTRY, describe
from vidsr.backends import TorchBackend, create_engine
from vidsr.sr import sr_tiles, sr_whole, stitch
from vidsr.tiling import mask_support, merge_tiles, plan_tiles, plan_windows, select_tiles


@pytest.mark.parametrize("h,w,tile,pad", [(48, 64, 16, 4), (97, 161, 32, 6), (20, 30, 64, 6), (50, 70, 24, 30)])
def test_cores_partition_the_frame_and_windows_fit(h, w, tile, pad):
    plan = plan_tiles(h, w, tile=tile, pad=pad)
    cover = np.zeros((h, w), int)
    wh, ww = plan.window
    for t in plan.tiles:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert 0 <= t.wy <= t.y0 and t.y1 <= t.wy + wh <= h
        assert 0 <= t.wx <= t.x0 and t.x1 <= t.wx + ww <= w
        # context on each side is pad, or the window reaches the frame border
        assert t.y0 - t.wy >= pad or t.wy == 0
        assert t.wy + wh - t.y1 >= pad or t.wy + wh == h
    assert (cover == 1).all()


@pytest.mark.parametrize("arch,cfg", [("compact", {"scale": 2, "num_feat": 8, "num_conv": 3}),
                                      ("espcn", {"scale": 4, "feat1": 8, "feat2": 8})])
@pytest.mark.parametrize("h,w", [(40, 56), (37, 61)])
def test_tiled_sr_equals_whole_frame_sr(arch, cfg, h, w):
    torch.manual_seed(1)
    model = REGISTRY.build(arch, cfg).eval()
    desc = describe(model, name="t")
    engine = create_engine(model, desc, TorchBackend(channels_last=False))
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    plan = plan_tiles(h, w, tile=16, pad=desc.receptive_radius)
    tiles = sr_tiles(engine, img, list(plan.tiles), batch=3)
    tiled = stitch(tiles, height=h, width=w, scale=desc.scale)
    whole = sr_whole(engine, img)
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_too_little_overlap_shows_seams():
    torch.manual_seed(1)
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 3}).eval()
    desc = describe(model, name="t")
    engine = create_engine(model, desc, TorchBackend())
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    plan = plan_tiles(48, 48, tile=16, pad=0)
    tiled = stitch(sr_tiles(engine, img, list(plan.tiles), batch=4), height=48, width=48, scale=2)
    assert np.abs(tiled.astype(int) - sr_whole(engine, img).astype(int)).max() > 1


def test_select_tiles():
    plan = plan_tiles(64, 64, tile=16, pad=4)
    alpha = np.zeros((64, 64), np.float32)
    assert select_tiles(plan, mask_support(alpha)) == []
    alpha[20, 20] = 0.5  # inside tile (1, 1) only
    assert [(plan.tiles[i].y0, plan.tiles[i].x0) for i in select_tiles(plan, mask_support(alpha))] == [(16, 16)]
    alpha[:] = 0
    alpha[31, 20] = 1.0  # at a core edge: the one-pixel growth reaches the next tile row
    selected = select_tiles(plan, mask_support(alpha))
    assert sorted((plan.tiles[i].y0, plan.tiles[i].x0) for i in selected) == [(16, 16), (32, 16)]
    assert len(select_tiles(plan, mask_support(np.ones((64, 64), np.float32)))) == len(plan)


def _cover(h, w, tiles):
    cover = np.zeros((h, w), int)
    for t in tiles:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
    return cover


@pytest.mark.parametrize("h,w,tile,pad,cap", [(97, 161, 16, 6, 10_000), (64, 64, 16, 4, 100_000), (50, 70, 8, 3, 900)])
def test_merged_regions_cover_exactly_the_selected_tiles(h, w, tile, pad, cap):
    plan = plan_tiles(h, w, tile=tile, pad=pad)
    rng = np.random.default_rng(3)
    for density in (0.2, 0.6, 1.0):
        indices = [i for i in range(len(plan)) if rng.random() < density]
        regions = merge_tiles(plan, indices, max_window_px=cap)
        want = _cover(h, w, [plan.tiles[i] for i in indices])
        assert (_cover(h, w, regions) == want).all()  # same pixels, each once
        assert len(regions) <= len(indices)
        for r in regions:
            assert r.window_pixels <= max(cap, plan.window[0] * plan.window[1])
            assert r.wy == max(0, r.y0 - pad) and r.wx == max(0, r.x0 - pad)
            assert r.wy1 == min(h, r.y1 + pad) and r.wx1 == min(w, r.x1 + pad)
    full = merge_tiles(plan, list(range(len(plan))), max_window_px=10**9)
    assert len(full) == 1 and (full[0].y0, full[0].x0, full[0].y1, full[0].x1) == (0, 0, h, w)


def test_merging_saves_window_pixels():
    plan = plan_tiles(540, 960, tile=64, pad=8)
    alpha = np.zeros((540, 960), np.float32)
    alpha[100:420, 300:620] = 1.0  # a subject-sized block
    indices = select_tiles(plan, mask_support(alpha))
    tiles_px = sum(plan.tiles[i].window_pixels for i in indices)
    merged_px = sum(r.window_pixels for r in merge_tiles(plan, indices, max_window_px=160_000))
    assert merged_px < 0.75 * tiles_px


@pytest.mark.parametrize("arch,cfg", [("compact", {"scale": 2, "num_feat": 8, "num_conv": 3}),
                                      ("espcn", {"scale": 4, "feat1": 8, "feat2": 8})])
def test_merged_sr_equals_whole_frame_sr(arch, cfg):
    torch.manual_seed(2)
    model = REGISTRY.build(arch, cfg).eval()
    desc = describe(model, name="t")
    engine = create_engine(model, desc, TorchBackend())
    h, w = 57, 83
    img = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    plan = plan_tiles(h, w, tile=16, pad=desc.receptive_radius)
    alpha = np.zeros((h, w), np.float32)
    alpha[10:40, 5:50] = 1.0
    alpha[45:50, 70:80] = 1.0
    indices = select_tiles(plan, mask_support(alpha))
    regions = merge_tiles(plan, indices, max_window_px=1500)
    assert 1 < len(regions) < len(indices)
    # the CPU engine skips the context of windows that have it all round (and not of the others)
    trims = {t.trim(desc.receptive_radius) for t in regions}
    assert engine.trims and any(any(t) for t in trims) and len(trims) > 1
    whole = sr_whole(engine, img)
    s = desc.scale
    for t, y in sr_tiles(engine, img, regions, batch=4):
        ref = whole[t.y0 * s:t.y1 * s, t.x0 * s:t.x1 * s]
        diff = np.abs(y.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3



def _blobs(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w) uint8 support of a few random ellipses (an irregular subject)."""
    import cv2

    rng = np.random.default_rng(seed)
    alpha = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, w // 4)), int(rng.integers(2, h // 3)))
        cv2.ellipse(alpha, c, axes, float(rng.integers(0, 180)), 0, 360, 1.0, -1)
    return mask_support(alpha)


@pytest.mark.parametrize("h,w,pad,cap,seed", [(272, 640, 4, 160_000, 0), (272, 640, 7, 4000, 1),
                                              (57, 83, 3, 900, 2), (540, 960, 4, 160_000, 3)])
def test_planned_windows_cover_the_support_once_and_fit(h, w, pad, cap, seed):
    support = _blobs(h, w, seed)
    windows = plan_windows(support, pad=pad, max_window_px=cap)
    cover = np.zeros((h, w), np.int32)
    for t in windows:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert (t.wy, t.wx, t.wy1, t.wx1) == (max(0, t.y0 - pad), max(0, t.x0 - pad), min(h, t.y1 + pad),
                                              min(w, t.x1 + pad))
        assert t.window_pixels <= max(cap, (t.y1 - t.y0 + 2 * pad) * (2 * pad + 8))
    assert cover.max() == 1  # disjoint cores: each output pixel is blended once
    assert cover[support > 0].min() == 1
    assert plan_windows(np.zeros((h, w), np.uint8), pad=pad, max_window_px=cap) == []


def test_planned_windows_stay_close_to_an_irregular_subject():
    """Two subjects far apart get windows of their own, a slanted arm several; the windows cost
    less than 0.6x the merged 64-px tiles of the same support (3.3x the support here)."""
    h, w, pad = 272, 640, 4
    support = np.zeros((h, w), np.uint8)
    support[40:120, 30:110] = 1  # a head, and a slanted arm far away
    for k in range(120):
        support[130 + k, 400 + k:440 + k] = 1
    windows = plan_windows(support, pad=pad, max_window_px=160_000, call_px=1024)
    assert len(windows) > 2
    assert sum(t.core_pixels for t in windows) <= 1.45 * support.sum()
    assert sum(t.window_pixels for t in windows) <= 1.9 * support.sum()
    plan = plan_tiles(h, w, tile=64, pad=pad)
    merged = merge_tiles(plan, select_tiles(plan, support), max_window_px=160_000)
    # dearer calls: fewer, larger windows, still far fewer pixels than the merged tiles
    fewer = plan_windows(support, pad=pad, max_window_px=160_000, call_px=8192)
    assert 2 <= len(fewer) < len(windows)
    merged_px = sum(t.window_pixels for t in merged)
    assert sum(t.window_pixels for t in windows) < 0.6 * merged_px
    assert sum(t.window_pixels for t in fewer) < 0.85 * merged_px


def test_planned_sr_equals_whole_frame_sr():
    torch.manual_seed(3)
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 3}).eval()
    desc = describe(model, name="t")
    engine = create_engine(model, desc, TorchBackend())
    h, w = 61, 97
    img = np.random.default_rng(4).integers(0, 256, (h, w, 3), dtype=np.uint8)
    support = _blobs(h, w, 5)
    windows = plan_windows(support, pad=desc.receptive_radius, max_window_px=1200, cell=4)
    assert len(windows) > 1
    whole = sr_whole(engine, img)
    for t, y in sr_tiles(engine, img, windows, batch=4):
        ref = whole[t.y0 * 2:t.y1 * 2, t.x0 * 2:t.x1 * 2]
        diff = np.abs(y.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_to_images_rounds_clips_and_reads_any_strides(dtype):
    from vidsr.backends.images import to_images

    top = np.iinfo(dtype).max
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.2, 1.2, (2, 3, 5, 7)).astype(np.float32)
    x[0, 0, 0, :4] = [0.5 / top - 1e-6, 0.5 / top + 1e-6, 1.0, np.nextafter(np.float32(0), 1)]
    want = np.clip(np.floor(x * np.float32(top) + np.float32(0.5)), 0, top).astype(dtype).transpose(0, 2, 3, 1)
    out = to_images(x, dtype)
    assert out.dtype == dtype and out.shape == (2, 5, 7, 3) and out.flags.c_contiguous
    assert (out == want).all()
    # the same batch held channels_last (how the CPU torch engine returns it)
    strided = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert (to_images(strided, dtype) == want).all()


def _small_compact(seed: int, **cfg):
    torch.manual_seed(seed)
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 3, **cfg}).eval()
    desc = describe(model, name="t")
    return create_engine(model, desc, TorchBackend()), desc


def test_packed_windows_equal_whole_frame_sr_at_every_border():
    """Windows side by side in shelves, shelves stacked, in shared calls (vidsr.sr.pack_windows) give
    whole-frame SR exactly, also for windows the frame's four borders cut short (support in each
    corner, along the borders and in the middle; random supports)."""
    from vidsr.sr import pack_windows

    engine, desc = _small_compact(5)
    h, w, r = 45, 77, desc.receptive_radius
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    whole = sr_whole(engine, img)
    fixed = np.zeros((h, w), np.uint8)
    for y, x in ((0, 0), (0, w - 9), (h - 7, 0), (h - 9, w - 8), (20, 30), (25, 52)):
        fixed[y:y + 7, x:x + 6] = 1
    supports = [fixed] + [(rng.random((h, w)) < 0.01).astype(np.uint8) for _ in range(6)]
    for k, support in enumerate(supports):
        support[rng.integers(0, h), :] |= k % 2  # sometimes a row across the frame (cut on both sides)
        windows = plan_windows(support, pad=r, max_window_px=4000, call_px=0, cell=4)
        canvases = pack_windows(windows, frame=(h, w), radius=r, max_px=4000, call_px=10_000)
        assert len(canvases) < len(windows)  # some windows shared a call
        assert sorted(astuple(t) for c in canvases for t, *_ in c.parts) == sorted(map(astuple, windows))
        for c in canvases:
            taken = np.zeros((c.height, c.width), np.int32)
            for t, g, row, col in c.parts:
                gh, gw = g.window_shape
                taken[row:row + gh, col:col + gw] += 1
                assert g.y0 - g.wy >= r or (g.wy == 0 and row == 0)  # the frame's top on the canvas's
                assert g.wy1 - g.y1 >= r or (g.wy1 == h and row + gh == c.height)
                assert g.x0 - g.wx >= r or (g.wx == 0 and col == 0)
                assert g.wx1 - g.x1 >= r or (g.wx1 == w and col + gw == c.width)
                assert c.trim[0] <= g.trim(r)[0] and c.trim[1] <= g.trim(r)[1]
            assert taken.max() == 1  # windows do not overlap
            assert c.height * c.width <= 4000 or len(c.parts) == 1
        out = sr_tiles(engine, img, windows, batch=4, pack_px=4000, call_px=10_000)
        assert {t for t, _ in out} == set(windows) and len(out) == len(windows)
        for t, y in out:
            assert (y == whole[t.y0 * 2:t.y1 * 2, t.x0 * 2:t.x1 * 2]).all()
    assert any(len({row for _, _, row, _ in c.parts}) > 1 for c in canvases)  # shelves were stacked


def test_cheaper_context_brings_cores_closer_to_the_subject():
    """Counting half the context (a trimming network) and no call cost (packed windows): more, tighter
    windows; their cores still cover the support once."""
    support = np.zeros((272, 640), np.uint8)
    for k in range(120):  # a slanted arm
        support[100 + k, 300 + k:330 + k] = 1
    wide = plan_windows(support, pad=4, max_window_px=160_000)
    tight = plan_windows(support, pad=4, max_window_px=160_000, call_px=0, context=2)
    assert len(tight) > len(wide)
    assert sum(t.core_pixels for t in tight) < 0.85 * sum(t.core_pixels for t in wide)
    cover = np.zeros(support.shape, np.int32)
    for t in tight:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
    assert cover.max() == 1 and cover[support > 0].min() == 1


def test_call_cost_falls_with_the_network_s_work_per_pixel():
    from vidsr.sr import call_cost_px

    lite, _ = _small_compact(0, num_feat=16, num_conv=2)
    heavy, _ = _small_compact(0, num_feat=64, num_conv=16)
    assert call_cost_px(heavy) * 10 < call_cost_px(lite)
    assert call_cost_px(heavy) >= 1
    from vidsr.frame import build_processor

    # the pipeline's planner and packing charge the network's own call cost
    assert build_processor(engine=heavy, height=32, width=48, tile=16, merge_px=4000).call_px == call_cost_px(heavy)


def _random_support(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) uint8 support of one random kind: blobs, specks, stripes, borders, blobs and specks, empty, full."""
    import cv2

    kind = int(rng.integers(0, 7))
    if kind == 5:
        return np.zeros((h, w), np.uint8)
    if kind == 6:
        return np.ones((h, w), np.uint8)
    support = np.zeros((h, w), np.uint8)
    if kind in (0, 4):
        support = _blobs(h, w, int(rng.integers(1 << 30))) if min(h, w) >= 12 else support
    if kind in (1, 4):
        support |= (rng.random((h, w)) < rng.uniform(0.0005, 0.03)).astype(np.uint8)
    if kind == 2:  # stripes: many runs and gaps of all lengths
        for _ in range(int(rng.integers(1, 8))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            cv2.line(support, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), 1, int(rng.integers(1, 4)))
    if kind == 3:  # rectangles at the frame's edges and corners
        for _ in range(int(rng.integers(1, 5))):
            y0, x0 = int(rng.choice([0, rng.integers(0, h)])), int(rng.choice([0, rng.integers(0, w)]))
            y1, x1 = int(rng.choice([h, rng.integers(y0, h + 1)])), int(rng.choice([w, rng.integers(x0, w + 1)]))
            support[y0:y1, x0:x1] = 1
    return support


def test_planned_windows_equal_the_frozen_planner_on_random_supports():
    """The fast planner returns the very tiles, in the same order, of the frozen copy of the planner it
    replaced (tests/plan_windows_frozen.py), for random supports of every kind, size, cell and setting,
    held as uint8, bool, int32 or a view of a wider array (~2 s)."""
    from plan_windows_frozen import plan_windows as frozen

    rng = np.random.default_rng(25)
    for i in range(300):
        cell = [None, None, 4, 8, 1, 2, 3, 5, 16][int(rng.integers(0, 9))]
        small = 60 if cell in (1, 2) else 200
        h, w = (int(rng.integers(1, small)), int(rng.integers(1, small * 5 // 3))) if i % 10 else (272, 640)
        support = _random_support(rng, h, w)
        if i % 7 == 1:
            support = support.astype(bool)
        elif i % 7 == 2:
            support = support.astype(np.int32) * 2
        elif i % 7 == 3:
            support = np.pad(support, ((0, 0), (3, 5)))[:, 3:3 + w]  # not contiguous
        pad = int(rng.integers(0, 9))
        kw = {"pad": pad, "max_window_px": int(rng.choice([160_000, 4000, 900, int(rng.integers(1, 30_000))])),
              "cell": cell,
              "call_px": int(rng.choice([0, 60, 1200, 4096, int(rng.integers(0, 20_000))])),
              "context": [None, pad / 2, float(rng.uniform(0, 8))][int(rng.integers(0, 3))]}
        assert plan_windows(support, **kw) == frozen(support, **kw), (i, h, w, kw)
    for h, w in ((1, 1), (3, 16), (7, 8), (9, 24), (5, 640), (300, 2)):  # frames a cell or two across
        for cell in (None, 4, 8, 16):
            support = np.zeros((h, w), np.uint8)
            support[-1, -1] = support[0, w // 2] = 1
            kw = {"pad": 3, "max_window_px": 900, "cell": cell}
            assert plan_windows(support, **kw) == frozen(support, **kw)
    # one-pixel cells of a tall frame: more band numbers than 16 bits hold
    support = _blobs(230, 90, 7)
    assert plan_windows(support, pad=2, max_window_px=160_000, cell=1) == frozen(support, pad=2, max_window_px=160_000,
                                                                                 cell=1)


def test_planned_windows_equal_the_frozen_planner_on_a_clip_s_masks(tmp_path):
    """The same on the default focus masks of a small clip's frames, with each call cost and context the
    pipeline and the benchmarks use (~1 s)."""
    from media import make_video
    from plan_windows_frozen import plan_windows as frozen

    from vidsr.masks.focus import FocusEstimator
    from vidsr.masks.tracker import MaskTracker
    from vidsr.media.reader import read_items
    from vidsr.media.types import Frame

    clip = make_video(tmp_path / "clip.mp4", frames=6, width=320, height=176)
    tracker = MaskTracker(estimator=FocusEstimator(), every=2)
    windows = 0
    for item in read_items(clip, copy_streams=False):
        if isinstance(item, Frame):
            support = mask_support(tracker.update(item.image).alpha)
            for call_px in (1200, 4096, 60, 0):
                for context in (None, 2.5):
                    kw = {"pad": 5, "max_window_px": 160_000, "call_px": call_px, "context": context}
                    planned = plan_windows(support, **kw)
                    assert planned == frozen(support, **kw)
                    windows += len(planned)
    assert windows > 6 * 8  # the masks hold a subject
