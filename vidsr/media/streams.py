"""The streams of a container: which one is upscaled, which go along, how they are named and copied.

Besides the video, audio, subtitles, attachments (e.g. the fonts of styled subtitles) and cover
art are carried into the output with their tags (less those that describe the old file),
dispositions and the input's chapters.
"""

from __future__ import annotations

import contextlib
import io
import os
from fractions import Fraction
from typing import Sequence

import av
import av.error

from vidsr.errors import InputError
from vidsr.media.types import Chapter

COPY_TYPES = ("audio", "subtitle", "attachment")
"""Stream types carried into the output besides the video (attachments: e.g. the fonts of styled
subtitles); cover art, a video stream, is carried too (:func:`is_side`)."""
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
"""Subtitle codecs that hold text (converted when the output cannot hold them as they are)."""
# tags that describe the old file (sizes, durations, muxer), not its content: not copied
_STALE_TAGS = ("encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "_statistics",
               "major_brand", "minor_version", "compatible_brands")


def clean_tags(tags) -> dict[str, str]:
    """``tags`` without those that describe the old file rather than its content."""
    return {k: v for k, v in dict(tags).items() if not k.lower().startswith(_STALE_TAGS)}


def read_chapters(c: av.container.InputContainer) -> tuple[Chapter, ...]:
    return tuple(Chapter(start=ch["start"], end=ch["end"], time_base=Fraction(ch["time_base"]),
                         metadata=tuple(ch["metadata"].items())) for ch in c.chapters())


def write_chapters(out: av.container.OutputContainer, chapters: Sequence[Chapter]) -> None:
    if chapters:
        out.set_chapters([ch.as_av(i) for i, ch in enumerate(chapters)])


def is_cover(s: av.stream.Stream) -> bool:
    """Cover art: a video stream that is one attached picture (mp4 thumbnails of downloaded music videos)."""
    return s.type == "video" and bool(s.disposition & av.stream.Disposition.attached_pic)


def is_side(s: av.stream.Stream) -> bool:
    """A stream carried into the output beside the upscaled video."""
    return s.type in COPY_TYPES or is_cover(s)


def carries(p: av.Packet) -> bool:
    """Whether a demuxed side-stream packet holds data: it has a time, or it is the cover picture
    (which has none); not the empty packets that end each stream."""
    return p.dts is not None or p.pts is not None or (p.size > 0 and is_cover(p.stream))


def main_video_stream(c: av.container.InputContainer, source: object) -> av.stream.Stream:
    """The video stream to upscale: the one FFmpeg's tools pick (``av_find_best_stream``: most
    decodable frames, then bitrate), never cover art (an attached picture)."""
    moving = [s for s in c.streams.video if not is_cover(s)]
    if not moving:
        kinds = ", ".join(sorted({"cover art" if s.type == "video" else s.type for s in c.streams}))
        raise InputError(f"no video stream in {source} (found: {kinds or 'no streams'})")
    best = c.streams.best("video")
    return best if best in moving else moving[0]


def describe_stream(s: av.stream.Stream) -> str:
    """``audio stream #2 (pcm_s16le, eng, "Commentary")``: how warnings name a stream."""
    if s.type == "attachment":
        return f"attachment #{s.index} ({s.name})"
    if is_cover(s):
        return f"cover art #{s.index} ({s.codec_context.name})"
    bits = [s.codec_context.name if s.codec_context else "unknown"]
    if s.language:
        bits.append(s.language)
    if s.metadata.get("title"):
        bits.append(f'"{s.metadata["title"]}"')
    return f"{s.type} stream #{s.index} ({', '.join(bits)})"


def embedded(s: av.stream.Stream, muxer: str) -> bool:
    """Whether ``s`` goes into the header of a ``muxer`` output rather than as packets: attachments
    (e.g. the fonts of styled subtitles), and cover art in Matroska, which keeps it as one."""
    return s.type == "attachment" or (is_cover(s) and muxer == "matroska")


def embed(out: av.container.OutputContainer, s: av.stream.Stream, *, where: str,
          path: str | os.PathLike | None) -> str | None:
    """Put :func:`embedded` stream ``s`` of the file ``path`` (None: a pipe) into ``out``'s header;
    a warning instead where that cannot be done. Only Matroska holds attachments: WebM and mp4
    refuse them, MPEG-TS breaks on them. A cover becomes ``cover.jpg`` (or .png), which FFmpeg
    reads back as an attached picture."""
    if s.type == "attachment":
        if out.format.name != "matroska":
            return f"{describe_stream(s)} dropped: {where} cannot hold attachments (.mkv can)"
        out.add_attachment(s.name, s.mimetype, bytes(s.data))
        return None
    if path is None:
        return f"{describe_stream(s)} dropped: it cannot be read again from a pipe"
    with contextlib.closing(av.open(str(path))) as c:  # demuxers hand the picture out first
        data = next((bytes(p) for p in c.demux(c.streams[s.index]) if p.size > 0), None)
    if data is not None:
        png = s.codec_context.name == "png"
        out.add_attachment("cover.png" if png else "cover.jpg", "image/png" if png else "image/jpeg", data)
    return None


def can_copy(format_name: str, stream: av.stream.Stream) -> bool:
    """Whether muxer ``format_name`` takes ``stream``'s packets as they are (tried in memory:
    FFmpeg's codec tables accept some pairs the muxer then refuses, e.g. PCM in mp4)."""
    try:
        out = av.open(io.BytesIO(), mode="w", format=format_name)
    except (ValueError, av.error.FFmpegError):
        return False
    try:
        out.add_stream_from_template(stream)
        out.start_encoding()
        return True
    except (ValueError, av.error.FFmpegError):
        return False
    finally:
        with contextlib.suppress(Exception):
            out.close()

