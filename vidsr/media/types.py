"""What the media layer passes around: video info, colour tags, chapters, frames, side packets.

An input is anything FFmpeg demuxes: a file (mp4, mkv, mov, webm, avi, ...), an image
sequence (``frames/%06d.png``) or ``-`` (stdin).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

STDIO = "-"
"""Input ``-`` reads stdin, output ``-`` writes stdout."""
SEQUENCE_NUMBER = re.compile(r"%(0?)(\d*)d")
"""The frame-number field of an image-sequence pattern (``%06d``)."""
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                 7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}


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


def is_sequence(path: str | os.PathLike) -> bool:
    """True for an image-sequence pattern such as ``frames/%06d.png``."""
    return str(path) != STDIO and bool(SEQUENCE_NUMBER.search(Path(path).name))
