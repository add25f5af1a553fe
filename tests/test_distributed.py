from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from media import Track, make_clip, make_video, read_video, streams_of
from test_segments import make_gop_video

from vidsr.cli import main
from vidsr.scaleout.ray import ScaleOut, upscale_distributed
from vidsr.media.codecs import EncodeOptions
from vidsr.masks.focus import FocusEstimator
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="module")
def ray_session(ray_heads, tmp_path_factory):
    """Ray for the module: joined once to the session's head without authentication
    (tests/ray_heads.py), from a home of its own; the library uses it instead of starting its own
    (starting a private Ray, as a local run does, is tested in tests/test_ray_cluster.py)."""
    import ray
    import ray.cloudpickle

    from vidsr.scaleout import connect

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the flaky estimators below
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith("RAY_") and k != "RAY_CLIENT_MODE"]:
            mp.delenv(k)
        mp.setenv("HOME", str(tmp_path_factory.mktemp("driver-home")))
        with connect.ray_session(ray, address=ray_heads["off"].address, num_cpus=2, object_store_mb=80):
            yield ray


@dataclass
class FailOnce:
    """The focus estimator, but the first call in the whole run (any worker) raises."""

    marker: str
    name: str = "focus"

    def estimate(self, image: np.ndarray) -> np.ndarray:
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("injected worker failure")
        return FocusEstimator().estimate(image)


@dataclass
class AlwaysFail:
    name: str = "focus"

    def estimate(self, image: np.ndarray) -> np.ndarray:
        raise RuntimeError("injected worker failure")


def _config(tiny_ckpt: Path) -> UpscaleConfig:
    # crf 0 is lossless: pixel differences are the pipeline's, not the encoder's
    return UpscaleConfig(model=str(tiny_ckpt), tile=16, encode=EncodeOptions(crf=0, preset="ultrafast"))


def _same_as_one_process(single: Path, frames: list[np.ndarray], *, segment: int) -> None:
    # Tolerance: identical pixels from the 4th frame after a segment start on (the mask was warmed
    # up on 16 frames before the start); at the start itself the mask may differ slightly.
    for i, (x, y) in enumerate(zip(read_video(single)[0], frames, strict=True)):
        diff = np.abs(x.astype(int) - y.astype(int))
        if i % segment >= 4 or i < segment:
            assert diff.max() == 0, i
        else:
            assert diff.mean() < 0.5 and diff.max() <= 32, (i, diff.mean(), diff.max())


@needs_ray
def test_two_workers_equal_one_process_retry_a_failed_segment_and_reuse_cached_ones(tmp_path, tiny_ckpt,
                                                                                    ray_session):
    # the first mask estimate of the run (in either worker) raises: that segment is run again
    src = make_gop_video(tmp_path / "in.mp4", frames=48, gop=12, audio=True)
    marker = tmp_path / "failed-once"
    factory = functools.partial(FailOnce, str(marker))
    cfg = _config(tiny_ckpt)
    seen: list[tuple[int, int]] = []
    so = ScaleOut(workers=2, segment_s=1.0, cache_dir=tmp_path / "cache", keep_segments=True, retries=2)
    rep = upscale_distributed(src, tmp_path / "multi.mp4", config=cfg, scale_out=so, estimator_factory=factory,
                              mask_key="fail-once", on_progress=lambda done, total: seen.append((done, total)))
    assert marker.exists() and rep.retried == 1
    assert (rep.segments, rep.computed, rep.cached, rep.frames) == (2, 2, 0, 48)
    assert seen[-1] == (48, 48) and all(t == 48 for _, t in seen)
    # the output holds what an unfailing one-process run makes (the marker now exists)
    upscale_video(src, tmp_path / "single.mp4", config=cfg, estimator=FailOnce(str(marker)))
    a, pa, fa = read_video(tmp_path / "single.mp4")
    b, pb, fb = read_video(tmp_path / "multi.mp4")
    assert len(b) == len(a) == 48 and pb == pa and b[0].shape == a[0].shape == (96, 128, 3)
    assert fb["duration"] == fa["duration"] and fb["streams"] == fa["streams"] == ["video", "audio"]
    assert fb["audio"] == fa["audio"]
    _same_as_one_process(tmp_path / "single.mp4", b, segment=24)
    # every segment is cached: a second run computes nothing and writes the same file
    again = upscale_distributed(src, tmp_path / "again.mp4", config=cfg, scale_out=so, estimator_factory=factory,
                                mask_key="fail-once")
    assert (again.computed, again.cached) == (0, 2)
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "multi.mp4").read_bytes()


