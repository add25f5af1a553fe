"""Live mode: paced senders (a pipe, 127.0.0.1 TCP and UDP) -> vidsr -> receivers decoding as frames
arrive; the deadline controller under an artificially slow engine; a sender that disconnects midway.

Loopback only, tiny frames (160x96), short streams (at most 3 s), bounded loops and timeouts; the
sender/receiver harness is :mod:`vidsr.bench.live_harness`, shared with benchmarks/live_latency.py.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from media import make_video, read_video
from vidsr.bench import live_harness as harness
from vidsr.bench.live_harness import free_port
from vidsr.composite import upscale_background
from vidsr.errors import InputError
from vidsr.media.codecs import EncodeOptions
from vidsr.frame import build_processor
from vidsr.media.live import device_format, live_by_default
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.deadline import DeadlineController
from vidsr.pipeline.live import LiveOptions, upscale_live
from vidsr.pipeline.run import load_engine

W, H, FPS = 160, 96, 25
VIDSR = [sys.executable, "-c", "from vidsr.cli import main; main()"]


def ts_chunks(tmp: Path, *, frames: int, audio: bool = False) -> list[bytes]:
    """An MPEG-TS stream of ``frames`` 160x96 frames, one chunk per video frame (audio muxed before it)."""
    return harness.ts_chunks(make_video(tmp / f"src-{frames}-{audio}.mkv", frames=frames, width=W, height=H,
                                        fps=FPS, audio=audio))


def tcp_sender(port: int, chunks: list[bytes], sent: list[float], *, timeout: float = 60.0) -> None:
    harness.tcp_sender(port, chunks, sent, fps=FPS, timeout=timeout)


def paced(chunks: list[bytes], send) -> list[float]:
    return harness.paced(chunks, send, fps=FPS)


@pytest.fixture(autouse=True)
def _svt_quiet(monkeypatch):
    """Choosing the encoder sets SVT_LOG for the process (vidsr.media.codecs.quiet_svt): undone after each test."""
    monkeypatch.setenv("SVT_LOG", os.environ.get("SVT_LOG", "1"))


@pytest.fixture(scope="module")
def live_config(tiny_ckpt) -> UpscaleConfig:
    return UpscaleConfig(model=str(tiny_ckpt), tile=16)


@pytest.fixture(scope="module")
def engine(live_config):
    """Loaded once: a live run given it starts listening at once."""
    return load_engine(live_config)


@pytest.fixture(scope="module")
def chunks20(tmp_path_factory) -> list[bytes]:
    return ts_chunks(tmp_path_factory.mktemp("live"), frames=20)


# ------------------------------------------------------------------------------------- defaults


def test_live_by_default_for_streams_and_pipes_not_files(tmp_path, monkeypatch):
    assert live_by_default("udp://127.0.0.1:5000", "out.mkv") and live_by_default("/dev/video0", "out.mkv")
    assert live_by_default("-", "tcp://127.0.0.1:9000") and live_by_default("-", "-")
    assert live_by_default("-", "out.mkv") and not live_by_default("-", "frames/%06d.png")
    assert not live_by_default("in.mp4", "-")
    clip = tmp_path / "clip.mkv"
    clip.write_bytes(b"x")
    with open(clip, "rb") as f:  # `< clip.mkv`: a regular file on stdin is read as a file
        monkeypatch.setattr("sys.stdin", f)
        assert not live_by_default("-", "-")
    assert device_format("v4l2:/dev/video2") == ("v4l2", "/dev/video2") and device_format("clip.mp4") is None


# ------------------------------------------------------------------------------------- controller


def test_controller_cuts_when_late_and_recovers_with_hysteresis():
    c = DeadlineController(budget_s=0.04, tiles_total=60, workers=2, target_s=0.3, hold=10)
    for _ in range(5):  # on time: no limit
        c.observe(latency_s=0.1, sr_s=0.03, other_s=0.005, tiles=20, selected=20)
    assert c.limit() is None
    c.observe(latency_s=0.5, sr_s=0.12, other_s=0.005, tiles=20, selected=20)  # slow tiles, late
    cut = c.limit()
    assert cut is not None and cut < 20
    for _ in range(20):  # in the dead band (target/2 .. target): nothing moves
        c.observe(latency_s=0.2, sr_s=0.002 * cut, other_s=0.005, tiles=cut, selected=20)
    assert c.limit() == cut
    for _ in range(60):  # calm and cheap again: grows back by steps, then no limit
        c.observe(latency_s=0.08, sr_s=0.002 * (c.limit() or 20), other_s=0.005, tiles=c.limit() or 20, selected=20)
    assert c.limit() is None and c.changes <= 5


def test_controller_does_not_cut_again_while_the_backlog_drains():
    c = DeadlineController(budget_s=0.04, tiles_total=60, workers=2, target_s=0.3, hold=10)
    c.observe(latency_s=0.1, sr_s=0.03, other_s=0.0, tiles=20, selected=20)
    c.observe(latency_s=0.6, sr_s=0.03, other_s=0.0, tiles=20, selected=20)
    cut = c.limit()
    for lat in np.linspace(0.58, 0.32, 10):  # still late, but falling
        c.observe(latency_s=float(lat), sr_s=0.002 * cut, other_s=0.0, tiles=cut, selected=20)
    assert c.limit() == cut


def test_controller_primed_with_a_tile_cost_caps_the_first_frames():
    c = DeadlineController(budget_s=0.04, tiles_total=60, workers=2, target_s=0.3)
    c.prime(0.01)  # 10 ms a tile: 2 workers x 40 ms x 0.85 fit 6 tiles
    assert c.limit() == 6
    slow = DeadlineController(budget_s=0.04, tiles_total=60, workers=2)
    slow.prime(1.0)  # not one tile fits: one still goes through SR, to keep measuring
    assert slow.limit() == 1
    cheap = DeadlineController(budget_s=0.04, tiles_total=60, workers=2)
    cheap.prime(0.0001)  # every tile fits: no cap
    assert cheap.limit() is None


# ------------------------------------------------------------------------------------- frame cap


def test_tile_cap_keeps_the_most_in_focus_tiles_and_plain_upscale_elsewhere(live_config):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    engine = load_engine(live_config)
    proc = build_processor(engine=engine, height=H, width=W, tile=16, merge_px=None)
    mask = proc.tracker.update(image)
    yy, xx = np.mgrid[:H, :W]
    score = np.exp(-((xx - 120) ** 2 + (yy - 48) ** 2) / 800.0).astype(np.float32)  # focus on the right
    alpha = (score > 0.05).astype(np.float32)
    mask = type(mask)(alpha=alpha, binary=alpha > 0, score=score, anchor=True, cut=False)
    full = proc.process(image, defaultdict(float), mask=mask)
    capped = proc.process(image, defaultdict(float), mask=mask, max_tiles=3)
    assert full.dropped == 0 and len(capped.tiles) == 3 and capped.dropped == len(full.tiles) - 3
    assert set(capped.tiles) <= set(full.tiles)
    centre = proc.plan.tiles[capped.tiles[0]]
    assert all(abs((t.x0 + t.x1) / 2 - 120) <= 24 for t in (proc.plan.tiles[i] for i in capped.tiles)), centre
    bicubic = upscale_background(image, scale=2)
    inside = np.zeros((H * 2, W * 2), bool)
    for i in capped.tiles:
        t = proc.plan.tiles[i]
        inside[t.y0 * 2:t.y1 * 2, t.x0 * 2:t.x1 * 2] = True
    assert np.array_equal(capped.image[~inside], bicubic[~inside])  # the dropped tiles: plain upscale
    assert not np.array_equal(capped.image[inside], bicubic[inside])
    none = proc.process(image, defaultdict(float), mask=mask, max_tiles=0)  # live's path when the cap is 0
    assert none.tiles == [] and none.windows == [] and none.dropped == len(full.tiles)
    assert np.array_equal(none.image, bicubic)


# ------------------------------------------------------------------------------------- end to end


def test_pipe_stream_comes_out_as_it_goes_in(tmp_path, live_config, engine, monkeypatch):
    """A paced MPEG-TS pipe on stdin -> upscale_live("-", "-") -> a pipe on stdout read by a receiver
    that decodes as frames arrive (OS pipes, as `producer | vidsr upscale - -o - | player`, in this
    process: the SIGTERM test below runs the command): every frame, in order, each within a bounded
    time of being sent, and the stream ends soon after the input ends. ~2.5 s."""
    n = 40
    chunks = ts_chunks(tmp_path, frames=n)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(open(in_r, "rb")))
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(open(out_w, "wb")))
    config = UpscaleConfig(model=live_config.model, tile=16, encode=EncodeOptions(container="mpegts"))
    reports = []
    run = threading.Thread(target=lambda: reports.append(upscale_live("-", "-", config=config, engine=engine)),
                           daemon=True)
    run.start()
    got: list[tuple[float, float]] = []
    with open(out_r, "rb", buffering=0) as out:  # reads what has arrived
        rx = threading.Thread(target=harness.receive, args=(out, got), daemon=True)
        rx.start()
        sent = harness.pipe_sender(open(in_w, "wb"), chunks, fps=FPS)
        run.join(timeout=30)
        sys.stdout.close()  # the end of the output stream (the CLI does this when the run ends)
        rx.join(timeout=10)
    stats = harness.latency_stats(sent, got, fps=FPS)
    assert reports and reports[0].frames == n
    assert stats["frames_out"] == n and stats["in_order"]
    # generous bounds for a loaded 2-core machine; benchmarks/live_latency.py measures properly
    assert stats["p50_s"] < 1.0 and stats["max_s"] < 2.0, stats
    assert stats["end_after_input_s"] < 1.5  # the stream ends soon after the input ends


def test_tcp_sender_that_disconnects_midway_leaves_a_valid_output(tmp_path, live_config, engine):
    chunks = ts_chunks(tmp_path, frames=50, audio=True)
    port = free_port()
    sent: list[float] = []
    tx = threading.Thread(target=tcp_sender, args=(port, chunks[:20], sent), daemon=True)  # then hangs up
    tx.start()
    out = tmp_path / "out.mkv"
    report = upscale_live(f"tcp://127.0.0.1:{port}?listen", out, config=live_config, engine=engine)
    tx.join(timeout=10)
    frames, pts, _ = read_video(out)
    assert 17 <= report.frames == len(frames) <= 20  # the last packets may be cut off
    assert frames[0].shape == (H * 2, W * 2, 3) and pts == sorted(pts)
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    assert report.first_output_s is not None and report.latency(95) < 2.0 and report.dropped == 0


def test_tcp_reconnect_continues_the_stream_with_its_audio(tmp_path, live_config, engine):
    """Two connections, each with audio muxed ahead of its first video frame: the output goes on on
    one clock, video and audio both, the audio of the second connection placed after the first's."""
    chunks = ts_chunks(tmp_path, frames=15, audio=True)
    port = free_port()

    def twice() -> None:
        tcp_sender(port, chunks, [])
        tcp_sender(port, chunks, [], timeout=10)

    tx = threading.Thread(target=twice, daemon=True)
    tx.start()
    out = tmp_path / "out.nut"
    report = upscale_live(f"tcp://127.0.0.1:{port}?listen", out, config=live_config, engine=engine,
                          options=LiveOptions(reconnect=True, reconnect_s=1.0))
    tx.join(timeout=10)
    frames, pts, _ = read_video(out)
    assert report.reconnects >= 1 and len(frames) == report.frames >= 28
    assert all(b > a for a, b in zip(pts, pts[1:]))  # one clock across the two connections
    with av.open(str(out)) as c:
        audio = [(float(p.pts * p.time_base), p.duration * p.time_base) for p in c.demux(audio=0) if p.pts is not None]
        video_end = float((pts[-1] - pts[0]) * c.streams.video[0].time_base)
    times = [t for t, _ in audio]
    assert times == sorted(times) and len(set(times)) == len(times)
    # both connections' audio, on the video's clock: it ends with the video, not ~0.6 s early
    assert abs((times[-1] - times[0]) - video_end) < 0.15, (times[0], times[-1], video_end)


