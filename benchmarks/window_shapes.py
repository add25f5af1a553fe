"""What the SR stage of partial SR costs against full-frame SR, the first time and once its window
shapes have been seen.

The CPU torch engine runs oneDNN convolutions, and oneDNN builds (and caches) a primitive for each
input shape. Full-frame SR always runs the same few windows; partial SR runs windows shaped by the
mask, and a new shape costs a primitive per convolution the first time. This replays the SR stage
of the built-in sample's frames (or a pan across ``--photo``; their default masks, windows planned as ``vidsr upscale`` does)
``--passes`` times in one process as ``vidsr upscale`` runs it: ``--frame-workers`` frames at once
(default as the pipeline: 2 on a multi-core CPU, each frame on its share of torch's threads).
Each pass times the partial windows of every frame, then the full-frame windows of every frame
(the order alternating between passes), and reports the partial / full ratio per pass (pass 0
meets every shape for the first time, later passes find them cached), the number of distinct
window shapes, and the geometric ratio: the pixels the convolutions compute in partial windows
over those of full-frame windows. Run one ``--frame-workers`` value per process: oneDNN caches
its primitives per thread count.

    python benchmarks/window_shapes.py

Writes ``benchmarks/results/window-shapes-cpu.json``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vidsr.platform import short_waits  # noqa: E402

short_waits()  # as the CLI does, before torch loads

from torch import nn  # noqa: E402

from vidsr.bench.report import machine_info, write_json  # noqa: E402
from vidsr.media.reader import probe, read_items  # noqa: E402
from vidsr.media.types import Frame  # noqa: E402
from vidsr.pipeline.config import UpscaleConfig, frame_workers  # noqa: E402
from vidsr.pipeline.run import processor_for  # noqa: E402
from vidsr.platform import threads_per_frame, torch_threads  # noqa: E402
from vidsr.media.sample import SampleSpec, write_sample  # noqa: E402
from vidsr.sr import sr_tiles  # noqa: E402
from vidsr.tiling import Tile, mask_support, select_tiles  # noqa: E402


def conv_pixels(t: Tile, radius: int, shrinks: list[int]) -> float:
    """Mean output pixels per convolution layer for window ``t``: along trimmed axes each layer's output
    lacks ``shrinks[i]`` px per side (the body's radius so far), as ``forward_trimmed`` computes it."""
    (h, w), (ty, tx) = t.window_shape, t.trim(radius)
    return sum((h - 2 * k * ty) * (w - 2 * k * tx) for k in shrinks) / len(shrinks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--frame-workers", type=int, default=None,
                    help="frames at once [default: as vidsr upscale, 2 on a multi-core CPU]")
    ap.add_argument("--model", default=None, help="shipped x2 model or .pt file (default: the shipped default)")
    ap.add_argument("--photo", type=Path, default=None, help="pan across this photograph (vidsr sample --photo)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "window-shapes-cpu.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sample.mp4"
        spec = SampleSpec(seconds=args.seconds, photo=args.photo)
        write_sample(src, spec=spec)
        frames = [it.image for it in read_items(src, copy_streams=False) if isinstance(it, Frame)]
        proc = processor_for(probe(src), UpscaleConfig(model=args.model))
    masks = proc.tracker.update_many(frames)
    windows = []
    for m in masks:
        support = mask_support(m.alpha)
        windows.append(proc.windows(select_tiles(proc.plan, support), support))
    full = proc.full_windows
    packing = {"pack_px": proc.merge_px, "call_px": proc.call_px}  # partial windows share calls as in vidsr upscale
    engine, r = proc.engine, proc.engine.descriptor.receptive_radius
    shrinks = list(itertools.accumulate(m.kernel_size[0] // 2 for m in engine.model.body
                                        if isinstance(m, nn.Conv2d)))
    n = len(frames)
    partial_px = sum(conv_pixels(t, r, shrinks) for ws in windows for t in ws) / n
    full_px = sum(conv_pixels(t, r, shrinks) for t in full)
    shapes = {(t.window_shape, t.trim(r)) for ws in windows for t in ws}
    workers = frame_workers(UpscaleConfig(frame_workers=args.frame_workers))
    threads = threads_per_frame(workers)
    passes = []
    with torch_threads(threads), ThreadPoolExecutor(workers) as pool:

        def stage(per_frame: list[list[Tile]]) -> float:
            """Seconds per frame of the SR stage over all frames, ``workers`` frames at once."""
            t0 = time.perf_counter()
            list(pool.map(lambda job: sr_tiles(engine, job[0], job[1], batch=proc.batch, **job[2]),
                          zip(frames, per_frame, [packing if per_frame is windows else {}] * n)))
            return (time.perf_counter() - t0) / n

        sr_tiles(engine, frames[0], full, batch=proc.batch)  # full-frame shapes: built before timing
        for p in range(args.passes):
            if p % 2 == 0:
                tp = stage(windows)
                tf = stage([full] * n)
            else:
                tf = stage([full] * n)
                tp = stage(windows)
            passes.append({"pass": p, "partial_ms": round(tp * 1e3, 1), "full_ms": round(tf * 1e3, 1),
                           "ratio": round(tp / tf, 3)})
            print(f"pass {p}: partial {tp * 1e3:.1f} ms, full {tf * 1e3:.1f} ms, ratio {tp / tf:.3f}", flush=True)
    report = {
        "input": f"{spec.source}, {args.seconds:g} s ({n} frames), 960x540 -> 1920x1080, "
                 f"{engine.descriptor.name}, torch CPU fp32",
        "frame_workers": workers,
        "torch_threads_per_frame": threads,
        "machine": machine_info(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "fg_fraction": round(sum(m.fg_fraction for m in masks) / n, 3),
        "alpha_support": round(sum(float((m.alpha > 0).mean()) for m in masks) / n, 3),
        "windows_per_frame": round(sum(len(ws) for ws in windows) / n, 2),
        "distinct_window_shapes": len(shapes),
        "geometric_ratio": round(partial_px / full_px, 3),
        "passes": passes,
    }
    print(f"FG {report['fg_fraction']:.1%}, alpha support {report['alpha_support']:.1%}, "
          f"{report['distinct_window_shapes']} window shapes in {n} frames, geometric ratio {report['geometric_ratio']}")
    write_json(report, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
