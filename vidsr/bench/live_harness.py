"""A real-time harness for live mode: a sender paced at the frame rate, a receiver that decodes as
frames arrive (used by ``benchmarks/live_latency.py`` and ``tests/test_live.py``; loopback only).

The stream is MPEG-TS cut into one chunk per video frame (the audio muxed before it included), as a
live encoder sends it; the sender writes chunk ``i`` at ``start + i / fps``; the receiver notes the
arrival time and pts of each decoded frame. A frame's latency is its arrival minus its send time.
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from pathlib import Path
from typing import BinaryIO, Callable

import av
import av.error
import numpy as np

RECEIVER_PROBE = {"probesize": "32768", "analyzeduration": "0"}
"""Demuxer options of the receiver: start decoding at the first keyframe, not after 5 MB / 5 s."""


def ts_chunks(clip: Path) -> list[bytes]:
    """``clip``'s packets remuxed to MPEG-TS, one chunk per video frame (the packets before it included)."""
    buf, chunks = io.BytesIO(), []
    with av.open(str(clip)) as c, av.open(buf, "w", format="mpegts", container_options={"flush_packets": "1"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in c.streams}
        for p in c.demux():
            if p.dts is None:
                continue
            video = p.stream.type == "video"
            p.stream = streams[p.stream.index]
            o.mux(p)
            if video:
                chunks.append(buf.getvalue())
                buf.seek(0)
                buf.truncate()
    chunks[-1] += buf.getvalue()  # the muxer's last bytes
    return chunks


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free 127.0.0.1 port (TCP, or UDP with ``socket.SOCK_DGRAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def paced(chunks: list[bytes], send: Callable[[bytes], object], *, fps: float,
          start: float | None = None) -> list[float]:
    """Send chunk ``i`` at ``start + i / fps`` (default start: now); returns the send times."""
    start = time.perf_counter() if start is None else start
    sent = []
    for i, chunk in enumerate(chunks):
        time.sleep(max(0.0, start + i / fps - time.perf_counter()))
        send(chunk)
        sent.append(time.perf_counter())
    return sent


def tcp_sender(port: int, chunks: list[bytes], sent: list[float], *, fps: float, timeout: float = 60.0) -> None:
    """Connect to 127.0.0.1:``port`` (retrying until it listens, up to ``timeout``), send paced, hang up;
    the send times are appended to ``sent``."""
    give_up = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.monotonic() > give_up:
                return
            time.sleep(0.02)
    with sock:
        sent += paced(chunks, sock.sendall, fps=fps)


def pipe_sender(stream: BinaryIO, chunks: list[bytes], *, fps: float, start: float | None = None) -> list[float]:
    """Write the chunks paced to a pipe (flushed each), then close it; returns the send times."""
    def send(chunk: bytes) -> None:
        stream.write(chunk)
        stream.flush()

    try:
        return paced(chunks, send, fps=fps, start=start)
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def receive(stream: BinaryIO | str, got: list[tuple[float, float]], *, fmt: str = "mpegts",
            decode: bool = True) -> None:
    """Decode ``stream`` as it arrives, appending (arrival time, its time in the stream, s) per frame,
    until it ends.

    ``decode=False``: note each video packet as it arrives instead (a player's decoding left out: on
    a small machine, decoding a 2560x1088 stream took ~20 ms a frame of the CPU vidsr runs on)."""
    with contextlib.suppress(av.error.FFmpegError), av.open(stream, format=fmt, container_options=RECEIVER_PROBE) as c:
        if decode:
            for f in c.decode(video=0):
                got.append((time.perf_counter(), float(f.pts * f.time_base)))
            return
        for p in c.demux(video=0):
            if p.size:
                got.append((time.perf_counter(), float(p.pts * p.time_base)))


def latency_stats(sent: list[float], got: list[tuple[float, float]], *, fps: float) -> dict:
    """Frames in and out, out in order, latency of the first frame, p50/p95/max, and how long after
    the last input frame the output's last frame came (seconds). An output frame is matched to the
    input frame at its stream time (the first of each is the same frame), so dropped frames
    (``--drop-late``) do not shift the rest."""
    t0 = got[0][1] if got else 0.0
    index = [round((t - t0) * fps) for _, t in got]
    lat = np.array([arrived - sent[i] for (arrived, _), i in zip(got, index) if 0 <= i < len(sent)])
    pts = [t for _, t in got]
    if not len(lat):
        return {"frames_in": len(sent), "frames_out": 0, "in_order": True}
    in_order = pts == sorted(pts) and len(set(pts)) == len(pts)
    return {"frames_in": len(sent), "frames_out": len(got), "in_order": in_order,
            "first_frame_s": float(lat[0]), "p50_s": float(np.median(lat)), "p95_s": float(np.percentile(lat, 95)),
            "max_s": float(lat.max()), "end_after_input_s": float(got[-1][0] - sent[-1])}
