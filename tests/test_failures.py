"""What users see when something fails part-way (issue 30): a prompt non-zero exit with one line, no
hang, no temp file, the frames before a read error kept (or nothing with --strict), repaired
timestamps, the pixel-format fallback, resume after a lost segment, broken shipped weights.
~5 s in all on 2 cores."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import re
import resource
import signal
import sys
import threading
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from click.testing import CliRunner

from media import make_clip, make_video, read_video
from vidsr.cli import main
from vidsr.errors import OutputError
from vidsr.media import reader as reader_module
from vidsr.media.codecs import EncodeOptions
from vidsr.media.reader import probe
from vidsr.media.writer import VideoWriter
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video
from vidsr.weights import models_dir


def _run(*args) -> tuple[int, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".vidsr-" in p.name]


# ----------------------------------------------------------------------------- encoder fails mid-stream


FRAMES = 60


def _disk_full_run(tmp_path: Path, ckpt: Path) -> tuple[BaseException | None, list[int], bool]:
    """Upscale 60 noise frames (~15 kB each once upscaled: ~1 MB) with files limited to 64 kB (less than
    the 256 KiB libavformat buffers before it writes to a file). Returns the error, the frames done
    before it, whether it hung."""
    rng = np.random.default_rng(0)
    src = tmp_path / "noise.mkv"
    with contextlib.closing(av.open(str(src), "w")) as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt, v.options = 64, 48, "yuv420p", {"qp": "0", "preset": "ultrafast"}
        for i in range(FRAMES):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    done: list[int] = []
    result: dict[str, BaseException] = {}

    def run() -> None:
        try:
            upscale_video(src, tmp_path / "out.mp4", config=UpscaleConfig(model=str(ckpt), tile=32, full_frame=True),
                          on_frame=lambda rep: done.append(rep.frames))
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            result["error"] = e

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, hard))
    try:
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout=60)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    return result.get("error"), done, t.is_alive()


def test_disk_full_stops_the_run_early_with_one_message_and_leaves_nothing(tmp_path, tiny_ckpt):
    # the writer flushes each packet to the file, so the first write past the limit fails the next
    # mux (before: libavformat's 256 KiB AVIO buffer hid it until close, after all 60 frames)
    error, done, hung = _disk_full_run(tmp_path, tiny_ckpt)
    assert not hung, "the run hung after the write failed"
    assert isinstance(error, OSError), error
    assert "out.mp4 failed: File too large (the disk is full or a file-size limit was reached)" in str(error)
    assert len(done) < FRAMES * 2 // 3, len(done)  # ~64 kB at ~15 kB a frame, plus the encoder's delay
    assert not (tmp_path / "out.mp4").exists() and not _leftovers(tmp_path)


class _FullDisk:
    """stdout's buffer on a disk that fills after ``limit`` bytes (PyAV writes a pipe through it)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.written = limit, 0

    def write(self, data) -> int:
        if self.written + len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("name,most", [("out.mp4", 32), ("out.mov", 32),
                                       ("-", 48),  # Matroska into a pipe: 1 s clusters
                                       ("out.mkv", 5 * 24 + 24)])  # Matroska into a file: 5 s clusters
def test_a_full_disk_fails_the_write_within_a_few_frames(tmp_path, monkeypatch, name, most):
    # writer level, 64x48 noise into 16 kB: mp4 and mov fail ~5 frames past the limit plus the
    # encoder's delay (~11 frames at veryfast; measured 18), stdout once a cluster fills (28), a
    # Matroska file once its 5 s cluster is written (132). ~0.5 s for all four.
    info = probe(make_video(tmp_path / "in.mp4", frames=2))
    if name == "-":
        monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=_FullDisk(16_000)))
    rng = np.random.default_rng(0)
    written = 0
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, hard))
    try:
        w = VideoWriter(path=name if name == "-" else tmp_path / name, info=info, width=64, height=48,
                        options=EncodeOptions(), copy_streams=False)
        with pytest.raises(OutputError, match=r"failed: .*(File too large|No space left)"):
            for i in range(10 * 24):
                w.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), pts=round(i / 24 / info.time_base),
                        time_base=info.time_base, duration=None)
                written += 1
            w.close()
        w.abort()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert written < most, written


