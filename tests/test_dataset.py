"""Dataset builder: side-by-side samples, manifest, frame selection, split by source, CLI."""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from media import make_video, textured_frame

from vidsr.errors import InputError
from vidsr.media.reader import read_items
from vidsr.media.types import Frame
from vidsr.cli.dataset import dataset_group
from vidsr.train.dataset import (
    BuildConfig,
    assign_splits,
    build_dataset,
    find_sources,
    frame_maps,
    load_sample,
    read_dataset,
    select_frames,
    split_sample,
    summarize_dataset,
)


def _write_clip(path: Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        v.options = {"crf": "10", "preset": "ultrafast"}
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


def _decoded(path: Path) -> list[np.ndarray]:
    return [it.image for it in read_items(path, copy_streams=False) if isinstance(it, Frame)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sources")
    make_video(d / "clip_a.mp4", frames=7, width=96, height=64)
    make_video(d / "clip_b.mp4", frames=4, width=96, height=64)
    cv2.imwrite(str(d / "photo.png"), textured_frame(0, width=80, height=60, seed=5)[..., ::-1])
    (d / "readme.txt").write_text("ignored")
    return d


@pytest.fixture(scope="module")
def built(sources: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ds") / "ds"
    cfg = BuildConfig(every=3, test_sources=("clip_b*",), workers=1)
    return build_dataset([sources], out, config=cfg)


def test_samples_are_rgb_map_and_masked_rgb_side_by_side(built, sources: Path) -> None:
    frames_a = _decoded(sources / "clip_a.mp4")
    photo = cv2.imread(str(sources / "photo.png"))[..., ::-1]
    assert [(s.source, s.frame) for s in built.samples] == [
        ("clip_a.mp4", 0), ("clip_a.mp4", 3), ("clip_a.mp4", 6), ("clip_b.mp4", 0), ("clip_b.mp4", 3),
        ("photo.png", 0)]
    for s in built.samples:
        panel = cv2.imread(str(built.root / s.image))[..., ::-1]
        assert panel.shape == (s.height, 3 * s.width, 3)
        rgb, grey, masked = split_sample(panel)
        if s.source == "clip_a.mp4":
            np.testing.assert_array_equal(rgb, frames_a[s.frame])
        if s.source == "photo.png":
            np.testing.assert_array_equal(rgb, photo)
        assert np.array_equal(panel[:, s.width:2 * s.width, 0], panel[:, s.width:2 * s.width, 2])  # grey
        assert grey.max() > grey.min()  # a real map, not a flat panel
        on = np.any(masked != 0, axis=2)
        np.testing.assert_array_equal(masked[on], rgb[on])  # masked = the frame where the mask is on ...
        assert on.mean() == pytest.approx(s.fg_fraction, abs=0.02)  # ... and black elsewhere
        assert 0.1 < s.fg_fraction < 0.6  # the sharp ellipse of textured_frame is found
        rgb2, _, alpha = load_sample(built.root, s)
        np.testing.assert_array_equal(rgb2, rgb)
        assert alpha.dtype == np.float32 and alpha.shape == rgb.shape[:2] and 0 <= alpha.min() and alpha.max() <= 1
        assert (alpha >= 0.5)[on].mean() > 0.95  # the soft mask covers the hard one


def test_manifest_json_and_csv_agree_and_split_by_source(built) -> None:
    doc = json.loads((built.root / "manifest.json").read_text())
    assert doc["format"] == "vidsr-dataset" and doc["config"]["every"] == 3
    assert doc["sources"] == {"clip_a.mp4": "train", "clip_b.mp4": "test", "photo.png": "train"}
    with open(built.root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [s.id for s in built.samples]
    assert [float(r["fg_fraction"]) for r in rows] == [s.fg_fraction for s in built.samples]
    assert {r["split"] for r in rows if r["source"] == "clip_b.mp4"} == {"test"}
    assert {r["split"] for r in rows if r["source"] != "clip_b.mp4"} == {"train"}
    ds = read_dataset(built.root)
    assert ds.samples == built.samples
    summary = summarize_dataset(ds)
    assert summary["splits"]["train"]["samples"] == 4 and summary["splits"]["test"]["samples"] == 2
    assert summary["splits"]["train"]["videos"] == 1 and summary["splits"]["train"]["images"] == 1
    assert summary["leaked_sources"] == []


def test_hash_split_is_deterministic_and_never_splits_a_source() -> None:
    names = [f"clip{i:02d}.mp4" for i in range(20)]
    a = assign_splits(names, test_fraction=0.2, seed=0)
    assert a == assign_splits(list(reversed(names)), test_fraction=0.2, seed=0)
    assert sum(v == "test" for v in a.values()) == 4
    assert a != assign_splits(names, test_fraction=0.2, seed=1)
    assert list(assign_splits(["a", "b"], test_fraction=0.1).values()).count("test") == 1  # at least one
    assert set(assign_splits(["a"], test_fraction=0.5).values()) == {"train"}  # never all test
    assert assign_splits(names, test_fraction=0.2, test_patterns=("clip0[12]*",))["clip02.mp4"] == "test"
    with pytest.raises(InputError, match="--test-source 'zzz\\*' matches none of the 20 sources"):
        assign_splits(names, test_fraction=0.2, test_patterns=("clip01*", "zzz*"))  # not an empty test split


def test_scene_cut_keyframes(tmp_path: Path) -> None:
    dark = [np.full((48, 64, 3), 30 + i, np.uint8) for i in range(5)]
    bright = [np.full((48, 64, 3), 220 - i, np.uint8) for i in range(4)]
    clip = _write_clip(tmp_path / "cut.mp4", dark + bright)
    assert [i for i, _ in select_frames(clip, every=0, select="cuts")] == [0, 5]
    assert [i for i, _ in select_frames(clip, every=2, select="cuts")] == [0, 2, 4, 5, 7]
    assert [i for i, _ in select_frames(clip, every=4, select="every")] == [0, 4, 8]
    assert [i for i, _ in select_frames(clip, every=1, max_frames=3)] == [0, 1, 2]


def test_worker_pool_writes_the_same_dataset(sources: Path, built, tmp_path: Path) -> None:
    pooled = build_dataset([sources / "clip_a.mp4", sources / "photo.png"], tmp_path / "p",
                           config=BuildConfig(every=3, workers=2))
    ref = {s.id: s for s in built.samples}
    assert len(pooled.samples) == 4
    for s in pooled.samples:
        assert s.fg_fraction == ref[s.id].fg_fraction
        a = cv2.imread(str(pooled.root / s.image))
        b = cv2.imread(str(built.root / ref[s.id].image))
        np.testing.assert_array_equal(a, b)


def test_long_side_and_errors(sources: Path, tmp_path: Path) -> None:
    ds = build_dataset([sources / "photo.png"], tmp_path / "small", config=BuildConfig(long_side=40, workers=1))
    assert (ds.samples[0].width, ds.samples[0].height) == (40, 30)
    with pytest.raises(InputError, match="already holds a dataset"):
        build_dataset([sources / "photo.png"], tmp_path / "small", config=BuildConfig(workers=1))
    ds = build_dataset([sources / "photo.png"], tmp_path / "small", config=BuildConfig(workers=1), overwrite=True)
    assert ds.samples[0].width == 80
    with pytest.raises(InputError, match="source not found"):
        find_sources([tmp_path / "nope.mp4"])
    with pytest.raises(InputError, match="not a video"):
        find_sources([sources / "readme.txt"])
    with pytest.raises(InputError, match="every must be"):
        BuildConfig(every=0)
    with pytest.raises(InputError, match="not a vidsr dataset"):
        read_dataset(tmp_path)
    # a folder scan skips the output folder and datasets inside it (an earlier build)
    scan = tmp_path / "scan"
    scan.mkdir()
    shutil.copy(sources / "photo.png", scan / "photo.png")
    build_dataset([scan], scan / "out", config=BuildConfig(workers=1))
    assert [s.name for s in find_sources([scan])] == ["photo.png"]


def test_cli_build_and_show(sources: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(dataset_group, ["build", str(sources / "photo.png"), str(sources / "clip_b.mp4"),
                                           "-o", str(tmp_path / "d"), "--every", "2", "--workers", "1",
                                           "--test-source", "photo.png"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(dataset_group, ["show", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "train: 2 samples from 1 sources (1 videos, 0 images)" in r.output
    assert "test: 1 samples from 1 sources (0 videos, 1 images)" in r.output
    r = CliRunner().invoke(dataset_group, ["show", str(tmp_path / "d"), "--json"])
    assert json.loads(r.output)["splits"]["test"]["sources"] == ["photo.png"]
    r = CliRunner().invoke(dataset_group, ["show", str(tmp_path)])
    assert r.exit_code == 1 and "is not a vidsr dataset" in r.output and "Traceback" not in r.output


class _DiscDepth:
    """Fake depth net: the centre ellipse of ``textured_frame`` is near (1.0), the rest far (0.2)."""

    name = "disc"
    batch = 1

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return 56, 84

    def run(self, batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[2:]
        yy, xx = np.mgrid[:h, :w]
        near = ((xx - w / 2) / (w / 4)) ** 2 + ((yy - h / 2) / (h / 3)) ** 2 < 1
        return np.repeat(np.where(near, 1.0, 0.2)[None], len(batch), axis=0).astype(np.float32)


def test_depth_map_mode_uses_the_in_focus_depth_band() -> None:
    image = textured_frame(0, width=192, height=128, seed=2)
    maps = frame_maps(image, depth_net=_DiscDepth())
    yy, xx = np.mgrid[:128, :192]
    disc = ((xx - 96) / 48) ** 2 + ((yy - 64) / (128 / 3)) ** 2 < 1
    assert (maps.binary == disc).mean() > 0.95
    assert maps.grey[disc].mean() > 200 and maps.grey[~disc].mean() < 60  # inverse depth: near is bright
