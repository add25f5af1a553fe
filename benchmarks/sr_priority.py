"""The SR pool's threads at their nice offset (``vidsr.platform.SR_WORKER_NICE``) against the process's
own priority (0), taking turns in one process: the threaded ``upscale_video`` pipeline on one clip.

    python benchmarks/sr_priority.py --clip /tmp/lw/dragonfly272_long.mp4 --rounds 4 \
        --json benchmarks/results/sr-priority-longpan-cpu.json [--full-frame]

Per run: wall time (the report's seconds), CPU ms a frame and cores used (the process's CPU time over
the run's wall time), the SR workers' idle seconds (their span less their busy time, summed), the
SR loop's seconds blocked on the encoder's full queue, the encoder's busy share of the run and the
host's steal time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import vidsr.platform as platform
from vidsr.bench.report import machine_info, write_json
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video

ROOT = Path(__file__).resolve().parents[1]


def one_run(clip: Path, out: Path, config: UpscaleConfig) -> dict:
    t0, c0, w0 = platform.cpu_ticks(), time.process_time(), time.perf_counter()
    report = upscale_video(clip, out, config=config)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    steal = platform.steal_share(t0, platform.cpu_ticks())
    th = report.threads
    workers = [t for name, t in th.items() if name.startswith("vidsr-sr")]
    return {"seconds": round(report.seconds, 3), "cpu_ms_per_frame": round(cpu / report.frames * 1000, 1),
            "cores_used": round(cpu / wall, 3),
            "sr_workers_idle_s": round(sum(t["span"] - t["busy"] for t in workers), 3),
            "sr_loop_blocked_on_encoder_s": round(th["MainThread"]["put_wait"], 3),
            "encode_busy": round(th["vidsr-encode"]["busy"] / report.seconds, 3),
            "steal": None if steal is None else round(steal, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=4, help="pairs of runs (the order alternates)")
    ap.add_argument("--full-frame", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "sr-priority-cpu.json")
    args = ap.parse_args()
    config = UpscaleConfig(full_frame=args.full_frame)
    load_start = os.getloadavg()
    shipped = platform.SR_WORKER_NICE
    sides = {"nice_0": 0, f"nice_{shipped}": shipped}
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(prefix="vidsr-prio-") as tmp:
        try:
            for i in range(args.rounds):
                for side in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                    platform.SR_WORKER_NICE = sides[side]
                    r = one_run(args.clip, Path(tmp) / "out.mp4", config)
                    runs[side].append(r)
                    print(f"{side}: {r}", flush=True)
        finally:
            platform.SR_WORKER_NICE = shipped
    base, new = runs["nice_0"], runs[f"nice_{shipped}"]
    pairs = [round(b["seconds"] / a["seconds"], 3) for a, b in zip(base, new)]
    report = {"clip": str(args.clip), "mode": "full frame" if args.full_frame else "partial",
              "load_average_start": load_start, "runs": runs,
              "median": {k: {key: statistics.median(r[key] for r in v if r[key] is not None) for key in v[0]}
                         for k, v in runs.items()},
              "wall_niced_over_nice_0_per_pair": pairs, "wall_ratio_median": statistics.median(pairs),
              "load_average_end": os.getloadavg(), "machine": machine_info(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(f"nice {shipped} / nice 0 wall per pair", pairs, "median", report["wall_ratio_median"])
    write_json(report, args.json)


if __name__ == "__main__":
    main()
