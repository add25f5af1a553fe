"""``vidsr eval``: bicubic vs full-frame SR vs partial SR on a dataset folder, scored on the
whole frame, on the foreground and on the background separately.

Ground truth is each dataset frame (cropped to a multiple of the scale); its LR copy is made
with one clean kernel (antialiased bicubic by default, as in the thesis). Methods:

- ``bicubic``: the cheap upscale partial SR puts in the background (``composite.upscale_background``);
- ``full:<model>``: the network on every tile (``FrameProcessor(full_frame=True)``);
- ``partial:<model>``: what ``vidsr upscale`` does: mask, tile-gated SR, feathered composite
  (``FrameProcessor``); its mask is estimated on the LR frame like in production, or, with
  ``partial_mask="dataset"``, taken from the dataset (an oracle mask).

Regions come from the dataset's mask (soft mask >= 0.5, at HR): ``fg`` and ``bg``, plus
``full``. PSNR and SSIM (Wang et al., :func:`vidsr.metrics.ssim_map`) on BT.601 Y and on
RGB, ``scale`` border pixels shaved, outputs rounded to uint8. Means are over frames (a frame
with an empty region does not count for that region).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.composite import upscale_background
from vidsr.errors import InputError
from vidsr.masks.base import MaskFrame
from vidsr.masks.focus import FocusEstimator
from vidsr.masks.tracker import MaskTracker
from vidsr.metrics import SSIM_RADIUS, psnr, rgb_to_y, ssim_map
from vidsr.train.dataset import load_sample, read_dataset
from vidsr.train.degrade import Downscale, downscale

REGIONS = ("full", "fg", "bg")
METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
PartialMask = Literal["estimated", "dataset"]


@dataclass(frozen=True)
class NamedModel:
    """A network to evaluate and the label its rows get."""

    label: str
    model: nn.Module
    descriptor: ModelDescriptor


def region_scores(out: np.ndarray, hr: np.ndarray, fg: np.ndarray, *, shave: int) -> dict[str, dict[str, float]]:
    """PSNR/SSIM on Y and RGB over the full frame, ``fg`` and ``~fg``.

    Args:
        out, hr: (H, W, 3) uint8.
        fg: (H, W) bool foreground.
        shave: border pixels dropped before scoring.

    Returns:
        {region: {metric: value}}; NaN for an empty region. ``full`` equals
        :func:`vidsr.train.evaluate.score`.
    """
    if out.shape != hr.shape or fg.shape != hr.shape[:2]:
        raise ValueError(f"shapes differ: out {out.shape}, hr {hr.shape}, fg {fg.shape}")
    s = (slice(shave, -shave or None), slice(shave, -shave or None))
    a, b, m = out[s].astype(np.float64) / 255.0, hr[s].astype(np.float64) / 255.0, fg[s]
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    inner = np.zeros(m.shape, bool)
    inner[SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS] = True  # as metrics.ssim(border=SSIM_RADIUS)
    maps_y = ssim_map(ya, yb, data_range=1.0)
    maps_rgb = [ssim_map(a[..., c], b[..., c], data_range=1.0) for c in range(3)]
    regions = {"full": np.ones(m.shape, bool), "fg": m, "bg": ~m}
    result = {}
    for name, r in regions.items():
        if not r.any():
            result[name] = {k: float("nan") for k in METRICS}
            continue
        ri = r & inner
        result[name] = {
            "psnr_y": psnr(ya[r], yb[r], data_range=1.0),
            "ssim_y": float(maps_y[ri].mean()) if ri.any() else float("nan"),
            "psnr_rgb": psnr(a[r], b[r], data_range=1.0),
            "ssim_rgb": float(np.mean([mp[ri].mean() for mp in maps_rgb])) if ri.any() else float("nan"),
        }
    return result


def _processor(nm: NamedModel, lr_shape: tuple[int, int], *, full_frame: bool, tile: int, feather_px: float):
    from vidsr.backends import backend_from_name, create_engine
    from vidsr.frame import build_processor
    from vidsr.pipeline.config import merge_window_px

    engine = create_engine(nm.model, nm.descriptor, backend_from_name("torch", device="cpu", tile=tile))
    return build_processor(engine=engine, height=lr_shape[0], width=lr_shape[1], tile=tile,
                           merge_px=merge_window_px(device="cpu", backend="torch"), mask_every=1,
                           feather_px=feather_px, full_frame=full_frame)


def _dataset_mask(alpha_hr: np.ndarray, lr_shape: tuple[int, int]) -> MaskFrame:
    """The dataset's soft mask at LR size, as the MaskFrame partial SR takes."""
    alpha = cv2.resize(alpha_hr, (lr_shape[1], lr_shape[0]), interpolation=cv2.INTER_AREA)
    alpha[alpha < 1e-3] = 0.0
    alpha[alpha > 1 - 1e-3] = 1.0
    return MaskFrame(alpha=alpha, binary=alpha >= 0.5, score=alpha, anchor=True, cut=False)


