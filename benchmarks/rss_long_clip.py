"""Peak RSS of ``upscale_video`` on a long low-resolution clip: memory must not grow with length.

Makes a 160x90, 30 fps clip with a stereo AAC track (default 10 minutes), upscales it x2
with a small random Compact model and samples the process's RSS every 10 s. ``--mask
empty`` runs the whole streaming graph (decode, mask, background, composite, encode,
audio copy) with no SR tiles, so it gets through 18,000 frames quickly; ``--mask focus``
adds the focus mask and tile SR (slow on a shared 2-core CPU: use ``--max-seconds``).

    python benchmarks/rss_long_clip.py --mask empty
    python benchmarks/rss_long_clip.py --mask focus --max-seconds 600

Writes ``benchmarks/results/rss-long-clip-<mask>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import textured_frame  # noqa: E402

from vidsr.arch import Compact  # noqa: E402
from vidsr.bench.report import machine_info, write_json  # noqa: E402
from vidsr.masks.focus import ConstantEstimator  # noqa: E402
from vidsr.checkpoint import save_checkpoint  # noqa: E402
from vidsr.pipeline.config import UpscaleConfig  # noqa: E402
from vidsr.pipeline.run import upscale_video  # noqa: E402


def make_long_clip(path: Path, *, width: int, height: int, fps: int, seconds: int) -> Path:
    base = [textured_frame(i, width=width, height=height) for i in range(8)]
    with contextlib.closing(av.open(str(path), "w")) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "23"}
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        samples = 0
        for i in range(fps * seconds):
            f = av.VideoFrame.from_ndarray(np.roll(base[i % 8], i % width, axis=1), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
            while samples < (i + 1) * 48000 // fps:
                af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, samples
                c.mux(a.encode(af))
                samples += 1024
        c.mux(v.encode(None))
        c.mux(a.encode(None))
    return path


def rss_mb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mask", choices=["empty", "focus"], default="empty")
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=None, help="stop the run after this long (Ctrl-C path)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = make_long_clip(d / "long.mkv", width=160, height=90, fps=30, seconds=60 * args.minutes)
        torch.manual_seed(0)
        ckpt = d / "tiny.pt"
        save_checkpoint(Compact(scale=2, num_feat=8, num_conv=2), ckpt)
        samples: list[tuple[float, int, int]] = []
        progress = [0]
        done = threading.Event()
        t0 = time.time()

        def sample() -> None:
            while not done.is_set():
                samples.append((round(time.time() - t0, 1), progress[0], rss_mb()))
                done.wait(10)

        def on_frame(report) -> None:
            progress[0] = report.frames
            if args.max_seconds and time.time() - t0 > args.max_seconds:
                raise KeyboardInterrupt

        threading.Thread(target=sample, daemon=True).start()
        estimator = ConstantEstimator(0.0) if args.mask == "empty" else None
        finished = True
        try:
            upscale_video(src, d / "out.mkv", config=UpscaleConfig(model=str(ckpt), tile=32), estimator=estimator,
                          on_frame=on_frame)
        except KeyboardInterrupt:
            finished = False
        done.set()
        samples.append((round(time.time() - t0, 1), progress[0], rss_mb()))
    result = {
        "clip": f"160x90 30 fps {args.minutes} min + stereo aac, x2 Compact(num_feat=8, num_conv=2), tile 32",
        "mask": args.mask, "frames": progress[0], "finished": finished, "seconds": samples[-1][0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "samples_s_frames_rss_mb": samples, "machine": machine_info(), "python": platform.python_version(),
        "av": av.__version__, "torch": torch.__version__,
    }
    out = Path(__file__).parent / "results" / f"rss-long-clip-{args.mask}.json"
    write_json(result, out)
    print(json.dumps({k: v for k, v in result.items() if k != "samples_s_frames_rss_mb"}))


if __name__ == "__main__":
    main()