# ----------------------------------------------------------------------------- demux error mid-file


@pytest.fixture
def read_fails_after_8_packets(monkeypatch):
    """The demuxer raises as a damaged file's would after 8 packets (FFmpeg's own errors depend on
    where the damage lands; this fixes the place)."""
    real = reader_module.Reader._start

    def start(self, **kw):
        real(self, **kw)
        packets = self._packets

        def failing():
            for n, p in enumerate(packets):
                if n == 8:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
                yield p
        self._packets = failing()

    monkeypatch.setattr(reader_module.Reader, "_start", start)


def test_read_error_mid_file_keeps_the_frames_before(tmp_path, tiny_ckpt, read_fails_after_8_packets):
    src = make_clip(tmp_path / "in.mkv", frames=16)
    out = tmp_path / "out.mkv"
    code, output = _run("upscale", src, "-o", out, "--model", tiny_ckpt, "--tile", "16", "-q")
    assert code == 0, output
    warning = [line for line in output.splitlines() if "failed after" in line]
    assert len(warning) == 1 and "the frames before were kept" in warning[0], output
    frames, pts, _ = read_video(out)
    kept = int(warning[0].split("failed after ")[1].split()[0])
    assert 1 <= len(frames) == kept < 16 and pts == sorted(set(pts))
    assert frames[0].shape == (96, 128, 3)


def test_read_error_mid_file_with_strict_fails(tmp_path, tiny_ckpt, read_fails_after_8_packets):
    src = make_clip(tmp_path / "in.mkv", frames=16)
    out = tmp_path / "out.mkv"
    code, output = _run("upscale", src, "-o", out, "--model", tiny_ckpt, "--tile", "16", "--strict")
    assert code == 1
    assert "--strict: reading" in _error_line(output) and "(no output written)" in output
    assert not out.exists() and not _leftovers(tmp_path)


# ----------------------------------------------------------------------------- timestamps


def _mpeg2_ts(path: Path, pts: list[int]) -> Path:
    """An MPEG-TS whose packets carry ``pts`` (in 1/24 s) as they are: backwards and repeated ones too."""
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream("mpeg2video", rate=24)
        v.width, v.height, v.pix_fmt, v.time_base = 64, 48, "yuv420p", Fraction(1, 24)
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + 30 * i, np.uint8), format="rgb24")
            f.pts = i
            for pk in v.encode(f):
                pk.pts = p
                c.mux(pk)
        c.mux(v.encode(None))
    return path


def test_backwards_and_repeated_pts_are_repaired(tmp_path, tiny_ckpt):
    src = _mpeg2_ts(tmp_path / "bad-pts.ts", [0, 1, 2, 1, 4, 5])
    with av.open(str(src)) as c:
        raw = [f.pts for f in c.decode(video=0)]
    assert any(b <= a for a, b in zip(raw, raw[1:])), raw  # the input really has them
    out = tmp_path / "out.mkv"
    code, output = _run("upscale", src, "-o", out, "--model", tiny_ckpt, "--tile", "16", "-q")
    assert code == 0, output
    assert "frame(s) had missing or out-of-order timestamps; they were given the next free ones" in output
    frames, pts, _ = read_video(out)
    assert len(frames) == len(raw) and all(b > a for a, b in zip(pts, pts[1:])), pts
    # the grey levels keep their order: no frame was dropped or swapped by the repair
    levels = [int(f.mean()) for f in frames]
    assert levels == sorted(levels), levels


def test_missing_pts_come_from_the_frame_rate(tmp_path, tiny_ckpt):
    src = tmp_path / "raw.h264"  # an elementary stream: no timestamps at all
    with contextlib.closing(av.open(str(src), "w")) as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + 30 * i, np.uint8), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    with av.open(str(src)) as c:
        assert {f.pts for f in c.decode(video=0)} == {None}
    out = tmp_path / "out.mkv"
    code, output = _run("upscale", src, "-o", out, "--model", tiny_ckpt, "--tile", "16", "-q")
    assert code == 0, output
    frames, pts, _ = read_video(out)
    assert len(frames) == 6
    assert pts == [round(i * 1000 / 24) for i in range(6)]  # 1/24 s apart, in Matroska's ms


