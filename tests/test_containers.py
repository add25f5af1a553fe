"""Faithful containers and hard inputs (issue 8): one table of hard or bad inputs, run
through ``vidsr upscale``; each row states the exact outcome."""

from __future__ import annotations

import contextlib
import hashlib
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from media import (Track, make_audio_only, make_audio_with_cover, make_clip, make_image_sequence,
                   make_interlaced, make_size_change, make_still_first, make_zero_frames, read_video,
                   streams_of)
from vidsr.cli import main
from vidsr.media.codecs import has_alpha
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video

HDR10 = {"color_primaries": 9, "color_trc": 16, "colorspace": 9, "color_range": 1}  # bt2020, pq, bt2020nc, tv
FULL_709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}  # bt709, pc range
VFR_PTS = [0, 40, 120, 160, 193, 313, 353, 395]  # ms
VIDSR = (sys.executable, "-c", "import sys; from vidsr.cli import main; sys.argv[0] = 'vidsr'; main()")
TWO_AUDIO_AND_SUBS = (
    Track(codec="aac", language="eng", title="Main", default=True),
    Track(codec="libopus", language="fra", title="Commentary"),
    Track(codec="subrip", language="deu", lines=((0, 400, "Hallo"), (500, 900, "Welt"))),
)


@dataclass(frozen=True)
class Facts:
    """What a file holds, read leniently (corrupt packets skipped)."""

    pts: list[int]
    time_base: Fraction
    size: tuple[int, int]
    pix_fmt: str
    colour: tuple[int, int, int, int]  # primaries, trc, matrix, range
    rotation: int
    streams: list[tuple]
    side_timing: list[tuple[str, float, float]]  # (codec, start s, end s) per audio/subtitle stream
    metadata: dict[str, str]

    @property
    def frames(self) -> int:
        return len(self.pts)


def facts(path: Path) -> Facts:
    pts, first = [], None
    with contextlib.closing(av.open(str(path))) as c:
        v = c.streams.video[0]
        for packet in c.demux(v):
            with contextlib.suppress(av.error.InvalidDataError):
                for f in packet.decode():
                    first = first or f
                    pts.append(f.pts)
        timing = []
        for s in c.streams:
            if s.type in ("audio", "subtitle"):
                c.seek(0)
                ps = [p for p in c.demux(s) if p.pts is not None]
                start = s.start_time if s.start_time is not None else min(p.pts for p in ps)
                end = max(p.pts + (p.duration or 0) for p in ps)
                timing.append((s.codec_context.name, float(start * s.time_base), float(end * s.time_base)))
        return Facts(pts=pts, time_base=v.time_base, size=(first.width, first.height), pix_fmt=first.format.name,
                     colour=(first.color_primaries, first.color_trc, first.colorspace, first.color_range),
                     rotation=int(first.rotation or 0) % 360, streams=streams_of(path), side_timing=timing,
                     metadata=dict(c.metadata))


def seconds(pts: list[int], tb: Fraction) -> list[Fraction]:
    return [p * tb for p in pts]


@dataclass(frozen=True)
class Case:
    """One hard input: how to make it, where to write, and what must come out.

    ``check(src, out, output_text)`` asserts the outcome of a successful run; with ``error``
    the run must fail with that message and leave no output (or temp) file behind.
    """

    name: str
    make: Callable[[Path], Path]
    out: str = "out.mkv"
    args: tuple[str, ...] = ()
    error: str | None = None
    check: Callable[[Path, Path, str], None] | None = None
    warnings: tuple[str, ...] = field(default=())


def _same_video_timing(src: Path, out: Path) -> tuple[Facts, Facts]:
    i, o = facts(src), facts(out)
    assert o.frames == i.frames
    assert seconds(o.pts, o.time_base) == seconds(i.pts, i.time_base)
    assert o.size == (i.size[0] * 2, i.size[1] * 2)
    return i, o


