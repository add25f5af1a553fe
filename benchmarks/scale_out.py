"""Wall time of ``vidsr upscale`` in one process vs segments on 1 and 2 local Ray workers.

Method (README "Scale out"):
1. Input: the built-in sample pan at ``--size`` (default 320x180), ``--seconds`` long
   (default 20) at 30 fps, H.264 with a keyframe every 2 s (a streaming-style GOP; the
   segments are cut at keyframes, so the GOP bounds how evenly work can be spread).
2. The same settings for every run: a Compact-x2 network of the shipped size (random weights:
   the compute does not depend on them), focus mask, libx264 crf 18 veryfast.
   a) one process (``upscale_video``, no Ray);
   b) ``--workers 1`` and c) ``--workers 2`` (``upscale_distributed``, local Ray started
      and stopped inside the timed call, segments of ``--segment-s`` seconds, empty cache).
   Each run is timed once, end to end (Ray start, actor start, model load, split, upscale,
   join, Ray stop), in the order a, b, c; ``--repeat`` repeats the sequence, reversed on
   every second repeat (so a change of load over time favours no run). The
   1-minute load average after each run is recorded: on a shared machine, compare only
   runs made under the same load.
3. Also timed alone: ``ray.init`` + ``ray.shutdown`` (the fixed cost of a Ray run).

Run from the repository root: ``python benchmarks/scale_out.py`` (needs the [ray] extra);
writes ``benchmarks/results/scale-out-cpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import torch

from vidsr.arch import Compact
from vidsr.bench.report import machine_info, write_json
from vidsr.scaleout.ray import ScaleOut, upscale_distributed
from vidsr.media.reader import probe
from vidsr.checkpoint import save_checkpoint
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video
from vidsr.media.sample import SampleSpec, sample_frames


def make_clip(path: Path, *, width: int, height: int, seconds: float, fps: int = 30, gop_s: float = 2.0) -> Path:
    spec = SampleSpec(width=width, height=height, fps=fps, seconds=seconds, audio=False)
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        g = round(gop_s * fps)
        v.options = {"crf": "16", "preset": "veryfast", "x264-params": f"keyint={g}:min-keyint={g}:scenecut=0"}
        tb = Fraction(1, fps)
        for i, img in enumerate(sample_frames(spec)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, tb
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--segment-s", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scale-out-cpu.json"))
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    import ray

    results: dict = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="vidsr-bench-") as tmp:
        tmp = Path(tmp)
        src = make_clip(tmp / "in.mp4", width=w, height=h, seconds=args.seconds)
        info = probe(src)
        torch.manual_seed(0)
        save_checkpoint(Compact(scale=2), tmp / "compact-x2.pt")
        cfg = UpscaleConfig(model=str(tmp / "compact-x2.pt"))
        t = time.perf_counter()
        ray.init(num_cpus=2, object_store_memory=128 << 20, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray.shutdown()
        results["ray_init_shutdown_s"] = round(time.perf_counter() - t, 2)
        for rep in range(args.repeat):
            order = [("one process", None), ("1 worker", 1), ("2 workers", 2)]
            for label, workers in order if rep % 2 == 0 else order[::-1]:  # odd repeats: reversed
                out = tmp / f"out-{rep}-{workers}.mp4"
                t = time.perf_counter()
                if workers is None:
                    r = upscale_video(src, out, config=cfg)
                    frames, segments = r.frames, 1
                else:
                    so = ScaleOut(workers=workers, segment_s=args.segment_s, cache_dir=tmp / f"cache-{rep}-{workers}")
                    r = upscale_distributed(src, out, config=cfg, scale_out=so)
                    frames, segments = r.frames, r.segments
                wall = time.perf_counter() - t
                results["runs"].append({"repeat": rep, "run": label, "workers": workers, "wall_s": round(wall, 2),
                                        "frames": frames, "segments": segments, "fps": round(frames / wall, 2),
                                        "load_avg_1min_after": round(os.getloadavg()[0], 2)})
                print(f"{label:12s} {wall:7.1f} s  {frames / wall:6.2f} fps  ({segments} segments)", flush=True)
        results["input"] = {"size": f"{info.width}x{info.height}", "frames": info.frames,
                            "seconds": args.seconds, "gop_s": 2.0, "segment_s": args.segment_s}
    results["machine"] = machine_info(cpus=os.cpu_count(), ray=ray.__version__,
                                      note="shared machine (other jobs running)")
    write_json(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
