"""``vidsr compare``: stream a clip through each method and write a comparison video and/or a crop sheet.

Everything it calls is a pure function of its inputs (:mod:`vidsr.compare.render`,
:mod:`vidsr.compare.sheet`); ``compare_video`` streams the file and writes the results atomically.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from vidsr.compare.config import GRID_ORDER, METHODS, SHEET_METHODS, CompareConfig
from vidsr.compare.render import MethodRunner, Renders, compose, layout_size, method_label, wipe_position
from vidsr.compare.sheet import Sheet, SheetColumn, crop_sheet, pick_regions
from vidsr.composite import upscale_background
from vidsr.errors import InputError, OutputError
from vidsr.masks.base import MaskEstimator
from vidsr.media.output import atomic_output, check_output_path
from vidsr.media.reader import probe, read_items
from vidsr.media.types import Frame, Passthrough
from vidsr.media.writer import VideoWriter


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


__all__ = ["CompareReport", "compare_video"]
