from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import pytest
from media import make_video, read_video, textured_frame

from vidsr.composite import upscale_background
from vidsr.media.codecs import EncodeOptions
from vidsr.media.reader import probe
from vidsr.masks.focus import ConstantEstimator
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import processor_for, upscale_video
from vidsr.sr import sr_whole


def _processor(tmp_path, tiny_ckpt, value: float | None, *, full_frame: bool = False, bg: str = "bicubic"):
    video = make_video(tmp_path / "in.mp4", width=72, height=40)
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, batch=3, fg_threshold=0.5, full_frame=full_frame, bg=bg)
    est = ConstantEstimator(value) if value is not None else None
    return processor_for(probe(video), cfg, est)


@pytest.mark.parametrize("bg", ["bicubic", "lanczos"])
def test_empty_mask_gives_plain_upscale_and_runs_no_sr(tmp_path, tiny_ckpt, bg):
    proc = _processor(tmp_path, tiny_ckpt, 0.0, bg=bg)
    img = textured_frame(0, width=72, height=40)
    timings = {k: 0.0 for k in ("mask", "sr", "background", "composite")}
    res = proc.process(img, timings)
    out = res.image
    assert res.tiles == [] and timings["sr"] < 1e-3
    np.testing.assert_array_equal(out, upscale_background(img, scale=2, method=bg))


def test_full_mask_equals_whole_frame_sr(tmp_path, tiny_ckpt):
    proc = _processor(tmp_path, tiny_ckpt, 1.0)
    img = textured_frame(0, width=72, height=40)
    res = proc.process(img, {k: 0.0 for k in ("mask", "sr", "background", "composite")})
    out = res.image
    assert len(res.tiles) == len(proc.plan)
    whole = sr_whole(proc.engine, img)
    full = _processor(tmp_path, tiny_ckpt, None, full_frame=True)
    res_full = full.process(img, {k: 0.0 for k in ("mask", "sr", "background", "composite")})
    assert res_full.windows is full.full_windows  # planned once, not per frame
    np.testing.assert_array_equal(res_full.image, full.process(img, {k: 0.0 for k in ("sr", "composite")}).image)
    assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1


def test_partial_mask_blends_between_background_and_sr(tmp_path, tiny_ckpt):
    proc = _processor(tmp_path, tiny_ckpt, None)
    img = textured_frame(0, width=72, height=40)
    res = proc.process(img, {k: 0.0 for k in ("mask", "sr", "background", "composite")})
    out, mask = res.image, res.mask
    assert 0 < len(res.tiles) < len(proc.plan)
    bg = upscale_background(img, scale=2)
    sr = sr_whole(proc.engine, img)
    import cv2

    alpha = cv2.resize(mask.alpha, (144, 80), interpolation=cv2.INTER_LINEAR)
    ramp = (alpha > 0) & (alpha < 1)
    a = alpha[ramp][:, None]
    want = bg[ramp] + a * (sr[ramp].astype(np.float64) - bg[ramp])
    assert ramp.any() and np.abs(out[ramp] - want).max() <= 1.5  # the feathered blend, SR windows exact
    far = alpha == 0
    np.testing.assert_array_equal(out[far], bg[far])
    inside = alpha == 1
    assert inside.any() and np.abs(out[inside].astype(int) - sr[inside].astype(int)).max() <= 1


