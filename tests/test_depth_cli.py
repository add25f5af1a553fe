"""``vidsr mask`` and the mask options of ``vidsr upscale`` (tiny clips, tiny depth network)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from media import make_video, read_video
from vidsr.cli import main
from vidsr.composite import upscale_background
from vidsr.media.reader import Reader


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


def _pngs(pattern: Path) -> list[np.ndarray]:
    return [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in sorted(pattern.parent.glob("*.png"))]


def test_depth_focus_mask_command_runs_the_net_every_16_frames_at_the_input_timing(tmp_path, tiny_depth_folder):
    src = make_video(tmp_path / "in.mp4", frames=18, width=96, height=64)
    r = _run("mask", src, "-o", tmp_path / "mask.mp4", "--mask", "depth+focus", "--depth-model", tiny_depth_folder,
             "--depth-size", "56", "--depth-batch", "2")
    assert r.exit_code == 0, r.output
    assert "18 frames" in r.output and "2 depth+focus passes" in r.output  # every 16: frames 0 and 16
    frames, pts, _ = read_video(tmp_path / "mask.mp4")
    assert len(frames) == 18 and pts == read_video(src)[1] and frames[0].shape == (64, 96, 3)
    for f in frames:  # a grey band mask with both sides in it (the random network's band is ~half the frame)
        assert (abs(f[..., 0].astype(int) - f[..., 1]) <= 2).all()
        assert 0.2 < (f[..., 0] > 128).mean() < 0.8


def test_depth_upscale_is_sr_where_the_mask_is_on_and_plain_upscale_where_it_is_off(tmp_path, tiny_depth_folder,
                                                                                 tiny_ckpt):
    # PNG frames out: lossless, so the composite is compared pixel for pixel with its two sources,
    # the plain bicubic upscale of the decoded input and a full-frame SR run. ~1.5 s
    src = make_video(tmp_path / "in.mp4", frames=9, width=96, height=64)
    (tmp_path / "out").mkdir()
    (tmp_path / "mask").mkdir()
    (tmp_path / "sr").mkdir()
    r = _run("upscale", src, "-o", tmp_path / "out/%04d.png", "--model", tiny_ckpt, "--tile", "16", "--mask", "depth",
             "--depth-model", tiny_depth_folder, "--depth-size", "56", "--focus-point", "0.5,0.5",
             "--mask-every", "3", "--save-mask", tmp_path / "mask/%04d.png")
    assert r.exit_code == 0, r.output
    assert "3 depth passes" in r.output  # every 3 of 9 frames
    # `vidsr mask` with the same settings shows the mask the upscale blended with (at input size)
    (tmp_path / "shown").mkdir()
    r = _run("mask", src, "-o", tmp_path / "shown/%04d.png", "--mask", "depth", "--depth-model", tiny_depth_folder,
             "--depth-size", "56", "--focus-point", "0.5,0.5", "--mask-every", "3")
    assert r.exit_code == 0, r.output
    r = _run("upscale", src, "-o", tmp_path / "sr/%04d.png", "--model", tiny_ckpt, "--full-frame")
    assert r.exit_code == 0, r.output
    out, masks, sr = _pngs(tmp_path / "out/x"), _pngs(tmp_path / "mask/x"), _pngs(tmp_path / "sr/x")
    with contextlib.closing(Reader(src, copy_streams=False)) as reader:  # decoded as the pipeline decodes
        plain = [upscale_background(f.image, scale=2) for f in reader.items()]
    assert len(out) == len(masks) == len(sr) == len(plain) == 9
    for shown, m in zip(_pngs(tmp_path / "shown/x"), masks, strict=True):
        m = m if m.ndim == 2 else m[..., 0]
        shown = shown if shown.ndim == 2 else shown[..., 0]
        assert np.abs(cv2.resize(m, (96, 64), interpolation=cv2.INTER_AREA).astype(int) - shown).mean() < 3
    for i, (o, m, s, p) in enumerate(zip(out, masks, sr, plain)):
        o, s = o[..., ::-1].astype(int), s[..., ::-1].astype(int)  # OpenCV reads BGR
        m = m if m.ndim == 2 else m[..., 0]
        assert o.shape == s.shape == p.shape == (128, 192, 3) and m.shape == (128, 192)
        off, on = m == 0, m == 255
        assert off.mean() > 0.005 and on.mean() > 0.5, (i, off.mean(), on.mean())  # both, with this seeded network
        assert on[64, 96]
        # the sources differ there, so each equality below can fail (alpha < 1/255 off, > 254/255 on)
        assert np.abs(s - p)[off].mean() > 2 and np.abs(s - p)[on].mean() > 2
        assert np.abs(o - p)[off].max() <= 1, i
        assert np.abs(o - s)[on].max() <= 1, i


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