@needs_ray
def test_files_of_a_batch_share_the_cache_until_all_are_joined(tmp_path, tiny_ckpt, ray_session, monkeypatch):
    # the one-segment files finish at different times; the first joined must not take the cache
    # folder (out/.vidsr-segments) the other still writes into
    monkeypatch.chdir(tmp_path)
    Path("in").mkdir()
    make_gop_video(Path("in/big.mp4"), frames=24, gop=24, width=160, height=96)
    make_gop_video(Path("in/small.mp4"), frames=4, gop=12)
    r = CliRunner().invoke(main, ["upscale", "in", "-o", "out", "--workers", "2", "--model", str(tiny_ckpt), "-q"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in Path("out").iterdir()) == ["big.mp4", "small.mp4"]  # the cache folder is gone
    assert len(read_video(Path("out/big.mp4"))[0]) == 24 and len(read_video(Path("out/small.mp4"))[0]) == 4


@needs_ray
def test_a_segment_that_keeps_failing_fails_the_run_clearly(tmp_path, tiny_ckpt, ray_session):
    from vidsr.errors import SegmentError

    src = make_gop_video(tmp_path / "in.mp4", frames=12, gop=12)
    so = ScaleOut(workers=1, segment_s=1.0, retries=1)
    with pytest.raises(SegmentError, match=r"segment 1/1 of .*failed 2 times: RuntimeError: injected"):
        upscale_distributed(src, tmp_path / "out.mp4", config=_config(tiny_ckpt), scale_out=so,
                            estimator_factory=AlwaysFail, mask_key="always-fail")
    assert not (tmp_path / "out.mp4").exists()


def _facts(path: Path) -> dict:
    with contextlib.closing(av.open(str(path))) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        f = frames[0]
        return {"pts": [x.pts for x in frames], "time_base": v.time_base, "size": (f.width, f.height),
                "pix_fmt": f.format.name, "colour": (f.color_primaries, f.color_trc, f.colorspace, f.color_range),
                "rotation": int(f.rotation or 0), "streams": streams_of(path),
                "side": [(s.type, s.duration, s.start_time) for s in c.streams if s.type != "video"],
                "metadata": {k: v for k, v in c.metadata.items() if k.lower() != "encoder"}}


HDR10 = {"color_primaries": 9, "color_trc": 16, "colorspace": 9, "color_range": 1}


@pytest.mark.parametrize("name,make", [
    ("10-bit HDR rotated mkv, 2 audio + subtitles, title", lambda d: make_clip(
        d / "in.mkv", frames=24, pix_fmt="yuv420p10le", colour=HDR10, rotation=90, keyint=8,
        metadata={"title": "Concert"}, tracks=(Track(codec="aac", language="eng", title="Main", default=True),
                                               Track(codec="libopus", language="fra", title="Commentary"),
                                               Track(codec="subrip", language="deu", lines=((0, 400, "Hallo"),))))),
    ("variable frame rate with a start offset, mp4", lambda d: make_clip(
        d / "in.mp4", frames=24, pts=[100 + 40 * i + (i % 3) * 7 for i in range(24)], time_base=Fraction(1, 1000),
        keyint=8, tracks=(Track(language="eng"),))),
])
def test_segmented_run_keeps_what_a_one_process_run_keeps(tmp_path, tiny_ckpt, name, make):
    # workers=0: the same segment path as the Ray workers, in this process (no Ray start-up)
    src = make(tmp_path)
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, encode=EncodeOptions(preset="ultrafast"))
    upscale_video(src, tmp_path / f"single{src.suffix}", config=cfg)
    rep = upscale_distributed(src, tmp_path / f"seg{src.suffix}", config=cfg,
                              scale_out=ScaleOut(workers=0, segment_s=1 / 3))
    assert rep.segments == 3 and rep.frames == 24 and not rep.warnings
    assert _facts(tmp_path / f"seg{src.suffix}") == _facts(tmp_path / f"single{src.suffix}")