def test_end_to_end_keeps_frames_pts_duration_and_audio(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=12, width=64, height=48, fps=24, audio=True)
    out = tmp_path / "out.mp4"
    report = upscale_video(src, out, config=UpscaleConfig(model=str(tiny_ckpt), tile=16))
    in_frames, in_pts, in_facts = read_video(src)
    out_frames, out_pts, out_facts = read_video(out)
    assert report.frames == len(out_frames) == len(in_frames) == 12
    assert out_frames[0].shape == (96, 128, 3)
    assert out_pts == in_pts
    assert out_facts["time_base"] == in_facts["time_base"]
    assert out_facts["duration"] == in_facts["duration"]
    assert out_facts["audio"] == in_facts["audio"]  # codec, duration and start copied unchanged
    assert not list(tmp_path.glob(".*vidsr-*"))  # no temp file left
    # the network ran on the SR cores and their context, never more than the frames hold
    assert 0 < report.pixels_sr <= report.pixels_window <= report.pixels_total == 12 * 64 * 48


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_variable_frame_rate_and_start_offset_are_kept(tmp_path, tiny_ckpt, ext):
    from fractions import Fraction

    steps = [40, 80, 40, 33, 120, 40, 42, 40]
    src = make_video(tmp_path / f"vfr{ext}", frames=8, pts_step=steps, time_base=Fraction(1, 1000),
                     start_pts=500)
    out = tmp_path / f"vfr_out{ext}"
    upscale_video(src, out, config=UpscaleConfig(model=str(tiny_ckpt), tile=16))
    _, in_pts, in_facts = read_video(src)
    _, out_pts, out_facts = read_video(out)
    assert out_pts == in_pts and out_facts["time_base"] == in_facts["time_base"]
    assert in_pts[0] * in_facts["time_base"] == Fraction(1, 2)  # 0.5 s start offset
    assert len(set(np.diff(in_pts))) > 1


def test_save_mask_writes_aligned_grey_video(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=6)
    out, mask = tmp_path / "out.mp4", tmp_path / "mask.mp4"
    upscale_video(src, out, config=UpscaleConfig(model=str(tiny_ckpt), tile=16, save_mask=mask))
    frames, pts, _ = read_video(mask)
    _, out_pts, _ = read_video(out)
    assert pts == out_pts and frames[0].shape == (96, 128, 3)
    grey = frames[2].astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 3  # grey
    assert grey[48, 64].mean() > 200 and grey[2, 2].mean() < 40  # subject centre on, corner off


def test_deep_frames_keep_their_precision_through_sr(tmp_path, tiny_ckpt):
    proc = _processor(tmp_path, tiny_ckpt, 1.0)  # full mask: every pixel through SR
    ramp = np.linspace(20000, 21000, 72 * 40, dtype=np.float64).reshape(40, 72)  # < 4 8-bit steps
    img = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint16)
    res = proc.process(img, {k: 0.0 for k in ("mask", "sr", "background", "composite")})
    assert res.image.dtype == np.uint16 and res.image.shape == (80, 144, 3)
    assert len(np.unique(res.image[..., 1])) > 64  # an 8-bit path would leave a handful of levels
    whole = sr_whole(proc.engine, img)
    assert np.abs(res.image.astype(int) - whole.astype(int)).max() <= 1


def test_mask_stage_runs_in_its_own_thread(tmp_path, tiny_ckpt):
    # the estimator scores upcoming frames while the network upscales the current one
    import threading
    from dataclasses import dataclass, field

    from vidsr.masks.focus import FocusEstimator

    @dataclass
    class Recording:
        threads: list = field(default_factory=list)
        name: str = "focus"

        def estimate(self, image):
            self.threads.append(threading.current_thread().name)
            return FocusEstimator().estimate(image)

    src = make_video(tmp_path / "in.mp4", frames=9, width=72, height=40)
    est = Recording()
    report = upscale_video(src, tmp_path / "out.mp4", config=UpscaleConfig(model=str(tiny_ckpt), tile=16, mask_every=2),
                           estimator=est)
    assert report.frames == 9 and report.mask_passes == 5
    assert est.threads == ["vidsr-mask"] * 5
    assert len(read_video(tmp_path / "out.mp4")[0]) == 9


def test_a_failing_mask_stage_fails_the_run_without_output(tmp_path, tiny_ckpt):
    class Broken:
        name = "focus"

        def estimate(self, image):
            raise RuntimeError("estimator broke")

    src = make_video(tmp_path / "in.mp4", frames=5, width=72, height=40)
    with pytest.raises(RuntimeError, match="estimator broke"):
        upscale_video(src, tmp_path / "out.mp4", config=UpscaleConfig(model=str(tiny_ckpt), tile=16),
                      estimator=Broken())
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*vidsr-*"))


