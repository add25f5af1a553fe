"""Deinterlacing decoded frames with FFmpeg's bwdif filter, one frame out per frame in.

Interlaced video (broadcast, DV, 1080i camcorders) holds two fields per frame, taken 1/50 or
1/60 s apart. Upscaled as it is, the comb between the fields is enlarged and sharpened; bwdif
(motion-adaptive, "Bob Weaver") rebuilds each frame from its first field and its neighbours.
In ``send_frame`` mode it keeps the frame count and every frame's pts and duration.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

import av
import av.error
import av.filter

DeinterlaceMode = Literal["auto", "all", "off"]
"""auto: frames flagged interlaced (progressive ones pass unchanged); all: every frame (for files
whose flags are wrong); off: none."""


def is_interlaced(frame: av.VideoFrame) -> bool:
    return bool(frame.interlaced_frame)


class Deinterlacer:
    """bwdif over a stream of decoded frames: :meth:`push` each, :meth:`flush` at the end.

    The filter holds one frame back (it looks at the next one), so output lags input by a frame
    until the flush."""

    def __init__(self, first: av.VideoFrame, *, time_base: Fraction, all_frames: bool) -> None:
        self.graph = av.filter.Graph()
        src = self.graph.add_buffer(width=first.width, height=first.height, format=first.format,
                                    time_base=time_base)
        deint = self.graph.add("bwdif", f"mode=send_frame:parity=auto:deint={'all' if all_frames else 'interlaced'}")
        sink = self.graph.add("buffersink")
        src.link_to(deint)
        deint.link_to(sink)
        self.graph.configure()
        self.size = (first.width, first.height)
        self.time_base = time_base
        self.flushed = False

    def _pull(self) -> list[av.VideoFrame]:
        out = []
        while True:
            try:
                f = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            # bwdif halves the time base (room for a frame per field): back to the stream's
            if f.time_base is not None and f.time_base != self.time_base:
                k = f.time_base / self.time_base
                if f.pts is not None:
                    f.pts = round(f.pts * k)
                if f.duration:
                    f.duration = round(f.duration * k)
                f.time_base = self.time_base
            out.append(f)

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        self.graph.push(frame)
        return self._pull()

    def flush(self) -> list[av.VideoFrame]:
        """The frames still inside the filter (once; later calls return nothing)."""
        if self.flushed:
            return []
        self.flushed = True
        self.graph.push(None)
        return self._pull()
