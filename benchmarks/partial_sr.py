"""Partial SR on real footage: SR pixels vs the subject, SR-stage speedup vs the ideal, ORT vs torch.

For each clip, the default focus masks of its first frames are computed once; then, frame by frame
and taking turns, the SR stage (:func:`vidsr.sr.sr_tiles`) runs on the full-frame windows, on the
windows of the old planner (64-px tiles merged into rectangles, shrunk to the support: vidsr before
issue 25) and on :func:`vidsr.tiling.plan_windows`' windows, for the shipped x2 model and a heavy
network (a Compact with 64 features x 16 convs, random weights). The report gives SR pixels (the
cores) and window pixels over the subject (alpha > 0: foreground + feather band), the SR-stage
times and speedups, and the ideal 1/fg. ``--ort`` adds torch vs ONNX Runtime full-frame SR per
architecture, ORT with PReLU as relus (before) and as per-channel scalings (now).

    python benchmarks/partial_sr.py --clip dragonfly.mp4 --clip vtest.mp4 --ort --json results/partial-sr.json
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidsr.arch import REGISTRY, describe
from vidsr.backends import backend_from_name, create_engine
from vidsr.bench.report import machine_info, write_json
from vidsr.checkpoint import resolve_model
from vidsr.masks.focus import FocusEstimator
from vidsr.masks.tracker import MaskTracker
from vidsr.media.reader import read_items
from vidsr.media.types import Frame
from vidsr.pipeline.config import MERGE_WINDOW_PX
from vidsr.sr import sr_tiles
from vidsr.tiling import Tile, mask_support, merge_tiles, plan_tiles, plan_windows, select_tiles


def old_windows(support: np.ndarray, pad: int) -> list[Tile]:
    """The planner before issue 25: 64-px tiles merged into rectangles, each shrunk to the support."""
    h, w = support.shape
    plan = plan_tiles(h, w, tile=64, pad=pad)
    out = []
    for r in merge_tiles(plan, select_tiles(plan, support), max_window_px=MERGE_WINDOW_PX):
        sub = support[r.y0:r.y1, r.x0:r.x1]
        rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
        if rows.size:
            y0, x0, y1, x1 = r.y0 + rows[0], r.x0 + cols[0], r.y0 + rows[-1] + 1, r.x0 + cols[-1] + 1
            out.append(Tile(y0=int(y0), x0=int(x0), y1=int(y1), x1=int(x1), wy=max(0, y0 - pad), wx=max(0, x0 - pad),
                            wy1=min(h, y1 + pad), wx1=min(w, x1 + pad)))
    return out


def full_windows(h: int, w: int, pad: int) -> list[Tile]:
    plan = plan_tiles(h, w, tile=64, pad=pad)
    return merge_tiles(plan, list(range(len(plan))), max_window_px=MERGE_WINDOW_PX)


def frames_and_masks(path: Path, n: int) -> tuple[list[np.ndarray], list]:
    tracker = MaskTracker(estimator=FocusEstimator(), every=2)
    images, masks = [], []
    for item in read_items(path, copy_streams=False):
        if isinstance(item, Frame):
            images.append(item.image)
            masks.append(tracker.update(item.image))
            if len(images) >= n:
                break
    return images, masks


def heavy_model() -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 64, "num_conv": 16}).eval()
    return model, describe(model, name="compact-64x16-random")


def pixels(images, masks, pad: int) -> dict:
    acc = dict(fg=0.0, subject=0, old_core=0, old_window=0, new_core=0, new_window=0, plan_ms=0.0)
    for img, m in zip(images, masks):
        s = mask_support(m.alpha)
        t = time.perf_counter()
        new = plan_windows(s, pad=pad, max_window_px=MERGE_WINDOW_PX)
        acc["plan_ms"] += (time.perf_counter() - t) * 1000
        old = old_windows(s, pad)
        acc["fg"] += m.fg_fraction
        acc["subject"] += int((m.alpha > 0).sum())
        acc["old_core"] += sum(x.core_pixels for x in old)
        acc["old_window"] += sum(x.window_pixels for x in old)
        acc["new_core"] += sum(x.core_pixels for x in new)
        acc["new_window"] += sum(x.window_pixels for x in new)
    n, (h, w) = len(images), images[0].shape[:2]
    sub = acc["subject"]
    return {"frames": n, "size": [w, h], "pad": pad, "fg_fraction": acc["fg"] / n,
            "subject_fraction": sub / (n * h * w),
            "plan_ms_per_frame": acc["plan_ms"] / n,
            **{f"{k}_over_subject": acc[k] / sub for k in ("old_core", "old_window", "new_core", "new_window")}}


def sr_stage(engine, images, masks, passes: int) -> dict:
    """Median over passes of the SR stage's ms/frame: full frame, old windows, new windows (taking turns per frame)."""
    pad = engine.descriptor.receptive_radius
    h, w = images[0].shape[:2]
    full = full_windows(h, w, pad)
    plans = [(full, [old_windows(mask_support(m.alpha), pad) for m in masks],
              [plan_windows(mask_support(m.alpha), pad=pad, max_window_px=MERGE_WINDOW_PX) for m in masks])]
    sr_tiles(engine, images[0], full, batch=8)  # warm-up
    for k in range(len(images)):
        sr_tiles(engine, images[k], plans[0][1][k], batch=8)
        sr_tiles(engine, images[k], plans[0][2][k], batch=8)
    times: dict[str, list[float]] = {"full": [], "old": [], "new": []}
    for _ in range(passes):
        tot = dict.fromkeys(times, 0.0)
        for k, img in enumerate(images):
            for name, wins in (("full", full), ("old", plans[0][1][k]), ("new", plans[0][2][k])):
                t = time.perf_counter()
                sr_tiles(engine, img, wins, batch=8)
                tot[name] += time.perf_counter() - t
        for name in times:
            times[name].append(tot[name] * 1000 / len(images))
    med = {k: statistics.median(v) for k, v in times.items()}
    fg = statistics.fmean(m.fg_fraction for m in masks)
    subject = statistics.fmean(float((m.alpha > 0).mean()) for m in masks)
    ideal = 1 / fg
    return {"engine": engine.label, "sr_ms_per_frame": med, "runs_ms_per_frame": times,
            "speedup_new": med["full"] / med["new"], "speedup_old": med["full"] / med["old"],
            "ideal_1_over_fg": ideal, "ideal_1_over_subject": 1 / subject,
            "new_over_ideal": med["full"] / med["new"] / ideal, "old_over_ideal": med["full"] / med["old"] / ideal}