def test_udp_stream_that_stops_finishes_cleanly(tmp_path, live_config, engine, chunks20):
    chunks = chunks20
    port = free_port(socket.SOCK_DGRAM)

    def send() -> None:
        time.sleep(0.5)  # until vidsr binds the port (its engine is loaded already)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            def datagrams(chunk: bytes) -> None:
                for i in range(0, len(chunk), 1316):  # 7 TS packets per datagram
                    s.sendto(chunk[i:i + 1316], ("127.0.0.1", port))
            paced(chunks, datagrams)

    tx = threading.Thread(target=send, daemon=True)
    tx.start()
    out = tmp_path / "out.ts"
    report = upscale_live(f"udp://127.0.0.1:{port}", out, config=live_config, engine=engine,
                          options=LiveOptions(stall_s=0.5))
    tx.join(timeout=10)
    frames, pts, _ = read_video(out)
    assert len(frames) == report.frames >= 16 and pts == sorted(pts)


class SlowEngine:
    """An engine that sleeps ``s_per_px`` per window pixel while ``slow`` is set."""

    def __init__(self, inner, s_per_px: float) -> None:
        self.inner, self.s_per_px, self.slow = inner, s_per_px, threading.Event()
        self.descriptor, self.label, self.trims = inner.descriptor, "slow", False

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.slow.is_set():
            time.sleep(self.s_per_px * batch.shape[0] * batch.shape[2] * batch.shape[3])
        return self.inner.run(np.ascontiguousarray(batch))


