"""Side-by-side comparisons: plain upscale vs full-frame SR vs partial SR, as a video and a crop sheet.

For every selected frame the same low-resolution image goes through each method:

- ``plain``: the cheap interpolating upscale (``UpscaleConfig.bg``: bicubic or Lanczos);
- ``full``: SR on every pixel (the baseline);
- ``partial``: vidsr's mask + tile-gated SR + composite;
- ``mask``: the plain upscale with the foreground tinted and the SR'd tiles outlined.

``compose`` arranges them (``grid``: 2x2 labelled panels; ``split``: left half of one
method, right half of another; ``wipe``: the same with a divider that moves over time),
and ``crop_sheet`` builds a contact sheet of zoomed crops of the most and least in-focus
regions with per-crop PSNR. Everything here is a pure function of its inputs except
``compare_video``, which streams a file through them and writes the results atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.composite import upscale_background
from vidsr.errors import InputError, OutputError
from vidsr.media.io import (Frame, Passthrough, VideoInfo, VideoWriter, atomic_output, check_output_path, probe,
                      read_items)
from vidsr.masks.focus import FocusEstimator, MaskEstimator
from vidsr.pipeline.run import FrameProcessor, FrameResult, UpscaleConfig, build_processor
from vidsr.tiling import TilePlan

Method = Literal["plain", "full", "partial", "mask"]
Layout = Literal["grid", "split", "wipe"]

METHODS: tuple[str, ...] = ("plain", "full", "partial", "mask")
LAYOUTS: tuple[str, ...] = ("grid", "split", "wipe")
GRID_ORDER: tuple[str, ...] = ("plain", "full", "partial", "mask")  # row-major 2x2
SHEET_METHODS: tuple[str, ...] = ("plain", "full", "partial")  # the mask is not an upscale

TINT_RGB = (40, 230, 90)
TILE_RGB = (255, 210, 0)
TINT_STRENGTH = 0.45
FONT = cv2.FONT_HERSHEY_SIMPLEX


# ----------------------------------------------------------------------------- arguments

@dataclass(frozen=True)
class FrameRange:
    """Frames ``start`` (inclusive) to ``stop`` (exclusive; ``None`` = to the end), 0-based."""

    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.stop is not None and self.stop < 0):
            raise InputError(f"--frames: frame numbers must be >= 0, got {self}")
        if self.stop is not None and self.stop <= self.start:
            raise InputError(f"--frames {self.start}:{self.stop} is empty: the end must be greater than the start")

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.stop is None else self.stop}"

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop is None

    def count(self, total: int | None) -> int | None:
        """How many frames the range selects from a clip of ``total`` frames (None if unknown)."""
        ends = [e for e in (self.stop, total) if e is not None]
        return max(0, min(ends) - self.start) if ends else None


def parse_frames(text: str | None) -> FrameRange:
    """``"a:b"``, ``"a:"``, ``":b"`` or ``None`` (all frames) -> FrameRange; anything else is an InputError."""
    if text is None or text.strip() in ("", ":"):
        return FrameRange()
    a, sep, b = text.strip().partition(":")
    if not sep:
        raise InputError(f"--frames must look like START:END (e.g. 10:50, 10: or :50), got {text!r}")
    try:
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        raise InputError(f"--frames must look like START:END with whole numbers (e.g. 10:50), got {text!r}") from None
    return FrameRange(start, stop)


def parse_methods(text: str) -> tuple[str, str]:
    """``"plain,partial"`` -> ("plain", "partial"): two different names from METHODS."""
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 2 or len(set(names)) != 2 or any(n not in METHODS for n in names):
        raise InputError(f"--methods must be two different names from {', '.join(METHODS)} "
                         f"separated by a comma (e.g. plain,partial), got {text!r}")
    return names  # type: ignore[return-value]


@dataclass(frozen=True)
class CompareConfig:
    """What ``vidsr compare`` can be told; ``upscale`` carries the model, tiles and mask settings.

    ``upscale.bg`` is both the ``plain`` method and the partial-SR background.
    """

    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    layout: str = "grid"
    methods: tuple[str, str] = ("plain", "partial")
    frames: FrameRange = field(default_factory=FrameRange)
    max_width: int = 1920
    sheet_frame: int | None = None
    crop: int = 48
    labels: bool = True

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        parse_methods(",".join(self.methods))
        if self.max_width < 64:
            raise InputError(f"--max-width must be >= 64, got {self.max_width}")
        if self.sheet_frame is not None and self.sheet_frame < 0:
            raise InputError(f"--sheet-frame must be >= 0, got {self.sheet_frame}")
        if self.crop < 8:
            raise InputError(f"crop must be >= 8 LR pixels, got {self.crop}")


# ----------------------------------------------------------------------------- rendering

def method_label(method: str, *, bg: str = "bicubic") -> str:
    return {"plain": bg, "full": "full-frame SR", "partial": "vidsr partial SR",
            "mask": "mask + SR tiles"}[method]


def mask_overlay(base: np.ndarray, alpha: np.ndarray, plan: TilePlan, tiles: list[int],
                 *, scale: int) -> np.ndarray:
    """Tint the foreground and outline the tiles that went through SR.

    Args:
        base: (H*s, W*s, 3) uint8 image to draw on (not modified).
        alpha: (H, W) float32 soft mask at LR size.
        tiles: indices into ``plan.tiles``.
    Returns:
        (H*s, W*s, 3) uint8.
    """
    h, w = base.shape[:2]
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[..., None] * TINT_STRENGTH
    out = base.astype(np.float32) * (1.0 - a) + np.asarray(TINT_RGB, np.float32) * a
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    thick = max(1, scale // 2)
    for i in tiles:
        t = plan.tiles[i]
        cv2.rectangle(out, (t.x0 * scale, t.y0 * scale), (t.x1 * scale - 1, t.y1 * scale - 1), TILE_RGB, thick)
    return out


@dataclass(frozen=True)
class Renders:
    """One LR frame through each requested method: (H*s, W*s, 3) uint8 per method name."""

    images: dict[str, np.ndarray]
    seconds: dict[str, float]
    partial: FrameResult | None


@dataclass
class MethodRunner:
    """Runs the upscaling methods on one frame at a time; ``partial`` keeps the mask tracker's state."""

    partial: FrameProcessor
    full: FrameProcessor
    bg: str = "bicubic"

    @classmethod
    def build(cls, info: VideoInfo, config: UpscaleConfig, estimator: MaskEstimator | None = None) -> MethodRunner:
        """One model and engine shared by the partial and the full-frame processor."""
        partial = build_processor(info, dataclasses.replace(config, full_frame=False), estimator)
        full = dataclasses.replace(partial, full_frame=True)
        return cls(partial=partial, full=full, bg=config.bg)

    @property
    def scale(self) -> int:
        return self.partial.engine.descriptor.scale

    def render(self, image: np.ndarray, methods: set[str] | tuple[str, ...] = METHODS) -> Renders:
        """Run ``methods`` on (H, W, 3) uint8 ``image``; ``mask`` implies ``plain`` and ``partial``.

        Call it for every frame in order: the partial method's mask is smoothed over time.
        """
        check_image(image)
        want = set(methods)
        if "mask" in want:
            want |= {"plain", "partial"}
        images: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        stages: defaultdict[str, float] = defaultdict(float)  # FrameProcessor's own split; unused here
        result = None
        for name in ("plain", "full", "partial"):
            if name not in want:
                continue
            t0 = time.perf_counter()
            if name == "plain":
                images[name] = upscale_background(image, scale=self.scale, method=self.bg)
            else:
                proc = self.full if name == "full" else self.partial
                r = proc.process(image, stages)
                images[name] = r.image
                if name == "partial":
                    result = r
            seconds[name] = time.perf_counter() - t0
        if "mask" in want:
            assert result is not None and result.mask is not None
            images["mask"] = mask_overlay(images["plain"], result.mask.alpha, self.partial.plan, result.tiles,
                                          scale=self.scale)
        return Renders(images=images, seconds=seconds, partial=result)


