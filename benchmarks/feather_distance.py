"""The mask stage before and after the feather's bounded distance (``vidsr.masks.focus.near_d2``), taking
turns in one process: ``vidsr/masks/focus.py`` as of ``--base`` (read with ``git show``) against the
package's, on the frames of each clip, with the pipeline's heap settings (``keep_heap``).

    python benchmarks/feather_distance.py --base c35e9cf --clip /tmp/lw/dragonfly272_long.mp4 \
        --clip /tmp/lw/sample540.mp4 --clip /tmp/lw/vtest272.mp4 --rounds 6

Per clip and side: the mask tracker's CPU ms a frame (``MaskTracker.iter_many`` over every frame with
the focus estimator: thumbnail, focus score, Otsu, clean-up, feather; one OpenCV thread) and
``feather`` alone, ms per anchor. The alphas of both sides are checked equal first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vidsr.bench.report import machine_info, write_json
from vidsr.masks import focus as new
from vidsr.masks import tracker as tracker_mod
from vidsr.media.reader import read_items
from vidsr.media.types import Frame
from vidsr.platform import keep_heap

ROOT = Path(__file__).resolve().parents[1]


def base_module(rev: str, tmp: Path):
    src = subprocess.run(["git", "show", f"{rev}:vidsr/masks/focus.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = tmp / "base_focus.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("vidsr_base_focus", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def track(mod, images: list[np.ndarray]) -> tuple[float, list]:
    """Masks of every frame with ``mod``'s helpers; CPU ms a frame."""
    for name in ("feather", "clean_mask", "otsu_threshold"):
        setattr(tracker_mod, name, getattr(mod, name))
    tracker = tracker_mod.MaskTracker(estimator=mod.FocusEstimator(), every=2)
    c0, out = time.thread_time(), []
    for i in range(0, len(images), 2):
        out += tracker.update_many(images[i:i + 2])
    return (time.thread_time() - c0) * 1000 / len(images), out


def feather_ms(mod, binaries: list[np.ndarray], size: tuple[int, int]) -> float:
    c0 = time.thread_time()
    for b in binaries:
        mod.feather(b, radius_px=4.0, size=size)
    return (time.thread_time() - c0) * 1000 / len(binaries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the commit before the change")
    ap.add_argument("--clip", action="append", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "feather-distance-cpu.json")
    args = ap.parse_args()
    keep_heap()
    cv2.setNumThreads(1)
    saved = {name: getattr(tracker_mod, name) for name in ("feather", "clean_mask", "otsu_threshold")}
    report = {"base": args.base, "load_average_start": os.getloadavg(), "clips": {}}
    with tempfile.TemporaryDirectory(prefix="vidsr-feather-") as tmp:
        old = base_module(args.base, Path(tmp))
        try:
            for clip in args.clip:
                images = [it.image for it in read_items(clip, copy_streams=False) if isinstance(it, Frame)]
                _, a = track(old, images)
                _, b = track(new, images)
                if not all(np.array_equal(x.alpha, y.alpha) and np.array_equal(x.binary, y.binary) for x, y in zip(a, b)):
                    raise SystemExit(f"{clip}: the masks differ")
                binaries = [m.binary for m in b if m.anchor]
                size = images[0].shape[:2]
                runs = {"base": {"tracker": [], "feather": []}, "new": {"tracker": [], "feather": []}}
                for i in range(args.rounds):
                    for side, mod in ((("base", old), ("new", new)) if i % 2 == 0 else (("new", new), ("base", old))):
                        runs[side]["tracker"].append(round(track(mod, images)[0], 3))
                        runs[side]["feather"].append(round(feather_ms(mod, binaries, size), 3))
                med = {s: {k: statistics.median(v) for k, v in r.items()} for s, r in runs.items()}
                report["clips"][clip.name] = {
                    "frames": len(images), "size": list(size), "anchors": len(binaries), "runs_ms": runs,
                    "median_ms": med, "tracker_ms_per_frame_saved": round(med["base"]["tracker"] - med["new"]["tracker"], 3),
                    "feather_new_over_base": round(med["new"]["feather"] / med["base"]["feather"], 3)}
                print(clip.name, report["clips"][clip.name]["median_ms"], flush=True)
        finally:
            for name, f in saved.items():
                setattr(tracker_mod, name, f)
    report.update(load_average_end=os.getloadavg(), machine=machine_info(), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(report, args.json)


if __name__ == "__main__":
    main()