def test_controller_cuts_coverage_under_a_slow_engine_and_restores_it(tmp_path, live_config, engine):
    """Slow for 30 frames (full coverage would take ~3 frame periods per frame), then fast:
    coverage drops, every frame still comes out in order, and coverage comes back."""
    frames = 75
    chunks = ts_chunks(tmp_path, frames=frames)
    port = free_port()
    engine = SlowEngine(engine, s_per_px=0.0)
    engine.s_per_px = 3 * 2 / FPS / (W * H)  # full SR of a frame: 3 periods of 2 workers' budget
    engine.slow.set()
    tx = threading.Thread(target=tcp_sender, args=(port, chunks, []), daemon=True)
    tx.start()
    kept: list[float] = []

    def on_frame(report) -> None:
        kept.append(report.kept_sum - sum(kept))
        if report.frames == 30:
            engine.slow.clear()

    out = tmp_path / "out.nut"
    report = upscale_live(f"tcp://127.0.0.1:{port}?listen", out, engine=engine, on_frame=on_frame,
                          config=UpscaleConfig(model=live_config.model, tile=16, merge=False, frame_workers=2))
    tx.join(timeout=10)
    got, pts, _ = read_video(out)
    assert report.frames == len(got) == frames and pts == sorted(pts) and report.dropped == 0
    assert min(kept) < 0.7 and report.coverage_kept < 1.0  # cut while slow
    assert np.mean(kept[-15:]) > np.mean(kept[5:30]) + 0.25  # grown back once fast again (all of it when idle)
    assert report.coverage_changes <= 12  # steps, not flicker


