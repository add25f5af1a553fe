"""Does partial SR pay off on small frames? Threaded ``upscale_video`` partial vs ``--full-frame`` by size.

The built-in sample pan at each ``--sizes`` (default 320x180, 640x360, 960x540), the default focus
mask and x2 model, each case ``--repeat`` times, partial and full frame taking turns, so each ratio
comes from one run. The 1-minute load average is recorded with every timing (shared machines).

    python benchmarks/frame_size.py

Writes ``benchmarks/results/frame-size-cpu.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from vidsr.platform import short_waits  # noqa: E402

short_waits()  # as the CLI does, before torch loads

from vidsr.bench.report import machine_info, write_json  # noqa: E402
from vidsr.media.sample import SampleSpec, write_sample  # noqa: E402
from vidsr.pipeline.config import UpscaleConfig  # noqa: E402
from vidsr.pipeline.run import upscale_video  # noqa: E402
from vidsr.weights import DEFAULT_MODELS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["320x180", "640x360", "960x540"])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "frame-size-cpu.json")
    args = ap.parse_args()
    base = UpscaleConfig(scale=2)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for size in args.sizes:
            w, h = map(int, size.split("x"))
            clips[size] = write_sample(Path(tmp) / f"{size}.mp4",
                                       spec=SampleSpec(width=w, height=h, seconds=args.seconds))
        for rep in range(args.repeat):
            for size, clip in clips.items():
                for full in (False, True):
                    config = dataclasses.replace(base, full_frame=full)
                    t0 = time.perf_counter()
                    r = upscale_video(clip, Path(tmp) / "out.mp4", config=config)
                    seconds = time.perf_counter() - t0
                    case = {"size": size, "full_frame": full, "repeat": rep, "frames": r.frames,
                            "fps": r.frames / seconds, "sr_fraction": r.sr_fraction,
                            "fg_fraction": r.fg_fraction, "load1": os.getloadavg()[0]}
                    cases.append(case)
                    print(case, flush=True)
    summary = {}
    for size in args.sizes:
        part = [c["fps"] for c in cases if c["size"] == size and not c["full_frame"]]
        full = [c["fps"] for c in cases if c["size"] == size and c["full_frame"]]
        summary[size] = {"partial_fps": part, "full_fps": full,
                         "partial_over_full": [p / f for p, f in zip(part, full)]}
    write_json({"input": f"built-in sample pan, {args.seconds} s, x2", "model": DEFAULT_MODELS[2],
                "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "machine": machine_info(), "cases": cases, "summary": summary}, args.out)


if __name__ == "__main__":
    main()
