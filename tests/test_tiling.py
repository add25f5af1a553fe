from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.arch import REGISTRY, describe
from vidsr.backends import TorchBackend, create_engine
from vidsr.sr import sr_tiles, sr_whole, stitch
from vidsr.tiling import plan_tiles, select_tiles


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
    tiles = sr_tiles(engine, img, plan, list(range(len(plan))), batch=3)
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
    tiled = stitch(sr_tiles(engine, img, plan, list(range(len(plan))), batch=4), height=48, width=48, scale=2)
    assert np.abs(tiled.astype(int) - sr_whole(engine, img).astype(int)).max() > 1


def test_select_tiles():
    plan = plan_tiles(64, 64, tile=16, pad=4)
    alpha = np.zeros((64, 64), np.float32)
    assert select_tiles(plan, alpha) == []
    alpha[20, 20] = 0.5  # inside tile (1, 1) only
    assert [(plan.tiles[i].y0, plan.tiles[i].x0) for i in select_tiles(plan, alpha)] == [(16, 16)]
    alpha[:] = 0
    alpha[31, 20] = 1.0  # at a core edge: the one-pixel growth reaches the next tile row
    assert sorted((plan.tiles[i].y0, plan.tiles[i].x0) for i in select_tiles(plan, alpha)) == [(16, 16), (32, 16)]
    assert len(select_tiles(plan, np.ones((64, 64), np.float32))) == len(plan)
