"""Latency that ``vidsr upscale --live`` adds to a real-time stream, against the same harness without vidsr.

A sender paces an MPEG-TS stream (a pan across the bundled real photo, ``vidsr sample``: a sharp
dandelion over real bokeh; lomiri-wallpapers-16.04, CC0) over 127.0.0.1 TCP at its frame rate; a
receiver decodes what arrives and notes when each frame comes. Baseline: sender -> receiver. vidsr:
sender -> ``vidsr upscale tcp://127.0.0.1:P?listen -o - --format mpegts`` -> receiver (vidsr listens
once its model is loaded, so start-up is not counted). Reported per case: first output frame after
the first input frame, per-frame latency p50/p95/max, frames out and in order, how long after the
last input frame the output ended, and vidsr's own summary (SR coverage kept, frames late).

    python benchmarks/live_latency.py [--seconds 10] [--out benchmarks/results/live-latency.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import av
import numpy as np

from vidsr.bench.report import machine_info, write_json

CASES = [  # (name, width, height, fps, scale)
    ("640x272@25 x2", 640, 272, 25, 2),
    ("640x360@25 x2", 640, 360, 25, 2),
    ("960x540@30 x2", 960, 540, 30, 2),
    ("640x272@25 x4 (overload)", 640, 272, 25, 4),
    ("640x360@25 x4 (overload)", 640, 360, 25, 4),
]
VIDSR = [sys.executable, "-c", "from vidsr.cli import main; main()"]


def ts_chunks(clip: Path) -> list[bytes]:
    """The clip's packets as MPEG-TS, one chunk per video frame (the audio before it included)."""
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
    chunks[-1] += buf.getvalue()
    return chunks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, chunks: list[bytes], fps: int, sent: list[float]) -> None:
    give_up = time.monotonic() + 120
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.02)
    with sock:
        start = time.perf_counter()
        for i, chunk in enumerate(chunks):
            time.sleep(max(0.0, start + i / fps - time.perf_counter()))
            sock.sendall(chunk)
            sent.append(time.perf_counter())


def receive(stream, got: list[float]) -> None:
    with contextlib.suppress(av.error.FFmpegError), \
            av.open(stream, format="mpegts", container_options={"probesize": "32768", "analyzeduration": "0"}) as c:
        for _ in c.decode(video=0):
            got.append(time.perf_counter())


def stats(sent: list[float], got: list[float]) -> dict:
    lat = np.array([g - s for g, s in zip(got, sent)])
    return {"frames_in": len(sent), "frames_out": len(got), "first_frame_s": float(lat[0]) if len(lat) else None,
            "p50_s": float(np.median(lat)), "p95_s": float(np.percentile(lat, 95)), "max_s": float(lat.max()),
            "end_after_input_s": float(got[-1] - sent[-1]) if got else None}


def baseline(chunks: list[bytes], fps: int) -> dict:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        sent: list[float] = []
        tx = threading.Thread(target=send, args=(server.getsockname()[1], chunks, fps, sent), daemon=True)
        tx.start()
        conn, _ = server.accept()
        got: list[float] = []
        with conn, conn.makefile("rb", buffering=0) as f:
            receive(f, got)
        tx.join()
    return stats(sent, got)


def with_vidsr(chunks: list[bytes], fps: int, scale: int) -> dict:
    port = free_port()
    p = subprocess.Popen([*VIDSR, "upscale", f"tcp://127.0.0.1:{port}?listen", "-o", "-", "--format", "mpegts",
                          "--scale", str(scale)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent: list[float] = []
    got: list[float] = []
    tx = threading.Thread(target=send, args=(port, chunks, fps, sent), daemon=True)
    tx.start()
    out = open(p.stdout.fileno(), "rb", buffering=0, closefd=False)
    receive(out, got)
    p.wait(timeout=120)
    tx.join()
    err = p.stderr.read().decode()
    summary = [line for line in err.splitlines() if line.startswith("live:") or ": " in line and "frames" in line]
    return stats(sent, got) | {"vidsr_summary": summary[-2:], "returncode": p.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cases", default=None, help="comma-separated case indices (default: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "live-latency.json")
    args = ap.parse_args()
    cases = [CASES[int(i)] for i in args.cases.split(",")] if args.cases else CASES
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, w, h, fps, scale in cases:
            clip = Path(tmp) / f"{w}x{h}-{fps}.mp4"
            if not clip.exists():
                subprocess.run([*VIDSR, "sample", str(clip), "--size", f"{w}x{h}", "--fps", str(fps),
                                "--seconds", str(args.seconds)], check=True, capture_output=True)
            chunks = ts_chunks(clip)
            load = os.getloadavg()
            base = baseline(chunks, fps)
            live = with_vidsr(chunks, fps, scale)
            added = {k: live[k] - base[k] for k in ("first_frame_s", "p50_s", "p95_s", "max_s")}
            row = {"case": name, "load_before": load, "load_after": os.getloadavg(), "baseline": base,
                   "vidsr": live, "added_s": added}
            print(name, {k: round(v, 3) for k, v in added.items()}, live["frames_out"], "/", live["frames_in"],
                  live["vidsr_summary"][-1:], flush=True)
            results.append(row)
    report = {"benchmark": "live_latency", "date": date.today().isoformat(), "host": socket.gethostname(),
              "model": "default (compact-x2-lite for x2, compact-x4 for x4)", "seconds": args.seconds,
              "source": "vidsr sample (pan across the bundled lomiri-wallpapers-16.04 photo, CC0)",
              "machine": machine_info(), "results": results}
    write_json(report, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
