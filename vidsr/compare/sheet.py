"""The crop sheet: zoomed crops of the most and least in-focus regions of one frame, per method, with PSNR."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.compare.render import FONT
from vidsr.masks.base import MaskEstimator
from vidsr.masks.focus import FocusEstimator
from vidsr.metrics import psnr


@dataclass(frozen=True)
class Region:
    """A ``size`` x ``size`` LR-pixel square at (y, x) and its mean focus score."""

    name: str
    y: int
    x: int
    size: int
    score: float


def pick_regions(image: np.ndarray, *, crop: int = 48, estimator: MaskEstimator | None = None) -> list[Region]:
    """The crop-sized squares of highest (``foreground``) and lowest (``background``) mean focus score.

    Args:
        image: (H, W, 3) uint8 LR frame.
        crop: square side in LR px (at most a quarter of the short side, if that is >= 8).
    """
    check_image(image)
    h, w = image.shape[:2]
    c = max(1, min(crop, max(8, min(h, w) // 4), h, w))  # small frames: keep the two regions apart
    score = (estimator or FocusEstimator()).estimate(image).astype(np.float32)
    if score.shape != (h, w):
        score = cv2.resize(score, (w, h), interpolation=cv2.INTER_LINEAR)
    ii = cv2.integral(score, sdepth=cv2.CV_64F)
    sums = ii[c:, c:] - ii[:-c, c:] - ii[c:, :-c] + ii[:-c, :-c]  # (h-c+1, w-c+1) window sums
    means = sums / (c * c)
    out = []
    for name, flat in (("foreground", int(np.argmax(means))), ("background", int(np.argmin(means)))):
        y, x = divmod(flat, means.shape[1])
        out.append(Region(name=name, y=y, x=x, size=c, score=float(means[y, x])))
    return out


def format_psnr(value: float) -> str:
    """``"31.20 dB"``, or ``"= reference"`` when the crop is the reference."""
    return f"{value:.2f} dB" if np.isfinite(value) else "= reference"


def crop_of(image: np.ndarray, region: Region, *, scale: int) -> np.ndarray:
    """The region of an (H*s, W*s, 3) output."""
    s = scale
    return image[region.y * s:(region.y + region.size) * s, region.x * s:(region.x + region.size) * s]


def zoom_factor(crop_px: int, *, target: int = 256) -> int:
    """Nearest-neighbour zoom in [2, 4] that brings a ``crop_px`` crop near ``target`` px."""
    return int(np.clip(round(target / max(1, crop_px)), 2, 4))


@dataclass(frozen=True)
class SheetColumn:
    key: str
    title: str
    subtitle: str


@dataclass(frozen=True)
class Sheet:
    """A contact sheet. ``cells[r][c]`` = (y0, x0, y1, x1) of the zoomed crop of region r, column c;
    ``psnr[r][c]`` its PSNR in dB against the reference (inf when it is the reference)."""

    image: np.ndarray
    regions: list[Region]
    columns: list[SheetColumn]
    zoom: int
    cells: list[list[tuple[int, int, int, int]]]
    psnr: list[list[float]]
    reference: str


SHEET_MARGIN = 8
SHEET_HEADER = 44
SHEET_CAPTION = 22
SHEET_ROW_LABEL = 130
SHEET_BG = (30, 30, 30)


def crop_sheet(images: dict[str, np.ndarray], regions: list[Region], *, scale: int, reference: np.ndarray,
               reference_name: str, columns: list[SheetColumn], zoom: int | None = None,
               show_reference: bool = False) -> Sheet:
    """Contact sheet: one row per region, one column per method (``columns[i].key`` in ``images``).

    Args:
        images: method name -> (H*s, W*s, 3) uint8 output of one frame.
        regions: from ``pick_regions`` on that frame's LR image.
        reference: (H*s, W*s, 3) uint8 the PSNR is measured against.
        show_reference: add a last column with the reference itself.
    """
    cols = list(columns)
    sources = [images[c.key] for c in cols]
    if show_reference:
        cols.append(SheetColumn(key="reference", title=reference_name, subtitle="reference"))
        sources.append(reference)
    for src in sources:
        if src.shape != reference.shape:
            raise ValueError(f"sheet images differ in shape: {src.shape} vs reference {reference.shape}")
    crop_px = max(r.size for r in regions) * scale
    z = zoom or zoom_factor(crop_px)
    cell = crop_px * z
    m = SHEET_MARGIN
    width = SHEET_ROW_LABEL + len(cols) * (cell + m) + m
    height = SHEET_HEADER + len(regions) * (cell + SHEET_CAPTION + m) + m
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = SHEET_BG
    fs, th = 0.45, 1
    white = (235, 235, 235)
    cells: list[list[tuple[int, int, int, int]]] = []
    values: list[list[float]] = []
    for ci, col in enumerate(cols):
        x0 = SHEET_ROW_LABEL + m + ci * (cell + m)
        cv2.putText(sheet, col.title, (x0, 18), FONT, fs + 0.05, white, th, cv2.LINE_AA)
        cv2.putText(sheet, col.subtitle, (x0, 36), FONT, fs, (180, 180, 180), th, cv2.LINE_AA)
    for ri, region in enumerate(regions):
        y0 = SHEET_HEADER + ri * (cell + SHEET_CAPTION + m)
        for li, line in enumerate((region.name, f"focus {region.score:.2f}",
                                   f"x {region.x} y {region.y}", f"{region.size}px x{z} zoom")):
            cv2.putText(sheet, line, (m, y0 + 16 + 18 * li), FONT, fs, white, th, cv2.LINE_AA)
        ref = crop_of(reference, region, scale=scale)
        row_cells, row_vals = [], []
        for ci, src in enumerate(sources):
            x0 = SHEET_ROW_LABEL + m + ci * (cell + m)
            c = crop_of(src, region, scale=scale)
            zc = cv2.resize(c, (c.shape[1] * z, c.shape[0] * z), interpolation=cv2.INTER_NEAREST)
            sheet[y0:y0 + zc.shape[0], x0:x0 + zc.shape[1]] = zc
            row_cells.append((y0, x0, y0 + zc.shape[0], x0 + zc.shape[1]))
            p = psnr(c, ref)
            row_vals.append(p)
            text = format_psnr(p) if not np.isfinite(p) else f"PSNR {format_psnr(p)}"
            cv2.putText(sheet, text, (x0, y0 + cell + 16), FONT, fs, white, th, cv2.LINE_AA)
        cells.append(row_cells)
        values.append(row_vals)
    return Sheet(image=sheet, regions=regions, columns=cols, zoom=z, cells=cells, psnr=values,
                 reference=reference_name)


__all__ = ["Region", "Sheet", "SheetColumn", "crop_of", "crop_sheet", "format_psnr", "pick_regions", "zoom_factor"]