def test_drop_late_drops_only_when_asked_and_counts_them(tmp_path, live_config, engine, chunks20):
    """A stream processed at half real time (80 ms per 40 ms frame): with --drop-late, frames past the
    deadline are dropped, counted and reported, the rest come out in order; without it none is. ~3.5 s."""
    chunks = chunks20
    n = len(chunks)

    def run(drop_late: bool):
        port = free_port()
        tx = threading.Thread(target=tcp_sender, args=(port, chunks, []), daemon=True)
        tx.start()
        out = tmp_path / f"out-{drop_late}.nut"
        report = upscale_live(f"tcp://127.0.0.1:{port}?listen", out, config=live_config, engine=engine,
                              on_frame=lambda r: time.sleep(0.08),  # a slow stage after SR: cutting tiles cannot help
                              options=LiveOptions(drop_late=drop_late, target_s=0.2))
        tx.join(timeout=10)
        _, pts, _ = read_video(out)
        assert len(pts) == report.frames and all(b > a for a, b in zip(pts, pts[1:]))
        return report, pts

    kept, _ = run(drop_late=False)
    assert kept.frames == n and kept.dropped == 0 and kept.late > 0
    dropped, pts = run(drop_late=True)
    assert dropped.dropped > 0 and dropped.frames + dropped.dropped == n and pts[0] == 0
    assert f"{dropped.dropped} dropped" in dropped.live_summary()