# ----------------------------------------------------------------------------- layouts

def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def panel_size(width: int, height: int, *, columns: int, max_width: int) -> tuple[int, int]:
    """(w, h) of one panel: the method output shrunk (never grown) so ``columns`` of them fit ``max_width``.

    Both are even so a grid of panels encodes to yuv420p without padding.
    """
    f = min(1.0, max_width / (columns * width))
    if f == 1.0 and width % 2 == 0 and height % 2 == 0:
        return width, height
    return _even(width * f), _even(height * f)


def layout_size(layout: str, width: int, height: int, *, max_width: int) -> tuple[int, int]:
    """(w, h) of a composed frame for method outputs of ``width`` x ``height``."""
    cols = 2 if layout == "grid" else 1
    pw, ph = panel_size(width, height, columns=cols, max_width=max_width)
    return (pw * cols, ph * cols)


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if image.shape[1] == w and image.shape[0] == h:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _font(width: int) -> tuple[float, int]:
    """Font scale and thickness for text on something ``width`` px wide."""
    fs = float(np.clip(width / 900.0, 0.35, 1.2))
    return fs, 1 if fs < 0.8 else 2


def draw_label(image: np.ndarray, text: str, *, anchor: Literal["left", "right"] = "left",
               x_limit: int | None = None) -> None:
    """Draw ``text`` white on a black box in the top-left (or top-right) corner, in place."""
    fs, th = _font(x_limit or image.shape[1])
    (tw, tht), base = cv2.getTextSize(text, FONT, fs, th)
    pad = max(2, tht // 3)
    bw, bh = tw + 2 * pad, tht + base + 2 * pad
    x0 = 0 if anchor == "left" else image.shape[1] - bw
    cv2.rectangle(image, (x0, 0), (x0 + bw - 1, bh - 1), (0, 0, 0), -1)
    cv2.putText(image, text, (x0 + pad, pad + tht), FONT, fs, (255, 255, 255), th, cv2.LINE_AA)


def wipe_position(i: int, *, period: int) -> float:
    """Divider position in [0.05, 0.95] of the width for output frame ``i``: left -> right over
    ``period`` frames, then back (a triangle wave)."""
    period = max(1, period)
    phase = (i % (2 * period)) / period
    t = phase if phase <= 1 else 2 - phase
    return 0.05 + 0.9 * t


def compose(layout: str, images: dict[str, np.ndarray], *, methods: tuple[str, str] = ("plain", "partial"),
            labels: dict[str, str] | None = None, max_width: int = 1920, position: float = 0.5) -> np.ndarray:
    """One comparison frame from per-method outputs of one size.

    Args:
        layout: ``grid`` (2x2 in GRID_ORDER), ``split`` (left half of ``methods[0]``, right half
            of ``methods[1]``) or ``wipe`` (like split, divider at ``position`` x width).
        images: method name -> (H, W, 3) uint8, all the same size.
        labels: method name -> text drawn on its panel; ``None`` draws nothing.
    Returns:
        (h, w, 3) uint8 of ``layout_size(layout, W, H, max_width=max_width)``.
    """
    if layout not in LAYOUTS:
        raise InputError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    names = GRID_ORDER if layout == "grid" else methods
    missing = [n for n in names if n not in images]
    if missing:
        raise ValueError(f"compose({layout!r}) needs images for {missing}")
    h, w = images[names[0]].shape[:2]
    cols = 2 if layout == "grid" else 1
    pw, ph = panel_size(w, h, columns=cols, max_width=max_width)
    panels = [np.array(_fit(images[n], (pw, ph))) for n in names]
    if layout == "grid":
        if labels is not None:
            for n, p in zip(names, panels):
                draw_label(p, labels[n])
        return np.concatenate([np.concatenate(panels[:2], axis=1), np.concatenate(panels[2:], axis=1)], axis=0)
    split = pw // 2 if layout == "split" else int(round(np.clip(position, 0.0, 1.0) * pw))
    out = panels[1].copy()
    out[:, :split] = panels[0][:, :split]
    line = max(1, pw // 400)
    x0, x1 = max(0, split - line), min(pw, split + line)
    out[:, x0:x1] = 255
    if labels is not None:
        draw_label(out, labels[names[0]], anchor="left", x_limit=pw)
        draw_label(out, labels[names[1]], anchor="right", x_limit=pw)
    return out


# ----------------------------------------------------------------------------- crop sheet

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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


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


# ----------------------------------------------------------------------------- the file-level run

@dataclass
class CompareReport:
    """What ``compare_video`` wrote. ``seconds[m]``: time method ``m`` took, summed over its ``runs[m]`` frames."""

    input: str
    output: str | None
    sheet: str | None
    frames: int = 0
    in_size: tuple[int, int] = (0, 0)
    out_size: tuple[int, int] = (0, 0)
    layout: str = "grid"
    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    sheet_frame: int | None = None
    sheet_size: tuple[int, int] | None = None
    sheet_psnr: dict[str, dict[str, float]] = field(default_factory=dict)
    reference: str = ""
    engine: str = ""
    warnings: list[str] = field(default_factory=list)

    def ms_per_frame(self, method: str) -> float:
        runs = self.runs.get(method, 0)
        return 1000.0 * self.seconds.get(method, 0.0) / runs if runs else 0.0


def _check_sheet_path(path: Path, *, others: list[Path]) -> None:
    if path.suffix.lower() != ".png":
        raise OutputError(f"--sheet must be a .png file, got {path}")
    for other in others:
        if path.resolve() == other.resolve():
            raise OutputError(f"--sheet is the same file as {other}")
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"--sheet is a folder: {path}")
    if not parent.is_dir():
        raise OutputError(f"--sheet folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"--sheet folder is not writable: {parent}")


def _gt_frame(gt_path: Path, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """Frame ``index`` of the ground-truth video (streamed up to it), checked against ``shape``."""
    for item in read_items(gt_path, copy_streams=False):
        if isinstance(item, Frame) and item.index == index:
            if item.image.shape != shape:
                raise InputError(f"--gt frames are {item.image.shape[1]}x{item.image.shape[0]}, "
                                 f"but the upscaled frames are {shape[1]}x{shape[0]}")
            return item.image
    raise InputError(f"--gt {gt_path} has no frame {index} (it is shorter than the input)")


def compare_video(input_path: str | Path, output_path: str | Path | None, *, config: CompareConfig,
                  sheet_path: str | Path | None = None, gt_path: str | Path | None = None,
                  estimator: MaskEstimator | None = None,
                  on_frame: Callable[[CompareReport], None] | None = None) -> CompareReport:
    """Write a comparison video of ``config.frames`` and/or a crop sheet of one of them.

    Frames are streamed (one at a time in memory) and keep their pts; audio and subtitles
    are copied when the whole clip is compared. Both outputs are written atomically.

    Args:
        output_path: comparison video, or ``None`` for the sheet only.
        sheet_path: PNG contact sheet of ``config.sheet_frame`` (default: middle of the range).
        gt_path: ground-truth video at the output size; the sheet's PSNR reference
            (default: the input upscaled by bicubic).
    """
    input_path = Path(input_path)
    output = Path(output_path) if output_path is not None else None
    sheet_out = Path(sheet_path) if sheet_path is not None else None
    gt = Path(gt_path) if gt_path is not None else None
    if output is None and sheet_out is None:
        raise InputError("nothing to write: give -o/--output and/or --sheet")
    info = probe(input_path)
    frames = config.frames
    total = info.frames
    if total is not None and frames.start >= total:
        raise InputError(f"--frames {frames} starts after the last frame (the video has {total} frames)")
    if output is not None:
        check_output_path(output, input_path=input_path)
    if sheet_out is not None:
        _check_sheet_path(sheet_out, others=[p for p in (input_path, output, gt) if p is not None])
    if gt is not None:
        if sheet_out is None:
            raise InputError("--gt is only used by --sheet: give --sheet too")
        gt_info = probe(gt)
        want = (info.width * config.upscale.scale, info.height * config.upscale.scale)
        if (gt_info.width, gt_info.height) != want:
            raise InputError(f"--gt is {gt_info.width}x{gt_info.height}, but the upscaled input is {want[0]}x{want[1]}")
    n_range = frames.count(total)
    sheet_index = config.sheet_frame
    if sheet_index is None:
        sheet_index = frames.start + (n_range // 2 if n_range else 0)
    elif sheet_index < frames.start or (frames.stop is not None and sheet_index >= frames.stop) or (
            total is not None and sheet_index >= total):
        raise InputError(f"--sheet-frame {sheet_index} is not among the compared frames ({frames})")

    runner = MethodRunner.build(info, config.upscale, estimator)
    s = runner.scale
    bg = config.upscale.bg
    labels = {m: method_label(m, bg=bg) for m in METHODS} if config.labels else None
    # partial runs on every frame: its mask is smoothed over time, so skipping frames would change it
    every_frame = {"partial"}
    if output is not None:
        every_frame |= set(GRID_ORDER if config.layout == "grid" else config.methods)
    copy = config.upscale.copy_streams and frames.whole and output is not None
    report = CompareReport(input=str(input_path), output=str(output) if output else None,
                           sheet=str(sheet_out) if sheet_out else None, layout=config.layout,
                           in_size=(info.width, info.height), engine=runner.partial.engine.label)
    if output is not None:
        report.out_size = layout_size(config.layout, info.width * s, info.height * s, max_width=config.max_width)
        if not frames.whole and (info.audio_streams or info.subtitle_streams):
            report.warnings.append("audio/subtitles not copied: --frames selects part of the clip")
    period = (n_range - 1) if n_range and n_range > 1 else max(2, round(4 * info.fps))
    # (index, LR image, renders) of the sheet frame; the range's first frame until that one comes
    captured: tuple[int, np.ndarray, Renders] | None = None

    with contextlib.ExitStack() as stack:
        writer = None
        if output is not None:
            tmp = stack.enter_context(atomic_output(output))
            writer = VideoWriter(path=tmp, info=info, width=report.out_size[0], height=report.out_size[1],
                                 options=config.upscale.encode, copy_streams=copy)
            stack.callback(writer.abort)
            report.warnings.extend(writer.warnings)
        sheet_tmp = stack.enter_context(atomic_output(sheet_out)) if sheet_out is not None else None
        for item in read_items(input_path, copy_streams=copy):
            if isinstance(item, Passthrough):
                if writer is not None:
                    writer.copy(item)
                continue
            if item.index < frames.start:
                continue
            if frames.stop is not None and item.index >= frames.stop:
                break
            for_sheet = sheet_out is not None and (item.index == sheet_index or captured is None)
            renders = runner.render(item.image, (every_frame | set(SHEET_METHODS)) if for_sheet else every_frame)
            for name, sec in renders.seconds.items():
                report.seconds[name] = report.seconds.get(name, 0.0) + sec
                report.runs[name] = report.runs.get(name, 0) + 1
            if writer is not None:
                image = compose(config.layout, renders.images, methods=config.methods, labels=labels,
                                max_width=config.max_width, position=wipe_position(report.frames, period=period))
                writer.write(image, pts=item.pts, time_base=item.time_base, duration=item.duration)
            if for_sheet:
                captured = (item.index, item.image, renders)
            report.frames += 1
            if on_frame is not None:
                on_frame(report)
            if writer is None and item.index == sheet_index:
                break  # sheet only: nothing after the sheet frame is needed
        if report.frames == 0:
            raise InputError(f"--frames {frames} selects no frames (the video has fewer than {frames.start + 1})")
        if sheet_out is not None:
            assert captured is not None and sheet_tmp is not None
            index, lr, renders = captured
            if index != sheet_index:
                if config.sheet_frame is not None:
                    raise InputError(f"--sheet-frame {sheet_index} is past the last frame")
                report.warnings.append(f"sheet made from frame {index}: frame {sheet_index} never came")
            sheet = _make_sheet(lr, renders, scale=s, config=config, gt=gt, index=index, estimator=estimator,
                                report=report)
            ok, png = cv2.imencode(".png", cv2.cvtColor(sheet.image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OutputError(f"could not encode the sheet as PNG: {sheet_out}")
            sheet_tmp.write_bytes(png.tobytes())
        if writer is not None:
            writer.close()
    return report


def _make_sheet(lr: np.ndarray, renders: Renders, *, scale: int, config: CompareConfig, gt: Path | None,
                index: int, estimator: MaskEstimator | None, report: CompareReport) -> Sheet:
    if gt is not None:
        reference, ref_name = _gt_frame(gt, index, renders.images["plain"].shape), "ground truth"
    else:
        reference = upscale_background(lr, scale=scale, method="bicubic")
        ref_name = "bicubic"
    bg = config.upscale.bg
    columns = [SheetColumn(key=m, title=method_label(m, bg=bg), subtitle=f"{report.ms_per_frame(m):.1f} ms/frame")
               for m in SHEET_METHODS]
    regions = pick_regions(lr, crop=config.crop, estimator=estimator)
    sheet = crop_sheet(renders.images, regions, scale=scale, reference=reference, reference_name=ref_name,
                       columns=columns, show_reference=gt is not None)
    report.sheet_frame = index
    report.sheet_size = (sheet.image.shape[1], sheet.image.shape[0])
    report.reference = ref_name
    report.sheet_psnr = {r.name: {c.key: v for c, v in zip(sheet.columns, row)}
                         for r, row in zip(sheet.regions, sheet.psnr)}
    return sheet


__all__ = [
    "CompareConfig", "CompareReport", "FrameRange", "MethodRunner", "Region", "Renders", "Sheet", "SheetColumn",
    "compare_video", "compose", "crop_sheet", "format_psnr", "layout_size", "mask_overlay", "panel_size", "parse_frames",
    "parse_methods", "pick_regions", "psnr", "wipe_position",
]