def check_vfr(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.pts == VFR_PTS and o.time_base == Fraction(1, 1000)
    assert len(set(np.diff(o.pts))) > 3


def check_start_offset(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.pts[0] * o.time_base == Fraction(1, 2)  # the first frame still shows at 0.5 s
    assert o.side_timing == i.side_timing  # audio copied: same start and end, so still in sync


def check_hdr10(src, out, text):
    i, o = _same_video_timing(src, out)
    assert (i.pix_fmt, o.pix_fmt) == ("yuv420p10le", "yuv420p10le")
    assert o.colour == i.colour == (9, 16, 9, 1)
    with contextlib.closing(av.open(str(out))) as c:
        f = next(c.decode(video=0))
        y = np.frombuffer(bytes(f.planes[0]), np.uint16).reshape(f.height, -1)[:, :f.width]
    ramp = y[:8, :]  # the smooth background row band: 10-bit steps that 8 bits would merge
    assert len(np.unique(ramp)) > 40  # ~55 10-bit levels; an 8-bit path leaves <= 16


def check_full_range(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.colour == i.colour == (1, 1, 1, 2)
    a, _, _ = read_video(src)
    b, _, _ = read_video(out)
    # the same picture, not one squeezed to tv range or stretched to pc range: equal mean levels
    assert abs(a[0].mean() - b[0].mean()) < 1.5 and b[0].max() > 245 and b[0].min() < 10


def check_rotated(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.rotation == i.rotation == 90
    assert o.metadata["title"] == "phone clip" and o.metadata["creation_time"] == "2024-05-06T07:08:09.000000Z"
    assert o.streams[1] == ("audio", "aac", "eng", None, True)


def check_anamorphic(src, out, text):
    _same_video_timing(src, out)
    with contextlib.closing(av.open(str(out))) as c:
        v = c.streams.video[0]
        assert (v.width, v.height, v.sample_aspect_ratio, v.display_aspect_ratio) == (144, 96, Fraction(32, 27),
                                                                                     Fraction(16, 9))


CHAPTERS = ((0, 150, "Intro"), (150, 333, "Verse"))


def chapters_of(path: Path) -> list[tuple[float, float, str]]:
    with contextlib.closing(av.open(str(path))) as c:
        return [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3),
                 ch["metadata"].get("title")) for ch in c.chapters()]


def check_chapters(src, out, text):
    _same_video_timing(src, out)
    assert chapters_of(out) == chapters_of(src) == [(0.0, 0.15, "Intro"), (0.15, 0.333, "Verse")]


FONT = ("Display.ttf", "font/ttf", bytes(range(256)) * 4)
STYLED_SUBS = (Track(codec="ass", language="kor", lines=((0, 300, "Hello"),)),)


def check_font_kept(src, out, text):
    _same_video_timing(src, out)
    with contextlib.closing(av.open(str(out))) as c:
        assert [(a.name, a.mimetype, bytes(a.data)) for a in c.streams.attachments] == [FONT]
        assert [s.type for s in c.streams] == ["video", "subtitle", "attachment"]


def cover_of(path: Path) -> tuple[str, bytes]:
    with contextlib.closing(av.open(str(path))) as c:
        (s,) = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        return s.codec_context.name, next(bytes(p) for p in c.demux(s) if p.size)


def _same_frames_to_the_ms(src: Path, out: Path) -> None:
    """Frame times equal to Matroska's 1 ms resolution (for mp4 input in 1/24 s ticks)."""
    i, o = facts(src), facts(out)
    assert [round(float(t), 3) for t in seconds(o.pts, o.time_base)] == \
        [round(float(t), 3) for t in seconds(i.pts, i.time_base)]


def check_cover_kept(src, out, text):
    if out.suffix == ".mp4":
        _same_video_timing(src, out)
    else:
        _same_frames_to_the_ms(src, out)
    assert cover_of(out) == cover_of(src) and cover_of(src)[0] == "mjpeg"


def check_size_change(src, out, text):
    i, o = facts(src), facts(out)
    assert o.frames == i.frames == 12 and o.size == (128, 96)
    assert seconds(o.pts, o.time_base) == seconds(i.pts, i.time_base)
    frames, _, _ = read_video(out)
    assert all(f.shape == (96, 128, 3) for f in frames)


def check_avi(src, out, text):
    with contextlib.closing(av.open(str(out))) as c:
        v = c.streams.video[0]
        assert v.average_rate == 24 and len(list(c.decode(v))) == 6  # not one frame per input tick
    # frames sit at the input's times in the AVI index (dts); vidsr reads them there, also for
    # H.264, whose pts FFmpeg guesses one frame late
    from vidsr.media.reader import read_items
    from vidsr.media.types import Frame

    i = facts(src)
    with contextlib.closing(av.open(str(out))) as c:
        dts = [f.dts * c.streams.video[0].time_base for f in c.decode(video=0)]
    read = [(f.pts * f.time_base) for f in read_items(out, copy_streams=False) if isinstance(f, Frame)]
    want = [round(float(t), 3) for t in seconds(i.pts, i.time_base)]
    assert [round(float(t), 3) for t in dts] == [round(float(t), 3) for t in read] == want


def check_avi_aac(src, out, text):
    """AAC's priming (pts -1024 in the mp4) cannot go before 0 in AVI: the audio is moved to start
    at 0 and the video keeps one frame per tick (the muxer shifted it and left a gap before)."""
    check_avi(src, out, text)
    assert [s[:2] for s in facts(out).streams] == [("video", "h264"), ("audio", "aac")]
    with contextlib.closing(av.open(str(src))) as c:
        assert next(p for p in c.demux(c.streams.audio[0]) if p.pts is not None).pts < 0
    with contextlib.closing(av.open(str(out))) as c:
        first = next(p for p in c.demux(c.streams.audio[0]) if p.pts is not None)
        assert first.pts == first.dts == 0


def check_odd_size(src, out, text):
    i, o = _same_video_timing(src, out)
    assert i.size == (161, 97) and o.size == (322, 194) and o.pix_fmt == i.pix_fmt == "yuv444p"


def check_truncated_mkv(src, out, text):
    o = facts(out)
    assert o.frames == facts(src).frames == 21 and o.pts == [round(k * 1000 / 24) for k in range(21)]


def check_corrupt(src, out, text):
    i, o = facts(src), facts(out)  # ``facts`` skips the same two packets the run did
    assert o.frames == i.frames == 10 and o.pts == i.pts
    assert o.pts == [round(k * 1000 / 24) for k in range(12) if k not in (4, 5)]


def check_two_audio_subs_mkv(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.streams[1:] == i.streams[1:] == [
        ("audio", "aac", "eng", "Main", True), ("audio", "opus", "fra", "Commentary", False),
        ("subtitle", "srt", "deu", None, False)]
    assert o.side_timing == i.side_timing


def check_two_audio_subs_mp4(src, out, text):
    i, o = _same_video_timing(src, out)
    assert [s[:3] for s in o.streams] == [("video", "h264", "und"), ("audio", "aac", "eng"),
                                          ("audio", "opus", "fra"), ("subtitle", "mov_text", "deu")]
    (_, s0, e0), (_, s1, e1), (_, s2, e2) = i.side_timing
    assert [t[1:] for t in o.side_timing[:2]] == [(s0, e0), (s1, e1)]  # audio copied, in sync
    assert o.side_timing[2][1:] == (s2, e2)  # subtitles converted, same times


def check_pcm_avi_to_mp4(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.streams[1][:2] == ("audio", "pcm_s16le")  # mp4 holds PCM now: copied, not re-encoded
    assert o.side_timing == i.side_timing


def check_pcm_avi_to_m4a(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.streams[1][:2] == ("audio", "aac")
    (_, s_in, e_in), (_, s_out, e_out) = i.side_timing[0], o.side_timing[0]
    assert s_out == s_in == 0.0 and abs(e_out - e_in) <= 1024 / 48000  # re-encoded: within one aac frame


def check_webm(src, out, text):
    i, o = _same_video_timing(src, out)
    assert o.pts == VFR_PTS and o.time_base == Fraction(1, 1000)
    assert [st[:2] for st in o.streams] == [("video", "vp9"), ("audio", "opus")]  # no H.264/AAC in webm
    (_, s_in, e_in), (_, s_out, e_out) = i.side_timing[0], o.side_timing[0]
    assert s_out == s_in == 0.0 and abs(e_out - e_in) <= 0.03  # re-encoded: within one opus frame or so


def check_av1(src, out, text):
    _, o = _same_video_timing(src, out)
    assert o.streams[0][1] in ("av1", "libdav1d")  # named by the decoder PyAV picked


def check_still_first(src, out, text):
    o = facts(out)  # the clip was upscaled, not the one-frame still before it
    assert o.frames == 6 and o.pts == [round(k * 1000 / 24) for k in range(6)] and o.size == (128, 96)
    assert [st[:2] for st in o.streams] == [("video", "h264")]


def comb(path: Path) -> float:
    """Mean vertical step of the green channel: ~0 for the moving bar of ``make_interlaced`` when
    each frame shows it at one moment, large when two fields taken apart are woven together."""
    frames, _, _ = read_video(path)
    return float(np.mean([np.abs(np.diff(f[..., 1].astype(int), axis=0)).mean() for f in frames]))


def check_deinterlaced(src, out, text):
    _same_video_timing(src, out)
    assert comb(src) > 10 and comb(out) < 1


def check_interlaced_kept(src, out, text):
    _same_video_timing(src, out)
    assert comb(out) > 5


def check_image_sequence(src, out, text):
    o = facts(out)
    assert o.frames == 5 and seconds(o.pts, o.time_base) == [Fraction(k, 12) for k in range(5)]
    assert o.size == (96, 64) and o.colour == (1, 2, 1, 1)  # RGB source: tagged bt709, tv range


CASES = [
    Case("vfr", lambda d: make_clip(d / "vfr.mkv", pts=VFR_PTS, time_base=Fraction(1, 1000)), check=check_vfr),
    Case("start offset + audio", lambda d: make_clip(d / "offset.mp4", frames=6, pts=[12 + k for k in range(6)],
                                                      time_base=Fraction(1, 24), tracks=(Track(language="eng"),)),
         out="out.mp4", check=check_start_offset),
    Case("10-bit hdr10", lambda d: make_clip(d / "hdr.mkv", frames=4, codec="libx265", pix_fmt="yuv420p10le",
                                              colour=HDR10), check=check_hdr10),
    Case("full range", lambda d: make_clip(d / "full.mp4", frames=3, colour=FULL_709), out="out.mp4",
         check=check_full_range),
    Case("rotated phone clip", lambda d: make_clip(d / "rot.mp4", frames=3, rotation=90,
                                                   tracks=(Track(language="eng"),),
                                                   metadata={"title": "phone clip",
                                                             "creation_time": "2024-05-06T07:08:09.000000Z"}),
         out="out.mp4", check=check_rotated),
    Case("anamorphic 72x48 at 16:9", lambda d: make_clip(d / "dv.mp4", frames=3, width=72,
                                                         pixel_aspect=Fraction(32, 27)),
         out="out.mp4", check=check_anamorphic),
    Case("chapters mkv -> mp4", lambda d: make_clip(d / "ch.mkv", frames=8, chapters=CHAPTERS), out="out.mp4",
         check=check_chapters),
    # mp4 keeps chapters in a text track of its own, which FFmpeg marks discarded: no warning for it
    Case("chapters mp4 -> mp4", lambda d: make_clip(d / "ch.mp4", frames=8, chapters=CHAPTERS), out="out.mp4",
         check=check_chapters),
    Case("ass + font attachment -> mkv", lambda d: make_clip(d / "subs.mkv", frames=8, tracks=STYLED_SUBS,
                                                              attachments=(FONT,)), check=check_font_kept),
    Case("ass + font attachment -> mp4", lambda d: make_clip(d / "subs.mkv", frames=8, tracks=STYLED_SUBS,
                                                              attachments=(FONT,)), out="out.mp4",
         check=lambda src, out, text: _same_video_timing(src, out),
         warnings=("attachment #2 (Display.ttf) dropped: .mp4 cannot hold attachments (.mkv can)",
                   "subtitle stream #1 (ssa, kor) converted to mov_text")),
    Case("cover art mp4 -> mp4", lambda d: make_clip(d / "mv.mp4", frames=6, tracks=(Track(),), cover=True),
         out="out.mp4", check=check_cover_kept),
    # as a cover.jpg attachment, which FFmpeg reads as an attached picture
    Case("cover art mp4 -> mkv", lambda d: make_clip(d / "mv.mp4", frames=6, cover=True), check=check_cover_kept),
    Case("cover art mp4 -> webm", lambda d: make_clip(d / "mv.mp4", frames=6, cover=True), out="out.webm",
         check=lambda src, out, text: _same_frames_to_the_ms(src, out),
         warnings=("cover art #1 (mjpeg) dropped: .webm cannot hold mjpeg",)),
    Case("size change mid-stream", lambda d: make_size_change(d / "switch.ts"), out="out.mp4",
         check=check_size_change,
         warnings=("the frame size changes mid-stream (to 96x64): those frames were scaled to 64x48",)),
    # AVI keeps no timestamps: one frame per tick of 1/fps, and no B-frames to reorder
    Case("mkv -> avi (mpeg4)", lambda d: make_clip(d / "in.mkv", frames=6), out="out.avi", args=("--codec", "mpeg4"),
         check=check_avi),
    Case("mkv -> avi (h264)", lambda d: make_clip(d / "in.mkv", frames=6), out="out.avi", check=check_avi),
    Case("mp4 with aac -> avi (h264)", lambda d: make_clip(d / "in.mp4", frames=6, tracks=(Track(),)), out="out.avi",
         check=check_avi_aac),
    # re-encoded audio: the encoder's last packets, flushed at the end, are moved like the others
    Case("mkv with opus -> avi (aac re-encoded)", lambda d: make_clip(d / "in.mkv", frames=6,
                                                                       tracks=(Track(codec="libopus"),)),
         out="out.avi", check=check_avi,
         warnings=("audio stream #1 (opus) re-encoded to aac: .avi cannot hold opus",)),
    Case("odd size 161x97", lambda d: make_clip(d / "odd.mkv", frames=3, width=161, height=97, pix_fmt="yuv444p"),
         check=check_odd_size),
    Case("audio only", lambda d: make_audio_only(d / "audio.m4a"), error="no video stream"),
    Case("still before the clip", lambda d: make_still_first(d / "still.mkv"), check=check_still_first,
         warnings=("video stream #0 (mjpeg) not copied",)),
    Case("audio + cover art", lambda d: make_audio_with_cover(d / "song.m4a"), out="out.mp4",
         error="no video stream in"),
    # the shipped model: the random test network adds vertical steps of its own
    Case("interlaced", lambda d: make_interlaced(d / "tff.mkv"), args=("--model", "compact-x2"),
         check=check_deinterlaced, warnings=("the input is interlaced: its interlaced frames were deinterlaced with bwdif",)),
    Case("interlaced --deinterlace off", lambda d: make_interlaced(d / "tff.mkv"),
         args=("--model", "compact-x2", "--deinterlace", "off"), check=check_interlaced_kept,
         warnings=("upscaled with its two fields woven together",)),
    Case("zero frames", lambda d: make_zero_frames(d / "zero.mkv"), error="no video frames"),
    Case("truncated mp4", lambda d: _truncate(make_clip(d / "t.mp4", frames=24), d / "trunc.mp4"),
         error="not a readable video file"),
    Case("truncated mkv", lambda d: _truncate(make_clip(d / "t.mkv", frames=48), d / "trunc.mkv"),
         check=check_truncated_mkv,
         warnings=("the video ends at 0.87 s but", "declares 2.00 s: the input looks truncated")),
    Case("truncated mkv --strict", lambda d: _truncate(make_clip(d / "t.mkv", frames=48), d / "trunc.mkv"),
         args=("--strict",), error="the input looks truncated"),
    Case("corrupt packets", lambda d: make_clip(d / "bad.mkv", frames=12, corrupt=frozenset({4, 5})),
         check=check_corrupt, warnings=("2 packet(s) could not be decoded and were skipped",)),
    Case("corrupt packets --strict", lambda d: make_clip(d / "bad.mkv", frames=12, corrupt=frozenset({4, 5})),
         args=("--strict",), error="--strict: 2 packet(s) could not be decoded"),
    Case("mkv 2 audio + subs -> mkv", lambda d: make_clip(d / "multi.mkv", frames=6, tracks=TWO_AUDIO_AND_SUBS),
         check=check_two_audio_subs_mkv),
    Case("mkv 2 audio + subs -> mp4", lambda d: make_clip(d / "multi.mkv", frames=6, tracks=TWO_AUDIO_AND_SUBS),
         out="out.mp4", check=check_two_audio_subs_mp4,
         warnings=("subtitle stream #3 (srt, deu) converted to mov_text: .mp4 cannot hold srt",)),
    Case("pcm avi -> mp4", lambda d: make_clip(d / "pcm.avi", frames=4, codec="mpeg4",
                                                tracks=(Track(codec="pcm_s16le"),)),
         out="out.mp4", check=check_pcm_avi_to_mp4),
    Case("pcm avi -> m4a", lambda d: make_clip(d / "pcm.avi", frames=4, codec="mpeg4",
                                                tracks=(Track(codec="pcm_s16le"),)),
         out="out.m4a", check=check_pcm_avi_to_m4a,
         warnings=("audio stream #1 (pcm_s16le) re-encoded to aac: .m4a cannot hold pcm_s16le",)),
    Case("mkv + aac -> webm", lambda d: make_clip(d / "vfr.mkv", pts=VFR_PTS, time_base=Fraction(1, 1000),
                                                   tracks=(Track(language="eng"),)),
         out="out.webm", check=check_webm,
         warnings=("audio stream #1 (aac, eng) re-encoded to libopus: .webm cannot hold aac",)),
    Case("--codec libsvtav1", lambda d: make_clip(d / "vfr.mkv", pts=VFR_PTS, time_base=Fraction(1, 1000)),
         args=("--codec", "libsvtav1"), check=check_av1),
    Case("ogv (no codec it holds)", lambda d: make_clip(d / "ok.mkv", frames=2), out="out.ogv",
         error="the ogv container holds none of H.264, VP9 and AV1"),
    Case("--codec libx264 -> webm", lambda d: make_clip(d / "ok.mkv", frames=2), out="out.webm",
         args=("--codec", "libx264"), error="'webm' format does not support 'libx264' codec"),
    Case("unknown --codec", lambda d: make_clip(d / "ok.mkv", frames=2), args=("--codec", "nonsense"),
         error="unknown or unavailable video codec 'nonsense'"),
    Case("bad --preset", lambda d: make_clip(d / "ok.mkv", frames=2), args=("--preset", "bogus"),
         error="cannot start the libx264 encoder (crf 18, preset bogus): Invalid argument"),
    Case("image sequence", lambda d: make_image_sequence(d / "frames", frames=5, start=1), out="out.mp4",
         args=("--input-fps", "12"), check=check_image_sequence),
    Case("RGBA image sequence", lambda d: make_image_sequence(d / "frames", frames=5, start=1, alpha=True),
         out="out.mp4", args=("--input-fps", "12"), check=check_image_sequence,
         warnings=("the input's alpha channel (rgba) is not kept: the output is opaque",)),
    Case("missing image sequence", lambda d: d / "nothing" / "%06d.png", error="image sequence folder not found"),
    Case("unwritable output", lambda d: make_clip(d / "ok.mkv", frames=2), out="no_such_dir/out.mkv",
         error="output folder does not exist"),
]


def _truncate(full: Path, path: Path) -> Path:
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return path


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".vidsr-" in p.name]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hard_inputs(tmp_path, tiny_ckpt, case: Case):
    src = case.make(tmp_path)
    out = tmp_path / case.out
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(out), "--model", str(tiny_ckpt), "--tile", "16",
                                  "-q", *case.args])
    if case.error is not None:
        assert r.exit_code != 0 and case.error in r.output, r.output
        assert "Traceback" not in r.output
        assert not out.exists() and not _leftovers(tmp_path)
        return
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("warning: ")]
    for w in case.warnings:
        assert any(w in line for line in lines), r.output
    if not case.warnings:
        assert "warning" not in r.output, r.output
    assert not _leftovers(tmp_path)
    case.check(src, out, r.output)


def test_disk_full_is_reported_and_leaves_nothing(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=8)
    out = tmp_path / "out.mp4"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, hard))  # files may not grow past 3 kB: a full disk
    try:
        with pytest.raises(OSError, match="writing .*out.mp4 failed: File too large \\(the disk is full"):
            upscale_video(src, out, config=UpscaleConfig(model=str(tiny_ckpt), tile=16))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert not out.exists() and not _leftovers(tmp_path)


