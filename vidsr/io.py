"""PyAV reading and writing: frame iterators with timestamps, stream copy, atomic output files."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import av.error
import numpy as np

from vidsr.errors import InputError, OutputError

log = logging.getLogger("vidsr")

COPY_TYPES = ("audio", "subtitle")


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

    @property
    def fps(self) -> float:
        return float(self.average_rate) if self.average_rate else 30.0


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``image``: (H, W, 3) uint8 RGB; ``pts``/``duration`` in ``time_base``."""

    index: int
    image: np.ndarray
    pts: int
    duration: int | None
    time_base: Fraction


@dataclass(frozen=True)
class Passthrough:
    """A packet of an audio/subtitle stream that goes to the output unchanged (or re-encoded)."""

    packet: av.Packet
    stream_index: int


def _open_input(path: str | os.PathLike) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a folder, not a video file: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"input is an empty file: {p}")
    try:
        return av.open(str(p), mode="r")
    except av.error.EOFError:
        raise InputError(f"no video frames in {p} (the file ends before any data: empty or truncated)") from None
    except av.error.InvalidDataError as e:
        raise InputError(f"not a readable video file: {p} ({e.strerror or e})") from None
    except av.error.FFmpegError as e:
        raise InputError(f"cannot open {p}: {e.strerror or e}") from None


def _rotation_of(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> int:
    """Display rotation in degrees, from the first decoded frame's display matrix."""
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation or 0)) % 360
    except av.error.FFmpegError:
        return 0
    return 0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open ``path``, check it has a decodable video stream and describe it."""
    with contextlib.closing(_open_input(path)) as c:
        if not c.streams.video:
            kinds = ", ".join(sorted({s.type for s in c.streams})) or "no streams"
            raise InputError(f"no video stream in {path} (found: {kinds})")
        v = c.streams.video[0]
        if not v.codec_context or not v.codec_context.width:
            raise InputError(f"video stream of {path} has no frame size (truncated or unsupported)")
        duration_s = None
        if v.duration is not None and v.time_base is not None:
            duration_s = float(v.duration * v.time_base)
        elif c.duration is not None:
            duration_s = c.duration / av.time_base
        rotation = _rotation_of(v, c)
        return VideoInfo(
            path=str(path),
            width=v.codec_context.width,
            height=v.codec_context.height,
            time_base=v.time_base or Fraction(1, 90000),
            average_rate=v.average_rate or v.guessed_rate,
            frames=v.frames or None,
            duration_s=duration_s,
            rotation=rotation,
            codec=v.codec_context.name,
            pix_fmt=v.codec_context.pix_fmt or "unknown",
            audio_streams=len(c.streams.audio),
            subtitle_streams=len(c.streams.subtitles),
        )


@dataclass
class DecodeStats:
    frames: int = 0
    bad_packets: int = 0


def read_items(path: str | os.PathLike, *, copy_streams: bool = True,
               stats: DecodeStats | None = None) -> Iterator[Frame | Passthrough]:
    """Demux ``path`` in file order: decoded video frames and audio/subtitle packets to copy.

    Frames keep their pts and duration; frames with no pts get one from the frame rate.
    Packets that fail to decode are counted in ``stats.bad_packets`` and skipped.
    """
    stats = stats if stats is not None else DecodeStats()
    c = _open_input(path)
    try:
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        copy = [s for s in c.streams if s.type in COPY_TYPES] if copy_streams else []
        tb = v.time_base or Fraction(1, 90000)
        rate = v.average_rate or v.guessed_rate or Fraction(30)
        step = max(1, round(1 / (rate * tb)))
        next_pts = None
        index = 0
        for packet in c.demux(v, *copy):
            if packet.stream.type != "video":
                if packet.dts is not None or packet.pts is not None:
                    yield Passthrough(packet=packet, stream_index=packet.stream.index)
                continue
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                stats.bad_packets += 1
                continue
            for f in frames:
                pts = f.pts if f.pts is not None else (next_pts if next_pts is not None else 0)
                dur = f.duration or None
                next_pts = pts + (dur or step)
                image = f.to_ndarray(format="rgb24")
                yield Frame(index=index, image=image, pts=pts, duration=dur, time_base=tb)
                index += 1
                stats.frames = index
    except av.error.FFmpegError as e:
        raise InputError(f"decoding failed in {path} after {index} frames: {e.strerror or e}") from None
    finally:
        c.close()


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"


def temp_path_for(final: Path) -> Path:
    """A hidden temp file next to ``final`` that keeps its extension (so the muxer is the same)."""
    return final.with_name(f".{final.stem}.vidsr-{os.getpid()}.tmp{final.suffix}")


def check_output_path(output: Path, *, input_path: Path | None = None) -> None:
    """Fail early (one clear line) when ``output`` cannot be written."""
    if input_path is not None and output.resolve() == Path(input_path).resolve():
        raise OutputError(f"output is the same file as the input: {output}")
    if output.is_dir():
        raise OutputError(f"output is a folder: {output}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    if not output.suffix:
        raise OutputError(f"output needs a container extension such as .mp4 or .mkv: {output}")
    probe_path = temp_path_for(output)
    try:
        with open(probe_path, "wb"):
            pass
    except OSError as e:
        raise OutputError(f"cannot write to {parent}: {e.strerror}") from None
    try:
        av.open(str(probe_path), mode="w").close()
    except (ValueError, av.error.FFmpegError) as e:
        reason = getattr(e, "strerror", None) or e
        raise OutputError(f"cannot write {output} (extension {output.suffix!r}): {reason}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe_path.unlink()


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temp path; on success rename it to ``final``, on any error remove it."""
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


