"""Tiny media made by the tests themselves with PyAV."""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def textured_frame(i: int, *, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A frame with a sharp textured subject in the middle over a blurred background.

    The subject moves through 4 positions, so a long clip repeats 4 frames: they are made once
    (a 160x96 frame takes ~10 ms, most of a 400-frame clip's making) and copied out."""
    return _textured_frame(i % 4, width, height, seed).copy()


@functools.lru_cache(maxsize=64)
def _textured_frame(i: int, width: int, height: int, seed: int) -> np.ndarray:
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
               time_base: Fraction | None = None, start_pts: int = 0, x264_params: str | None = None,
               chapters: tuple[tuple[int, int, str], ...] = ()) -> Path:
    """Write a small clip. ``pts_step`` gives per-frame pts increments (variable frame rate);
    ``x264_params`` is passed to libx264 (e.g. a fixed keyframe interval); ``chapters``:
    (start_ms, end_ms, title) marks."""
    tb = time_base or Fraction(1, fps)
    with contextlib.closing(av.open(str(path), "w")) as c:
        c.set_chapters(chapter_dicts(chapters))
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            v.options = {"crf": "10", "preset": "ultrafast", **({"x264-params": x264_params} if x264_params else {})}
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
            _write_tone(c, a, seconds=frames / fps, rate=48000)
    return path


def chapter_dicts(chapters: tuple[tuple[int, int, str], ...]) -> list[dict]:
    """(start_ms, end_ms, title) marks as PyAV's ``set_chapters`` takes them."""
    return [{"id": i + 1, "start": a, "end": b, "time_base": Fraction(1, 1000), "metadata": {"title": t}}
            for i, (a, b, t) in enumerate(chapters)]


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


def _add_still(c, *, width: int, height: int, cover: bool):
    """A stream for one MJPEG picture (``cover``: marked as an attached picture); returns a function
    that muxes the picture once every stream has been added."""
    s = c.add_stream("mjpeg", rate=1)
    s.width, s.height, s.pix_fmt = width, height, "yuvj420p"
    if cover:
        s.disposition = av.stream.Disposition.attached_pic
    img = np.full((height, width, 3), 90, np.uint8)

    def mux() -> None:
        c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")))
        c.mux(s.encode(None))
    return mux


def make_still_first(path: Path, *, frames: int = 6, width: int = 64, height: int = 48, fps: int = 24) -> Path:
    """A one-frame MJPEG still (a poster frame) as the first video stream, then the clip's H.264 one."""
    with contextlib.closing(av.open(str(path), "w")) as c:
        mux_still = _add_still(c, width=32, height=32, cover=False)
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "10", "preset": "ultrafast"}
        mux_still()
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(textured_frame(i, width=width, height=height), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


def make_audio_with_cover(path: Path) -> Path:
    """Audio with cover art (an attached picture, as music files carry it): nothing to upscale."""
    with contextlib.closing(av.open(str(path), "w", format="mp4")) as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        mux_still = _add_still(c, width=64, height=64, cover=True)
        mux_still()
        _write_tone(c, a, seconds=0.5, rate=48000)
    return path


def make_interlaced(path: Path, *, frames: int = 8, width: int = 64, height: int = 48, fps: int = 25) -> Path:
    """Interlaced video of a white bar moving right over grey: the top field (even rows) shows it
    at one moment, the bottom field half a frame later, 3 px further on; coded as interlaced."""
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "4", "preset": "ultrafast", "x264-params": "tff=1"}
        for i in range(frames):
            img = np.full((height, width, 3), 60, np.uint8)
            for rows, x in ((slice(0, None, 2), 10 + 6 * i), (slice(1, None, 2), 13 + 6 * i)):
                img[rows, x:x + 8] = 230
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


def make_size_change(path: Path, *, frames: int = 6) -> Path:
    """MPEG-TS whose picture goes from 64x48 to 96x64 halfway (two streams joined byte-wise, as
    broadcast recordings and some screen captures do)."""
    parts = []
    for k, (w, h) in enumerate(((64, 48), (96, 64))):
        buf = io.BytesIO()
        with contextlib.closing(av.open(buf, "w", format="mpegts")) as c:
            v = c.add_stream("libx264", rate=25)
            v.width, v.height, v.pix_fmt = w, h, "yuv420p"
            v.options = {"crf": "10", "preset": "ultrafast"}
            for i in range(frames):
                f = av.VideoFrame.from_ndarray(textured_frame(i, width=w, height=h), format="rgb24")
                f.pts = k * frames + i
                c.mux(v.encode(f))
            c.mux(v.encode(None))
        parts.append(buf.getvalue())
    path.write_bytes(b"".join(parts))
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