def test_ctrl_c_leaves_no_file(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=8)

    def interrupt(report):
        if report.frames == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, tmp_path / "out.mkv", config=UpscaleConfig(model=str(tiny_ckpt), tile=16),
                      on_frame=interrupt)
    assert not (tmp_path / "out.mkv").exists() and not _leftovers(tmp_path)


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=400, width=160, height=96)
    p = subprocess.Popen([*VIDSR, "upscale", str(src), "-o", str(tmp_path / "out.mkv"),
                          "--model", str(tiny_ckpt), "--full-frame", "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _leftovers(tmp_path) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)  # until the temp output exists
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and err.strip().endswith("terminated; no output was written"), err
    assert not (tmp_path / "out.mkv").exists() and not _leftovers(tmp_path)


def test_save_mask_cannot_be_the_output(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=2)
    out = tmp_path / "out.mkv"
    r = _run(src, "-o", out, "--save-mask", out, "--model", tiny_ckpt)
    assert r.exit_code != 0 and "--save-mask names the output file itself" in r.output
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("command", ["mask", "compare"])
def test_summaries_stay_off_a_video_on_stdout(tmp_path, command):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    p = subprocess.run([*VIDSR, command, str(src), "-o", "-"], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert b"frames" not in p.stdout[-400:] and b"-: 3 frames" in p.stderr
    (tmp_path / "piped.mkv").write_bytes(p.stdout)
    assert len(read_video(tmp_path / "piped.mkv")[0]) == 3


def test_stdin_to_stdout(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=5, pts=VFR_PTS[:5], time_base=Fraction(1, 1000),
                    tracks=(Track(language="eng"),))
    r = CliRunner().invoke(main, ["upscale", "-", "-o", "-", "--model", str(tiny_ckpt), "--tile", "16"],
                           input=src.read_bytes())
    assert r.exit_code == 0, r.stderr
    assert "5 frames 64x48 -> 128x96" in r.stderr  # the summary goes to stderr; stdout is the video
    piped = tmp_path / "piped.mkv"
    piped.write_bytes(r.stdout_bytes)
    o = facts(piped)
    assert o.pts == VFR_PTS[:5] and o.size == (128, 96)
    assert [s[:3] for s in o.streams] == [("video", "h264", None), ("audio", "aac", "eng")]


def test_resume_continues_and_matches_one_run(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mp4", frames=12, keyint=3, tracks=(Track(language="eng"),))
    cfg = UpscaleConfig(model=str(tiny_ckpt), tile=16, resume=True, segment_frames=3)

    def interrupt(report):
        if report.frames == 8:
            raise KeyboardInterrupt

    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, out, config=cfg, on_frame=interrupt)
    work = tmp_path / ".out.mp4.vidsr-resume"
    assert not out.exists() and sorted(p.name for p in work.iterdir()) == [
        "journal.json", "seg-00000.nut", "seg-00001.nut"]  # two whole GOPs done, the third dropped
    report = upscale_video(src, out, config=cfg)
    assert (report.resumed_frames, report.frames) == (6, 6) and not work.exists()
    one = tmp_path / "one.mp4"
    whole = upscale_video(src, one, config=cfg)
    # every segment's tracker counts: 4 segments of 3 frames, each starting afresh with passes on
    # its frames 0 and 2 (before, only the last segment's 2 were reported)
    assert whole.mask_passes == 8
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (out, one)]
    assert digest[0] == digest[1]  # stopped + resumed == uninterrupted, byte for byte
    i, o = _same_video_timing(src, out)
    assert o.side_timing == i.side_timing and o.streams == i.streams


def test_resume_refuses_other_settings(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=12, keyint=4)

    def interrupt(report):
        if report.frames == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, tmp_path / "out.mkv", config=UpscaleConfig(model=str(tiny_ckpt), tile=16, resume=True,
                                                                       segment_frames=4), on_frame=interrupt)
    with pytest.raises(ValueError, match="holds a resumable run of another input or other settings"):
        upscale_video(src, tmp_path / "out.mkv", config=UpscaleConfig(model=str(tiny_ckpt), tile=32, resume=True,
                                                                       segment_frames=4))


def test_svt_av1_prints_no_setup_lines(tmp_path, tiny_ckpt, capfd):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--model", str(tiny_ckpt),
                                  "--tile", "16", "-q", "--codec", "libsvtav1"])
    assert r.exit_code == 0, r.output
    out, err = capfd.readouterr()
    assert "Svt[" not in out + err + r.output  # SVT-AV1 logs to the process's stderr unless SVT_LOG says