def evaluate_dataset(root: Path, models: list[NamedModel], *, split: str = "test",
                     degradation: Downscale = "bicubic_aa", partial_mask: PartialMask = "estimated",
                     tile: int = 64, feather_px: float = 4.0, max_frames: int | None = None,
                     on_frame: Callable[[str], None] | None = None) -> dict:
    """Score bicubic, and full-frame and partial SR with each model, on one split of a dataset.

    Args:
        root: dataset folder.
        models: networks (all of one scale).
        split: ``test`` (default), ``train`` or ``all``.
        degradation: LR kernel.
        partial_mask: ``estimated`` (focus mask on the LR frame, as ``vidsr upscale``) or ``dataset``.
        tile, feather_px: partial SR's tile size and mask feather (``vidsr upscale`` defaults).
        max_frames: score at most this many frames (evenly spaced).
        on_frame: called with each sample id (progress).

    Returns:
        JSON-able report: settings, per-frame rows and per-method means (see :func:`to_markdown`).
    """
    if not models:
        raise InputError("vidsr eval needs at least one model")
    scales = {m.descriptor.scale for m in models}
    if len(scales) != 1:
        raise InputError(f"models of different scales ({sorted(scales)}) cannot be compared on one LR input")
    scale = scales.pop()
    ds = read_dataset(root)
    rows = ds.samples if split == "all" else ds.split(split)
    if not rows:
        raise InputError(f"dataset {root} has no {split!r} samples")
    if max_frames is not None and len(rows) > max_frames:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_frames).round().astype(int)]
    per_frame = []
    processors: dict[tuple[str, str, tuple[int, int]], object] = {}
    for row in rows:
        rgb, _, alpha = load_sample(ds.root, row)
        h, w = (rgb.shape[0] // scale) * scale, (rgb.shape[1] // scale) * scale
        hr, alpha = np.ascontiguousarray(rgb[:h, :w]), alpha[:h, :w]
        fg = alpha >= 0.5
        lr = downscale(hr, scale, degradation)
        outputs: list[tuple[str, np.ndarray, float, float | None]] = []
        t0 = time.perf_counter()
        outputs.append(("bicubic", upscale_background(lr, scale=scale, method="bicubic"), time.perf_counter() - t0, 0.0))
        for nm in models:
            for kind in ("full", "partial"):
                key = (nm.label, kind, lr.shape[:2])
                if key not in processors:
                    processors[key] = _processor(nm, lr.shape[:2], full_frame=kind == "full", tile=tile,
                                                 feather_px=feather_px)
                proc = processors[key]
                mask = None
                if kind == "partial":  # frames are independent samples: a fresh tracker for each
                    proc = replace(proc, tracker=MaskTracker(estimator=FocusEstimator(), every=1,
                                                             feather_px=feather_px))
                    if partial_mask == "dataset":
                        mask = _dataset_mask(alpha, lr.shape[:2])
                t0 = time.perf_counter()
                res = proc.process(lr, defaultdict(float), mask)
                dt = time.perf_counter() - t0
                outputs.append((f"{kind}:{nm.label}", res.image, dt, len(res.tiles) / len(proc.plan)))
        for method, out, dt, sr_share in outputs:
            per_frame.append({"sample": row.id, "source": row.source, "method": method,
                              "fg_fraction": float(fg.mean()), "seconds": dt, "sr_share": sr_share,
                              "scores": region_scores(out, hr, fg, shave=scale)})
        if on_frame is not None:
            on_frame(row.id)
    report = {
        "dataset": str(ds.root), "split": split, "frames": len(rows), "scale": scale,
        "degradation": degradation, "partial_mask": partial_mask, "tile": tile,
        "models": {m.label: {"arch": m.descriptor.arch, "name": m.descriptor.name} for m in models},
        "methods": summarize_frames(per_frame), "per_frame": per_frame,
    }
    return report


def summarize_frames(per_frame: list[dict]) -> dict:
    """Per method: mean of each region's metrics over frames (NaN-skipping), time, SR share."""
    out: dict = {}
    for method in dict.fromkeys(r["method"] for r in per_frame):
        rs = [r for r in per_frame if r["method"] == method]
        mean = {}
        for region in REGIONS:
            mean[region] = {}
            for k in METRICS:
                v = np.array([r["scores"][region][k] for r in rs], np.float64)
                v = v[np.isfinite(v)]
                mean[region][k] = float(v.mean()) if v.size else None
            mean[region]["frames"] = int(sum(np.isfinite(r["scores"][region]["psnr_y"]) for r in rs))
        out[method] = {"mean": mean, "seconds_per_frame": float(np.mean([r["seconds"] for r in rs])),
                       "sr_share": float(np.mean([r["sr_share"] for r in rs]))}
    return out


def _f(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def to_markdown(report: dict, *, title: str | None = None) -> str:
    """One row per method: PSNR/SSIM (Y, RGB) on full frame / FG / BG, time and SR share."""
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += [f"{report['frames']} {report['split']} frames of `{report['dataset']}`, x{report['scale']}, "
              f"LR kernel {report['degradation']}, partial-SR mask {report['partial_mask']}.", "",
              "| method | PSNR-Y full | PSNR-Y FG | PSNR-Y BG | SSIM-Y full | SSIM-Y FG | SSIM-Y BG "
              "| PSNR-RGB full | PSNR-RGB FG | PSNR-RGB BG | SSIM-RGB full | SSIM-RGB FG | SSIM-RGB BG "
              "| s/frame | SR share |",
              "|---|" + "---:|" * 14]
    for method, m in report["methods"].items():
        cells = []
        for k, d in (("psnr_y", 2), ("ssim_y", 4), ("psnr_rgb", 2), ("ssim_rgb", 4)):
            cells += [_f(m["mean"][r][k], d) for r in REGIONS]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {m['seconds_per_frame']:.3f} | {m['sr_share']:.2f} |")
    return "\n".join(lines)


__all__ = ["NamedModel", "evaluate_dataset", "region_scores", "summarize_frames", "to_markdown"]
