"""``vidsr bench --threaded``: the real threaded pipeline (``vidsr upscale``), partial vs full frame,
with where each thread's time goes and which one bounds throughput.

Each configuration runs :func:`vidsr.pipeline.run.upscale_video` on the same clip ``repeat``
times, the configurations taking turns (so a slow spell of a shared machine hits all of them).
The engine is built once per configuration and handed to every run, so start-up is left out.
A run's report carries :class:`vidsr.pipeline.stages.ThreadClock`'s summary: per thread its span,
the seconds it was blocked waiting for input (a queue, or the SR pool) or for room downstream,
and its busy time (the rest). The thread busy for the largest share of the run is the critical
path: throughput cannot beat its busy time per frame. SR pool workers share one role
(``sr-workers``), whose share is their summed work over ``workers`` x the run, and whose CPU time
over that work says how much of it they actually had a core (on a shared or oversubscribed
machine, little: then the CPU itself is the bottleneck, and ``cores_used``, the process's CPU
seconds over the wall time, says how much of the machine the run got; ``host_steal``, the share of the
machine's CPU time a hypervisor gave to other machines during the run, says why). The process's CPU time per
frame (all its threads, x264's and OpenMP's included) is what partial SR saves once the cores are
full; unlike wall time it does not grow when other jobs share the machine, so partial over full is
reported for both.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from vidsr.backends import backend_from_name, create_engine
from vidsr.bench.config import BenchConfig
from vidsr.bench.report import machine_info
from vidsr.checkpoint import resolve_model
from vidsr.errors import VidsrError
from vidsr.media.reader import probe
from vidsr.pipeline.config import UpscaleConfig, UpscaleReport
from vidsr.platform import cpu_ticks, steal_share

ROLES = {"vidsr-decode": "decode", "vidsr-mask": "mask", "MainThread": "sr-loop", "vidsr-encode": "encode"}
"""Pipeline thread names and the stage each runs (the main thread runs the SR loop)."""


def thread_roles(report: UpscaleReport, workers: int) -> dict[str, dict[str, float]]:
    """Per role: seconds busy, waiting for input, waiting for room downstream, and ``share`` (busy
    over the run's wall time, per worker for the SR pool)."""
    out: dict[str, dict[str, float]] = {}
    pool = [t for name, t in report.threads.items() if name.startswith("vidsr-sr")]
    for name, t in report.threads.items():
        role = ROLES.get(name)
        if role is not None:
            out[role] = {"busy": t["busy"], "get_wait": t["get_wait"], "put_wait": t["put_wait"],
                         "share": t["busy"] / report.seconds}
    if pool:
        busy = sum(t["busy"] for t in pool)
        # one torch thread per worker computes in the worker itself: its CPU over its busy time is the
        # share of that time it had a core (well below 1: the machine, or the other stages, took them)
        out["sr-workers"] = {"busy": busy, "get_wait": 0.0, "put_wait": 0.0,
                             "share": busy / (max(workers, len(pool)) * report.seconds),
                             "on_cpu": sum(t["cpu"] for t in pool) / busy if busy > 0 else 0.0}
    return out


def critical_path(roles: dict[str, dict[str, float]]) -> str:
    """The role busy for the largest share of the run (with the SR pool, the loop that feeds it
    mostly waits for it and is not counted)."""
    cand = {k: v for k, v in roles.items() if not (k == "sr-loop" and "sr-workers" in roles)}
    return max(cand, key=lambda k: cand[k]["share"]) if cand else ""


def _one(input_path: Path, out: Path, config: UpscaleConfig, engine) -> dict:
    from vidsr.pipeline.config import frame_workers
    from vidsr.pipeline.run import upscale_video

    info = probe(input_path)
    workers = frame_workers(config, lr_pixels=info.width * info.height)
    ticks0, cpu0 = cpu_ticks(), time.process_time()
    report = upscale_video(input_path, out, config=config, engine=engine)
    cpu, steal = time.process_time() - cpu0, steal_share(ticks0, cpu_ticks())
    roles = thread_roles(report, workers)
    return {"seconds": report.seconds, "frames": report.frames, "fps": report.fps, "workers": workers,
            "cores_used": cpu / report.seconds, "cpu_ms_per_frame": cpu * 1000 / max(1, report.frames),
            "host_steal": steal,
            "sr_fraction": report.sr_fraction,
            "fg_fraction": report.fg_fraction_sum / max(1, report.frames),
            "stages_ms_per_frame": {k: v * 1000 / max(1, report.frames) for k, v in report.stages.items()},
            "roles": roles, "critical_path": critical_path(roles), "threads": report.threads}


def run_threaded(input_path: Path | None, *, config: BenchConfig, frame_workers: int | None = None,
                 workdir: Path | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Time the threaded pipeline, partial and full frame per CPU backend; returns the report dict."""
    from vidsr.media.sample import SampleSpec, write_sample

    results: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vidsr-bench-", dir=workdir) as tmp:
        source = str(input_path) if input_path is not None else "sample"
        if input_path is None:
            input_path = write_sample(Path(tmp) / "sample.mp4", spec=SampleSpec(seconds=config.frames / 30 + 0.05))
        info = probe(input_path)
        runs = []
        for b in config.backends:
            bname, _, prec = b.partition("-")
            try:
                model, desc = resolve_model(config.model, scale=config.scale)
                engine = create_engine(model, desc, backend_from_name(bname, device="cpu", precision=prec or "fp32",
                                                                      tile=config.tile, batch=config.batch))
            except VidsrError as e:
                skipped[b] = str(e)
                continue
            for mode in ("partial", "full"):
                uc = UpscaleConfig(scale=config.scale, model=config.model, backend=bname, precision=prec or "fp32",
                                   tile=config.tile, batch=config.batch, mask_every=config.mask_every,
                                   full_frame=mode == "full", merge=config.merge, copy_streams=False,
                                   frame_workers=frame_workers, encode=config.encode)
                runs.append((f"{mode}/{b}", uc, engine))
        for name, uc, engine in runs:  # warm-up: the first frames' new window shapes and ORT plans
            log(f"bench --threaded {name}: warm-up ...")
            _one(input_path, Path(tmp) / "warm.mp4", uc, engine)
        for rep in range(config.repeat):
            for name, uc, engine in runs:
                log(f"bench --threaded {name}: run {rep + 1} of {config.repeat} ...")
                results.setdefault(name, []).append(_one(input_path, Path(tmp) / "out.mp4", uc, engine))
    summary = {}
    for name, rs in results.items():
        median = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
        summary[name] = {"seconds_runs": [r["seconds"] for r in rs], "median": median}
    comparisons = {}
    for b in config.backends:
        p, f = results.get(f"partial/{b}"), results.get(f"full/{b}")
        if p and f:  # per repetition, partial and full ran back to back
            ratios = [a["seconds"] / c["seconds"] for a, c in zip(p, f)]
            cpu = [a["cpu_ms_per_frame"] / c["cpu_ms_per_frame"] for a, c in zip(p, f)]
            comparisons[b] = {"partial_over_full_wall": statistics.median(ratios), "per_run": ratios,
                              "partial_over_full_cpu": statistics.median(cpu), "cpu_per_run": cpu}
    return {"mode": "threaded", "input": source, "input_size": [info.width, info.height], "scale": config.scale,
            "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "encode"},
            "frame_workers": frame_workers, "machine": machine_info(), "results": summary,
            "comparisons": comparisons, "unavailable": skipped, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def to_markdown(report: dict) -> str:
    """Tables of a threaded report: wall and fps, per-role busy share, and the critical path."""
    w, h = report["input_size"]
    lines = [f"# vidsr bench --threaded: {report['input']} {w}x{h}, x{report['scale']}", "",
             "| config | median s | fps | cores used | host steal | CPU ms a frame | SR px | critical path | "
             "SR workers on a core | " +
             " | ".join(f"{r} busy %" for r in ("decode", "mask", "sr-loop", "sr-workers", "encode")) + " |",
             "|---" * 14 + "|"]
    for name, s in report["results"].items():
        m = s["median"]
        shares = " | ".join(f"{m['roles'][r]['share']:.0%}" if r in m["roles"] else "-"
                            for r in ("decode", "mask", "sr-loop", "sr-workers", "encode"))
        on_cpu = m["roles"].get("sr-workers", {}).get("on_cpu")
        steal = m.get("host_steal")  # absent from reports written before it was measured
        lines.append(f"| {name} | {m['seconds']:.2f} | {m['fps']:.1f} | {m['cores_used']:.2f} | "
                     f"{'-' if steal is None else f'{steal:.0%}'} | {m['cpu_ms_per_frame']:.1f} | "
                     f"{m['sr_fraction']:.0%} | {m['critical_path']} | "
                     f"{'-' if on_cpu is None else f'{on_cpu:.0%}'} | {shares} |")
    for b, c in report["comparisons"].items():
        lines.append(f"\n{b}: partial / full-frame wall time {c['partial_over_full_wall']:.2f} "
                     f"(per run: {', '.join(f'{r:.2f}' for r in c['per_run'])}); "
                     f"CPU time a frame {c['partial_over_full_cpu']:.2f} "
                     f"(per run: {', '.join(f'{r:.2f}' for r in c['cpu_per_run'])})")
    for b, why in report["unavailable"].items():
        lines.append(f"\n{b}: unavailable: {why}")
    return "\n".join(lines) + "\n"


__all__ = ["critical_path", "run_threaded", "thread_roles", "to_markdown"]
