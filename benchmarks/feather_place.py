"""Where the feather ramp lies against quality and SR pixels: outside the mask (vidsr's) or moved in.

On pans across shallow depth-of-field photographs with their ground truth (``vidsr sample --photo P
--size WxH`` and the same with ``--ground-truth``), the first ``--frames`` frames go through partial
SR (the shipped lite network, focus mask, defaults) with the feather's ramp moved ``inset`` mask
working px into the mask: 0 is vidsr's ramp (1 on the mask, 0.5 at ``--feather`` px out, 0 at twice
that), ``--feather`` centres it on the mask's edge (0.5 there). Reported per clip and inset: SR
pixels (window cores) over the frame, PSNR against the ground truth over the whole frame and in the
rings 4 LR px inside and outside the edge of the binary mask (the inset-0 run's masks, so every
inset is scored on the same pixels); full-frame SR and the bicubic upscale for reference.

    python benchmarks/feather_place.py --clip CLIP.mp4 GT.mp4 [--clip ...] --insets 0,2,4

The moved-in ramp is a private copy below (signed distance from the mask's edge), not the package's.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import cv2
import numpy as np

from vidsr.bench.report import machine_info, write_json
from vidsr.frame import build_processor
from vidsr.masks import tracker as tracker_mod
from vidsr.masks.focus import feather
from vidsr.media.reader import read_items
from vidsr.media.types import Frame
from vidsr.metrics import psnr
from vidsr.pipeline.config import MERGE_WINDOW_PX, UpscaleConfig
from vidsr.pipeline.run import load_engine

ROOT = Path(__file__).resolve().parents[1]
RING_LR_PX = 4


def moved_in(inset: float):
    """``feather`` with its ramp moved ``inset`` working px into the mask (0: ``feather`` itself)."""
    def ramp(binary: np.ndarray, *, radius_px: float, size: tuple[int, int]) -> np.ndarray:
        m = binary.astype(np.uint8)
        if inset == 0 or not m.any() or m.all() or radius_px <= 0:
            return feather(binary, radius_px=radius_px, size=size)
        out = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - 0.5
        inside = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - 0.5
        signed = np.where(m > 0, -inside, out)  # distance from the edge, negative inside
        t = np.clip(1 - (signed + inset) / (2 * radius_px), 0, 1)
        a = cv2.resize((t * t * (3 - 2 * t)).astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        a[a < 1e-3] = 0.0
        a[a > 1 - 1e-3] = 1.0
        return a
    return ramp


def frames(path: Path, n: int) -> list[np.ndarray]:
    return [it.image for it in read_items(path, copy_streams=False) if isinstance(it, Frame)][:n]


def rings(binary: np.ndarray, shape: tuple[int, int], scale: int) -> dict[str, np.ndarray]:
    core = cv2.resize(binary.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    k = np.ones((2 * RING_LR_PX * scale + 1,) * 2, np.uint8)
    inner, outer = cv2.erode(core, k).astype(bool), cv2.dilate(core, k).astype(bool)
    return {"ring_inside": core.astype(bool) & ~inner, "ring_outside": outer & ~core.astype(bool)}


def score(outs: list[np.ndarray], gts: list[np.ndarray], masks: list, scale: int) -> dict[str, float]:
    acc = collections.defaultdict(list)
    for o, g, m in zip(outs, gts, masks):
        acc["psnr_frame"].append(psnr(o, g))
        for name, sel in rings(m.binary, o.shape[:2], scale).items():
            if sel.any():
                err = ((o.astype(np.float64) - g) ** 2)[sel].mean()
                acc[name].append(10 * np.log10(255 ** 2 / max(err, 1e-12)))
    return {k: round(float(np.mean(v)), 4) for k, v in acc.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", nargs=2, action="append", type=Path, required=True, metavar=("CLIP", "GT"))
    ap.add_argument("--insets", default="0,2,4")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "feather-place.json")
    args = ap.parse_args()
    insets = [float(x) for x in args.insets.split(",")]
    engine = load_engine(UpscaleConfig())
    scale = engine.descriptor.scale
    report = {"insets": insets, "frames": args.frames, "ring_lr_px": RING_LR_PX, "clips": {}}
    real = tracker_mod.feather
    try:
        for clip, gt in args.clip:
            lr, hr = frames(clip, args.frames), frames(gt, args.frames)
            h, w = lr[0].shape[:2]

            def run(full: bool = False) -> tuple[list, list, float]:
                proc = build_processor(engine=engine, height=h, width=w, tile=64, merge_px=MERGE_WINDOW_PX,
                                       full_frame=full)
                t = collections.defaultdict(float)
                results = [proc.process(im, t) for im in lr]
                sr_px = np.mean([sum(x.core_pixels for x in r.windows) for r in results]) / (h * w)
                return [r.image for r in results], [r.mask for r in results], float(sr_px)

            tracker_mod.feather = moved_in(0)
            _, masks0, _ = run()
            full, _, _ = run(full=True)
            bicubic = [cv2.resize(im, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC) for im in lr]
            row = {"size": [w, h], "fg": round(float(np.mean([m.fg_fraction for m in masks0])), 4),
                   "full_frame": score(full, hr, masks0, scale), "bicubic": score(bicubic, hr, masks0, scale)}
            for inset in insets:
                tracker_mod.feather = moved_in(inset)
                outs, _, sr_px = run()
                row[f"inset_{inset:g}"] = {"sr_pixels": round(sr_px, 4), **score(outs, hr, masks0, scale)}
            report["clips"][clip.name] = row
            print(clip.name, row, flush=True)
    finally:
        tracker_mod.feather = real
    report["machine"] = machine_info()
    write_json(report, args.json)


if __name__ == "__main__":
    main()
