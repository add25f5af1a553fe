"""PyAV reading and writing: frame iterators with timestamps, stream copy, atomic output files.

An input is anything FFmpeg demuxes: a file (mp4, mkv, mov, webm, avi, ...), an image
sequence (``frames/%06d.png``) or ``-`` (stdin). It is opened once (:class:`Reader`), so
pipes work. Frames come out as RGB ``uint8``, or ``uint16`` for inputs deeper than 8 bits
when asked for. The output follows the input: pts and durations, colour tags, bit depth,
rotation, container metadata, and audio/subtitle streams with their languages and
dispositions (copied, or converted with a warning naming the stream).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import logging
import os
import re
import shutil
import sys
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import av.error
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc, VideoReformatter

from vidsr.media.deinterlace import DeinterlaceMode, Deinterlacer, is_interlaced
from vidsr.errors import InputError, OutputError

log = logging.getLogger("vidsr")

COPY_TYPES = ("audio", "subtitle", "attachment")
"""Stream types carried into the output besides the video (attachments: e.g. the fonts of styled
subtitles); cover art, a video stream, is carried too (:func:`is_side`)."""
STDIO = "-"
"""Input ``-`` reads stdin, output ``-`` writes stdout."""
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
_SEQUENCE = re.compile(r"%(0?)(\d*)d")
# tags that describe the old file (sizes, durations, muxer), not its content: not copied
_STALE_TAGS = ("encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "_statistics",
               "major_brand", "minor_version", "compatible_brands")
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                 7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
# AVColorSpace (the tag) -> swscale's SWS_CS_* (the YUV<->RGB matrix it applies)
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


@dataclass(frozen=True)
class Colour:
    """A video stream's colour tags as FFmpeg enum values (2, or 0 for ``range``: unspecified)."""

    primaries: int = 2
    trc: int = 2
    matrix: int = 2
    range: int = 0

    @classmethod
    def of(cls, frame: av.VideoFrame) -> Colour:
        return cls(primaries=int(frame.color_primaries), trc=int(frame.color_trc),
                   matrix=int(frame.colorspace), range=int(frame.color_range))

    @property
    def full_range(self) -> bool:
        return self.range == ColorRange.JPEG

    def names(self) -> dict[str, str]:
        """E.g. ``{'primaries': 'bt2020', 'trc': 'smpte2084', 'matrix': 'bt2020nc', 'range': 'tv'}``."""
        def name(enum, value: int) -> str:
            try:
                return enum(value).name.lower()
            except ValueError:
                return str(value)

        return {"primaries": name(ColorPrimaries, self.primaries), "trc": name(ColorTrc, self.trc),
                "matrix": _MATRIX_NAMES.get(self.matrix, str(self.matrix)),
                "range": {0: "unspecified", 1: "tv", 2: "pc"}.get(self.range, str(self.range))}

    def for_yuv(self, *, rgb_source: bool) -> Colour:
        """Tags for a YUV output: the input's own, or BT.709 limited range for RGB sources."""
        if not rgb_source and self.matrix != 0:
            return self
        return Colour(primaries=1 if self.primaries == 2 else self.primaries, trc=self.trc, matrix=1, range=1)


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline keeps from the input's video stream."""

    path: str
    width: int
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    frames: int | None
    duration_s: float | None
    rotation: int
    codec: str
    pix_fmt: str
    audio_streams: int
    subtitle_streams: int
    bit_depth: int = 8
    colour: Colour = Colour()
    metadata: tuple[tuple[str, str], ...] = ()
    """Container tags worth keeping (title, creation_time, ...)."""
    video_metadata: tuple[tuple[str, str], ...] = ()
    source: str = "file"
    """``file``, ``sequence`` (image sequence) or ``pipe`` (stdin: can be read only once)."""
    chapters: tuple[Chapter, ...] = ()
    sample_aspect_ratio: Fraction | None = None
    """Pixel shape of anamorphic video (DV, DVD, SD broadcast: e.g. 32/27 for 720x480 at 16:9);
    None for square pixels or unknown. Upscaling both axes alike keeps it."""

    @property
    def fps(self) -> float:
        return float(self.average_rate) if self.average_rate else 30.0


@dataclass(frozen=True)
class Chapter:
    """A chapter mark of the input (start and end in ``time_base``), kept in the output."""

    start: int
    end: int
    time_base: Fraction
    metadata: tuple[tuple[str, str], ...] = ()

    def as_av(self, index: int) -> dict:
        return {"id": index + 1, "start": self.start, "end": self.end, "time_base": self.time_base,
                "metadata": dict(self.metadata)}


def read_chapters(c: av.container.InputContainer) -> tuple[Chapter, ...]:
    return tuple(Chapter(start=ch["start"], end=ch["end"], time_base=Fraction(ch["time_base"]),
                         metadata=tuple(ch["metadata"].items())) for ch in c.chapters())


