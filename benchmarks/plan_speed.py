"""What planning the SR windows of one frame costs (:func:`vidsr.tiling.plan_windows`), before and
after it was made fast: the planner runs on every frame in the SR worker threads and holds the GIL.

The default focus masks of a clip's first frames are computed once; then each frame's support is
planned by the old planner (the frozen copy in tests/plan_windows_frozen.py: each band height drawn in turn, a dynamic programme
step per cell row in numpy) and by the current one, taking turns (which goes first alternates between
passes), for each setting the pipeline and ``benchmarks/partial_sr.py`` use: ``pad`` 5 (the default
model's radius), ``max_window_px`` 160,000 and ``call_px`` 1200 (the default model on the CPU), 4096
(``CALL_PX``), 60, 0, and 0 with half the context counted. Both must return the same tiles. Reports
the median milliseconds per frame of each and their ratio, with the load average before and after.

    python benchmarks/plan_speed.py --clip /tmp/lw/dragonfly272.mp4:60 --clip /tmp/lw/dragonfly1080.mp4:20

Writes ``benchmarks/results/plan-speed.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from vidsr.bench.report import machine_info, write_json
from vidsr.masks.focus import FocusEstimator
from vidsr.masks.tracker import MaskTracker
from vidsr.media.reader import read_items
from vidsr.media.types import Frame
from vidsr.tiling import mask_support, plan_cell, plan_windows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from plan_windows_frozen import plan_windows as old_plan_windows  # noqa: E402  the planner before

SETTINGS = {"call 1200": {"call_px": 1200}, "call 4096": {"call_px": 4096}, "call 60": {"call_px": 60},
            "call 0": {"call_px": 0}, "call 0, half context": {"call_px": 0, "context": 2.5}}


def supports_of(path: Path, frames: int) -> list[np.ndarray]:
    """:func:`mask_support` of the default focus masks of the first ``frames`` frames of ``path``."""
    tracker = MaskTracker(estimator=FocusEstimator(), every=2)
    out = []
    for item in read_items(path, copy_streams=False):
        if isinstance(item, Frame):
            out.append(mask_support(tracker.update(item.image).alpha))
            if len(out) == frames:
                break
    return out


def time_plans(supports: list[np.ndarray], kw: dict, passes: int) -> dict:
    """Milliseconds per frame of the old and the current planner, taking turns frame by frame."""
    for s in supports:
        if plan_windows(s, **kw) != old_plan_windows(s, **kw):
            raise AssertionError(f"the planners differ on a frame with {kw}")
    old, new = [], []
    for p in range(passes):
        for s in supports:
            for which in (("old", "new") if p % 2 == 0 else ("new", "old")):
                plan = old_plan_windows if which == "old" else plan_windows
                t0 = time.perf_counter()
                plan(s, **kw)
                (old if which == "old" else new).append((time.perf_counter() - t0) * 1e3)
    o, n = statistics.median(old), statistics.median(new)
    return {"old_ms": round(o, 3), "new_ms": round(n, 3), "speedup": round(o / n, 2),
            "old_ms_mean": round(statistics.fmean(old), 3), "new_ms_mean": round(statistics.fmean(new), 3),
            "windows_per_frame": round(sum(len(plan_windows(s, **kw)) for s in supports) / len(supports), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", action="append", default=None,
                    help="PATH[:FRAMES] (default /tmp/lw/dragonfly272.mp4:60 and /tmp/lw/dragonfly1080.mp4:20)")
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "plan-speed.json")
    args = ap.parse_args()
    clips = args.clip or ["/tmp/lw/dragonfly272.mp4:60", "/tmp/lw/dragonfly1080.mp4:20"]
    load = [os.getloadavg()[0]]
    results = []
    for spec in clips:
        path, _, frames = spec.partition(":")
        supports = supports_of(Path(path), int(frames or 60))
        h, w = supports[0].shape
        for name, setting in SETTINGS.items():
            kw = {"pad": 5, "max_window_px": 160_000, **setting}
            r = {"clip": Path(path).name, "size": [w, h], "cell": plan_cell(h, w), "frames": len(supports),
                 "setting": name, **kw, **time_plans(supports, kw, args.passes)}
            load.append(os.getloadavg()[0])
            results.append(r)
            print(f"{r['clip']} {w}x{h} {name}: old {r['old_ms']:.2f} ms, new {r['new_ms']:.2f} ms per frame, "
                  f"x{r['speedup']:.1f} (load {load[-1]:.1f})", flush=True)
    report = {"machine": machine_info(), "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "method": f"median ms per frame over {args.passes} passes, old and new taking turns per frame "
                        "in one process; same tiles checked", "load_average_1min": [round(x, 2) for x in load],
              "results": results}
    write_json(report, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
