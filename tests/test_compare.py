from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from media import make_video, read_video
from vidsr.cli import main
from vidsr.compare.config import GRID_ORDER, CompareConfig, FrameRange, parse_frames
from vidsr.compare.render import MethodRunner, compose, layout_size, wipe_position
from vidsr.compare.run import compare_video
from vidsr.compare.sheet import (SHEET_BG, SHEET_CAPTION, SHEET_HEADER, SHEET_MARGIN, SHEET_ROW_LABEL, SheetColumn,
                                 crop_sheet, pick_regions)
from vidsr.composite import upscale_background
from vidsr.errors import InputError
from vidsr.media.codecs import EncodeOptions
from vidsr.media.reader import probe, read_items
from vidsr.media.types import Frame
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import processor_for
from vidsr.sr import sr_whole

W, H, S = 64, 48, 2
LABEL_ROWS = 24  # labels sit in a box at the top of each panel, well within this band


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("compare") / "in.mp4", frames=4, width=W, height=H, audio=True)


def _config(ckpt: Path, **kw) -> CompareConfig:
    encode = kw.pop("encode", EncodeOptions())
    return CompareConfig(upscale=UpscaleConfig(model=str(ckpt), tile=16, encode=encode), **kw)


def _frames(path: Path) -> list[np.ndarray]:
    return [f.image for f in read_items(path, copy_streams=False) if isinstance(f, Frame)]


def _panels(image: np.ndarray) -> dict[str, np.ndarray]:
    ph, pw = image.shape[0] // 2, image.shape[1] // 2
    boxes = [(0, 0), (0, pw), (ph, 0), (ph, pw)]
    return {m: image[y:y + ph, x:x + pw] for m, (y, x) in zip(GRID_ORDER, boxes)}


def _no_outputs(folder: Path, *names: str) -> bool:
    return not any((folder / n).exists() for n in names) and not list(folder.glob(".*vidsr-*"))


def _cli(*args) -> object:
    return CliRunner().invoke(main, ["compare", *[str(a) for a in args]])


def test_grid_panels_equal_each_method_on_its_own(clip, tiny_ckpt):
    info = probe(clip)
    config = UpscaleConfig(model=str(tiny_ckpt), tile=16)
    runner = MethodRunner.build(info, config)
    alone = processor_for(info, config)  # partial SR as `vidsr upscale` runs it, frame after frame
    labels = {m: m.upper() for m in GRID_ORDER}
    for image in _frames(clip):
        renders = runner.render(image)
        expected = {
            "plain": upscale_background(image, scale=S, method="bicubic"),
            "full": sr_whole(runner.full.engine, image),
            "partial": alone.process(image, defaultdict(float)).image,
        }
        for m, want in expected.items():
            np.testing.assert_array_equal(renders.images[m], want, err_msg=m)
        grid = compose("grid", renders.images, labels=None)
        assert grid.shape == (2 * H * S, 2 * W * S, 3)
        for m, panel in _panels(grid).items():
            np.testing.assert_array_equal(panel, renders.images[m], err_msg=m)
        labelled = _panels(compose("grid", renders.images, labels=labels))
        for m, panel in labelled.items():
            np.testing.assert_array_equal(panel[LABEL_ROWS:], renders.images[m][LABEL_ROWS:], err_msg=m)
            assert (panel[:LABEL_ROWS] != renders.images[m][:LABEL_ROWS]).any(), f"no label on {m}"
        mask = renders.images["mask"]
        fg = cv2.resize(renders.partial.mask.alpha, (W * S, H * S)) > 0.5
        assert fg.any() and not fg.all()
        tinted = mask.astype(int) - renders.images["plain"].astype(int)
        assert tinted[fg][:, 1].mean() > 20 > abs(tinted[~fg][:, 1].mean())  # green over the foreground only


def test_grid_video_size_frames_pts_audio_and_decoded_panels(clip, tiny_ckpt, tmp_path):
    lossless = EncodeOptions(crf=0, pix_fmt="yuv444p")
    out = tmp_path / "grid.mp4"
    report = compare_video(clip, out, config=_config(tiny_ckpt, encode=lossless, labels=False))
    frames, pts, facts = read_video(out)
    _, in_pts, _ = read_video(clip)
    assert report.frames == len(frames) == 4 and pts == in_pts
    assert frames[0].shape == (2 * H * S, 2 * W * S, 3) and report.out_size == (2 * W * S, 2 * H * S)
    assert facts["streams"] == ["video", "audio"]
    runner = MethodRunner.build(probe(clip), UpscaleConfig(model=str(tiny_ckpt), tile=16))
    for image, decoded in zip(_frames(clip), frames):
        want = runner.render(image).images
        for m, panel in _panels(decoded).items():
            err = np.abs(panel.astype(int) - want[m].astype(int))
            assert err.mean() < 1.0 and err.max() <= 4, (m, err.mean(), err.max())  # RGB<->YUV rounding only


