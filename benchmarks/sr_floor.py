"""What any exact partial-SR method can reach: the SR stage's multiply-adds against full frame (issue 25, target 2).

For the default focus masks of a clip's first frames and the shipped x2 network (a ``SubpixelNet`` run as
``vidsr upscale`` runs it on the CPU: trimmed, phase-major, its residual a dense 5x5 convolution), the
multiply-adds of the SR stage as a share of full-frame SR's, for methods from the finest to the shipped one:

- ``exact``: each convolution computes exactly the pixels the subject (alpha > 0) needs, the subject grown by the
  radius of the layers after it: a ragged (sparse) convolution, the floor of every exact method;
- ``bands B``: each convolution over rectangles, the runs of columns its pixels take in bands of B rows (per-layer
  execution with dense convolutions, each rectangle counted with no halo and no call: optimistic);
- ``windows``: the shipped plan's windows (:meth:`vidsr.frame.FrameProcessor.windows`), each in its own call and
  trimmed at both ends of every axis it can be (no call cost counted);
- ``packed``: the shipped plan's canvases (:func:`vidsr.sr.pack_windows`), as ``vidsr upscale`` runs them.

For each, ``cap`` = fg / share: the SR-stage speedup over the ideal 1/fg it would reach if a multiply-add cost the
same everywhere and calls nothing. ``--time`` measures full-frame and packed SR (one torch thread, taking turns
frame by frame) to check the model: packed over full in time against packed's share.

    python benchmarks/sr_floor.py --clip /tmp/lw/sample540.mp4 --clip /tmp/lw/dragonfly272.mp4 --time \
        --json benchmarks/results/sr-floor-cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from partial_sr import frames_and_masks, processor, sr_stage  # noqa: E402

from vidsr.backends import backend_from_name, create_engine  # noqa: E402
from vidsr.bench.report import machine_info, write_json  # noqa: E402
from vidsr.checkpoint import resolve_model  # noqa: E402
from vidsr.sr import pack_windows  # noqa: E402
from vidsr.tiling import mask_support, select_tiles  # noqa: E402


def layers(net: nn.Module) -> list[tuple[int, int]]:
    """(radius, multiply-adds a pixel) of each layer that costs: the body's convolutions in order, then the
    residual (a 5x5 convolution from the input: radius 0 here, it reads the input the first layer reads)."""
    out = [(c.kernel_size[0] // 2, c.in_channels * c.out_channels * c.kernel_size[0] * c.kernel_size[1] // c.groups)
           for c in net.body if isinstance(c, nn.Conv2d)]
    k = getattr(net, "residual_kernel", None)
    if k is not None:
        out.append((0, k.shape[0] * k.shape[1] * k.shape[2] * k.shape[3]))
    return out


def rect_macs(h: int, w: int, trim: tuple[bool, bool], spec: list[tuple[int, int]], radius: int) -> int:
    """Multiply-adds of one call on an ``h`` x ``w`` input trimmed along ``trim`` (rows, cols): each body
    convolution's output shrinks by its radius at both ends of a trimmed axis; the residual is computed
    where the output is (the input less ``radius`` at both ends)."""
    total, cut = 0, 0
    for k, (r, macs) in enumerate(spec):
        last = k == len(spec) - 1 and r == 0
        cut = radius if last else cut + r
        oh, ow = (h - 2 * cut if trim[0] else h), (w - 2 * cut if trim[1] else w)
        total += max(0, oh) * max(0, ow) * macs
    return total


def grown(mask: np.ndarray, d: int) -> np.ndarray:
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))) if d else mask


def needs(subject: np.ndarray, spec: list[tuple[int, int]]) -> list[tuple[np.ndarray, int]]:
    """Per layer, the pixels its output is needed on (the subject grown by the radii after it) and its cost."""
    body = [r for r, _ in spec[:-1]] + ([spec[-1][0]] if spec[-1][0] else [])
    out = []
    for k, (_, macs) in enumerate(spec):
        after = sum(body[k + 1:]) if k < len(body) else 0
        out.append((grown(subject, after), macs))
    return out


def band_macs(need: list[tuple[np.ndarray, int]], b: int) -> int:
    total = 0
    for mask, macs in need:
        for y in range(0, mask.shape[0], b):
            band = mask[y:y + b]
            rows = np.flatnonzero(band.any(axis=1))
            if not rows.size:
                continue
            cols = np.flatnonzero(band.any(axis=0))
            breaks = np.flatnonzero(np.diff(cols) > 1)
            starts, ends = np.r_[cols[0], cols[breaks + 1]], np.r_[cols[breaks], cols[-1]]
            total += int((rows[-1] - rows[0] + 1) * (ends - starts + 1).sum()) * macs
    return total


def clip_floor(path: Path, frames: int, bands: list[int], timed: bool, passes: int) -> dict:
    images, masks = frames_and_masks(path, frames)
    model, desc = resolve_model(None, scale=2)
    engine = create_engine(model, desc, backend_from_name("torch", device="cpu"))
    # the phase-major copy is what a trimming CPU engine runs (its residual dense, its outputs padded to 16)
    phases = getattr(engine, "_phases", None)
    net = engine.model if phases is None else phases
    spec, radius = layers(net), desc.receptive_radius
    h, w = images[0].shape[:2]
    proc = processor(engine, h, w)
    full = sum(rect_macs(*t.window_shape, t.trim(radius), spec, radius) for t in proc.full_windows)
    shares: dict[str, list[float]] = {k: [] for k in ["exact", *(f"bands {b}" for b in bands), "windows", "packed"]}
    for m in masks:
        support = mask_support(m.alpha)
        subject = (m.alpha > 0).astype(np.uint8)
        wins = proc.windows(select_tiles(proc.plan, support), support)
        canvases = pack_windows(wins, frame=(h, w), radius=radius, max_px=proc.merge_px, call_px=proc.call_px)
        need = needs(subject, spec)
        shares["exact"].append(sum(int(a.sum()) * macs for a, macs in need) / full)
        for b in bands:
            shares[f"bands {b}"].append(band_macs(need, b) / full)
        shares["windows"].append(sum(rect_macs(*t.window_shape, t.trim(radius), spec, radius) for t in wins) / full)
        shares["packed"].append(sum(rect_macs(c.height, c.width, c.trim, spec, radius) for c in canvases) / full)
    fg = statistics.fmean(m.fg_fraction for m in masks)
    out = {"clip": path.name, "size": [w, h], "frames": len(images), "network": desc.name,
           "fg_fraction": fg, "subject_fraction": statistics.fmean(float((m.alpha > 0).mean()) for m in masks),
           "share_of_full_macs": {k: statistics.fmean(v) for k, v in shares.items()}}
    out["cap_over_ideal"] = {k: fg / v for k, v in out["share_of_full_macs"].items()}
    if timed:  # the shipped plan ("now", what vidsr upscale runs) against full frame, taking turns
        stage = sr_stage(engine, images, masks, passes, only=["now"])
        med = {"full": stage["sr_ms_per_frame"]["full"], "packed": stage["sr_ms_per_frame"]["now"]}
        out["sr_ms_per_frame"] = med
        out["runs_ms_per_frame"] = {"full": stage["runs_ms_per_frame"]["full"],
                                    "packed": stage["runs_ms_per_frame"]["now"]}
        out["packed_over_full_time"] = med["packed"] / med["full"]
        out["packed_over_ideal_measured"] = med["full"] / med["packed"] * fg
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", action="append", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--bands", type=int, nargs="*", default=[8, 16, 32, 64], help="band heights (LR rows)")
    ap.add_argument("--time", action="store_true", help="also time full-frame and packed SR")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    report = {"machine": machine_info(), "clips": []}
    for clip in args.clip:
        r = clip_floor(clip, args.frames, args.bands, args.time, args.passes)
        report["clips"].append(r)
        w, h = r["size"]
        print(f"{r['clip']} {w}x{h}: fg {r['fg_fraction']:.3f}, subject {r['subject_fraction']:.3f}")
        for k, v in r["share_of_full_macs"].items():
            print(f"  {k:10s} {v:.3f} of full-frame multiply-adds, cap {r['cap_over_ideal'][k]:.2f} of the ideal 1/fg")
        if "sr_ms_per_frame" in r:
            ms = r["sr_ms_per_frame"]
            print(f"  measured: full {ms['full']:.1f} ms, packed {ms['packed']:.1f} ms a frame "
                  f"({r['packed_over_full_time']:.3f} of full; {r['packed_over_ideal_measured']:.2f} of the ideal)")
    if args.json:
        write_json(report, args.json)


if __name__ == "__main__":
    main()