def test_workers_without_ray_is_one_line_naming_the_extra(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    src = make_video(tmp_path / "in.mp4", frames=3)
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_ckpt),
                                  "--workers", "2"])
    assert r.exit_code != 0 and "pip install 'vidsr[ray]'" in r.output, r.output
    assert r.output.strip().count("\n") == 0 and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("args,error", [(["--segment-s", "4"], "--segment-s needs --workers N"),
                                        (["--ray-address", "auto"], "--ray-address needs --workers N")])
def test_scale_out_options_need_workers(tmp_path, tiny_ckpt, args, error):
    src = make_video(tmp_path / "in.mp4", frames=2)
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_ckpt),
                                  *args])
    assert r.exit_code != 0 and error in r.output and not (tmp_path / "out.mp4").exists()


def test_single_process_run_never_imports_ray(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=3)
    code = ("import sys; from vidsr.cli import main; "
            f"main(['upscale', {str(src)!r}, '-o', {str(tmp_path / 'out.mp4')!r}, '--model', {str(tiny_ckpt)!r}, "
            "'-q'], standalone_mode=False); print('ray' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_batch_folder_skips_complete_outputs(tmp_path, tiny_ckpt):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a", "b"):
        make_video(clips / f"{name}.mp4", frames=4)
    (clips / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    args = ["upscale", str(clips), "-o", str(out), "--model", str(tiny_ckpt), "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]
    assert len(read_video(out / "a.mp4")[0]) == 4
    stamp = (out / "a.mp4").stat().st_mtime_ns
    (out / "b.mp4").write_bytes(b"half-written")  # not complete: done again
    r = CliRunner().invoke(main, args[:-1])
    assert r.exit_code == 0, r.output
    assert f"{out / 'a.mp4'}: complete, skipped" in r.output
    assert (out / "a.mp4").stat().st_mtime_ns == stamp
    assert len(read_video(out / "b.mp4")[0]) == 4
    r = CliRunner().invoke(main, ["upscale", str(tmp_path / "nothing-*.mp4"), "-o", str(out), "-q"])
    assert r.exit_code != 0 and "no files match" in r.output


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_segmented_run_with_b_frames(tmp_path, tiny_ckpt, suffix):
    # x264's default preset codes B-frames. Matroska keeps no decode times for them, so the parts go
    # in mp4; an mp4 part starts through an edit list in ms, which the join undoes, so every pts and
    # the duration equal a one-process run's; the joined file declares the input's frame rate
    src = make_clip(tmp_path / f"in{suffix}", frames=24, keyint=8)
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16)
    upscale_video(src, tmp_path / f"single{suffix}", config=cfg)
    rep = upscale_distributed(src, tmp_path / f"seg{suffix}", config=cfg,
                              scale_out=ScaleOut(workers=0, segment_s=1 / 3))
    assert rep.segments == 3 and rep.frames == 24 and not rep.warnings
    assert _facts(tmp_path / f"seg{suffix}")["pts"] == _facts(tmp_path / f"single{suffix}")["pts"]
    with contextlib.closing(av.open(str(tmp_path / f"seg{suffix}"))) as c, \
            contextlib.closing(av.open(str(tmp_path / f"single{suffix}"))) as one:
        assert abs(c.streams.video[0].average_rate - 24) < 0.1  # not one frame per time-base tick
        assert c.streams.video[0].duration == one.streams.video[0].duration