@dataclass(frozen=True)
class Track:
    """An audio or subtitle stream for :func:`make_clip`. Subtitles: ``lines`` of (start_ms, end_ms, text)."""

    codec: str = "aac"
    language: str | None = None
    title: str | None = None
    default: bool = False
    rate: int = 48000
    lines: tuple[tuple[int, int, str], ...] = ()


def deep_frame(i: int, *, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint16: a textured subject over a shallow 16-bit ramp (needs > 8 bits to keep)."""
    ramp = np.linspace(28000, 32000, width, dtype=np.float64)[None, :, None]
    img = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint16).copy()
    subject = textured_frame(i, width=width, height=height).astype(np.uint16) * 257
    yy, xx = np.mgrid[:height, :width]
    inside = ((xx - width / 2) / (width / 5)) ** 2 + ((yy - height / 2) / (height / 4)) ** 2 < 1
    img[inside] = subject[inside]
    return img


def make_clip(path: Path, *, frames: int = 8, width: int = 64, height: int = 48, fps: int = 24,
              codec: str = "libx264", pix_fmt: str = "yuv420p", pts: list[int] | None = None,
              time_base: Fraction | None = None, colour: dict[str, int] | None = None, rotation: int = 0,
              pixel_aspect: Fraction | None = None, chapters: tuple[tuple[int, int, str], ...] = (),
              attachments: tuple[tuple[str, str, bytes], ...] = (), cover: bool = False,
              tracks: tuple[Track, ...] = (), metadata: dict[str, str] | None = None,
              corrupt: frozenset[int] = frozenset(), keyint: int | None = None) -> Path:
    """A small clip with whatever a hard case needs.

    Args:
        pts: per-frame pts in ``time_base`` (default 0, 1, 2, ... in 1/fps).
        colour: codec/frame colour tags, e.g. ``{"color_primaries": 9, "color_trc": 16,
            "colorspace": 9, "color_range": 1}``; frames are converted with that matrix/range.
        rotation: display rotation in degrees (display matrix side data).
        pixel_aspect: sample aspect ratio of anamorphic video (e.g. 32/27: 72x48 shown at 16:9).
        chapters: (start_ms, end_ms, title) chapter marks.
        attachments: (file name, mime type, data) embedded files, e.g. the fonts of ASS subtitles.
        cover: a 32x32 MJPEG cover picture (an attached-picture stream after the others).
        tracks: audio/subtitle streams, one second of audio each (or as long as the video).
        corrupt: decode-order indices of video packets whose payload is replaced by noise.
        keyint: GOP length for libx264 (keyframe every ``keyint`` frames).
    """
    tb = time_base or Fraction(1, fps)
    pts = pts if pts is not None else list(range(frames))
    deep = "10" in pix_fmt or "12" in pix_fmt
    with contextlib.closing(av.open(str(path), "w")) as c:
        c.metadata.update(metadata or {})
        c.set_chapters(chapter_dicts(chapters))
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        opts = {"crf": "12", "preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
        if keyint:
            opts.update({"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0"} if codec == "libx264"
                        else {})
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        v.options = opts
        v.time_base = v.codec_context.time_base = tb
        for name, value in (colour or {}).items():
            setattr(v.codec_context, name, value)
        if rotation:
            v.set_display_rotation(rotation)
        if pixel_aspect:
            v.codec_context.sample_aspect_ratio = pixel_aspect
        outs = []
        for t in tracks:
            if t.lines:
                s = c.add_stream(t.codec)
                s.codec_context.time_base = Fraction(1, 1000)
                s.codec_context.subtitle_header = _ASS_HEADER
            else:
                s = c.add_stream(t.codec, rate=t.rate)
                s.layout = "stereo"
            if t.language:
                s.metadata["language"] = t.language
            if t.title:
                s.metadata["title"] = t.title
            s.disposition = av.stream.Disposition.default if t.default else 0
            outs.append(s)
        for name, mime, data in attachments:
            c.add_attachment(name, mime, data)
        if cover:
            _add_still(c, width=32, height=32, cover=True)()
        sws = {1: "itu709", 9: "bt2020", 6: "smpte170m", 5: "itu601"}.get((colour or {}).get("colorspace"))
        video_packets: list[av.Packet] = []
        for i in range(frames):
            if deep:
                f = av.VideoFrame.from_ndarray(deep_frame(i, width=width, height=height), format="rgb48le")
            else:
                f = av.VideoFrame.from_ndarray(textured_frame(i, width=width, height=height), format="rgb24")
            f = f.reformat(format=pix_fmt, dst_colorspace=sws, dst_color_range=(colour or {}).get("color_range"))
            for name, value in (colour or {}).items():
                setattr(f, name, value)
            f.pts, f.time_base = pts[i], tb
            video_packets += v.encode(f)
        video_packets += v.encode(None)
        for k, p in enumerate(video_packets):
            if k in corrupt:
                noise = np.random.default_rng(k).integers(0, 256, p.size, dtype=np.uint8).tobytes()
                bad = av.Packet(bytes(p)[:4] + noise[4:])
                bad.pts, bad.dts, bad.time_base, bad.stream = p.pts, p.dts, p.time_base, v
                p = bad
            c.mux(p)
        seconds = max(1.0, float((pts[-1] + 1) * tb)) if frames else 1.0
        for t, s in zip(tracks, outs):
            if t.lines:
                for start, end, text in t.lines:
                    sub = av.subtitles.subtitle.SubtitleSet.create(
                        text=f"0,0,Default,,0,0,0,,{text}".encode(), start=0, end=end - start, pts=start)
                    p = s.codec_context.encode_subtitle(sub)
                    p.stream, p.time_base = s, Fraction(1, 1000)
                    c.mux(p)
                continue
            _write_tone(c, s, seconds=seconds, rate=t.rate)
    return path


def _write_tone(c, s, *, seconds: float, rate: int) -> None:
    total = int(seconds * rate)
    fmt = s.codec_context.format.name if s.codec_context.format else "fltp"
    for start in range(0, total, 1024):
        n = min(1024, total - start)
        t = (np.arange(n) + start) / rate
        tone = 0.2 * np.sin(2 * np.pi * 440 * t)
        if fmt.startswith("s16"):
            data = (tone * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(np.stack([data, data]).T.reshape(1, -1), format="s16", layout="stereo")
        else:
            data = tone.astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([data, data]), format="fltp", layout="stereo")
        af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
        c.mux(s.encode(af))
    c.mux(s.encode(None))


def make_image_sequence(folder: Path, *, frames: int = 5, width: int = 48, height: int = 32,
                        start: int = 1, alpha: bool = False) -> Path:
    """PNG frames ``folder/%06d.png`` numbered from ``start`` (``alpha``: RGBA, the subject's
    left half transparent); returns the pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        bgr = cv2.cvtColor(textured_frame(i, width=width, height=height), cv2.COLOR_RGB2BGR)
        if alpha:
            bgr = np.dstack([bgr, np.full((height, width), 255, np.uint8)])
            bgr[:, : width // 2, 3] = 0
        cv2.imwrite(str(folder / f"{start + i:06d}.png"), bgr)
    return folder / "%06d.png"


def streams_of(path: Path) -> list[tuple]:
    """(type, codec, language, title, default?) of every stream."""
    with contextlib.closing(av.open(str(path))) as c:
        return [(s.type, s.codec_context.name if s.codec_context else None, s.language, s.metadata.get("title"),
                 bool(s.disposition & av.stream.Disposition.default)) for s in c.streams]


_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\nFormat: Name, Fontname, "
    b"Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, "
    b"ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, "
    b"Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def mask_flip_rate(tracker, frames: list[np.ndarray]) -> float:
    """Mean fraction of binary-mask pixels that change between consecutive frames."""
    prev, flips = None, []
    for f in frames:
        m = tracker.update(f).binary
        if prev is not None:
            flips.append(float((m != prev).mean()))
        prev = m
    return float(np.mean(flips))
