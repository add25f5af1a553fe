"""Partial SR on real footage: SR pixels vs the subject, SR-stage speedup vs the ideal, end to end,
RRDBNet, ORT vs torch: issue 25's numbers from one command.

For each clip, the default focus masks of its first frames are computed once; then, frame by frame
and taking turns, the SR stage (:func:`vidsr.sr.sr_tiles`) runs on the full-frame windows and on
the window plans: ``old`` (64-px tiles merged into rectangles, shrunk to the support: vidsr before
issue 25), ``prev`` (:func:`vidsr.tiling.plan_windows` with one ``CALL_PX`` and one engine call per
window shape: issue 25's first session), ``packed`` (the network's whole call cost charged per
window, windows packed: the second session), ``tight`` (no call cost, half the context) and ``now``
(what ``vidsr upscale`` runs: :meth:`vidsr.frame.FrameProcessor.windows`, windows packed into shared
calls, :func:`vidsr.sr.pack_windows`, or the full-frame windows where those cost less), for the
shipped x2 model and a heavy network (a Compact with 64 features x 16 convs, random weights), and on
the first clip for an RRDBNet x4 (Real-ESRGAN x4plus's shape, random weights loaded through the
community-checkpoint detector). The report gives SR pixels
(the cores) and window pixels over the subject (alpha > 0: foreground + feather band), the SR-stage
times and speedups, and the ideal 1/fg. ``--threaded CLIP`` adds ``vidsr bench --threaded``'s partial
over full-frame wall time (torch); ``--ort`` torch vs ONNX Runtime full-frame SR per architecture.
The JSON's ``headline`` holds the issue's three numbers (and RRDBNet's).

    python benchmarks/partial_sr.py --clip dragonfly272.mp4 --clip vtest272.mp4 --clip sample540.mp4 \
        --plan-only dragonfly1080.mp4 --threaded dragonfly272.mp4 --json results/partial-sr-cpu.json
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
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
from vidsr.frame import FrameProcessor, build_processor
from vidsr.pipeline.config import MERGE_WINDOW_PX
from vidsr.sr import pack_windows, sr_tiles
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


def processor(engine, h: int, w: int) -> FrameProcessor:
    """The processor ``vidsr upscale`` builds for this engine and frame size (its planner and packing)."""
    return build_processor(engine=engine, height=h, width=w, tile=64, merge_px=MERGE_WINDOW_PX)


def plans(proc: FrameProcessor, masks) -> dict[str, tuple[list[list[Tile]], dict]]:
    """Per configuration, the windows of each frame and how sr_tiles runs them: ``old`` (before issue 25),
    ``prev`` (plan_windows with one CALL_PX, one call per window shape: this benchmark's first run),
    ``packed`` (a whole call charged per window, packed: issue 25's second session), ``tight`` (no call
    cost and half the context charged, packed: the cores closest to the subject) and ``now``
    (:meth:`FrameProcessor.windows` and its packing, as ``vidsr upscale`` runs)."""
    pad = proc.plan.pad
    supports = [mask_support(m.alpha) for m in masks]
    packing = {"pack_px": proc.merge_px, "call_px": proc.call_px}
    return {"old": ([old_windows(s, pad) for s in supports], {}),
            "prev": ([plan_windows(s, pad=pad, max_window_px=MERGE_WINDOW_PX) for s in supports], {}),
            "packed": ([plan_windows(s, pad=pad, max_window_px=MERGE_WINDOW_PX, call_px=proc.call_px)
                        for s in supports], packing),
            "tight": ([plan_windows(s, pad=pad, max_window_px=MERGE_WINDOW_PX, call_px=0, context=pad / 2)
                       for s in supports], packing),
            "now": ([proc.windows(select_tiles(proc.plan, s), s) for s in supports],
                    packing | {"whole": proc.full_windows})}


def pixels(proc: FrameProcessor, masks) -> dict:
    """SR pixels (cores) and window pixels over the subject (alpha > 0), per configuration of :func:`plans`."""
    t = time.perf_counter()
    configs = plans(proc, masks)
    plan_ms = (time.perf_counter() - t) * 1000
    n, (h, w) = len(masks), masks[0].alpha.shape
    sub = sum(int((m.alpha > 0).sum()) for m in masks)
    out = {"frames": n, "size": [w, h], "pad": proc.plan.pad, "call_px": proc.call_px,
           "fg_fraction": statistics.fmean(m.fg_fraction for m in masks), "subject_fraction": sub / (n * h * w),
           "plan_ms_per_frame_all_configs": plan_ms / n}
    for name, (wins, kw) in configs.items():
        out[f"{name}_core_over_subject"] = sum(t.core_pixels for ws in wins for t in ws) / sub
        out[f"{name}_window_over_subject"] = sum(t.window_pixels for ws in wins for t in ws) / sub
        out[f"{name}_windows_per_frame"] = sum(map(len, wins)) / n
        if kw:
            out[f"{name}_calls_per_frame"] = sum(len(pack_windows(ws, frame=(h, w), radius=proc.plan.pad,
                                                                  max_px=kw["pack_px"], call_px=kw["call_px"]))
                                                 for ws in wins) / n
    return out


def sr_stage(engine, images, masks, passes: int, *, warm: bool = True, only: list[str] | None = None) -> dict:
    """Median over passes of the SR stage's ms/frame: full frame and each configuration of :func:`plans`
    (those in ``only`` where given), taking turns frame by frame, after a warm-up pass that meets every
    window shape (``warm``; RRDBNet skips it: its ~0.7 ms per pixel dwarfs a new shape's set-up)."""
    h, w = images[0].shape[:2]
    proc = processor(engine, h, w)
    configs = {"full": ([proc.full_windows] * len(images), {}),
               **{k: v for k, v in plans(proc, masks).items() if only is None or k in only}}
    for name, (wins, kw) in configs.items() if warm else ():  # warm-up: every shape once
        for k, img in enumerate(images):
            sr_tiles(engine, img, wins[k], batch=8, **kw)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(passes):
        tot = dict.fromkeys(times, 0.0)
        for k, img in enumerate(images):
            for name, (wins, kw) in configs.items():
                t = time.perf_counter()
                sr_tiles(engine, img, wins[k], batch=8, **kw)
                tot[name] += time.perf_counter() - t
        for name in times:
            times[name].append(tot[name] * 1000 / len(images))
    med = {k: statistics.median(v) for k, v in times.items()}
    fg = statistics.fmean(m.fg_fraction for m in masks)
    subject = statistics.fmean(float((m.alpha > 0).mean()) for m in masks)
    ideal = 1 / fg
    out = {"engine": engine.label, "network": engine.descriptor.name, "radius": engine.descriptor.receptive_radius,
           "frames": len(images), "passes": passes, "sr_ms_per_frame": med, "runs_ms_per_frame": times,
           "ideal_1_over_fg": ideal, "ideal_1_over_subject": 1 / subject}
    for name in configs:
        if name != "full":
            out[f"speedup_{name}"] = med["full"] / med[name]
            out[f"{name}_over_ideal"] = med["full"] / med[name] / ideal
    return out


def rrdb_model(blocks: int) -> tuple[nn.Module, object]:
    """RRDBNet x4 (Real-ESRGAN x4plus's shape with ``blocks`` RRDBs; 23 is x4plus) with random weights,
    loaded from its state dict in the published key layout, as a community checkpoint is (the receptive
    radius is measured: small for random weights)."""
    from vidsr.arch.detect import detect
    from vidsr.arch.rrdb import RRDBNet

    torch.manual_seed(2)
    return detect(RRDBNet(scale=4, num_block=blocks).state_dict(), name=f"rrdb-x4-{blocks}nb-random")


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


def _over_ideal(stage: dict) -> dict[str, float]:
    return {c: round(stage[f"{c}_over_ideal"], 3) for c in ("prev", "packed", "tight", "now")
            if f"{c}_over_ideal" in stage}


def threaded(clip: Path, repeat: int) -> dict:
    """``vidsr bench --threaded CLIP --backend torch``: partial over full-frame wall time of the real pipeline."""
    from vidsr.bench.config import BenchConfig
    from vidsr.bench.threaded import run_threaded

    report = run_threaded(clip, config=BenchConfig(backends=("torch",), repeat=repeat), log=print)
    return {"comparisons": report["comparisons"],
            "median_runs": {k: {f: v["median"][f] for f in ("seconds", "fps", "cores_used", "critical_path",
                                                           "sr_fraction", "roles")}
                            for k, v in report["results"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", action="append", type=Path, required=True, help="video (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="what each --clip is, in words")
    ap.add_argument("--plan-only", action="append", type=Path, default=[], help="clips for pixel accounting only")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--heavy-frames", type=int, default=4)
    ap.add_argument("--rrdb-blocks", type=int, default=23, help="RRDBs of the RRDBNet x4 (23: Real-ESRGAN x4plus)")
    ap.add_argument("--rrdb-frames", type=int, default=2, help="frames of the first --clip for RRDBNet (0: skip)")
    ap.add_argument("--rrdb-plans", nargs="+", default=None, metavar="PLAN",
                    help="RRDBNet's window plans besides full frame (default: all; 'now' is what vidsr upscale runs)")
    ap.add_argument("--threaded", type=Path, default=None, help="clip for vidsr bench --threaded (torch)")
    ap.add_argument("--threaded-repeat", type=int, default=3)
    ap.add_argument("--ort", action="store_true")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "partial-sr.json")
    args = ap.parse_args()
    t_start = time.perf_counter()
    # one thread per frame, as vidsr upscale runs torch on the CPU (two frames at once); ORT alike, so
    # the per-architecture comparison is like for like (and a loaded machine does not stall both threads)
    torch.set_num_threads(1)
    lite, lite_desc = resolve_model(None, scale=2)
    heavy, heavy_desc = heavy_model()
    lite_e = create_engine(lite, lite_desc, backend_from_name("torch", device="cpu"))
    heavy_e = create_engine(heavy, heavy_desc, backend_from_name("torch", device="cpu"))
    report = {"load_average_start": os.getloadavg(), "argv": sys.argv[1:], "clips": {}, "plan_only": {}}
    headline: dict[str, dict] = {"sr_px_over_subject": {}, "sr_stage_over_ideal": {},
                                 "end_to_end_partial_over_full": {}}
    for i, clip in enumerate(args.clip):
        images, masks = frames_and_masks(clip, args.frames)
        h, w = images[0].shape[:2]
        entry = {"label": args.label[i] if i < len(args.label) else clip.name,
                 "pixels": pixels(processor(lite_e, h, w), masks)}
        print(clip, entry["pixels"], flush=True)
        headline["sr_px_over_subject"][f"{clip.name} {w}x{h}"] = {
            c: round(entry["pixels"][f"{c}_core_over_subject"], 3) for c in ("prev", "packed", "tight", "now")}
        entry["sr_stage_lite_torch"] = sr_stage(lite_e, images, masks, args.passes)
        print(clip, "lite", {k: v for k, v in entry["sr_stage_lite_torch"].items() if "runs" not in k}, flush=True)
        k = args.heavy_frames
        entry["heavy_pixels"] = pixels(processor(heavy_e, h, w), masks[:k])
        entry["sr_stage_heavy_torch"] = sr_stage(heavy_e, images[:k], masks[:k], max(1, args.passes - 1))
        print(clip, "heavy", {k: v for k, v in entry["sr_stage_heavy_torch"].items() if "runs" not in k}, flush=True)
        for net in ("lite", "heavy"):
            headline["sr_stage_over_ideal"][f"{clip.name} {net}"] = _over_ideal(entry[f"sr_stage_{net}_torch"])
        if i == 0 and args.rrdb_frames > 0:
            rrdb, rrdb_desc = rrdb_model(args.rrdb_blocks)
            rrdb_e = create_engine(rrdb, rrdb_desc, backend_from_name("torch", device="cpu"))
            k = args.rrdb_frames
            entry["rrdb_pixels"] = pixels(processor(rrdb_e, h, w), masks[:k])
            entry["sr_stage_rrdb_torch"] = sr_stage(rrdb_e, images[:k], masks[:k], 1, warm=False, only=args.rrdb_plans)
            print(clip, "rrdb", {k: v for k, v in entry["sr_stage_rrdb_torch"].items() if "runs" not in k}, flush=True)
            headline["sr_stage_over_ideal"][f"{clip.name} {rrdb_desc.name}"] = _over_ideal(entry["sr_stage_rrdb_torch"])
        report["clips"][str(clip.name)] = entry
    for clip in args.plan_only:
        images, masks = frames_and_masks(clip, args.frames)
        h, w = images[0].shape[:2]
        report["plan_only"][clip.name] = pixels(processor(lite_e, h, w), masks)
        headline["sr_px_over_subject"][f"{clip.name} {w}x{h}"] = {
            c: round(report["plan_only"][clip.name][f"{c}_core_over_subject"], 3) for c in ("prev", "packed", "tight", "now")}
        print(clip, report["plan_only"][clip.name], flush=True)
    if args.threaded is not None:
        torch.set_num_threads(os.cpu_count() or 1)  # the pipeline sets its own per-frame threads
        report["threaded"] = threaded(args.threaded, args.threaded_repeat)
        for b, c in report["threaded"]["comparisons"].items():
            headline["end_to_end_partial_over_full"][f"{args.threaded.name} {b}"] = {
                "median": round(c["partial_over_full_wall"], 3), "per_run": [round(r, 3) for r in c["per_run"]]}
        torch.set_num_threads(1)
    if args.ort:
        image = frames_and_masks(args.clip[0], 1)[0][0]
        models = {"compact-x2-lite": (lite, lite_desc), "compact-x2": resolve_model("compact-x2", scale=2),
                  "compact-x4": resolve_model("compact-x4", scale=4),
                  "espcn-x2": _espcn(), "compact-64x16-random": (heavy, heavy_desc)}
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            report["ort_vs_torch_full_frame"] = ort_vs_torch(models, image, args.passes + 2, Path(tmp))
    report["load_average_end"] = os.getloadavg()
    report["headline"] = headline
    report["seconds"] = time.perf_counter() - t_start
    write_json(report | {"machine": machine_info(script="benchmarks/partial_sr.py", host=os.uname().nodename),
                         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, args.json)
    print("headline", headline)
    print(f"wrote {args.json} in {report['seconds']:.0f} s, load average {report['load_average_start']} -> "
          f"{report['load_average_end']}")


def _espcn():
    torch.manual_seed(1)
    m = REGISTRY.build("espcn", {"scale": 2}).eval()
    return m, describe(m, name="espcn-x2-random")


if __name__ == "__main__":
    main()