def test_size_cap_split_and_wipe(clip, tiny_ckpt, tmp_path):
    assert layout_size("grid", 1920 * 2, 1080 * 2, max_width=1920) == (1920, 1080)
    assert layout_size("split", 3840, 2160, max_width=1280) == (1280, 720)
    a = np.full((40, 60, 3), 10, np.uint8)
    b = np.full((40, 60, 3), 200, np.uint8)
    split = compose("split", {"plain": a, "full": b}, methods=("plain", "full"), labels=None)
    assert (split[:, :28] == 10).all() and (split[:, 32:] == 200).all() and (split[:, 30] == 255).all()
    assert wipe_position(0, period=4) == pytest.approx(0.05) and wipe_position(4, period=4) == pytest.approx(0.95)
    left = compose("wipe", {"plain": a, "full": b}, methods=("plain", "full"), labels=None, position=0.25)
    assert (left[:, :14] == 10).all() and (left[:, 17:] == 200).all()
    out = tmp_path / "wipe.mkv"
    report = compare_video(clip, out, config=_config(tiny_ckpt, layout="wipe", methods=("plain", "mask"),
                                                     frames=FrameRange(1, 3), max_width=100))
    frames, _, facts = read_video(out)
    assert len(frames) == 2 == report.frames and frames[0].shape == (76, 100, 3)
    assert facts["streams"] == ["video"] and report.warnings  # part of the clip: audio left out, said so


def test_regions_pick_the_sharp_subject_and_the_blur(clip):
    image = _frames(clip)[0]
    fg, bg = pick_regions(image, crop=48)
    assert (fg.name, bg.name) == ("foreground", "background") and fg.size == bg.size == 12
    yy, xx = fg.y + fg.size / 2, fg.x + fg.size / 2
    assert ((xx - W / 2) / (W / 4)) ** 2 + ((yy - H / 2) / (H / 3)) ** 2 < 1  # inside the sharp ellipse
    yy, xx = bg.y + bg.size / 2, bg.x + bg.size / 2
    assert ((xx - W / 2) / (W / 4)) ** 2 + ((yy - H / 2) / (H / 3)) ** 2 > 1
    assert fg.score > bg.score


def test_sheet_one_row_per_region_one_column_per_method(clip, tiny_ckpt, tmp_path):
    sheet_path = tmp_path / "sheet.png"
    report = compare_video(clip, None, config=_config(tiny_ckpt, sheet_frame=1), sheet_path=sheet_path)
    png = cv2.cvtColor(cv2.imread(str(sheet_path)), cv2.COLOR_BGR2RGB)
    assert report.sheet_frame == 1 and report.reference == "bicubic"
    assert set(report.sheet_psnr) == {"foreground", "background"}
    assert list(report.sheet_psnr["foreground"]) == ["plain", "full", "partial"]
    assert report.sheet_psnr["foreground"]["plain"] == float("inf")  # plain bicubic is the reference
    # rebuild the frame's renders and the sheet geometry independently; the PNG's cells must match
    runner = MethodRunner.build(probe(clip), UpscaleConfig(model=str(tiny_ckpt), tile=16))
    images = _frames(clip)
    renders = [runner.render(im) for im in images[:2]][-1]
    regions = pick_regions(images[1])
    columns = [SheetColumn(key=m, title=m, subtitle="") for m in ("plain", "full", "partial")]
    ref = upscale_background(images[1], scale=S, method="bicubic")
    sheet = crop_sheet(renders.images, regions, scale=S, reference=ref, reference_name="bicubic", columns=columns)
    cell = regions[0].size * S * sheet.zoom
    m = SHEET_MARGIN
    assert 2 <= sheet.zoom <= 4
    assert png.shape == (SHEET_HEADER + 2 * (cell + SHEET_CAPTION + m) + m, SHEET_ROW_LABEL + 3 * (cell + m) + m, 3)
    assert (png[SHEET_HEADER - 2, SHEET_ROW_LABEL:] == SHEET_BG).all()
    assert len(sheet.cells) == 2 and all(len(row) == 3 for row in sheet.cells)
    for r, (region, row) in enumerate(zip(regions, sheet.cells)):
        assert len({y0 for y0, _, _, _ in row}) == 1
        for c, (y0, x0, y1, x1) in enumerate(row):
            assert (y1 - y0, x1 - x0) == (cell, cell)
            src = renders.images[columns[c].key]
            crop = src[region.y * S:(region.y + region.size) * S, region.x * S:(region.x + region.size) * S]
            zoomed = np.repeat(np.repeat(crop, sheet.zoom, axis=0), sheet.zoom, axis=1)
            np.testing.assert_array_equal(png[y0:y1, x0:x1], zoomed, err_msg=(region.name, columns[c].key))
            assert report.sheet_psnr[region.name][columns[c].key] == pytest.approx(sheet.psnr[r][c])


