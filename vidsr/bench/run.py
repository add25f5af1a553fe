"""Throughput and quality benchmarks: per-stage timings for several configurations in one run.

Every configuration runs the same frames through the same serial loop
(decode -> mask -> SR -> background -> composite -> encode to memory), so the stage
times add up to the wall time and ratios between configurations measured in one run
are meaningful on a noisy machine. Stage times are the mean ms/frame within one
repetition (the encoder's final flush included); the report gives their median and p90
over the repetitions. After each configuration's warm-up and first repetition, the other
repetitions take turns across configurations, so slow spells of the machine spread evenly.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from vidsr.backends import backend_from_name, create_engine
from vidsr.bench.config import STAGES, BenchConfig, ConfigResult
from vidsr.bench.report import machine_info
from vidsr.composite import upscale_background
from vidsr.errors import BackendUnavailable, InputError, VidsrError
from vidsr.frame import build_processor
from vidsr.masks.base import MaskEstimator
from vidsr.masks.focus import FocusEstimator
from vidsr.masks.synthetic import DiscEstimator
from vidsr.masks.tracker import MaskTracker
from vidsr.media.codecs import EncodeOptions
from vidsr.media.reader import probe, read_items
from vidsr.media.types import Frame
from vidsr.metrics import psnr, ssim
from vidsr.pipeline.config import merge_window_px
from vidsr.checkpoint import resolve_model


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_frames(path: Path, n: int) -> tuple[list[Frame], list[float]]:
    """First ``n`` frames and the seconds each took to decode."""
    frames, times = [], []
    t = time.perf_counter()
    for item in read_items(path, copy_streams=False):
        if isinstance(item, Frame):
            times.append(time.perf_counter() - t)
            frames.append(item)
            if len(frames) >= n:
                break
            t = time.perf_counter()
    if not frames:
        raise InputError(f"no video frames in {path}")
    return frames, times


class _MemoryEncoder:
    """Encodes to an in-memory Matroska file (what the encoder costs, without disk I/O)."""

    def __init__(self, width: int, height: int, options: EncodeOptions, rate: int = 30) -> None:
        self.buf = io.BytesIO()
        self.c = av.open(self.buf, "w", format="matroska")
        options = options.for_output("-")  # "-": matroska
        self.s = self.c.add_stream(options.codec, rate=rate)
        self.s.width, self.s.height = width + width % 2, height + height % 2
        self.s.pix_fmt = options.pix_fmt or "yuv420p"
        self.s.options = options.encoder_options()
        self.i = 0

    def write(self, image: np.ndarray) -> None:
        f = av.VideoFrame.from_ndarray(image, format="rgb24")
        f.pts = self.i
        self.i += 1
        self.c.mux(self.s.encode(f))

    def close(self) -> None:
        self.c.mux(self.s.encode(None))
        self.c.close()


class ConfigRun:
    """One configuration's engine, mask tracker and accumulators, so that the repetitions of
    several configurations can interleave (see :func:`run_bench`). ``mode``: partial, full or
    bicubic. Quality (with ``gt``) is split into foreground/background by ``fg_masks``: (H, W)
    bool LR masks shared by every configuration, so their numbers compare like with like.
    Raises BackendUnavailable when the backend cannot run here."""

    def __init__(self, name: str, *, mode: str, backend: str, frames: list[Frame], decode_s: list[float],
                 config: BenchConfig, estimator: MaskEstimator | None = None,
                 gt: list[np.ndarray] | None = None, fg_masks: list[np.ndarray] | None = None) -> None:
        self.res = ConfigResult(name=name, mode=mode, backend=backend)
        self.frames, self.decode_s, self.config = frames, decode_s, config
        self.estimator, self.gt, self.fg_masks = estimator, gt, fg_masks
        self.engine = self.merge_px = self.proc = None
        if mode != "bicubic":
            model, desc = resolve_model(config.model, scale=config.scale)
            bname, _, prec = backend.partition("-")
            device = "cuda" if prec == "fp16" or bname == "trt" else "cpu"
            self.engine = create_engine(model, desc, backend_from_name(
                bname, device=device, precision=prec or "fp32", tile=config.tile, batch=config.batch))
            self.merge_px = merge_window_px(device=device, backend=bname) if config.merge else None
        self.per_repeat: dict[str, list[float]] = defaultdict(list)  # mean ms/frame of each stage, per repeat
        self.walls: list[float] = []
        self.quality_acc: dict[str, list[float]] = defaultdict(list)
        self.flicker: list[float] = []
        self.tiles_run = self.tiles_total = self.core_px = self.window_px = 0
        self.fg: list[float] = []

    def first(self) -> None:
        """Warm-up and the first repetition (which also gathers quality, foreground and peak RSS)."""
        _reset_peak_rss()
        self.repetition(0)
        self.repetition(1)
        self.res.peak_rss_mb = _peak_rss_mb()

    def repetition(self, rep: int) -> None:
        """Repetition ``rep`` over the frames; 0 is the warm-up (``config.warmup`` frames, untimed)."""
        config, frames, decode_s = self.config, self.frames, self.decode_s
        s = config.scale
        h, w = frames[0].image.shape[:2]
        mode = self.res.mode
        warm = rep == 0
        proc = None
        if mode != "bicubic":
            proc = self.proc = build_processor(engine=self.engine, height=h, width=w, tile=config.tile,
                                               merge_px=self.merge_px, estimator=self.estimator,
                                               mask_every=config.mask_every, batch=config.batch,
                                               full_frame=mode == "full")
        enc = _MemoryEncoder(w * s, h * s, config.encode)
        todo = frames[: config.warmup] if warm else frames
        prev_alpha = None
        sums: dict[str, float] = defaultdict(float)
        bookkeeping = 0.0
        t_wall = time.perf_counter()
        for k, fr in enumerate(todo):
            t = defaultdict(float)
            t["decode"] = decode_s[k]
            if proc is None:
                t0 = time.perf_counter()
                out = upscale_background(fr.image, scale=s)
                t["background"] = time.perf_counter() - t0
                ran, mask = [], None
            else:
                result = proc.process(fr.image, t)
                out, ran, mask, windows = result.image, result.tiles, result.mask, result.windows
            t0 = time.perf_counter()
            enc.write(out)
            t["encode"] = time.perf_counter() - t0
            if warm:
                continue
            for st in STAGES:
                sums[st] += t[st]
            t_book = time.perf_counter()
            if rep == 1:
                if proc is not None:
                    self.tiles_run += len(ran)
                    self.tiles_total += len(proc.plan)
                    self.core_px += sum(tl.core_pixels for tl in windows)
                    self.window_px += sum(tl.window_pixels for tl in windows)
                self.fg.append(mask.fg_fraction if mask is not None else (1.0 if mode == "full" else 0.0))
                if mask is not None:
                    if prev_alpha is not None:
                        self.flicker.append(float(np.abs(mask.alpha - prev_alpha).mean()))
                    prev_alpha = mask.alpha
                if self.gt is not None:
                    _quality(out, self.gt[k], self.fg_masks[k] if self.fg_masks else None, self.quality_acc)
            bookkeeping += time.perf_counter() - t_book  # not part of the pipeline: off the wall time
        t0 = time.perf_counter()
        enc.close()
        if not warm:
            sums["encode"] += time.perf_counter() - t0  # the encoder's flush
            self.walls.append(time.perf_counter() - t_wall - bookkeeping + sum(decode_s[: len(todo)]))
            for st in STAGES:
                self.per_repeat[st].append(sums[st] * 1000 / len(todo))

    def result(self) -> ConfigResult:
        res, proc = self.res, self.proc
        frames = self.frames
        n = len(frames)
        h, w = frames[0].image.shape[:2]
        res.stages_median_ms = {st: statistics.median(self.per_repeat[st]) for st in STAGES}
        res.stages_p90_ms = {st: float(np.percentile(self.per_repeat[st], 90)) for st in STAGES}
        res.stage_sum_ms_per_frame = sum(res.stages_median_ms.values())
        res.wall_ms_per_frame = statistics.median(self.walls) * 1000 / n
        res.fps = 1000 / res.wall_ms_per_frame
        res.fg_fraction = statistics.fmean(self.fg) if self.fg else 0.0
        res.sr_tile_fraction = self.tiles_run / self.tiles_total if self.tiles_total else 0.0
        res.sr_pixel_fraction = self.core_px / (n * h * w) if proc is not None else 0.0
        res.sr_window_pixels_ratio = self.window_px / (n * h * w) if proc is not None else 0.0
        res.mask_passes = proc.tracker.passes if proc is not None and res.mode == "partial" else 0
        res.mask_flicker = statistics.fmean(self.flicker) if self.flicker else None
        if self.gt is not None:
            res.quality = {k: float(np.nanmean(v)) for k, v in self.quality_acc.items()}
        import torch

        if torch.cuda.is_available():
            res.gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20
        return res


def run_config(name: str, *, mode: str, backend: str, frames: list[Frame], decode_s: list[float],
               config: BenchConfig, estimator: MaskEstimator | None = None,
               gt: list[np.ndarray] | None = None, fg_masks: list[np.ndarray] | None = None) -> ConfigResult:
    """Time one configuration on its own (see :class:`ConfigRun`); ``unavailable`` when its
    backend cannot run here."""
    try:
        run = ConfigRun(name, mode=mode, backend=backend, frames=frames, decode_s=decode_s, config=config,
                        estimator=estimator, gt=gt, fg_masks=fg_masks)
    except BackendUnavailable as e:
        return ConfigResult(name=name, mode=mode, backend=backend, status="unavailable", reason=str(e))
    run.first()
    for rep in range(2, config.repeat + 1):
        run.repetition(rep)
    return run.result()


def reference_masks(frames: list[Frame], *, every: int) -> list[np.ndarray]:
    """Default focus masks of ``frames`` (binary, LR size), for splitting quality into FG/BG."""
    tracker = MaskTracker(estimator=FocusEstimator(), every=every)
    return [cv2.resize(tracker.update(f.image).binary.astype(np.uint8), f.image.shape[1::-1],
                       interpolation=cv2.INTER_NEAREST) > 0 for f in frames]


def _quality(out: np.ndarray, gt: np.ndarray, binary_lr: np.ndarray | None, acc: dict[str, list[float]]) -> None:
    if gt.shape != out.shape:
        gt = cv2.resize(gt, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA)
    y_out, y_gt = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY)  # SSIM on luma
    acc["psnr_full"].append(psnr(out, gt))
    acc["ssim_full"].append(ssim(y_out, y_gt))
    if binary_lr is not None:
        m = cv2.resize(binary_lr.astype(np.uint8), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        acc["psnr_fg"].append(psnr(out, gt, m))
        acc["psnr_bg"].append(psnr(out, gt, ~m))
        acc["ssim_fg"].append(ssim(y_out, y_gt, m))
        acc["ssim_bg"].append(ssim(y_out, y_gt, ~m))


def _gt_frames(input_path: Path | None, gt_path: Path | None, n: int, sample_spec) -> list[np.ndarray] | None:
    if gt_path is not None:
        frames, _ = _load_frames(gt_path, n)
        return [f.image for f in frames]
    if input_path is None and sample_spec is not None:
        from vidsr.media.sample import sample_frames

        out = []
        for img in sample_frames(sample_spec, ground_truth=True):
            out.append(img)
            if len(out) >= n:
                break
        return out
    return None


def run_bench(input_path: Path | None, *, config: BenchConfig, gt_path: Path | None = None,
              workdir: Path | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Run every configuration on the same frames and return the report dict."""
    import tempfile

    from vidsr.media.sample import SampleSpec, write_sample

    sample_spec = None
    with tempfile.TemporaryDirectory(prefix="vidsr-bench-", dir=workdir) as tmp:
        if input_path is None:
            sample_spec = SampleSpec(seconds=max(config.frames, config.warmup) / 30 + 0.05)
            input_path = write_sample(Path(tmp) / "sample.mp4", spec=sample_spec)
        info = probe(input_path)
        frames, decode_s = _load_frames(input_path, max(config.frames, config.warmup))
        frames = frames[: config.frames]
        gt = _gt_frames(None if sample_spec else input_path, gt_path, len(frames), sample_spec)
        if gt is not None and len(gt) < len(frames):
            raise InputError(f"ground truth has {len(gt)} frames, input {len(frames)}")
        want = (frames[0].image.shape[1] * config.scale, frames[0].image.shape[0] * config.scale)
        if gt is not None and (gt[0].shape[1], gt[0].shape[0]) != want:
            raise InputError(f"--gt is {gt[0].shape[1]}x{gt[0].shape[0]}, but the upscaled input is "
                             f"{want[0]}x{want[1]}")
        fg_masks = reference_masks(frames, every=config.mask_every) if gt is not None else None
        plan = [("bicubic", "bicubic", "none")]
        for b in config.backends:
            plan += [(f"partial/{b}", "partial", b), (f"full/{b}", "full", b)]
        # each configuration's warm-up and first repetition run on their own (peak RSS, quality);
        # the other repetitions take turns, so a slow spell of the machine hits every configuration
        runs: dict[str, ConfigRun | ConfigResult] = {}
        for name, mode, backend in plan:
            log(f"bench {name} ...")
            try:
                run = ConfigRun(name, mode=mode, backend=backend, frames=frames, decode_s=decode_s,
                                config=config, gt=gt, fg_masks=fg_masks)
                run.first()
                runs[name] = run
            except VidsrError as e:
                runs[name] = ConfigResult(name=name, mode=mode, backend=backend, status="unavailable",
                                          reason=str(e))
        for rep in range(2, config.repeat + 1):
            log(f"bench repetition {rep} of every configuration ...")
            for run in runs.values():
                if isinstance(run, ConfigRun):
                    run.repetition(rep)
        results = [run.result() if isinstance(run, ConfigRun) else run for run in runs.values()]
        sweep = []
        for frac in config.sweep_fg:
            log(f"bench sweep fg={frac:.0%} ...")
            b = config.backends[0]
            r = run_config(f"sweep/{frac:.2f}", mode="partial", backend=b, frames=frames, decode_s=decode_s,
                           config=config, estimator=DiscEstimator(frac))
            sweep.append({"target_fg": frac, **_brief(r)})
    by_name = {r.name: r for r in results}
    comparisons = {}
    for b in config.backends:
        p, f = by_name.get(f"partial/{b}"), by_name.get(f"full/{b}")
        if p and f and p.status == f.status == "ok":
            comparisons[b] = {
                "sr_speedup": f.stages_median_ms["sr"] / max(p.stages_median_ms["sr"], 1e-9),
                "end_to_end_speedup": f.wall_ms_per_frame / p.wall_ms_per_frame,
                "ideal_speedup": 1 / max(p.fg_fraction, 1e-9),
                "fg_fraction": p.fg_fraction,
                "sr_pixel_fraction": p.sr_pixel_fraction,
            }
    if "torch" in config.backends:
        for b in config.backends:
            if b == "torch":
                continue
            t, o = by_name.get("full/torch"), by_name.get(f"full/{b}")
            if t and o and t.status == o.status == "ok":
                comparisons.setdefault("backend_vs_torch", {})[b] = (
                    t.stages_median_ms["sr"] / max(o.stages_median_ms["sr"], 1e-9))
    crossover = None
    if sweep and f"full/{config.backends[0]}" in by_name and by_name[f"full/{config.backends[0]}"].status == "ok":
        full_ms = by_name[f"full/{config.backends[0]}"].wall_ms_per_frame
        crossover = next((s["target_fg"] for s in sweep if s["wall_ms_per_frame"] >= full_ms), None)
    return {
        "input": "sample" if sample_spec else str(input_path),
        "input_size": [info.width, info.height],
        "scale": config.scale,
        "frames": len(frames),
        "config": {k: v for k, v in asdict(config).items() if k != "encode"} | {"encode": asdict(config.encode)},
        "machine": machine_info(),
        "results": [asdict(r) for r in results],
        "comparisons": comparisons,
        "sweep": sweep,
        "crossover_fg": crossover,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _brief(r: ConfigResult) -> dict:
    return {"wall_ms_per_frame": r.wall_ms_per_frame, "fps": r.fps, "sr_ms": r.stages_median_ms.get("sr", 0.0),
            "fg_fraction": r.fg_fraction, "sr_pixel_fraction": r.sr_pixel_fraction}


__all__ = ["ConfigRun", "reference_masks", "run_bench", "run_config"]
