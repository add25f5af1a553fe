"""``vidsr mask`` and the mask options of ``vidsr upscale`` (tiny clips, tiny depth network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from media import make_video, read_video
from vidsr.cli import main


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_depth_folder(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from test_depth import TINY
    from vidsr.masks.depth import build_depth_anything

    folder = tmp_path_factory.mktemp("depth-cli") / "tiny-da"
    build_depth_anything(TINY).save_pretrained(folder)
    return folder


def test_mask_command_writes_an_aligned_grey_video(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=7, width=96, height=64, pts_step=[1, 2, 1, 3, 1, 1, 1])
    r = _run("mask", src, "-o", tmp_path / "mask.mp4")
    assert r.exit_code == 0, r.output
    assert "7 frames" in r.output and "4 focus passes" in r.output
    frames, pts, _ = read_video(tmp_path / "mask.mp4")
    _, src_pts, _ = read_video(src)
    assert len(frames) == 7 and frames[0].shape == (64, 96, 3) and pts == src_pts
    assert (abs(frames[0][..., 0].astype(int) - frames[0][..., 1]) <= 2).all()  # grey
    # white on the sharp textured ellipse in the middle, black on the blurred background around it
    yy, xx = np.mgrid[:64, :96]
    ellipse = ((xx - 48) / 24) ** 2 + ((yy - 32) / (64 / 3)) ** 2
    for f in frames:
        assert f[..., 0][ellipse < 0.5].mean() > 200 and f[..., 0][ellipse > 2].mean() < 30
    # the mask video feeds back in as --mask FILE (one pass per frame) and gives the same masks
    r = _run("mask", src, "-o", tmp_path / "again.mp4", "--mask", tmp_path / "mask.mp4")
    assert r.exit_code == 0, r.output
    assert "7 file passes" in r.output
    for a, b in zip(frames, read_video(tmp_path / "again.mp4")[0], strict=True):
        assert np.abs(a.astype(int) - b).mean() < 2  # the same masks, but for x264 on a re-encode
    # a mask file has one mask per frame, read in order: skipping frames would misalign it
    for cmd in ("mask", "upscale"):
        r = _run(cmd, src, "-o", tmp_path / f"skip-{cmd}.mp4", "--mask", tmp_path / "mask.mp4", "--mask-every", "2")
        assert r.exit_code != 0 and "--mask-every must be 1" in r.output
        assert not (tmp_path / f"skip-{cmd}.mp4").exists()


def test_depth_mask_command_and_upscale(tmp_path, tiny_depth_folder, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=18, width=96, height=64)
    r = _run("mask", src, "-o", tmp_path / "mask.mp4", "--mask", "depth+focus", "--depth-model", tiny_depth_folder,
             "--depth-size", "56", "--depth-batch", "2")
    assert r.exit_code == 0, r.output
    assert "18 frames" in r.output and "2 depth+focus passes" in r.output  # every 16: frames 0 and 16
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", tiny_ckpt, "--tile", "16", "--mask", "depth",
             "--depth-model", tiny_depth_folder, "--depth-size", "56", "--focus-point", "0.5,0.5",
             "--mask-every", "3", "--save-mask", tmp_path / "m.mp4")
    assert r.exit_code == 0, r.output
    assert "6 depth passes" in r.output  # every 3 of 18 frames
    assert len(read_video(tmp_path / "out.mp4")[0]) == 18 == len(read_video(tmp_path / "m.mp4")[0])


@pytest.mark.parametrize("args,message", [
    (["--mask", "depth"], "need --depth-model"),
    (["--mask", "depth", "--depth-model", "no/such/folder"], "depth model not found"),
    (["--mask", "sharpest"], "must be one of focus, depth"),
    (["--mask", "depth", "--depth-model", ".", "--focus-point", "left"], "--focus-point must look like"),
    (["--focus-point", "0.5,0.5"], "needs a depth mask"),
])
def test_mask_option_errors(tmp_path, args, message, monkeypatch):
    monkeypatch.delenv("VIDSR_DEPTH_MODEL", raising=False)
    src = make_video(tmp_path / "in.mp4", frames=2)
    r = _run("mask", src, "-o", tmp_path / "mask.mp4", *args)
    assert r.exit_code != 0
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "mask.mp4").exists()


def test_dpt_midas_folder_drives_the_depth_mask(tmp_path):
    pytest.importorskip("transformers")
    from test_depth import TINY_DPT_SWIN
    from vidsr.masks.depth import build_dpt

    folder = tmp_path / "tiny-dpt"
    build_dpt(TINY_DPT_SWIN).save_pretrained(folder)
    src = make_video(tmp_path / "in.mp4", frames=5, width=96, height=64)
    r = _run("mask", src, "-o", tmp_path / "mask.mp4", "--mask", "depth", "--depth-model", folder,
             "--focus-point", "0.5,0.5", "--mask-every", "2")
    assert r.exit_code == 0, r.output
    assert "5 frames" in r.output and "3 depth passes" in r.output
    frames, _, _ = read_video(tmp_path / "mask.mp4")
    assert len(frames) == 5 and frames[0].shape == (64, 96, 3)