@pytest.mark.parametrize("muxer, codec", [("mp4", "libx264"), ("matroska", "libx264"), ("mpegts", "libx264"),
                                          ("webm", "libvpx-vp9")])
def test_codec_follows_the_container(muxer, codec):
    from vidsr.media.codecs import pick_codec

    # mpegts has no codec table, so PyAV's supported_codecs leaves H.264 out; the muxer takes it
    assert pick_codec(muxer) == codec


def test_explicit_codec_is_kept_and_each_output_picks_its_own(tmp_path, tiny_ckpt):
    from vidsr.media.codecs import EncodeOptions

    assert EncodeOptions(codec="libx265").for_output(tmp_path / "a.webm").codec == "libx265"
    assert EncodeOptions().for_output("-").codec == "libx264"  # stdout: matroska
    src = make_clip(tmp_path / "in.mkv", frames=3)
    out, mask = tmp_path / "out.mp4", tmp_path / "mask.webm"
    upscale_video(src, out, config=UpscaleConfig(model=str(tiny_ckpt), tile=16, save_mask=mask))
    assert streams_of(out)[0][1] == "h264" and streams_of(mask)[0][1] == "vp9"


@pytest.mark.parametrize("pix_fmt,alpha", [("rgba", True), ("yuva420p", True), ("ya8", True), ("gbrap", True),
                                           ("yuv420p", False), ("rgb24", False), ("bgr0", False), ("gray", False),
                                           ("yuv420p10le", False), ("pal8", False)])