def write_chapters(out: av.container.OutputContainer, chapters: Sequence[Chapter]) -> None:
    if chapters:
        out.set_chapters([ch.as_av(i) for i, ch in enumerate(chapters)])


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``image``: (H, W, 3) uint8 RGB (uint16 for deep inputs read with
    ``deep=True``); ``pts``/``duration`` in ``time_base``."""

    index: int
    image: np.ndarray
    pts: int
    duration: int | None
    time_base: Fraction
    key: bool = False


@dataclass(frozen=True)
class Passthrough:
    """A packet of an audio/subtitle stream that goes to the output unchanged (or re-encoded)."""

    packet: av.Packet
    stream_index: int


@dataclass
class DecodeStats:
    """What reading an input ran into; filled in while it is read."""

    frames: int = 0
    bad_packets: int = 0
    repaired_pts: int = 0
    read_error: str | None = None
    truncated: str | None = None
    ignored: list[str] = field(default_factory=list)  # streams that are not copied (data, extra video)
    interlaced: int = 0  # frames the decoder flagged interlaced
    resized: list[str] = field(default_factory=list)  # other frame sizes met after the first
    size: str = ""  # the size the video started at
    deinterlaced: bool = False  # whether frames went through the deinterlacer

    @property
    def damage(self) -> list[str]:
        """Lost data (corrupt packets, an unreadable or short file): what ``--strict`` fails on."""
        out = []
        if self.bad_packets:
            out.append(f"{self.bad_packets} packet(s) could not be decoded and were skipped")
        out += [m for m in (self.read_error, self.truncated) if m]
        return out

    @property
    def notes(self) -> list[str]:
        """Everything worth a warning: :attr:`damage` and repaired timestamps."""
        extra = [f"{self.repaired_pts} frame(s) had missing or out-of-order timestamps; "
                 "they were given the next free ones"] if self.repaired_pts else []
        if self.resized:
            extra.append(f"the frame size changes mid-stream (to {', '.join(self.resized)}): those frames were "
                         f"scaled to {self.size}, the size the video starts at")
        # no counts: the segments of one input (--workers, --resume) give the same line
        if self.interlaced and self.deinterlaced:
            extra.append("the input is interlaced: its interlaced frames were deinterlaced with bwdif "
                         "(--deinterlace off keeps the fields)")
        elif self.interlaced:
            extra.append("the input is interlaced and was upscaled with its two fields woven together "
                         "(--deinterlace off)")
        return self.damage + extra + [f"{s} not copied: only audio, subtitles and attachments are"
                                      for s in self.ignored]


def _pixel_aspect(v: av.stream.Stream) -> Fraction | None:
    sar = v.sample_aspect_ratio or v.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 and sar != 1 else None


def _clean_tags(tags) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in dict(tags).items() if not k.lower().startswith(_STALE_TAGS))


def is_sequence(path: str | os.PathLike) -> bool:
    """True for an image-sequence pattern such as ``frames/%06d.png``."""
    return str(path) != STDIO and bool(_SEQUENCE.search(Path(path).name))


_DISCARD_ALL = 48
"""AVDISCARD_ALL: set by demuxers on tracks of their own, such as the text track that holds an
mp4's chapters (which are carried over as chapters)."""
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: quality scale -> lambda
_TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
"""FFmpeg demuxers of text-mode art (.txt, .bin, .nfo, ...): they take any text or bytes, so never a video."""


def _av_open(target, label: str, **kwargs) -> av.container.InputContainer:
    try:
        return av.open(target, mode="r", **kwargs)
    except av.error.EOFError:
        raise InputError(f"no video frames in {label} (the file ends before any data: empty or truncated)") from None
    except av.error.InvalidDataError as e:
        raise InputError(f"not a readable video file: {label} ({e.strerror or e})") from None
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"cannot open {label}: {getattr(e, 'strerror', None) or e}") from None


def _open_sequence(p: Path, rate: Fraction | None) -> av.container.InputContainer:
    if not p.parent.is_dir():
        raise InputError(f"image sequence folder not found: {p.parent}")
    m = _SEQUENCE.search(p.name)
    digits = rf"\d{{{int(m.group(2))},}}" if m.group(2) else r"\d+"
    regex = re.compile(re.escape(p.name[:m.start()]) + f"({digits})" + re.escape(p.name[m.end():]) + "$")
    numbers = [int(n.group(1)) for n in map(regex.match, os.listdir(p.parent)) if n]
    if not numbers:
        raise InputError(f"no images match {p}")
    options = {"framerate": str(rate or 25), "start_number": str(min(numbers))}
    return _av_open(str(p), str(p), format="image2", options=options)


def _open_input(path: str | os.PathLike | None, *, rate: Fraction | None = None) -> av.container.InputContainer:
    if str(path) == STDIO:
        stdin = sys.stdin.buffer
        if stdin.isatty():
            raise InputError("input '-' reads a video from stdin, but stdin is a terminal")
        return _av_open(stdin, "stdin")
    p = Path(path)
    if is_sequence(p):
        return _open_sequence(p, rate)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a folder, not a video file: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"input is an empty file: {p}")
    return _av_open(str(p), str(p))