def test_sheet_against_ground_truth_adds_its_column(clip, tiny_ckpt, tmp_path):
    gt = make_video(tmp_path / "gt.mp4", frames=4, width=W * S, height=H * S)
    report = compare_video(clip, None, config=_config(tiny_ckpt), sheet_path=tmp_path / "s.png", gt_path=gt)
    assert report.reference == "ground truth"
    assert list(report.sheet_psnr["background"]) == ["plain", "full", "partial", "reference"]
    assert all(np.isfinite(v) for v in list(report.sheet_psnr["background"].values())[:3])
    png = cv2.imread(str(tmp_path / "s.png"))
    cell = 12 * S * 4  # 12 px LR crops of a 64x48 frame, x2, zoomed x4
    assert png.shape[1] == SHEET_ROW_LABEL + 4 * (cell + SHEET_MARGIN) + SHEET_MARGIN
    small_gt = make_video(tmp_path / "small.mp4", frames=4, width=W, height=H)
    with pytest.raises(InputError, match="--gt is 64x48, but the upscaled input is 128x96"):
        compare_video(clip, None, config=_config(tiny_ckpt), sheet_path=tmp_path / "t.png", gt_path=small_gt)
    assert not (tmp_path / "t.png").exists()


def test_cli_compare_grid_capped_with_sheet(clip, tiny_ckpt, tmp_path):
    r = _cli(clip, "-o", tmp_path / "c.mp4", "--sheet", tmp_path / "c.png", "--model", tiny_ckpt, "--tile", 16,
             "--max-width", 128, "--frames", "1:3")
    assert r.exit_code == 0, r.output
    assert "2 frames, grid 128x96" in r.output and "PSNR vs bicubic: foreground: plain = reference, full " in r.output
    frames, _, _ = read_video(tmp_path / "c.mp4")
    assert len(frames) == 2 and frames[0].shape == (96, 128, 3)
    assert cv2.imread(str(tmp_path / "c.png")) is not None


@pytest.mark.parametrize("args, message", [
    (("--frames", "3:1"), "--frames 3:1 is empty"),
    (("--frames", "2:2"), "--frames 2:2 is empty"),
    (("--frames", "a:b"), "--frames must look like START:END"),
    (("--frames", "7"), "--frames must look like START:END"),
    (("--frames", "-1:3"), "frame numbers must be >= 0"),
    (("--frames", "10:20"), "starts after the last frame (the video has 4 frames)"),
    (("--layout", "diagonal"), "--layout must be one of grid, split, wipe, got 'diagonal'"),
    (("--layout", "split", "--methods", "plain"), "--methods must be two different names"),
    (("--sheet-frame", "9"), "--sheet-frame 9 is not among the compared frames"),
])
def test_cli_bad_arguments_give_one_line_and_no_files(clip, tiny_ckpt, tmp_path, args, message):
    r = _cli(clip, "-o", tmp_path / "c.mp4", "--sheet", tmp_path / "c.png", "--model", tiny_ckpt, *args)
    assert r.exit_code != 0
    assert message in r.output, r.output
    assert "Traceback" not in r.output and r.output.strip().count("\n") == 0, r.output
    assert _no_outputs(tmp_path, "c.mp4", "c.png")


def test_parse_frames():
    assert parse_frames(None) == FrameRange() == parse_frames(":")
    assert parse_frames("3:") == FrameRange(3, None) and parse_frames(":5") == FrameRange(0, 5)
    assert parse_frames(" 2 : 9 ") == FrameRange(2, 9) and FrameRange(2, 9).count(5) == 3
    with pytest.raises(InputError):
        dataclasses.replace(CompareConfig(), layout="mosaic")
