"""Reading an input once, in file order: decoded RGB frames with their timestamps, and side packets.

An input is opened once (:class:`Reader`), so pipes work. Frames come out as RGB ``uint8``,
or ``uint16`` for inputs deeper than 8 bits when asked for; interlaced frames are
deinterlaced (:mod:`vidsr.media.deinterlace`) unless told otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import deque
from fractions import Fraction
from typing import Iterator

import av
import av.error
from av.video.reformatter import VideoReformatter

from vidsr.errors import InputError
from vidsr.media.deinterlace import DeinterlaceMode, Deinterlacer, is_interlaced
from vidsr.media.open import open_input
from vidsr.media.streams import carries, clean_tags, describe_stream, is_side, main_video_stream, read_chapters
from vidsr.media.types import STDIO, Colour, DecodeStats, Frame, Passthrough, VideoInfo, is_sequence

_DISCARD_ALL = 48
"""AVDISCARD_ALL: set by demuxers on tracks of their own, such as the text track that holds an
mp4's chapters (which are carried over as chapters)."""
_TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
"""FFmpeg demuxers of text-mode art (.txt, .bin, .nfo, ...): they take any text or bytes, so never a video."""


def _pixel_aspect(v: av.stream.Stream) -> Fraction | None:
    sar = v.sample_aspect_ratio or v.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 and sar != 1 else None


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
        container: ``source`` opened already (a live stream: :class:`vidsr.media.live.LiveSource`).
        thread_type: the decoder's threading: ``AUTO`` (frame threading, fastest) or ``SLICE``
            (live: frame threading holds about a frame per thread before the first comes out).
    """

    def __init__(self, source: str | os.PathLike, *, copy_streams: bool = True, deep: bool = False,
                 rate: Fraction | None = None, stats: DecodeStats | None = None,
                 deinterlace: DeinterlaceMode = "auto", container: av.container.InputContainer | None = None,
                 thread_type: str = "AUTO") -> None:
        self.source = str(source)
        self.stats = stats if stats is not None else DecodeStats()
        self._deinterlace_mode = deinterlace
        self._deinterlacer: Deinterlacer | None = None
        self.container = container if container is not None else open_input(source, rate=rate)
        try:
            self._start(copy_streams=copy_streams, deep=deep, thread_type=thread_type)
        except BaseException:
            self.container.close()
            raise

    def _start(self, *, copy_streams: bool, deep: bool, thread_type: str) -> None:
        c = self.container
        if c.format.name in _TEXT_FORMATS:
            # FFmpeg renders any text (tty) or byte file (bin) as a terminal-art "video"
            raise InputError(f"not a video file: {self.source} (FFmpeg would read it as text art: {c.format.long_name})")
        v = main_video_stream(c, self.source)
        if not v.codec_context or not v.codec_context.width:
            raise InputError(f"video stream of {self.source} has no frame size (truncated or unsupported)")
        v.thread_type = thread_type
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
            metadata=tuple(clean_tags(c.metadata).items()),
            video_metadata=tuple(clean_tags(v.metadata).items()), source=source,
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
                for f in self._decode(None):  # frames still inside the decoder
                    if (frame := self._frame(f)) is not None:
                        yield frame
                self.stats.read_error = (f"reading {self.source} failed after {self._index} frames "
                                         f"({e.strerror or e}); the frames before were kept")
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
            # the next free slot on the frame grid: one tick later would share the previous frame's
            # time in a container of coarser time base (Matroska's 1 ms against MPEG-TS's 1/90000 s)
            pts = self._last[0] + self._last[1]
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
