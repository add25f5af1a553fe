"""Live sources and sinks: streams read as they arrive (a small probe, no spooling) and written
with every packet flushed.

A live source is stdin carrying a streamable container (MPEG-TS, Matroska, NUT, raw H.264/HEVC,
y4m, ...), any URL FFmpeg reads (udp, tcp, rtp/rtsp, srt, http(s), rtmp where this build has
them) or a capture device (V4L2 ``/dev/video0``; ``avfoundation:0``, ``dshow:video=NAME``).
"""

from __future__ import annotations

import io
import os
import re
import select
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from vidsr.errors import InputError, OutputError
from vidsr.media.types import STDIO, is_sequence

PROBE_BYTES = 32_768
"""Bytes the demuxer may read to find the streams' parameters (FFmpeg's default, 5 MB, held the
first frame back until that much had arrived; it stops sooner once every stream is described).
Enough for a keyframe and the first audio packets of SD/HD streams at usual bitrates."""
ANALYZE_S = 0.1
"""Seconds of stream the demuxer may read to find the streams (FFmpeg's default is 5 s)."""
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
DEVICE_FORMATS = ("v4l2", "avfoundation", "dshow")
"""Capture-device demuxers, written ``FORMAT:NAME`` (``v4l2:/dev/video0``); ``/dev/video*`` is V4L2."""
STREAM_MUXERS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts", "rtmp": "flv",
                 "rtmps": "flv", "http": "mpegts", "https": "mpegts"}
"""The muxer for an output URL given without ``--format``, by scheme."""
LOW_LATENCY_MUXING = {"matroska": {"cluster_time_limit": "0"},
                      "webm": {"cluster_time_limit": "0"},
                      "mp4": {"movflags": "frag_every_frame+empty_moov+default_base_moof"},
                      "mov": {"movflags": "frag_every_frame+empty_moov+default_base_moof"},
                      "mpegts": {"muxdelay": "0", "muxpreload": "0"}}
"""Muxer options that make each frame's packet leave at once: Matroska ends a cluster after every
frame (not every 5 s), mp4 writes a fragment per frame, MPEG-TS adds no mux delay."""


def is_url(source: str) -> bool:
    return bool(URL.match(source))


def device_format(source: str) -> tuple[str, str] | None:
    """(demuxer, device name) for a capture device, else None."""
    if source.startswith("/dev/video"):
        return "v4l2", source
    fmt, sep, name = source.partition(":")
    return (fmt, name) if sep and fmt in DEVICE_FORMATS and name else None


def live_by_default(source: str, output: str) -> bool:
    """Whether ``--live`` is on when not given: for URLs, capture devices and a pipe on stdin; not for
    a regular file redirected to stdin (``< clip.mp4``: it is all there, read it as a file) nor for
    numbered-frame output. ``--no-live`` reads a pipe as a file (spooled)."""
    if is_url(source) or device_format(source) is not None:
        return True
    return source == STDIO and not _stdin_is_file() and not is_sequence(output)


def _stdin_is_file() -> bool:
    fd = _fd(sys.stdin)
    try:
        return fd is not None and stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def _fd(stream: io.IOBase) -> int | None:
    """The OS file descriptor behind ``stream`` (None for an in-memory stand-in)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class LiveSource:
    """How to open a live input.

    Args:
        source: ``-`` (stdin), a URL or a capture device.
        stall_s: a network source that sends nothing for this long has stalled (it ends, or with
            reconnecting is opened again). Pipes and devices block instead: a pipe ends when its
            writer closes it.
        open_s: how long opening a network source may take (None: wait, e.g. for a listening
            ``tcp://...?listen`` socket to be called).
    """

    source: str
    stall_s: float = 5.0
    open_s: float | None = None

    @property
    def label(self) -> str:
        return "stdin" if self.source == STDIO else self.source

    def open(self) -> av.container.InputContainer:
        """Open the source with a small probe (:data:`PROBE_BYTES`, :data:`ANALYZE_S`).

        Raises:
            InputError: stdin is a terminal; the source cannot be opened or holds no streams.
        """
        options = {"probesize": str(PROBE_BYTES), "analyzeduration": str(int(ANALYZE_S * 1e6))}
        kwargs: dict = {"container_options": options}
        if self.source == STDIO:
            stdin = sys.stdin.buffer
            if stdin.isatty():
                raise InputError("input '-' reads a video from stdin, but stdin is a terminal")
            fd = _fd(stdin)  # FFmpeg's pipe protocol returns what has arrived; a Python read waits for 32 KiB
            if fd is not None and _closed_empty(fd):
                raise InputError("input '-': stdin was empty (it closed before any video arrived)")
            target = f"pipe:{fd}" if fd is not None else stdin
        elif (device := device_format(self.source)) is not None:
            fmt, target = device
            if fmt == "v4l2" and not Path(target).exists():
                raise InputError(f"capture device not found: {target}")
            kwargs["format"] = fmt
        elif is_url(self.source):
            target = self.source
            kwargs["timeout"] = (self.open_s, self.stall_s)
        else:
            raise InputError(f"not a live source: {self.source} (give -, a URL or a capture device)")
        try:
            return av.open(target, mode="r", **kwargs)
        except av.error.ExitError:
            raise InputError(f"gave up opening {self.label}: nothing came within the timeout") from None
        except av.error.EOFError:
            raise InputError(f"no video in {self.label}: the stream ended before any data") from None
        except (av.error.FFmpegError, OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or e
            hint = " (a non-streamable mp4 needs --no-live)" if self.source == STDIO else ""
            raise InputError(f"cannot open live input {self.label}: {reason}{hint}") from None


def _closed_empty(fd: int) -> bool:
    """Whether ``fd`` ends before its first byte: a pipe whose writer closed it unwritten (waits for
    the first byte or the close, as the demuxer would), or ``/dev/null``. Reads nothing."""
    try:
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode):
            return st.st_rdev == os.stat(os.devnull).st_rdev
        if not stat.S_ISFIFO(st.st_mode) or not hasattr(select, "poll"):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        events = dict(poller.poll()).get(fd, 0)
    except OSError:
        return False
    return bool(events & select.POLLHUP) and not events & select.POLLIN


def output_target(output: str) -> tuple[str, str | None]:
    """(what to open, muxer when the name does not say) for a live output: stdout as FFmpeg's
    ``pipe:1`` when it is a real file descriptor (each packet written at once), ``-`` otherwise
    (an in-memory stand-in); a URL with the muxer its scheme implies; a file as it is."""
    if output == STDIO:
        fd = _fd(sys.stdout.buffer)
        return (f"pipe:{fd}" if fd is not None else STDIO), "matroska"
    if is_url(output):
        scheme = output.split(":", 1)[0].lower()
        if scheme not in STREAM_MUXERS:
            raise OutputError(f"cannot tell the container for {output}: give --format (e.g. mpegts or flv)")
        return output, STREAM_MUXERS[scheme]
    return output, None


def muxing_options(muxer: str) -> dict[str, str]:
    """Muxer options for ``muxer`` that flush every packet as it is written."""
    return {"flush_packets": "1"} | LOW_LATENCY_MUXING.get(muxer, {})

