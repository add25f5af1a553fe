"""End-to-end fps of the threaded ``upscale_video`` (what ``vidsr upscale`` runs) by foreground.

``vidsr bench`` times a serial loop; this times the real pipeline (decode, mask, SR + composite
and encode in their own threads, audio copied, file written) on the built-in sample at
960x540 -> 1920x1080 with the shipped x2 model. Masks: the default focus mask, the focus mask
with a lower threshold (more foreground, reaching into the bokeh), and centred ellipses
covering a given fraction of the frame (a compact subject). ``--photo`` pans across another
photograph instead of the bundled one (a subject of another size, found by the focus mask itself;
``vidsr sample --photo`` writes the same clip). Each case runs ``--repeat`` times
for each ``--frame-workers`` count (frames upscaled at once) and each of ``--models``, taking turns.

    python benchmarks/threaded_fps.py

Writes ``benchmarks/results/threaded-fps-cpu.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from vidsr.platform import short_waits  # noqa: E402

short_waits()  # as the CLI does, before torch loads

from vidsr.bench.report import machine_info, write_json  # noqa: E402
from vidsr.masks.synthetic import DiscEstimator  # noqa: E402
from vidsr.weights import DEFAULT_MODELS  # noqa: E402
from vidsr.pipeline.config import UpscaleConfig  # noqa: E402
from vidsr.pipeline.run import upscale_video  # noqa: E402
from vidsr.media.sample import SampleSpec, write_sample  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--thresholds", type=float, nargs="*", default=[0.045],
                    help="--fg-threshold values for the focus mask besides its own (Otsu)")
    ap.add_argument("--discs", type=float, nargs="*", default=[0.2, 0.3])
    ap.add_argument("--frame-workers", type=int, nargs="*", default=[2, 1],
                    help="frames upscaled at once (UpscaleConfig.frame_workers); 2 is vidsr's CPU default")
    ap.add_argument("--models", nargs="*", default=[DEFAULT_MODELS[2]],
                    help="shipped x2 models (or .pt files) to time, taking turns with the frame-worker counts")
    ap.add_argument("--photo", type=Path, default=None, help="pan across this photograph (vidsr sample --photo)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threaded-fps-cpu.json")
    args = ap.parse_args()
    base = [("focus (Otsu)", UpscaleConfig(), None)]
    base += [(f"focus, threshold {t}", UpscaleConfig(fg_threshold=t), None) for t in args.thresholds]
    base += [(f"ellipse {f:.0%}", UpscaleConfig(), DiscEstimator(f)) for f in args.discs]
    base.append(("full frame", UpscaleConfig(full_frame=True), None))
    runs_of = [(m, w) for m in args.models for w in args.frame_workers]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sample.mp4"
        spec = SampleSpec(seconds=args.seconds, photo=args.photo)
        write_sample(src, spec=spec)
        for name, config, estimator in base:
            runs: dict[tuple[str, int], list[dict]] = {k: [] for k in runs_of}
            reports = {}
            for _ in range(args.repeat):
                for model, w in runs_of:
                    t0 = time.perf_counter()
                    r = upscale_video(src, Path(tmp) / "out.mp4", estimator=estimator,
                                      config=dataclasses.replace(config, model=model, frame_workers=w))
                    runs[model, w].append({"fps": round(r.fps, 2), "wall_s": round(time.perf_counter() - t0, 2)})
                    reports[model, w] = r
            for (model, w), r in reports.items():
                row = {"case": name, "model": model, "frame_workers": w, "frames": r.frames,
                       "fg_fraction": round(r.fg_fraction, 3), "sr_fraction": round(r.sr_fraction, 3),
                       "runs": runs[model, w]}
                rows.append(row)
                print(f"{name:22s} {model:16s} workers {w}  FG {row['fg_fraction']:.1%}  SR on "
                      f"{row['sr_fraction']:.1%}  fps {', '.join(str(x['fps']) for x in runs[model, w])}", flush=True)
    report = {"input": f"{spec.source}, {args.seconds:g} s, 960x540 -> 1920x1080, torch CPU fp32",
              "machine": machine_info(),
              "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cases": rows}
    write_json(report, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