def test_frames_upscaled_in_parallel_equal_one_at_a_time(tmp_path, tiny_ckpt, monkeypatch):
    """Frame workers: the same frames, pts, audio and pixels as the serial loop, each frame SR'd
    in a pool thread with its share of torch's and OpenCV's threads (both restored after the run)."""
    import threading

    import cv2
    import torch

    import vidsr.frame as frame
    from vidsr.platform import torch_threads

    src = make_video(tmp_path / "in.mp4", frames=11, width=64, height=48, fps=24, audio=True)
    seen: list[tuple[str, int, int]] = []
    real = frame.FrameProcessor.process

    def process(self, image, timings, mask=None):
        seen.append((threading.current_thread().name, torch.get_num_threads(), cv2.getNumThreads()))
        return real(self, image, timings, mask)

    monkeypatch.setattr(frame.FrameProcessor, "process", process)
    runs = {}
    with torch_threads(6):  # as on a 6-core machine
        threads_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
        for workers in (1, 3):
            seen.clear()
            out = tmp_path / f"out{workers}.mkv"
            cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, frame_workers=workers,
                                encode=EncodeOptions(codec="ffv1"))
            report = upscale_video(src, out, config=cfg)
            assert report.frames == 11
            runs[workers] = (read_video(out), list(seen))
            assert torch.get_num_threads() == threads_before and cv2.getNumThreads() == cv2_before
    (frames1, pts1, facts1), serial = runs[1]
    (frames3, pts3, facts3), pooled = runs[3]
    assert pts3 == pts1 and facts3["audio"] == facts1["audio"] and facts3["duration"] == facts1["duration"]
    assert all(np.array_equal(a, b) for a, b in zip(frames1, frames3)) and len(frames3) == 11
    assert {name for name, _, _ in serial} == {"MainThread"}
    assert all(name.startswith("vidsr-sr") for name, _, _ in pooled)
    assert {(t, c) for _, t, c in serial} == {(6, 6)} and {(t, c) for _, t, c in pooled} == {(2, 2)}


