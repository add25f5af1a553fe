"""What the take-turns benchmarks share (``pipeline_ahead.py``, ``sr_priority.py``): one run of the threaded
``upscale_video`` pipeline with its measures, two settings alternating in one process, their command line."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import ModuleType

from vidsr.bench.report import machine_info
from vidsr.bench.threaded import thread_roles
from vidsr.media.reader import probe
from vidsr.pipeline.config import UpscaleConfig, frame_workers
from vidsr.pipeline.run import upscale_video
from vidsr.platform import cpu_ticks, steal_share

ROOT = Path(__file__).resolve().parents[1]


def arguments(doc: str, *, rounds: int, json_name: str) -> argparse.Namespace:
    """``--clip``, ``--rounds`` (pairs of runs), ``--full-frame`` and ``--json``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=rounds, help="pairs of runs (the order alternates)")
    ap.add_argument("--full-frame", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / json_name)
    return ap.parse_args()


def one_run(clip: Path, out: Path, config: UpscaleConfig) -> dict:
    """Wall time (the report's seconds), CPU ms a frame and cores used (the process's CPU time over the
    run's wall time, model loading included), the SR workers' busy share of the run and their idle
    seconds (span less busy time, summed), the SR loop's seconds blocked on the encoder's full queue, the
    encoder's busy share and the host's steal time (``/proc/stat``: CPU the hypervisor gave to others)."""
    info = probe(clip)
    workers = frame_workers(config, lr_pixels=info.width * info.height)
    t0, c0, w0 = cpu_ticks(), time.process_time(), time.perf_counter()
    report = upscale_video(clip, out, config=config)
    wall, cpu, steal = time.perf_counter() - w0, time.process_time() - c0, steal_share(t0, cpu_ticks())
    threads = report.threads
    pool = [t for name, t in threads.items() if name.startswith("vidsr-sr")]
    return {"seconds": round(report.seconds, 3), "cpu_ms_per_frame": round(cpu / report.frames * 1000, 1),
            "cores_used": round(cpu / wall, 3),
            "sr_workers_busy": round(thread_roles(report, workers)["sr-workers"]["share"], 3) if pool else None,
            "sr_workers_idle_s": round(sum(t["span"] - t["busy"] for t in pool), 3),
            "sr_loop_blocked_on_encoder_s": round(threads["MainThread"]["put_wait"], 3),
            "encode_busy": round(threads["vidsr-encode"]["busy"] / report.seconds, 3),
            "steal": None if steal is None else round(steal, 3)}


def take_turns(args: argparse.Namespace, module: ModuleType, name: str, sides: dict[str, object]) -> dict:
    """``args.rounds`` rounds of one run per side on ``args.clip``, ``module.name`` set to the side's
    value before its run (the order alternates; the shipped value is put back after); the report: runs,
    medians, the second side's wall time over the first's per pair and their median, load average,
    machine."""
    config = UpscaleConfig(full_frame=args.full_frame)
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    shipped = getattr(module, name)
    with tempfile.TemporaryDirectory(prefix="vidsr-turns-") as tmp:
        try:
            for i in range(args.rounds):
                for side in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                    setattr(module, name, sides[side])
                    r = one_run(args.clip, Path(tmp) / "out.mp4", config)
                    runs[side].append(r)
                    print(f"{side}: {r}", flush=True)
        finally:
            setattr(module, name, shipped)
    first, second = (runs[k] for k in sides)
    pairs = [round(b["seconds"] / a["seconds"], 3) for a, b in zip(first, second)]
    return {"clip": str(args.clip), "mode": "full frame" if args.full_frame else "partial",
            "load_average_start": load_start, "runs": runs,
            "median": {k: {key: statistics.median(x) if (x := [r[key] for r in v if r[key] is not None]) else None
                           for key in v[0]} for k, v in runs.items()},
            "wall_pairs": pairs, "wall_ratio_median": statistics.median(pairs),
            "load_average_end": os.getloadavg(), "machine": machine_info(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
