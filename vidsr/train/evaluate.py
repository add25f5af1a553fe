"""PSNR/SSIM of a model against plain bicubic on held-out photographs.

Ground truth is a photo; LR is made from it with one clean downscale kernel at a time
(antialiased bicubic, area). Scores use the Y channel (BT.601, as in SR papers) and RGB,
with ``scale`` border pixels shaved. Outputs are rounded to uint8 before scoring, as a
real frame would be.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidsr.errors import InputError
from vidsr.extras import require
from vidsr.metrics import SSIM_RADIUS, psnr, rgb_to_y, ssim
from vidsr.train.data import list_images, load_rgb, resize_long_side
from vidsr.train.degrade import DOWNSCALES, Downscale, downscale

# Photographs in skimage.data (no drawings, microscopy or astronomy).
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")


@dataclass(frozen=True)
class EvalImage:
    """One ground-truth photo: ``hr`` is (H, W, 3) uint8 RGB."""

    name: str
    source: str
    hr: np.ndarray


@dataclass(frozen=True)
class Scores:
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    ssim_rgb: float


@dataclass(frozen=True)
class EvalRecord:
    """Bicubic and model scores of one image under one LR kernel."""

    image: str
    degradation: Downscale
    bicubic: Scores
    model: Scores


def skimage_photos() -> list[EvalImage]:
    """The colour photographs shipped inside scikit-image (``skimage.data``)."""
    data = require("skimage.data", extra="train", what="evaluation on skimage.data photos needs scikit-image")
    loaders = {
        "astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea,
        "rocket": data.rocket, "motorcycle": lambda: data.stereo_motorcycle()[0],
    }
    return [EvalImage(name=n, source="skimage.data", hr=np.ascontiguousarray(loaders[n]())) for n in SKIMAGE_PHOTOS]


def folder_photos(folder: Path, *, long_side: int | None = None) -> list[EvalImage]:
    """Photos from a folder, optionally area-shrunk so the longer side is ``long_side``."""
    out = []
    for path in list_images(folder):
        img = load_rgb(path)
        if long_side is not None:
            img = resize_long_side(img, long_side)
        out.append(EvalImage(name=path.stem, source=str(path), hr=img))
    return out


def score(sr: np.ndarray, hr: np.ndarray, *, shave: int) -> Scores:
    """Scores of (H, W, 3) uint8 ``sr`` against ``hr`` with ``shave`` border pixels dropped."""
    if sr.shape != hr.shape:
        raise ValueError(f"sr {sr.shape} and hr {hr.shape} differ in shape")
    s = (slice(shave, -shave or None), slice(shave, -shave or None))
    a, b = sr[s].astype(np.float64) / 255.0, hr[s].astype(np.float64) / 255.0
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    return Scores(psnr_y=psnr(ya, yb, data_range=1.0), ssim_y=ssim(ya, yb, data_range=1.0, border=SSIM_RADIUS),
                  psnr_rgb=psnr(a, b, data_range=1.0), ssim_rgb=ssim(a, b, data_range=1.0, border=SSIM_RADIUS))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """Plain bicubic upscale of (h, w, 3) uint8 (the same kernel the networks add their output to)."""
    x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0
    return _to_uint8(F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False))


def upscale_model(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """Run ``model`` on one (h, w, 3) uint8 frame; returns (h*s, w*s, 3) uint8."""
    x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        return _to_uint8(model(x))


def evaluate(model: nn.Module, images: list[EvalImage], *, scale: int,
             degradations: tuple[Downscale, ...] = DOWNSCALES) -> list[EvalRecord]:
    """Score bicubic and ``model`` on every image under every LR kernel.

    Args:
        model: network mapping (1, 3, h, w) to (1, 3, h*scale, w*scale).
        images: ground truth photos; each is cropped to a multiple of ``scale``.
        scale: SR factor.
        degradations: LR kernels to test.

    Returns:
        One record per (degradation, image).
    """
    if not images:
        raise InputError("no evaluation images")
    model.eval()
    records = []
    for kind in degradations:
        for im in images:
            h, w = (im.hr.shape[0] // scale) * scale, (im.hr.shape[1] // scale) * scale
            hr = np.ascontiguousarray(im.hr[:h, :w])
            lr = downscale(hr, scale, kind)
            records.append(EvalRecord(
                image=im.name, degradation=kind,
                bicubic=score(upscale_bicubic(lr, scale), hr, shave=scale),
                model=score(upscale_model(model, lr), hr, shave=scale),
            ))
    return records


def summarize(records: list[EvalRecord]) -> dict:
    """JSON-able per-image records plus per-degradation means and model-minus-bicubic gains."""
    out: dict = {"per_image": [asdict(r) for r in records], "mean": {}}
    for kind in dict.fromkeys(r.degradation for r in records):
        rs = [r for r in records if r.degradation == kind]
        mean = {}
        for who in ("bicubic", "model"):
            mean[who] = {k: float(np.mean([asdict(getattr(r, who))[k] for r in rs])) for k in asdict(rs[0].model)}
        mean["gain_psnr_y"] = mean["model"]["psnr_y"] - mean["bicubic"]["psnr_y"]
        mean["gain_psnr_rgb"] = mean["model"]["psnr_rgb"] - mean["bicubic"]["psnr_rgb"]
        mean["min_gain_psnr_y"] = float(min(r.model.psnr_y - r.bicubic.psnr_y for r in rs))
        mean["images"] = len(rs)
        out["mean"][kind] = mean
    return out


def format_table(records: list[EvalRecord]) -> str:
    """Markdown table: per image and mean, bicubic vs model, PSNR/SSIM on Y and RGB."""
    lines = ["| LR kernel | image | PSNR-Y bicubic | PSNR-Y model | gain | SSIM-Y bicubic | SSIM-Y model "
             "| PSNR-RGB bicubic | PSNR-RGB model | SSIM-RGB bicubic | SSIM-RGB model |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def row(kind: str, name: str, b: Scores, m: Scores) -> str:
        return (f"| {kind} | {name} | {b.psnr_y:.2f} | {m.psnr_y:.2f} | {m.psnr_y - b.psnr_y:+.2f} "
                f"| {b.ssim_y:.4f} | {m.ssim_y:.4f} | {b.psnr_rgb:.2f} | {m.psnr_rgb:.2f} "
                f"| {b.ssim_rgb:.4f} | {m.ssim_rgb:.4f} |")

    means = summarize(records)["mean"]
    for kind, mean in means.items():
        for r in records:
            if r.degradation == kind:
                lines.append(row(kind, r.image, r.bicubic, r.model))
        lines.append(row(kind, "**mean**", Scores(**mean["bicubic"]), Scores(**mean["model"])))
    return "\n".join(lines)