class VideoWriter:
    """Encode RGB frames at given pts into ``path`` and copy (or re-encode) side streams.

    Frames must arrive in presentation order with the input's pts; ``close()`` flushes.
    """

    def __init__(self, *, path: Path, info: VideoInfo, width: int, height: int,
                 options: EncodeOptions, copy_streams: bool = True) -> None:
        self.path = path
        self.closed = False
        self.warnings: list[str] = []
        try:
            self.container = av.open(str(path), mode="w")
        except (ValueError, av.error.FFmpegError, OSError) as e:
            raise OutputError(f"cannot create output {path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            self._setup(info, width, height, options, copy_streams)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, info: VideoInfo, width: int, height: int, options: EncodeOptions,
               copy_streams: bool) -> None:
        self.width = width + (width % 2)
        self.height = height + (height % 2)
        rate = info.average_rate or Fraction(30)
        try:
            v = self.container.add_stream(options.codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:
            raise OutputError(f"unknown or unavailable video codec {options.codec!r}: {e}") from None
        v.width, v.height, v.pix_fmt = self.width, self.height, options.pix_fmt
        v.time_base = info.time_base
        v.codec_context.time_base = info.time_base
        opts = {"crf": str(options.crf)}
        if options.codec in ("libx264", "libx265"):
            opts["preset"] = options.preset
        v.options = opts
        if info.rotation:
            v.set_display_rotation(info.rotation)
        self.video = v
        self.side: dict[int, tuple[str, av.stream.Stream]] = {}
        if not copy_streams:
            return
        with contextlib.closing(av.open(info.path)) as src:
            for s in src.streams:
                if s.type not in COPY_TYPES:
                    continue
                self._add_side_stream(s)

    def _add_side_stream(self, s: av.stream.Stream) -> None:
        name = s.codec_context.name if s.codec_context else "unknown"
        supported = self.container.supported_codecs
        if name in supported:
            out = self.container.add_stream_from_template(s)
            self.side[s.index] = ("copy", out)
        elif s.type == "audio":
            codec = self.container.default_audio_codec
            if codec in ("none", None):
                self.warnings.append(f"audio stream #{s.index} ({name}) dropped: container has no audio codec")
                return
            out = self.container.add_stream(codec, rate=s.codec_context.sample_rate or 48000)
            if s.codec_context.layout:
                out.layout = s.codec_context.layout.name
            self.side[s.index] = ("encode", out)
            self.warnings.append(f"audio stream #{s.index} ({name}) re-encoded to {codec}: "
                                 f"{self.path.suffix} cannot hold {name}")
        else:
            self.warnings.append(f"{s.type} stream #{s.index} ({name}) dropped: "
                                 f"{self.path.suffix} cannot hold {name}")
            return
        out.metadata.update(dict(s.metadata))

    def write(self, image: np.ndarray, *, pts: int, time_base: Fraction, duration: int | None,
              fmt: str = "rgb24") -> None:
        """Encode one frame at ``pts``: (H, W, 3) uint8 RGB, or (H, W) uint8 with ``fmt="gray"``."""
        h, w = image.shape[:2]
        if (h, w) != (self.height, self.width):
            extra = ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, ((0, self.height - h), (0, self.width - w), *extra), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        frame.pts = pts
        frame.time_base = time_base
        if duration:
            frame.duration = duration
        self._mux(self.video.encode(frame))

    def copy(self, item: Passthrough) -> None:
        """Mux (or re-encode) a side-stream packet."""
        entry = self.side.get(item.stream_index)
        if entry is None:
            return
        mode, out = entry
        if mode == "copy":
            item.packet.stream = out
            self._mux([item.packet])
            return
        for frame in item.packet.decode():
            self._mux(out.encode(frame))

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except OSError as e:
            raise OutputError(f"writing {self.path} failed: {e.strerror or e}") from None

    def close(self) -> None:
        """Flush every encoder and finish the file."""
        if self.closed:
            return
        self.closed = True
        try:
            self._mux(self.video.encode(None))
            for mode, out in self.side.values():
                if mode == "encode":
                    self._mux(out.encode(None))
        finally:
            self.container.close()

    def abort(self) -> None:
        """Close without flushing (the file is discarded by the caller)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.container.close()
