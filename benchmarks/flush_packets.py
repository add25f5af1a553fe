"""What flushing each packet to the output file (``flush_packets=1``, so that a full disk fails the
next write instead of ``close()``) costs: the mux alone, and a whole ``vidsr upscale --sample`` run.

Mux: 1080p H.264 packets (encoded once, in memory) written to mp4 and mov files with the flag off and
on, alternated, best of ``--repeats``. Run: the bundled sample upscaled to mp4 with the writer's flag
on (as shipped) and off (patched), alternated, best of ``--repeats``. Ratios are taken within one run.

    python benchmarks/flush_packets.py [--repeats 5] [--out benchmarks/results/flush-packets.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import av
import numpy as np

from vidsr.bench.report import machine_info, write_json


def _packets(frames: int, muxer: str) -> tuple[av.stream.Stream, list[av.Packet]]:
    src = av.open(os.devnull, "w", format=muxer)
    v = src.add_stream("libx264", rate=30)
    v.width, v.height, v.pix_fmt, v.options = 1920, 1080, "yuv420p", {"preset": "ultrafast", "crf": "18"}
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    out = []
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(np.roll(base, 8 * i, axis=1), format="rgb24")
        f.pts = i
        out += v.encode(f)
    out += v.encode(None)
    return v, out


def _mux(stream: av.stream.Stream, packets: list[av.Packet], path: Path, flush: str) -> float:
    t0 = time.perf_counter()
    with contextlib.closing(av.open(str(path), "w", container_options={"flush_packets": flush})) as c:
        s = c.add_stream_from_template(stream)
        for p in packets:
            p.stream = s
            c.mux(p)
    return time.perf_counter() - t0


def _upscale(out: Path, flush: str) -> float:
    from vidsr.media import writer

    real = writer.av.open

    def open_(*a, container_options=None, **kw):
        return real(*a, container_options=(container_options or {}) | {"flush_packets": flush}, **kw)

    from vidsr.cli import main

    writer.av.open = open_
    try:
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        main(["upscale", "--sample", "-o", str(out), "-q"], standalone_mode=False)
        return time.perf_counter() - t0
    finally:
        writer.av.open = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/flush-packets.json"))
    args = ap.parse_args()
    results: dict = {}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        for ext, muxer in (("mp4", "mp4"), ("mov", "mov")):
            stream, packets = _packets(args.frames, muxer)
            mbytes = sum(p.size for p in packets) / 1e6
            times: dict[str, list[float]] = {"0": [], "1": []}
            for _ in range(args.repeats):
                for flush in ("0", "1"):
                    times[flush].append(_mux(stream, packets, Path(d, f"m.{ext}"), flush))
            results[f"mux {ext}"] = {"off_s": min(times["0"]), "on_s": min(times["1"]),
                                     "on_over_off": min(times["1"]) / min(times["0"])}
        for ext in ("mp4", "mkv"):
            times = {"0": [], "1": []}
            for _ in range(args.repeats):
                for flush in ("0", "1"):
                    times[flush].append(_upscale(Path(d, f"s.{ext}"), flush))
            results[f"upscale --sample {ext}"] = {"off_s": min(times["0"]), "on_s": min(times["1"]),
                                                  "on_over_off": min(times["1"]) / min(times["0"])}
    machine = machine_info(host=platform.node(), load_average_start=load, load_average_end=os.getloadavg())
    report = {"date": date.today().isoformat(), "machine": machine,
              "model": "the default of `vidsr upscale --sample`",
              "mux_input": f"{len(packets)} 1080p H.264 packets, {mbytes:.1f} MB", "repeats": args.repeats,
              "results": results}
    write_json(report, args.out)
    for k, r in results.items():
        print(f"{k}: off {r['off_s'] * 1e3:.1f} ms, on {r['on_s'] * 1e3:.1f} ms, on/off {r['on_over_off']:.3f}")


if __name__ == "__main__":
    main()