def test_has_alpha(pix_fmt, alpha):
    assert has_alpha(pix_fmt) is alpha


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["upscale", *map(str, args), "-q"])


def test_numbered_frames_out(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "in.mkv", frames=5, tracks=(Track(language="eng"),))
    (tmp_path / "png").mkdir()
    (tmp_path / "jpg").mkdir()
    r = _run(src, "-o", tmp_path / "png" / "f_%06d.png", "--model", tiny_ckpt)
    assert r.exit_code == 0, r.output
    assert "audio stream #1 (aac, eng) dropped: .png cannot hold aac" in r.output
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == [f"f_{k:06d}.png" for k in range(1, 6)]  # and no hidden temp folder left
    # the very pixels of a lossless RGB video of the same run
    r = _run(src, "-o", tmp_path / "ref.mkv", "--model", tiny_ckpt, "--codec", "libx264rgb", "--pix-fmt", "rgb24",
             "--crf", "0", "--no-audio")
    assert r.exit_code == 0, r.output
    ref, _, _ = read_video(tmp_path / "ref.mkv")
    pngs = [cv2.imread(str(tmp_path / "png" / n))[..., ::-1] for n in names]
    assert all(p.shape == (96, 128, 3) and np.array_equal(p, f) for p, f in zip(pngs, ref))
    r = _run(src, "-o", tmp_path / "jpg" / "%03d.jpg", "--model", tiny_ckpt)
    assert r.exit_code == 0, r.output
    jpgs = [cv2.imread(str(p))[..., ::-1] for p in sorted((tmp_path / "jpg").iterdir())]
    assert len(jpgs) == 5
    for p, j in zip(pngs, jpgs):  # JPEG q2 in every frame, same levels (full-range BT.601)
        assert np.abs(p.astype(int) - j).mean() < 6 and abs(p.mean() - j.mean()) < 1  # 4:2:0 chroma on noise


