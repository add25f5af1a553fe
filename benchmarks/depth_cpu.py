"""Depth-mask cost on CPU: ms per Depth Anything V2 pass and its share of end-to-end time.

Method (see benchmarks/README.md, "Depth masks"):
1. A Depth Anything network with V2 Small's architecture (``vidsr.masks.depth.SMALL_CONFIG``,
   24.8 M parameters) and random weights: compute per pass does not depend on the
   weights. Each (input size, backend, precision, batch) is run once to warm up, then
   ``--repeat`` times; the median is reported as ms per pass and ms per frame.
2. End to end (``vidsr upscale``'s threaded pipeline, the mask stage in its own thread):
   the built-in sample clip (960x540) upscaled x2 with the shipped compact-x2 and
   a) the focus mask (default, every 2 frames),
   b) the depth path's full cost at several anchor intervals (depth on anchor frames,
      batched, plus optical-flow carry on every frame) while the SR work stays the focus
      mask's (:class:`DepthCostFocusMask`): random depth weights give meaningless masks,
      and a different foreground would change the SR work and hide the depth cost,
   c) the real depth+focus estimator with the default cache (for its mask's SR share),
   d) the depth cost on every frame (no cache).
   ``total_vs_focus`` is each run's wall time relative to (a).

Run from the repository root: ``python benchmarks/depth_cpu.py`` (needs the [depth] extra).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidsr.bench.report import machine_info, write_json
from vidsr.masks.depth import (
    SMALL_CONFIG,
    OrtDepth,
    TorchDepth,
    build_depth_anything,
    export_depth_onnx,
    preprocess,
)
from vidsr.masks.focus import FocusEstimator


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


@dataclass
class DepthCostFocusMask:
    """Runs the depth+focus estimator (all its compute) but hands the tracker the focus map.

    With random depth weights the real depth+focus mask is meaningless and selects a
    different amount of SR work; this probe keeps the SR work of the focus mask, so the
    difference to the focus run is the depth path's cost alone."""

    depth: object
    name: str = "depth-cost-focus-mask"

    def estimate(self, image):
        return self.estimate_batch([image], new_shot=[False])[0]

    def estimate_batch(self, images, *, new_shot):
        self.depth.estimate_batch(images, new_shot=new_shot)
        return [FocusEstimator().estimate(im) for im in images]


def end_to_end(folder: Path, tmp: Path, seconds: float, every: list[int]) -> dict:
    from vidsr.masks.factory import DEFAULT_CARRY, DEFAULT_EVERY, MaskSpec, build_estimator
    from vidsr.pipeline.config import UpscaleConfig
    from vidsr.pipeline.run import upscale_video
    from vidsr.media.sample import SampleSpec, write_sample

    clip = write_sample(tmp / "sample.mp4", spec=SampleSpec(seconds=seconds, audio=False))
    spec = MaskSpec(kind="depth+focus", depth_model=folder)
    carry = DEFAULT_CARRY["depth+focus"]
    runs = {"focus": (None, DEFAULT_EVERY["focus"], DEFAULT_CARRY["focus"])}
    for n in every:
        tag = " (default)" if n == DEFAULT_EVERY["depth+focus"] else ""
        runs[f"depth cost, focus mask, every {n}{tag}"] = ("probe", n, carry)
    runs[f"depth+focus, every {DEFAULT_EVERY['depth+focus']} (default)"] = ("depth", DEFAULT_EVERY["depth+focus"], carry)
    runs["depth cost, focus mask, every frame (no cache)"] = ("probe", 1, "hold")
    out = {}
    for name, (kind, n, carry_mode) in runs.items():
        est = None if kind is None else build_estimator(spec)
        if kind == "probe":
            est = DepthCostFocusMask(depth=est)
        cfg = UpscaleConfig(mask_every=n, mask_carry=carry_mode,
                            mask_lookahead=spec.lookahead if kind else 1, copy_streams=False)
        rep = upscale_video(clip, tmp / "out.mp4", config=cfg, estimator=est)
        stages = {k: round(v, 2) for k, v in rep.stages.items()}
        out[name] = {"frames": rep.frames, "seconds": round(rep.seconds, 2), "fps": round(rep.fps, 2),
                     "mask_every": n, "carry": carry_mode, "mask_passes": rep.mask_passes,
                     "mask_stage_s": stages.get("mask", 0.0), "sr_fraction": round(rep.sr_fraction, 3),
                     "stages_s": stages}
        print(name, out[name], flush=True)
    base = out["focus"]
    for name, r in out.items():
        r["total_vs_focus"] = round(r["seconds"] / base["seconds"] - 1, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the end-to-end clip")
    ap.add_argument("--every", type=int, nargs="+", default=[8, 16, 32], help="anchor intervals to time")
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
            e2e = end_to_end(folder, tmp, args.seconds, args.every)
    result = {
        "what": "Depth Anything V2 Small-sized network (random weights) on CPU",
        "params": params,
        "machine": machine_info(threads=torch.get_num_threads(),
                                note="ms_per_* are medians of --repeat runs, min_ms_per_frame the fastest run"),
        "per_pass": passes,
        "end_to_end": e2e,
    }
    write_json(result, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
