"""Depth-mask cost on CPU: ms per Depth Anything V2 pass and its share of end-to-end time.

Method (see benchmarks/README.md, "Depth masks"):
1. A Depth Anything network with V2 Small's architecture (``vidsr.depth.SMALL_CONFIG``,
   24.8 M parameters) and random weights: compute per pass does not depend on the
   weights. Each (input size, backend, precision, batch) is run once to warm up, then
   ``--repeat`` times; the median is reported as ms per pass and ms per frame.
2. End to end: the built-in sample clip (960x540) upscaled x2 with a Compact-x2 network
   of the shipped size (random weights) and
   a) the focus mask (default, every 2 frames),
   b) depth+focus with the default cache (anchors every 8 frames + cuts, optical-flow carry, batch 4),
   c) depth+focus without the cache (depth on every frame).
   The depth nets' masks are meaningless with random weights, so the foreground (and so
   the SR work) differs between runs; the overhead is therefore reported both as total
   time and as the mask stage's time relative to the focus run's total.

Run from the repository root: ``python benchmarks/depth_cpu.py`` (needs the [depth] extra).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidsr.depth import (OrtDepth, SMALL_CONFIG, TorchDepth, build_depth_anything, export_depth_onnx,
                         preprocess)


def _times_ms(fn, repeat: int) -> tuple[float, float]:
    """(median, min) of ``repeat`` timed calls after one warm-up; on a shared machine the
    minimum is the better estimate of the cost itself."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, min(times) * 1000


def per_pass(model, sizes: list[tuple[int, int]], batches: list[int], repeat: int, tmp: Path) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for size in sizes:
        onnx_path = export_depth_onnx(model, tmp / f"small-{size[0]}x{size[1]}.onnx", input_size=size)
        nets = {("torch", "fp32"): TorchDepth(model=model, long_side=max(size)),
                ("torch", "bf16"): TorchDepth(model=model, long_side=max(size), precision="bf16"),
                ("ort", "fp32"): OrtDepth(path=onnx_path)}
        for b in batches:
            frames = [rng.integers(0, 256, (540, 960, 3), dtype=np.uint8) for _ in range(b)]
            x = preprocess(frames, size)
            for (backend, precision), net in nets.items():
                if precision == "bf16" and b > 1:
                    continue
                ms, best = _times_ms(lambda: net.run(x), repeat)
                rows.append({"input": f"{size[0]}x{size[1]}", "backend": backend, "precision": precision,
                             "batch": b, "ms_per_pass": round(ms, 1), "ms_per_frame": round(ms / b, 1),
                             "min_ms_per_frame": round(best / b, 1)})
                print(rows[-1], flush=True)
    return rows


def end_to_end(folder: Path, tmp: Path, seconds: float) -> dict:
    from vidsr.arch import Compact
    from vidsr.estimators import DEFAULT_CARRY, DEFAULT_EVERY, MaskSpec, build_estimator
    from vidsr.models import save_checkpoint
    from vidsr.pipeline import UpscaleConfig, upscale_video
    from vidsr.sample import SampleSpec, write_sample

    clip = write_sample(tmp / "sample.mp4", spec=SampleSpec(seconds=seconds, audio=False))
    torch.manual_seed(0)
    ckpt = tmp / "compact-x2-random.pt"
    save_checkpoint(Compact(scale=2), ckpt)
    runs = {
        "focus": (MaskSpec(kind="focus"), DEFAULT_EVERY["focus"], DEFAULT_CARRY["focus"]),
        "depth+focus cached": (MaskSpec(kind="depth+focus", depth_model=folder), DEFAULT_EVERY["depth+focus"],
                               DEFAULT_CARRY["depth+focus"]),
        "depth+focus every frame": (MaskSpec(kind="depth+focus", depth_model=folder), 1, "hold"),
    }
    out = {}
    for name, (spec, every, carry) in runs.items():
        est = build_estimator(spec)
        cfg = UpscaleConfig(model=str(ckpt), mask_every=every, mask_carry=carry, mask_lookahead=spec.lookahead,
                            copy_streams=False)
        rep = upscale_video(clip, tmp / f"out-{every}.mp4", config=cfg, estimator=est)
        stages = {k: round(v, 2) for k, v in rep.stages.items()}
        out[name] = {"frames": rep.frames, "seconds": round(rep.seconds, 2), "fps": round(rep.fps, 2),
                     "mask_every": every, "carry": carry, "mask_passes": rep.mask_passes,
                     "mask_stage_s": stages.get("mask", 0.0), "sr_fraction": round(rep.sr_fraction, 3),
                     "stages_s": stages}
        print(name, out[name], flush=True)
    base = out["focus"]
    for name, r in out.items():
        r["mask_share_of_total"] = round(r["mask_stage_s"] / r["seconds"], 3)
        r["mask_overhead_vs_focus_total"] = round((r["mask_stage_s"] - base["mask_stage_s"]) / base["seconds"], 3)
        r["total_vs_focus"] = round(r["seconds"] / base["seconds"] - 1, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of the end-to-end clip")
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/depth-cpu.json"))
    ap.add_argument("--no-e2e", action="store_true", help="per-pass timings only (keep the file's end_to_end)")
    args = ap.parse_args()
    model = build_depth_anything(SMALL_CONFIG)
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory(prefix="vidsr-depth-bench-") as d:
        tmp = Path(d)
        passes = per_pass(model, [(252, 448), (294, 518)], [1, 4], args.repeat, tmp)
        if args.no_e2e and args.output.is_file():
            e2e = json.loads(args.output.read_text()).get("end_to_end", {})
        else:
            folder = tmp / "small-random"
            model.save_pretrained(folder)
            e2e = end_to_end(folder, tmp, args.seconds)
    result = {
        "what": "Depth Anything V2 Small-sized network (random weights) on CPU",
        "params": params,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "note": "2 cores shared with other jobs: ms_per_* are medians of --repeat runs, "
                            "min_ms_per_frame the fastest run"},
        "per_pass": passes,
        "end_to_end": e2e,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