def test_numbered_frames_keep_16_bits(tmp_path, tiny_ckpt):
    src = make_clip(tmp_path / "hdr.mkv", frames=2, codec="libx265", pix_fmt="yuv420p10le", colour=HDR10)
    r = _run(src, "-o", tmp_path / "%02d.png", "--model", tiny_ckpt)
    assert r.exit_code == 0, r.output
    img = cv2.imread(str(tmp_path / "01.png"), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and len(np.unique(img[:8])) > 40  # more levels than 8 bits hold


@pytest.mark.parametrize("out,args,error", [
    ("one.png", (), "one.png is one image: to write frames, give a numbered pattern such as"),
    ("%04d.gif", (), "cannot write .gif frames: an image-sequence output is one of"),
    ("%04d.png", ("--resume",), "--resume writes a video file, not numbered frames"),
])
def test_numbered_frames_refused(tmp_path, tiny_ckpt, out, args, error):
    src = make_clip(tmp_path / "in.mkv", frames=2)
    r = _run(src, "-o", tmp_path / out, "--model", tiny_ckpt, *args)
    assert r.exit_code != 0 and error in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_a_bad_file_in_a_folder_does_not_stop_the_others(tmp_path, tiny_ckpt):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"not a video at all")
    make_clip(clips / "b.mkv", frames=3)
    r = _run(clips, "-o", tmp_path / "out", "--model", tiny_ckpt)
    assert r.exit_code != 0 and "error: a.mp4: not a readable video file" in r.output
    assert "1 of 2 files failed: a.mp4" in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.mkv"]
    assert len(read_video(tmp_path / "out" / "b.mkv")[0]) == 3