@pytest.fixture(scope="module", autouse=True)
def sigterm_subject(tmp_path_factory, tiny_ckpt):
    """`vidsr upscale - -o out.mkv` (a pipe: live by default), started with the module: its start-up
    (importing torch: seconds on a loaded machine) overlaps the other tests, which mostly wait on
    paced senders; it waits for its input meanwhile."""
    out = tmp_path_factory.mktemp("sigterm") / "out.mkv"
    p = subprocess.Popen([*VIDSR, "upscale", "-", "-o", str(out), "--model", str(tiny_ckpt), "--tile", "16"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    yield p, out
    p.kill()
    p.communicate(timeout=30)


def test_sigterm_closes_a_live_output_validly(sigterm_subject, chunks20):
    """SIGTERM to `vidsr upscale - -o out.mkv` while the stream is still open: exit 143, and out.mkv
    holds the frames done so far, playable. ~1 s once the process is up."""
    chunks = chunks20
    p, out = sigterm_subject
    tmp_path = out.parent
    try:
        for chunk in chunks:  # all at once; the stream stays open
            p.stdin.write(chunk)
        p.stdin.flush()
        give_up, last = time.monotonic() + 60, (-1, 0.0)
        while time.monotonic() < give_up and p.poll() is None:  # until the temp output stops growing
            size = sum(f.stat().st_size for f in tmp_path.iterdir() if f.name.startswith(".out.vidsr-"))
            if size != last[0]:
                last = (size, time.monotonic())
            elif size > 0 and time.monotonic() - last[1] > 0.4:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
        p.wait(timeout=30)
    err = err.decode()
    assert p.returncode == 143, err
    frames, pts, _ = read_video(out)
    assert 16 <= len(frames) <= 20 and frames[0].shape == (H * 2, W * 2, 3) and all(b > a for a, b in zip(pts, pts[1:]))
    assert f"{len(frames)} frames" in err and "terminated: the output was closed" in err
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".out.vidsr-")]  # no temp file left


def test_empty_stdin_in_live_mode_says_so(monkeypatch, live_config, engine):
    """A pipe on stdin closed before any byte (`: | vidsr upscale - ...`, live by default), and /dev/null:
    the error says stdin was empty, not that the data was invalid."""
    r, w = os.pipe()
    os.close(w)
    for fd in (r, os.open(os.devnull, os.O_RDONLY)):
        with open(fd, "rb") as f:
            monkeypatch.setattr("sys.stdin", io.TextIOWrapper(f))
            with pytest.raises(InputError, match="stdin was empty"):
                upscale_live("-", "-", config=live_config, engine=engine)