class Reader:
    """One open input, read once in file order: decoded video frames and side-stream packets.

    Opening decodes up to the first frame (kept for :meth:`items`) to learn the frame size,
    rotation, colour tags and bit depth, so a pipe is never read twice. Packets that fail
    to decode are counted in ``stats.bad_packets`` and skipped; frames that decode are kept.

    Args:
        source: a file, an image-sequence pattern (``frames/%06d.png``) or ``"-"`` (stdin).
        copy_streams: also yield audio/subtitle packets (:class:`Passthrough`).
        deep: frames of inputs deeper than 8 bits come out as (H, W, 3) uint16, else uint8.
        rate: frame rate of an image sequence (default 25); ignored for other inputs.
        deinterlace: auto deinterlaces the frames flagged interlaced (from the first such frame
            on, with bwdif: :mod:`vidsr.media.deinterlace`), all every frame, off none.
    """

    def __init__(self, source: str | os.PathLike, *, copy_streams: bool = True, deep: bool = False,
                 rate: Fraction | None = None, stats: DecodeStats | None = None,
                 deinterlace: DeinterlaceMode = "auto") -> None:
        self.source = str(source)
        self.stats = stats if stats is not None else DecodeStats()
        self._deinterlace_mode = deinterlace
        self._deinterlacer: Deinterlacer | None = None
        self.container = _open_input(source, rate=rate)
        try:
            self._start(copy_streams=copy_streams, deep=deep)
        except BaseException:
            self.container.close()
            raise

    def _start(self, *, copy_streams: bool, deep: bool) -> None:
        c = self.container
        if c.format.name in _TEXT_FORMATS:
            # FFmpeg renders any text (tty) or byte file (bin) as a terminal-art "video"
            raise InputError(f"not a video file: {self.source} (FFmpeg would read it as text art: {c.format.long_name})")
        v = main_video_stream(c, self.source)
        if not v.codec_context or not v.codec_context.width:
            raise InputError(f"video stream of {self.source} has no frame size (truncated or unsupported)")
        v.thread_type = "AUTO"
        self.video = v
        content = [s for s in c.streams if s.discard != _DISCARD_ALL]
        self.side_streams: list[av.stream.Stream] = [s for s in content if is_side(s) and s.index != v.index] \
            if copy_streams else []
        if copy_streams:
            self.stats.ignored = [describe_stream(s) for s in content if s.index != v.index and not is_side(s)]
        self.time_base: Fraction = v.time_base or Fraction(1, 90000)
        rate = v.average_rate or v.guessed_rate or Fraction(30)
        self._step = max(1, round(1 / (rate * self.time_base)))
        self._dts_times = c.format.name == "avi"  # frame times are index (dts) times
        self._next_pts: int | None = None
        self._last: tuple[int, int] | None = None  # (pts, duration) of the last frame
        self._index = 0
        self._skip_before: int | None = None
        self._reformatter = VideoReformatter()
        self._pending: deque[av.VideoFrame | Passthrough] = deque()
        self._packets = c.demux(v, *self.side_streams)
        first = self._peek()
        if first is None:
            raise InputError(f"no video frames could be decoded from {self.source}")
        self.info = self._describe(first)
        self.stats.size = f"{self.info.width}x{self.info.height}"
        self._format = "rgb48le" if deep and self.info.bit_depth > 8 else "rgb24"

    def _peek(self) -> av.VideoFrame | None:
        """Demux until the first frame decodes; everything read is kept in ``_pending``."""
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except av.error.FFmpegError as e:
                raise InputError(f"cannot read {self.source}: {e.strerror or e}") from None
            if packet.stream.index != self.video.index:
                if carries(packet):
                    self._pending.append(Passthrough(packet=packet, stream_index=packet.stream.index))
                continue
            frames = self._decode(packet)
            self._pending.extend(frames)
            if frames:
                return frames[0]

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        """Frames from ``packet`` (None, or the demuxer's empty packet at the end: drain the decoder)."""
        try:
            frames = packet.decode() if packet is not None else self.video.decode(None)
        except av.error.FFmpegError:
            self.stats.bad_packets += 1
            frames = []
        return self._deinterlaced(frames, last=packet is None or packet.size == 0)

    def _deinterlaced(self, frames: list[av.VideoFrame], *, last: bool) -> list[av.VideoFrame]:
        mode, out = self._deinterlace_mode, []
        for f in frames:
            interlaced = is_interlaced(f)
            self.stats.interlaced += interlaced
            if self._deinterlacer is None and (mode == "all" or (mode == "auto" and interlaced)):
                self._deinterlacer = Deinterlacer(f, time_base=self.time_base, all_frames=mode == "all")
                self.stats.deinterlaced = True
            d = self._deinterlacer
            # a frame of another size passes by the filter, to be refused in _frame
            out += d.push(f) if d is not None and (f.width, f.height) == d.size else [f]
        if last and self._deinterlacer is not None:
            out += self._deinterlacer.flush()
        return out

    def _describe(self, first: av.VideoFrame) -> VideoInfo:
        v, c = self.video, self.container
        comps = first.format.components
        duration_s = None
        if v.duration is not None and v.time_base is not None:
            duration_s = float(v.duration * v.time_base)
        elif c.duration is not None:
            duration_s = c.duration / av.time_base
        source = "pipe" if self.source == STDIO else "sequence" if is_sequence(self.source) else "file"
        return VideoInfo(
            path=self.source, width=first.width, height=first.height, time_base=self.time_base,
            average_rate=v.average_rate or v.guessed_rate, frames=v.frames or None, duration_s=duration_s,
            rotation=int(round(first.rotation or 0)) % 360, codec=v.codec_context.name,
            pix_fmt=first.format.name, audio_streams=len(c.streams.audio), subtitle_streams=len(c.streams.subtitles),
            bit_depth=max((p.bits for p in comps), default=8), colour=Colour.of(first),
            metadata=_clean_tags(c.metadata), video_metadata=_clean_tags(v.metadata), source=source,
            sample_aspect_ratio=_pixel_aspect(v), chapters=read_chapters(c),
        )

    def items(self) -> Iterator[Frame | Passthrough]:
        """Frames (with pts, duration, key flag) and side packets, in file order, to the end."""
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, Passthrough):
                yield item
            elif (frame := self._frame(item)) is not None:
                yield frame
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                self.stats.read_error = (f"reading {self.source} failed after {self._index} frames "
                                         f"({e.strerror or e}); the frames before were kept")
                for f in self._decode(None):  # frames still inside the decoder
                    if (frame := self._frame(f)) is not None:
                        yield frame
                break
            if packet.stream.index != self.video.index:
                if carries(packet):
                    yield Passthrough(packet=packet, stream_index=packet.stream.index)
                continue
            for f in self._decode(packet):
                if (frame := self._frame(f)) is not None:
                    yield frame
        self._check_length()

    def seek(self, pts: int) -> None:
        """Continue from the frame at ``pts`` (where a resumable segment starts, a keyframe):
        seek to the keyframe at or before it and drop every frame before ``pts``."""
        try:
            self.container.seek(pts, stream=self.video, backward=True, any_frame=False)
        except av.error.FFmpegError as e:
            raise InputError(f"cannot seek in {self.source} to resume: {e.strerror or e}") from None
        self.video.codec_context.flush_buffers()
        self._deinterlacer = None  # a fresh filter: the frames it held are from before the seek
        self._pending.clear()
        self._packets = self.container.demux(self.video, *self.side_streams)
        self._skip_before, self._last, self._next_pts = pts, None, None

    def _frame(self, f: av.VideoFrame) -> Frame | None:
        if self._skip_before is not None and f.pts is not None and f.pts < self._skip_before:
            return None
        size = (self.info.width, self.info.height)
        resize = {}
        if (f.width, f.height) != size:  # as FFmpeg's tools do: scaled to the size the video started at
            if (other := f"{f.width}x{f.height}") not in self.stats.resized:
                self.stats.resized.append(other)
            resize = {"width": size[0], "height": size[1], "interpolation": "BICUBIC"}
        pts = f.pts
        if self._dts_times and f.dts is not None and not self.video.codec_context.has_b_frames:
            # AVI keeps no pts: FFmpeg guesses them as dts + a reorder delay, even for a stream the
            # decoder does not reorder (x264 without B-frames read back one frame late); there a
            # frame's time is its packet's index time
            pts = f.dts
        if pts is None:
            pts = self._next_pts if self._next_pts is not None else 0
        if self._last is not None and pts <= self._last[0]:
            pts = self._last[0] + 1
            self.stats.repaired_pts += 1
        dur = f.duration or None
        self._next_pts = pts + (dur or self._step)
        self._last = (pts, dur or self._step)
        image = self._reformatter.reformat(f, format=self._format, **resize).to_ndarray()
        frame = Frame(index=self._index, image=image, pts=pts, duration=dur, time_base=self.time_base,
                      key=bool(f.key_frame))
        self._index += 1
        self.stats.frames = self._index
        return frame

    def _check_length(self) -> None:
        """Note a video that ends well before the length its header declares (a cut-off file).

        Uses the video track's own length (mp4/mov index, Matroska's DURATION tag), else the
        container's when the video is its only stream (FFmpeg copies the container's length,
        which also covers the audio, into streams that have none).
        """
        v, c = self.video, self.container
        if self._last is None or self.info.source == "sequence":
            return
        tag = next((val for key, val in v.metadata.items() if key.upper() == "DURATION"), None)
        if v.duration and c.format.name.startswith(("mov", "mp4")):  # per-track length in the index
            declared = float(((v.start_time or 0) + v.duration) * self.time_base)
        elif tag and re.fullmatch(r"\d+:\d\d:\d\d(\.\d+)?", tag):  # Matroska's per-track tag
            h, m, sec = tag.split(":")
            declared = int(h) * 3600 + int(m) * 60 + float(sec)  # the track's end time
        elif c.duration and len(c.streams) == 1:
            declared = ((c.start_time or 0) + c.duration) / av.time_base
        else:
            return
        got = float((self._last[0] + self._last[1]) * self.time_base)
        if got < declared - max(0.25, 2 * float(self._step * self.time_base)):
            self.stats.truncated = (f"the video ends at {got:.2f} s but {self.source} declares "
                                    f"{declared:.2f} s: the input looks truncated")

    def close(self) -> None:
        self.container.close()