# ----------------------------------------------------------------------------- pixel-format fallback


def test_codec_without_the_inputs_pixel_format_falls_back_with_a_warning(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=3, pix_fmt="yuv444p")
    out = tmp_path / "out.avi"
    code, output = _run("upscale", src, "-o", out, "--model", tiny_ckpt, "--tile", "16", "--codec", "mpeg4", "-q")
    assert code == 0, output
    assert "codec mpeg4 cannot encode yuv444p; writing yuv420p" in output
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in c.decode(video=0)) == 3


# ----------------------------------------------------------------------------- resume after a lost segment


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_resume_redoes_a_lost_segment(tmp_path, tiny_ckpt, damage):
    src = make_clip(tmp_path / "in.mkv", frames=12, keyint=3)
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, resume=True, segment_frames=3)

    def interrupt(report):
        if report.frames == 8:
            raise KeyboardInterrupt

    out = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, out, config=cfg, on_frame=interrupt)
    work = tmp_path / ".out.mkv.vidsr-resume"
    second = work / "seg-00001.nut"
    if damage == "deleted":
        second.unlink()
    else:
        second.write_bytes(second.read_bytes()[: second.stat().st_size // 2])
    report = upscale_video(src, out, config=cfg)
    assert (report.resumed_frames, report.frames) == (3, 9) and not work.exists()
    one = upscale_video(src, tmp_path / "one.mkv", config=cfg)
    assert one.frames == 12
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (out, tmp_path / "one.mkv")]
    assert digest[0] == digest[1]


# ----------------------------------------------------------------------------- broken shipped weights


@pytest.mark.parametrize("damage,message", [
    ("missing", "model 'compact-x2-lite' is in the manifest but .*compact-x2-lite.pt is missing"),
    ("corrupt", "model file .*compact-x2-lite.pt does not match its sha256 in manifest.json"),
])
def test_broken_shipped_weights_are_refused(tmp_path, monkeypatch, damage, message):
    models = tmp_path / "models"
    models.mkdir()
    manifest = json.loads((models_dir() / "manifest.json").read_text())
    (models / "manifest.json").write_text(json.dumps(manifest))
    if damage == "corrupt":
        data = bytearray((models_dir() / "compact-x2-lite.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (models / "compact-x2-lite.pt").write_bytes(bytes(data))
    monkeypatch.setenv("VIDSR_MODELS_DIR", str(models))
    src = make_clip(tmp_path / "in.mkv", frames=2)
    code, output = _run("upscale", src, "-o", tmp_path / "out.mkv")
    assert code == 1
    assert re.search(message, _error_line(output)), output
    assert not (tmp_path / "out.mkv").exists() and not _leftovers(tmp_path)


# ----------------------------------------------------------------------------- bad command-line input


@pytest.mark.parametrize("args,stdin,message", [
    (("-", "--no-live"), b"", "input '-': stdin was empty"),
    (("frames/%03d.png", "--input-fps", "fast"), None, "--input-fps must be a number or a ratio such as 30000/1001"),
    (("frames/%03d.png", "--input-fps", "0"), None, "--input-fps must be > 0, got 0"),
    (("frames/%03d.png", "--input-fps", "1/0"), None, "--input-fps must be a number or a ratio"),
])
def test_bad_stdin_or_frame_rate_is_one_line(tmp_path, tiny_ckpt, args, stdin, message):
    r = CliRunner().invoke(main, ["upscale", *args, "-o", str(tmp_path / "out.mkv"), "--model", str(tiny_ckpt)],
                           input=stdin)
    assert r.exit_code == 1 and message in _error_line(r.output), r.output
    assert not (tmp_path / "out.mkv").exists() and not _leftovers(tmp_path)


def test_atomic_write_into_a_file_as_folder_fails_cleanly(tmp_path):
    from vidsr.errors import OutputError
    from vidsr.fs import atomic_write

    (tmp_path / "cache").write_text("a file, not a folder")
    with pytest.raises(OutputError, match=r"cannot write ONNX file .*cache/m.onnx: File exists"):
        atomic_write(tmp_path / "cache" / "m.onnx", b"x", what="ONNX file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
