"""Tiny media made by the tests themselves with PyAV."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def textured_frame(i: int, *, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A frame with a sharp textured subject in the middle over a blurred background."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    bg = cv2.GaussianBlur(bg, (0, 0), max(2.0, width / 24))
    bg = cv2.normalize(bg, None, 40, 200, cv2.NORM_MINMAX)
    fg = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    cx = width / 2 + (i % 4)
    inside = ((xx - cx) / (width / 4)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 < 1
    return np.where(inside[..., None], fg, bg).astype(np.uint8)


def make_video(path: Path, *, frames: int = 8, width: int = 64, height: int = 48, fps: int = 24,
               audio: bool = False, codec: str = "libx264", pts_step: list[int] | None = None,
               time_base: Fraction | None = None, start_pts: int = 0) -> Path:
    """Write a small clip. ``pts_step`` gives per-frame pts increments (variable frame rate)."""
    tb = time_base or Fraction(1, fps)
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            v.options = {"crf": "10", "preset": "ultrafast"}
        v.time_base = tb
        v.codec_context.time_base = tb
        a = None
        if audio:
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
        pts = start_pts
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(textured_frame(i, width=width, height=height), format="rgb24")
            f.pts, f.time_base = pts, tb
            c.mux(v.encode(f))
            pts += pts_step[i] if pts_step else 1
        c.mux(v.encode(None))
        if a is not None:
            total = int(frames / fps * 48000)
            for start in range(0, total, 1024):
                n = min(1024, total - start)
                t = (np.arange(n) + start) / 48000
                s = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.stack([s, s]), format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def make_audio_only(path: Path) -> Path:
    with contextlib.closing(av.open(str(path), "w")) as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        for start in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    return path


def make_zero_frames(path: Path) -> Path:
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # header and trailer only, no frames
        c.mux(v.encode(None))
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], list[int], dict]:
    """Decoded RGB frames, their pts, and stream facts."""
    with contextlib.closing(av.open(str(path))) as c:
        v = c.streams.video[0]
        frames, pts = [], []
        for f in c.decode(v):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts)
        facts = {
            "time_base": v.time_base,
            "duration": v.duration,
            "start_time": v.start_time,
            "audio": [(s.codec_context.name, s.duration, s.start_time) for s in c.streams.audio],
            "streams": [s.type for s in c.streams],
        }
    return frames, pts, facts
