"""Frames queued in the SR pool beyond its workers (``vidsr.pipeline.stages.PIPELINE_AHEAD``): 0 and 1
taking turns in one process, the threaded ``upscale_video`` pipeline on one clip.

    python benchmarks/pipeline_ahead.py --clip /tmp/lw/dragonfly272_long.mp4 --rounds 8 \
        --json benchmarks/results/pipeline-ahead-cpu.json [--full-frame]

Per run: wall time of the pipeline (the report's seconds), CPU ms a frame and cores used (the process's
CPU time over the run's wall time, model loading included), the SR workers' busy share of the run, and
the host's steal time (``/proc/stat``: CPU the hypervisor gave to other machines). A worker that waits
for the oldest frame to leave is not busy, so the busy share measures head-of-line blocking whatever
the host's load; wall time is compared per pair of runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import vidsr.pipeline.stages as stages
from vidsr.bench.report import machine_info, write_json
from vidsr.bench.threaded import thread_roles
from vidsr.media.reader import probe
from vidsr.pipeline.config import UpscaleConfig, frame_workers
from vidsr.pipeline.run import upscale_video
from vidsr.platform import cpu_ticks, steal_share

ROOT = Path(__file__).resolve().parents[1]


def one_run(clip: Path, out: Path, config: UpscaleConfig) -> dict:
    info = probe(clip)
    workers = frame_workers(config, lr_pixels=info.width * info.height)
    t0, c0, w0 = cpu_ticks(), time.process_time(), time.perf_counter()
    report = upscale_video(clip, out, config=config)
    wall, cpu, steal = time.perf_counter() - w0, time.process_time() - c0, steal_share(t0, cpu_ticks())
    busy = thread_roles(report, workers)["sr-workers"]["share"]
    return {"seconds": round(report.seconds, 3), "cpu_ms_per_frame": round(cpu / report.frames * 1000, 1),
            "cores_used": round(cpu / wall, 3), "sr_workers_busy": round(busy, 3),
            "steal": None if steal is None else round(steal, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=8, help="pairs of runs (the order alternates)")
    ap.add_argument("--full-frame", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline-ahead-cpu.json")
    args = ap.parse_args()
    config = UpscaleConfig(full_frame=args.full_frame)
    load_start = os.getloadavg()
    runs: dict[int, list[dict]] = {0: [], 1: []}
    shipped = stages.PIPELINE_AHEAD
    with tempfile.TemporaryDirectory(prefix="vidsr-ahead-") as tmp:
        try:
            for i in range(args.rounds):
                for ahead in ((0, 1) if i % 2 == 0 else (1, 0)):
                    stages.PIPELINE_AHEAD = ahead
                    r = one_run(args.clip, Path(tmp) / "out.mp4", config)
                    runs[ahead].append(r)
                    print(f"ahead {ahead}: {r}", flush=True)
        finally:
            stages.PIPELINE_AHEAD = shipped
    pairs = [round(b["seconds"] / a["seconds"], 3) for a, b in zip(runs[0], runs[1])]
    busy = [round(b["sr_workers_busy"] - a["sr_workers_busy"], 3) for a, b in zip(runs[0], runs[1])]
    report = {"clip": str(args.clip), "mode": "full frame" if args.full_frame else "partial",
              "load_average_start": load_start, "runs": {f"ahead_{k}": v for k, v in runs.items()},
              "median": {f"ahead_{k}": {key: statistics.median(r[key] for r in v) for key in v[0]}
                         for k, v in runs.items()},
              "wall_ahead1_over_ahead0_per_pair": pairs, "wall_ratio_median": statistics.median(pairs),
              "busy_gain_per_pair": busy, "load_average_end": os.getloadavg(), "machine": machine_info(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print("ahead 1 / ahead 0 wall per pair", pairs, "median", report["wall_ratio_median"])
    print("SR workers busy, ahead 1 minus ahead 0, per pair", busy)
    write_json(report, args.json)


if __name__ == "__main__":
    main()