class _ReluPReLU(nn.Module):
    """The CPU export's PReLU before issue 25: ``relu(x) - a * relu(-x)``."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.register_buffer("slope", prelu.weight.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) - self.slope * torch.relu(-x)


def ort_vs_torch(models: dict, image: np.ndarray, passes: int, folder: Path) -> dict:
    """Full-frame SR stage per architecture: torch, ORT with the old relus export, ORT now."""
    import onnxruntime as ort

    from vidsr.backends.onnx_cache import export_onnx

    out = {}
    for name, (model, desc) in models.items():
        h, w = image.shape[:2]
        wins = full_windows(h, w, desc.receptive_radius)
        torch_e = create_engine(model, desc, backend_from_name("torch", device="cpu"))
        from vidsr.backends.base import OrtBackend

        ort_e = create_engine(model, desc, OrtBackend(device="cpu", threads=1))
        old = copy.deepcopy(model)
        for ch in list(old.modules()):
            for k, sub in list(ch.named_children()):
                if isinstance(sub, nn.PReLU):
                    setattr(ch, k, _ReluPReLU(sub))
        path = folder / f"{name}-relus.onnx"
        export_onnx(old.eval(), path, opset=17)
        old_e = copy.copy(ort_e)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.intra_op_num_threads = 1
        old_e.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        engines = {"torch": torch_e, "ort_relus_before": old_e, "ort_now": ort_e}
        for e in engines.values():
            sr_tiles(e, image, wins, batch=8)
        t: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(passes):
            for k, e in engines.items():
                t0 = time.perf_counter()
                sr_tiles(e, image, wins, batch=8)
                t[k].append((time.perf_counter() - t0) * 1000)
        med = {k: statistics.median(v) for k, v in t.items()}
        out[name] = {"ms": med, "runs_ms": t, "ort_now_over_torch": med["ort_now"] / med["torch"],
                     "ort_before_over_torch": med["ort_relus_before"] / med["torch"],
                     "faster": "ort" if med["ort_now"] < med["torch"] else "torch"}
        print(name, {k: round(v, 1) for k, v in med.items()}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", action="append", type=Path, required=True, help="video (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="what each --clip is, in words")
    ap.add_argument("--plan-only", action="append", type=Path, default=[], help="clips for pixel accounting only")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--heavy-frames", type=int, default=4)
    ap.add_argument("--ort", action="store_true")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "partial-sr.json")
    args = ap.parse_args()
    # one thread per frame, as vidsr upscale runs torch on the CPU (two frames at once); ORT alike, so
    # the per-architecture comparison is like for like (and a loaded machine does not stall both threads)
    torch.set_num_threads(1)
    lite, lite_desc = resolve_model(None, scale=2)
    heavy, heavy_desc = heavy_model()
    lite_e = create_engine(lite, lite_desc, backend_from_name("torch", device="cpu"))
    heavy_e = create_engine(heavy, heavy_desc, backend_from_name("torch", device="cpu"))
    report = {"load_average_start": os.getloadavg(), "clips": {}, "plan_only": {}}
    for i, clip in enumerate(args.clip):
        images, masks = frames_and_masks(clip, args.frames)
        entry = {"label": args.label[i] if i < len(args.label) else clip.name,
                 "pixels": pixels(images, masks, lite_desc.receptive_radius)}
        print(clip, entry["pixels"], flush=True)
        entry["sr_stage_lite_torch"] = sr_stage(lite_e, images, masks, args.passes)
        print(clip, "lite", {k: v for k, v in entry["sr_stage_lite_torch"].items() if "runs" not in k}, flush=True)
        k = args.heavy_frames
        entry["heavy_pixels"] = pixels(images[:k], masks[:k], heavy_desc.receptive_radius)
        entry["sr_stage_heavy_torch"] = sr_stage(heavy_e, images[:k], masks[:k], max(1, args.passes - 1))
        print(clip, "heavy", {k: v for k, v in entry["sr_stage_heavy_torch"].items() if "runs" not in k}, flush=True)
        report["clips"][str(clip.name)] = entry
    for clip in args.plan_only:
        images, masks = frames_and_masks(clip, args.frames)
        report["plan_only"][clip.name] = pixels(images, masks, lite_desc.receptive_radius)
        print(clip, report["plan_only"][clip.name], flush=True)
    if args.ort:
        image = frames_and_masks(args.clip[0], 1)[0][0]
        models = {"compact-x2-lite": (lite, lite_desc), "compact-x2": resolve_model("compact-x2", scale=2),
                  "compact-x4": resolve_model("compact-x4", scale=4),
                  "espcn-x2": _espcn(), "compact-64x16-random": (heavy, heavy_desc)}
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            report["ort_vs_torch_full_frame"] = ort_vs_torch(models, image, args.passes + 2, Path(tmp))
    report["load_average_end"] = os.getloadavg()
    write_json(report | {"machine": machine_info(script="benchmarks/partial_sr.py", host=os.uname().nodename),
                         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, args.json)
    print("wrote", args.json)


def _espcn():
    torch.manual_seed(1)
    m = REGISTRY.build("espcn", {"scale": 2}).eval()
    return m, describe(m, name="espcn-x2-random")


if __name__ == "__main__":
    main()