def probe(path: str | os.PathLike, *, rate: Fraction | None = None) -> VideoInfo:
    """Open ``path``, check it has a decodable video stream and describe it."""
    with contextlib.closing(Reader(path, copy_streams=False, rate=rate)) as r:
        return r.info


def read_items(path: str | os.PathLike, *, copy_streams: bool = True, stats: DecodeStats | None = None,
               deep: bool = False, deinterlace: DeinterlaceMode = "auto") -> Iterator[Frame | Passthrough]:
    """Demux ``path`` in file order: decoded video frames and audio/subtitle packets to copy.

    Frames keep their pts and duration; frames with no pts get one from the frame rate.
    Packets that fail to decode are counted in ``stats.bad_packets`` and skipped.
    """
    with contextlib.closing(Reader(path, copy_streams=copy_streams, deep=deep, stats=stats,
                                   deinterlace=deinterlace)) as r:
        yield from r.items()


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings.

    ``codec=None`` picks one the container holds (:func:`pick_codec`: libx264, or VP9 for webm).
    ``preset``: the x264/x265 preset (default veryfast), SVT-AV1's preset number (10), or VP9's
    ``cpu-used`` (default 8, realtime); other encoders take only ``crf``.
    ``pix_fmt=None`` follows the input: ``yuv420p`` for 8-bit input, ``yuv420p10le`` for deeper
    input (4:2:2 and 4:4:4 inputs keep their chroma), where the codec can encode it.
    ``container`` names the muxer (default: from the output's extension; ``matroska`` for ``-``).
    """

    codec: str | None = None
    crf: int = 18
    preset: str | None = None
    pix_fmt: str | None = None
    container: str | None = None

    def for_output(self, path: Path | str) -> EncodeOptions:
        """These options with the codec chosen for ``path``'s container when none was given
        (for an image sequence, from the frames' extension)."""
        if self.codec is not None:
            return self
        muxer = muxer_name(path, self.container)
        return dataclasses.replace(self, codec=image_codec(path) if muxer == "image2" else pick_codec(muxer))

    def encoder_options(self) -> dict[str, str]:
        """FFmpeg options for the (chosen) encoder: constant quality ``crf`` and its speed setting
        (none for image frames: PNG, TIFF and BMP are lossless, JPEG has a fixed quality)."""
        if self.codec in IMAGE_PIX_FMTS:
            return {}
        opts = {"crf": str(self.crf)}
        if self.codec in ("libx264", "libx265"):
            opts["preset"] = self.preset or "veryfast"
        if self.codec == "libx265":
            opts["x265-params"] = "log-level=error"
        if self.codec == "libsvtav1":
            opts["preset"] = self.preset or "10"
        if self.codec == "libvpx-vp9":  # constant quality (no bitrate cap), fast enough to keep up
            opts |= {"b": "0", "deadline": "realtime", "cpu-used": self.preset or "8", "row-mt": "1"}
        return opts


IMAGE_CODECS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}
"""Encoders of image-sequence output (``frames/%06d.png``), by extension."""
IMAGE_PIX_FMTS = {"png": ("rgb24", "rgb48be"), "tiff": ("rgb24", "rgb48le"), "bmp": ("bgr24", None),
                  "mjpeg": ("yuvj420p", None)}
"""(8-bit, deep) pixel formats of the image encoders; deep None: 8 bits only."""


def image_codec(path: Path | str) -> str:
    codec = IMAGE_CODECS.get(Path(path).suffix.lower())
    if codec is None:
        raise OutputError(f"cannot write {Path(path).suffix or 'extension-less'} frames: an image-sequence "
                          f"output is one of {', '.join(sorted(IMAGE_CODECS))} (e.g. frames/%06d.png)")
    return codec


AUTO_CODECS = ("libx264", "libvpx-vp9", "libsvtav1")
"""Encoders tried in this order when no codec is given: the first the container takes is used."""


def quiet_svt() -> None:
    """SVT-AV1 prints its set-up to stderr unless told otherwise: errors only (unless the user set SVT_LOG)."""
    os.environ.setdefault("SVT_LOG", "1")


def muxer_name(path: Path | str, container: str | None = None) -> str:
    """The FFmpeg muxer that writes ``path`` (``container`` if given; matroska for ``-``)."""
    if str(path) == STDIO or container:
        return container or "matroska"
    try:  # opening for writing guesses the muxer from the name; no file is made before the first packet
        out = av.open(str(path), mode="w")
    except (ValueError, av.error.FFmpegError, OSError) as e:
        raise OutputError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return out.format.name
    finally:
        out.close()


def pick_codec(muxer: str) -> str:
    """The first of :data:`AUTO_CODECS` that this FFmpeg encodes and ``muxer`` accepts.

    Asks the muxer itself by writing a header in memory (PyAV's ``supported_codecs`` leaves out
    what muxers without a codec table, such as mpegts, take, and some refuse a codec only there)."""
    quiet_svt()
    for codec in AUTO_CODECS:
        out = av.open(io.BytesIO(), mode="w", format=muxer)
        try:
            v = out.add_stream(codec, rate=30)
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
            out.start_encoding()
            return codec
        except (ValueError, av.error.FFmpegError):
            continue
        finally:
            with contextlib.suppress(Exception):
                out.close()
    raise OutputError(f"the {muxer} container holds none of H.264, VP9 and AV1 (the formats vidsr encodes "
                      "without --codec); write .mp4, .mkv or .webm, or give --codec")


def _rgb_like(pix_fmt: str) -> bool:
    """RGB, palette or grey input (no YUV matrix of its own)."""
    try:
        f = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return False
    return f.is_rgb or f.has_palette or len(f.components) <= 2


def has_alpha(pix_fmt: str) -> bool:
    """Whether frames of ``pix_fmt`` carry transparency (rgba, yuva420p, ya8, gbrap, ...)."""
    try:
        return len(av.VideoFormat(pix_fmt).components) in (2, 4)
    except (ValueError, av.error.FFmpegError):
        return False


def choose_pix_fmt(options: EncodeOptions, info: VideoInfo) -> tuple[str, str | None]:
    """The encoder's pixel format for ``info``'s input, and a warning if depth or chroma is lost."""
    if options.pix_fmt:
        return options.pix_fmt, None
    if options.codec in IMAGE_PIX_FMTS:
        eight, deep = IMAGE_PIX_FMTS[options.codec]
        if info.bit_depth <= 8:
            return eight, None
        if deep is not None:
            return deep, None
        return eight, f"{options.codec} frames hold 8 bits; the input has {info.bit_depth}-bit samples"
    name = info.pix_fmt
    chroma = "420"
    if not _rgb_like(name):
        chroma = "444" if "444" in name else "422" if "422" in name else "420"
    deep = info.bit_depth > 8
    want = f"yuv{chroma}p" + ("10le" if deep else "")
    try:
        formats = [f.name for f in (av.Codec(options.codec, "w").video_formats or ())]
    except (ValueError, av.error.FFmpegError):
        return want, None  # unknown codec: the writer reports it
    if not formats or want in formats:
        return want, None
    for fallback in (["yuv420p10le"] if deep else []) + ["yuv420p", formats[0]]:
        if fallback in formats:
            return fallback, (f"codec {options.codec} cannot encode {want}; writing {fallback}"
                              + (f" (the input has {info.bit_depth}-bit samples)" if deep else ""))
    return formats[0], None


def temp_path_for(final: Path) -> Path:
    """A hidden temp file next to ``final`` that keeps its extension (so the muxer is the same)."""
    return final.with_name(f".{final.stem}.vidsr-{os.getpid()}.tmp{final.suffix}")


def check_output_path(output: Path, *, input_path: Path | None = None, container: str | None = None) -> None:
    """Fail early (one clear line) when ``output`` cannot be written (``-``, stdout, always can)."""
    if str(output) == STDIO:
        return
    output = Path(output)
    if input_path is not None and str(input_path) != STDIO and output.resolve() == Path(input_path).resolve():
        raise OutputError(f"output is the same file as the input: {output}")
    if output.is_dir():
        raise OutputError(f"output is a folder: {output}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    if not output.suffix and not container:
        raise OutputError(f"output needs a container extension such as .mp4 or .mkv: {output}")
    if not is_sequence(output) and output.suffix.lower() in IMAGE_CODECS and not container:
        raise OutputError(f"{output} is one image: to write frames, give a numbered pattern such as "
                          f"{output.with_name(output.stem + '_%06d' + output.suffix)}")
    if is_sequence(output):
        image_codec(output)
    probe_path = temp_path_for(output)
    try:
        with open(probe_path, "wb"):
            pass
    except OSError as e:
        raise OutputError(f"cannot create files in {parent}: {e.strerror}") from None
    try:
        av.open(str(probe_path), mode="w", format=container).close()
    except (ValueError, av.error.FFmpegError) as e:
        reason = getattr(e, "strerror", None) or e
        raise OutputError(f"cannot write {output} (extension {output.suffix!r}): {reason}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe_path.unlink()


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temp path; on success rename it to ``final``, on any error remove it.

    ``-`` (stdout) is yielded as is: a stream cannot be taken back, a failure is only in the exit code.
    """
    if str(final) == STDIO:
        yield final
        return
    if is_sequence(final):
        yield from _atomic_sequence(final)
        return
    tmp = temp_path_for(final)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    try:
        os.replace(tmp, final)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise OutputError(f"cannot move finished output to {final}: {e.strerror}") from None


def _atomic_sequence(pattern: Path) -> Iterator[Path]:
    """:func:`atomic_output` for numbered frames: they are written into a hidden folder beside
    them and moved into place at the end."""
    folder = pattern.parent / f".vidsr-{os.getpid()}.tmp-frames"
    folder.mkdir(exist_ok=True)
    try:
        yield folder / pattern.name
        try:  # only the move: an error while writing keeps its own message
            for f in sorted(folder.iterdir()):
                os.replace(f, pattern.parent / f.name)
        except OSError as e:
            raise OutputError(f"cannot move finished frames to {pattern.parent}: {e.strerror}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _known_layout(layout: av.AudioLayout) -> str:
    """The layout's name, or the usual layout for its channel count when the file did not say
    which channel is which (AVI's "2 channels"): mp4 and most encoders refuse an unknown order."""
    if not layout.name.endswith("channels"):
        return layout.name
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}.get(
        layout.nb_channels, layout.name)


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


# FFmpeg's own default header for text subtitles converted from a format that has none (SubRip...)
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\nScaledBorderAndShadow: yes\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    b"BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
    b"Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,"
    b"&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, "
    b"MarginL, MarginR, MarginV, Effect, Text\n"
)


class VideoWriter:
    """Encode RGB frames at given pts into ``path`` and copy (or convert) side streams.

    Frames must arrive in presentation order with the input's pts; ``close()`` flushes.
    The video stream gets the input's colour tags, rotation and (by default) bit depth;
    audio/subtitle streams are copied with their metadata and dispositions when the
    container can hold them, else audio is re-encoded and text subtitles converted, each
    with a warning naming the stream; anything else is dropped with a warning.

    Args:
        path: output file, or ``"-"`` for stdout.
        sources: the input's audio/subtitle streams (:attr:`Reader.side_streams`); default:
            reopen ``info.path`` to find them (not possible for a pipe).
        name: how errors name the output (the final name, when ``path`` is a temp file).
        template: an already encoded video stream whose packets will be given to
            :meth:`mux_video` (joining resumable segments) instead of frames to encode.
        bitexact: no random ids or version strings in the container (same input, same bytes).
    """

    def __init__(self, *, path: Path | str, info: VideoInfo, width: int, height: int,
                 options: EncodeOptions, copy_streams: bool = True,
                 sources: Sequence[av.stream.Stream] | None = None, name: str | None = None,
                 template: av.stream.Stream | None = None, bitexact: bool = False) -> None:
        self.path = Path(path)
        self.name = name or str(path)
        self.closed = False
        self.warnings: list[str] = []
        self._lead: dict[int, int] = {}  # side stream -> ticks its packets are moved by (_from_zero)
        flags = {"fflags": "+bitexact"} if bitexact else {}
        try:
            if str(path) == STDIO:
                fmt = options.container or "matroska"
                if fmt in ("mp4", "mov", "ipod", "ismv"):  # a pipe cannot seek back to write the index
                    flags["movflags"] = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
                self.container = av.open(sys.stdout.buffer, mode="w", format=fmt, container_options=flags)
            else:
                self.container = av.open(str(path), mode="w", format=options.container, container_options=flags)
        except (ValueError, av.error.FFmpegError, OSError) as e:
            raise OutputError(f"cannot create output {self.name}: {getattr(e, 'strerror', None) or e}") from None
        self._index_times = self.container.format.name == "avi"  # one frame per tick, no reordered times
        try:
            if template is not None:
                self._setup_copied_video(info, template)
            else:
                self._setup(info, width, height, options)
            if copy_streams:
                self._setup_side_streams(info, sources)
            write_chapters(self.container, info.chapters)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, info: VideoInfo, width: int, height: int, options: EncodeOptions) -> None:
        self.width = width + (width % 2)
        self.height = height + (height % 2)
        rate = info.average_rate or Fraction(30)
        if options.codec is None:
            options = options.for_output(self.path)
        if options.codec == "libsvtav1":
            quiet_svt()
        try:
            v = self.container.add_stream(options.codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:
            known = options.codec in av.codecs_available
            raise OutputError(f"cannot write {options.codec} video to {self.name}: {e}" if known else
                              f"unknown or unavailable video codec {options.codec!r}") from None
        pix_fmt, warning = choose_pix_fmt(options, info)
        if warning:
            self.warnings.append(warning)
        if has_alpha(info.pix_fmt):
            self.warnings.append(f"the input's alpha channel ({info.pix_fmt}) is not kept: the output is opaque")
        v.width, v.height = self.width, self.height
        try:
            v.pix_fmt = pix_fmt
        except (ValueError, av.error.FFmpegError) as e:
            raise OutputError(f"unknown pixel format {pix_fmt!r}: {e}") from None
        tb, opts = info.time_base, options.encoder_options()
        if self._index_times:  # AVI plays one frame per tick and keeps no reordered times
            tb = 1 / Fraction(info.average_rate or 30)
            opts["bf"] = "0"  # no B-frames
            if options.codec == "libx264":
                opts["x264-params"] = "bframes=0"
        v.time_base = tb
        v.codec_context.time_base = tb
        v.options = opts
        self.colour = info.colour.for_yuv(rgb_source=_rgb_like(info.pix_fmt))
        cc = v.codec_context
        if options.codec == "mjpeg":  # JPEG's own full-range BT.601 YUV
            self.colour = dataclasses.replace(self.colour, matrix=5, range=ColorRange.JPEG)
            # every frame at quality 2 (FFmpeg's -q:v 2), not a bitrate that starves later frames
            cc.qscale = True
            cc.global_quality = 2 * _QP2LAMBDA
        elif av.VideoFormat(v.pix_fmt).is_rgb:  # RGB out (PNG frames, --pix-fmt gbrp): no YUV matrix
            self.colour = dataclasses.replace(self.colour, matrix=0, range=ColorRange.JPEG)
        cc.color_primaries, cc.color_trc = self.colour.primaries, self.colour.trc
        cc.colorspace, cc.color_range = self.colour.matrix, self.colour.range
        self._sws_matrix = _SWS_MATRIX.get(self.colour.matrix)
        self._reformatter = VideoReformatter()
        if info.rotation:
            v.set_display_rotation(info.rotation)
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        v.metadata.update(dict(info.video_metadata))
        self.container.metadata.update(dict(info.metadata))
        try:  # open the encoder now: a bad --codec/--crf/--preset fails before the run, with its reason
            cc.open()
        except (ValueError, av.error.FFmpegError) as e:
            settings = ", ".join(f"{k} {val}" for k, val in v.options.items())
            raise OutputError(f"cannot start the {options.codec} encoder ({settings}): "
                              f"{getattr(e, 'strerror', None) or e}") from None
        self.video = v
        self.side: dict[int, tuple[str, av.stream.Stream]] = {}
        self._copied_video = False

    def _setup_copied_video(self, info: VideoInfo, template: av.stream.Stream) -> None:
        self.width, self.height = template.codec_context.width, template.codec_context.height
        self.video = self.container.add_stream_from_template(template)
        self.video.time_base = info.time_base
        if info.rotation:
            self.video.set_display_rotation(info.rotation)
        self.video.metadata.update(dict(info.video_metadata))
        self.container.metadata.update(dict(info.metadata))
        self.side: dict[int, tuple[str, av.stream.Stream]] = {}
        self._copied_video = True

    def mux_video(self, packet: av.Packet) -> None:
        """Mux an already encoded video packet (the writer was made with ``template``)."""
        packet.stream = self.video
        self._mux([packet])

    def _setup_side_streams(self, info: VideoInfo, sources: Sequence[av.stream.Stream] | None) -> None:
        if sources is not None:
            for s in sources:
                self._add_side_stream(s, info)
            return
        if info.source != "file":
            return
        with contextlib.closing(av.open(info.path)) as src:
            video = main_video_stream(src, info.path)
            for s in src.streams:
                if is_side(s) and s.index != video.index:
                    self._add_side_stream(s, info)

    def _add_side_stream(self, s: av.stream.Stream, info: VideoInfo) -> None:
        name = s.codec_context.name if s.codec_context else "unknown"
        what = describe_stream(s)
        fmt = self.container.format.name
        where = f"{self.path.suffix or fmt}" if str(self.path) != STDIO else fmt
        if embedded(s, fmt):
            warning = embed(self.container, s, where=where, path=info.path if info.source == "file" else None)
            if warning is not None:
                self.warnings.append(warning)
            return
        if can_copy(fmt, s):
            out = self.container.add_stream_from_template(s)
            if s.type == "audio" and s.codec_context.layout:
                out.codec_context.layout = _known_layout(s.codec_context.layout)
            self.side[s.index] = ("copy", out)
        elif s.type == "audio" and (codec := self._audio_codec()) is not None:
            ctx = s.codec_context
            rates = av.Codec(codec, "w").audio_rates
            rate = ctx.sample_rate if ctx.sample_rate and (not rates or ctx.sample_rate in rates) else 48000
            out = self.container.add_stream(codec, rate=rate)
            if ctx.layout:
                out.layout = _known_layout(ctx.layout)
            self.side[s.index] = ("encode", out)
            self.warnings.append(f"{what} re-encoded to {out.codec_context.name}: {where} cannot hold {name}")
        elif s.type == "subtitle" and name in TEXT_SUBTITLES and (codec := self._text_subtitle_codec()):
            out = self.container.add_stream(codec)
            out.codec_context.time_base = Fraction(1, 1000)
            header = s.codec_context.extradata if name in ("ass", "ssa") else None
            out.codec_context.subtitle_header = header or _ASS_HEADER
            self.side[s.index] = ("subtitle", out)
            self.warnings.append(f"{what} converted to {codec}: {where} cannot hold {name}")
        else:
            self.warnings.append(f"{what} dropped: {where} cannot hold {name}")
            return
        out.metadata.update(dict(_clean_tags(s.metadata)))
        out.disposition = s.disposition

    def _audio_codec(self) -> str | None:
        supported = self.container.supported_codecs
        for codec_name, encoder in (("aac", "aac"), ("opus", "libopus"), ("flac", "flac")):
            if codec_name in supported:
                return encoder
        default = self.container.default_audio_codec
        return None if default in (None, "none") else default

    def _text_subtitle_codec(self) -> str | None:
        supported = self.container.supported_codecs
        for codec_name, encoder in (("mov_text", "mov_text"), ("webvtt", "webvtt"), ("subrip", "srt"),
                                    ("ass", "ass")):
            if codec_name in supported:
                return encoder
        return None

    def write(self, image: np.ndarray, *, pts: int, time_base: Fraction, duration: int | None,
              fmt: str = "rgb24") -> None:
        """Encode one frame at ``pts``: (H, W, 3) uint8 or uint16 RGB, or (H, W) uint8 with ``fmt="gray"``.

        RGB is converted here with the output's matrix and range (and tagged with them).
        """
        h, w = image.shape[:2]
        if (h, w) != (self.height, self.width):
            extra = ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, ((0, self.height - h), (0, self.width - w), *extra), mode="edge")
        if image.dtype == np.uint16 and fmt == "rgb24":
            fmt = "rgb48le"
        # wraps the array (from_ndarray's copy cost 14 ms per 1080p frame); the encoder copies what it keeps
        frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(image), format=fmt)
        if fmt != "gray":
            frame = self._reformatter.reformat(frame, format=self.video.codec_context.pix_fmt,
                                               dst_colorspace=self._sws_matrix,
                                               dst_color_range=self.colour.range or None)
        c = self.colour
        frame.color_primaries, frame.color_trc, frame.colorspace = c.primaries, c.trc, c.matrix
        frame.color_range = c.range
        frame.pts = pts
        frame.time_base = time_base
        if duration:
            frame.duration = duration
        self._mux(self.video.encode(frame))

    def copy(self, item: Passthrough) -> None:
        """Mux (or convert) a side-stream packet."""
        entry = self.side.get(item.stream_index)
        if entry is None:
            return
        mode, out = entry
        packet = item.packet
        if mode == "copy":
            packet.stream = out
            self._mux([packet])
        elif mode == "encode":
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                return  # a corrupt audio packet: its samples are lost, the rest stays in sync
            for frame in frames:
                self._mux(out.encode(frame))
        else:
            for rect in packet.decode():
                text = getattr(rect, "ass", None)
                if not text or packet.pts is None:
                    continue
                sub = av.subtitles.subtitle.SubtitleSet.create(text=text, start=0, end=packet.duration or 0,
                                                              pts=packet.pts)
                converted = out.codec_context.encode_subtitle(sub)
                converted.stream = out
                converted.time_base = packet.time_base
                self._mux([converted])

    def _from_zero(self, packets: list[av.Packet]) -> list[av.Packet]:
        """In AVI, side-stream packets moved to start at 0 at the earliest. AVI keeps no edit list
        for an audio encoder's delay (AAC's 1024 priming samples before 0): the muxer would shift
        every stream by it, and the video, which ticks once per frame, gained a gap at its second
        frame and a frame of length. The audio then starts with its priming, as AVI players play it."""
        for p in packets:
            if p.dts is None or p.stream.index == self.video.index:
                continue
            lead = self._lead.setdefault(p.stream.index, max(0, -p.dts, -(p.pts or 0)))
            if lead:
                p.dts += lead
                if p.pts is not None:
                    p.pts += lead
        return packets

    def _fail(self, e: BaseException) -> OutputError:
        reason = getattr(e, "strerror", None) or str(e)
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            reason += " (the disk is full or a file-size limit was reached)"
        return OutputError(f"writing {self.name} failed: {reason}")

    def _mux(self, packets) -> None:
        if self._index_times:  # every side-stream packet: copied, re-encoded or flushed at the end
            packets = self._from_zero(list(packets))
        try:
            self.container.mux(packets)
        except (OSError, av.error.FFmpegError) as e:
            raise self._fail(e) from None

    def close(self) -> None:
        """Flush every encoder and finish the file."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self._copied_video:
                self._mux(self.video.encode(None))
            for mode, out in self.side.values():
                if mode == "encode":
                    self._mux(out.encode(None))
        finally:
            try:
                self.container.close()
            except (OSError, av.error.FFmpegError) as e:
                raise self._fail(e) from None

    def abort(self) -> None:
        """Close without flushing (the file is discarded by the caller)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.container.close()