def test_a_slow_frame_does_not_hold_the_other_frame_worker(tmp_path, tiny_ckpt, monkeypatch):
    """With 2 frame workers, the third frame starts while the first is still being upscaled (one frame
    waits in the pool beyond its workers: no head-of-line blocking), and frames still leave in order."""
    import threading

    import vidsr.frame as frame

    real = frame.FrameProcessor.process
    third_started, first_saw = threading.Event(), []
    calls, lock = [], threading.Lock()

    def process(self, image, timings, mask=None):
        with lock:
            calls.append(1)
            n = len(calls)
        if n == 3:
            third_started.set()
        if n == 1:  # the first frame takes until the third one has started (10 s at most)
            first_saw.append(third_started.wait(10))
        return real(self, image, timings, mask)

    monkeypatch.setattr(frame.FrameProcessor, "process", process)
    src = make_video(tmp_path / "in.mp4", frames=6, width=64, height=48, fps=24)
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, frame_workers=2, encode=EncodeOptions(codec="ffv1"))
    report = upscale_video(src, tmp_path / "out.mkv", config=cfg)
    assert first_saw == [True] and report.frames == 6
    serial = upscale_video(src, tmp_path / "serial.mkv", config=dataclasses.replace(cfg, frame_workers=1))
    (frames, pts, _), (frames1, pts1, _) = read_video(tmp_path / "out.mkv"), read_video(tmp_path / "serial.mkv")
    assert serial.frames == 6 and pts == pts1 and all(np.array_equal(a, b) for a, b in zip(frames, frames1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_frame_workers_run_below_the_other_stages(tmp_path, tiny_ckpt, monkeypatch):
    """The SR pool's threads run SR_WORKER_NICE nice levels below the thread that started the run (the
    decode, mask and encode threads keep its priority); the output is the same as one worker's."""
    import threading

    import vidsr.frame as frame
    from vidsr.platform import SR_WORKER_NICE

    real = frame.FrameProcessor.process
    seen, lock = {}, threading.Lock()

    def process(self, image, timings, mask=None):
        with lock:
            tid = threading.get_native_id()
            seen[tid] = os.getpriority(os.PRIO_PROCESS, tid)
        return real(self, image, timings, mask)

    monkeypatch.setattr(frame.FrameProcessor, "process", process)
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    src = make_video(tmp_path / "in.mp4", frames=6, width=64, height=48, fps=24)
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, frame_workers=2, encode=EncodeOptions(codec="ffv1"))
    upscale_video(src, tmp_path / "out.mkv", config=cfg)
    assert seen and set(seen.values()) == {min(19, own + SR_WORKER_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
    seen.clear()
    upscale_video(src, tmp_path / "serial.mkv", config=dataclasses.replace(cfg, frame_workers=1))
    assert set(seen.values()) == {own}  # one worker: SR in the calling thread, as it was
    (frames, pts, _), (frames1, pts1, _) = read_video(tmp_path / "out.mkv"), read_video(tmp_path / "serial.mkv")
    assert pts == pts1 and all(np.array_equal(a, b) for a, b in zip(frames, frames1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_lower_thread_priority_changes_only_the_calling_thread():
    import threading

    from vidsr.platform import lower_thread_priority

    got = []

    def run():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        got.append((lower_thread_priority(0), os.getpriority(os.PRIO_PROCESS, tid) - before))
        got.append((lower_thread_priority(3), os.getpriority(os.PRIO_PROCESS, tid) - before))
        lower_thread_priority(40)
        got.append((os.getpriority(os.PRIO_PROCESS, tid), lower_thread_priority(1)))

    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    th = threading.Thread(target=run)
    th.start()
    th.join()
    assert got == [(False, 0), (own < 19, min(3, 19 - own)), (19, False)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_a_failing_frame_worker_fails_the_run_without_output(tmp_path, tiny_ckpt, monkeypatch):
    import vidsr.frame as frame

    real = frame.FrameProcessor.process
    calls = []

    def process(self, image, timings, mask=None):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("frame 4 broke")
        return real(self, image, timings, mask)

    monkeypatch.setattr(frame.FrameProcessor, "process", process)
    src = make_video(tmp_path / "in.mp4", frames=9, width=72, height=40)
    with pytest.raises(RuntimeError, match="frame 4 broke"):
        upscale_video(src, tmp_path / "out.mp4", config=UpscaleConfig(model=str(tiny_ckpt), tile=16, frame_workers=2))
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*vidsr-*"))
    with pytest.raises(Exception, match="--frame-workers must be >= 1"):
        upscale_video(src, tmp_path / "out.mp4", config=UpscaleConfig(model=str(tiny_ckpt), tile=16, frame_workers=0))


def test_default_frame_workers_by_mode_and_size():
    from vidsr.pipeline.config import FULL_FRAME_ONE_WORKER_PX, frame_workers
    from vidsr.platform import torch_threads

    big, small = FULL_FRAME_ONE_WORKER_PX, 960 * 540
    with torch_threads(2):
        assert frame_workers(UpscaleConfig(), lr_pixels=big) == 2  # partial SR: two frames at once
        assert frame_workers(UpscaleConfig(full_frame=True), lr_pixels=small) == 2
        # full-frame SR of large frames: one frame at a time (no faster with two, much more memory)
        assert frame_workers(UpscaleConfig(full_frame=True), lr_pixels=big) == 1
        assert frame_workers(UpscaleConfig(full_frame=True, frame_workers=2), lr_pixels=big) == 2
        assert frame_workers(UpscaleConfig(backend="ort"), lr_pixels=small) == 1
    with torch_threads(1):
        assert frame_workers(UpscaleConfig(), lr_pixels=small) == 1
