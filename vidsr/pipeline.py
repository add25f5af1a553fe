"""The streaming graph: decode -> mask -> tile-gated SR -> composite -> encode.

Decode and encode run in background threads joined by bounded queues, so memory is
bounded by the queue sizes, not by the video's length, and the CPU work of PyAV,
OpenCV and the network overlaps.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from vidsr.backends import Engine, backend_from_name, create_engine
from vidsr.composite import BgMethod, blend_tiles, upscale_background
from vidsr.errors import InputError
from vidsr.io import (DecodeStats, EncodeOptions, Frame, Passthrough, VideoInfo, VideoWriter,
                      atomic_output, check_output_path, probe, read_items)
from vidsr.mask import FocusEstimator, MaskEstimator, MaskFrame, MaskTracker
from vidsr.models import resolve_model
from vidsr.sr import sr_tiles, stitch
from vidsr.tiling import TilePlan, plan_tiles, select_tiles


@dataclass(frozen=True)
class UpscaleConfig:
    """Everything ``vidsr upscale`` can be told. Defaults are the benchmarked ones."""

    scale: int = 2
    model: str | None = None
    backend: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 8
    tile: int = 64
    bg: BgMethod = "bicubic"
    full_frame: bool = False
    mask_every: int = 2
    fg_threshold: float | None = None
    feather_px: float = 4.0
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    copy_streams: bool = True
    queue_size: int = 8
    save_mask: Path | None = None


@dataclass
class UpscaleReport:
    """What a run did and how long each stage took (seconds, summed over frames)."""

    input: str
    output: str
    frames: int = 0
    seconds: float = 0.0
    in_size: tuple[int, int] = (0, 0)
    out_size: tuple[int, int] = (0, 0)
    tiles_total: int = 0
    tiles_run: int = 0
    fg_fraction_sum: float = 0.0
    mask_passes: int = 0
    cuts: int = 0
    bad_packets: int = 0
    engine: str = ""
    warnings: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def sr_fraction(self) -> float:
        """Mean fraction of output pixels that went through the SR network."""
        return self.tiles_run / self.tiles_total if self.tiles_total else 0.0

    @property
    def fg_fraction(self) -> float:
        return self.fg_fraction_sum / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the (H*s, W*s, 3) uint8 output, its mask (None in full-frame mode)
    and the indices of the plan's tiles that went through SR."""

    image: np.ndarray
    mask: MaskFrame | None
    tiles: list[int]


@dataclass
class FrameProcessor:
    """Mask + tile-gated SR + composite for one frame at a time (no I/O)."""

    engine: Engine
    plan: TilePlan
    tracker: MaskTracker
    bg: BgMethod = "bicubic"
    batch: int = 8
    full_frame: bool = False

    def process(self, image: np.ndarray, timings: dict[str, float]) -> FrameResult:
        """SR one (H, W, 3) uint8 LR frame; adds seconds per stage to ``timings``."""
        s = self.engine.descriptor.scale
        if self.full_frame:
            t0 = time.perf_counter()
            indices = list(range(len(self.plan)))
            tiles = sr_tiles(self.engine, image, self.plan, indices, batch=self.batch)
            t1 = time.perf_counter()
            out = stitch(tiles, height=image.shape[0], width=image.shape[1], scale=s)
            timings["sr"] += t1 - t0
            timings["composite"] += time.perf_counter() - t1
            return FrameResult(image=out, mask=None, tiles=indices)
        t0 = time.perf_counter()
        mask = self.tracker.update(image)
        indices = select_tiles(self.plan, mask.alpha)
        t1 = time.perf_counter()
        tiles = sr_tiles(self.engine, image, self.plan, indices, batch=self.batch) if indices else []
        t2 = time.perf_counter()
        background = upscale_background(image, scale=s, method=self.bg)
        t3 = time.perf_counter()
        if tiles:
            h, w = background.shape[:2]
            alpha = cv2.resize(mask.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
            out = blend_tiles(background, tiles, alpha, scale=s)
        else:
            out = background
        t4 = time.perf_counter()
        timings["mask"] += t1 - t0
        timings["sr"] += t2 - t1
        timings["background"] += t3 - t2
        timings["composite"] += t4 - t3
        return FrameResult(image=out, mask=mask, tiles=indices)


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless ``stop`` is set; returns False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _decode_worker(path: str, out: queue.Queue, stop: threading.Event, stats: DecodeStats,
                   copy_streams: bool, timings: dict[str, float]) -> None:
    try:
        items: Iterator[Frame | Passthrough] = read_items(path, copy_streams=copy_streams, stats=stats)
        t = time.perf_counter()
        for item in items:
            timings["decode"] += time.perf_counter() - t
            if not _put(out, item, stop):
                return
            t = time.perf_counter()
        _put(out, _END, stop)
    except BaseException as e:  # handed to the main thread, which re-raises it
        _put(out, _Failure(e), stop)


def _encode_worker(writers: list[VideoWriter], inbox: queue.Queue, stop: threading.Event,
                   failure: list[BaseException], timings: dict[str, float]) -> None:
    writer = writers[0]
    mask_writer = writers[1] if len(writers) > 1 else None
    try:
        while True:
            item = _get(inbox, stop)
            if item is _END:
                return
            t = time.perf_counter()
            if isinstance(item, Passthrough):
                writer.copy(item)
            else:
                image, frame, mask_img = item
                writer.write(image, pts=frame.pts, time_base=frame.time_base, duration=frame.duration)
                if mask_writer is not None and mask_img is not None:
                    mask_writer.write(mask_img, pts=frame.pts, time_base=frame.time_base,
                                      duration=frame.duration, fmt="gray")
            timings["encode"] += time.perf_counter() - t
    except BaseException as e:
        failure.append(e)
        stop.set()


def build_processor(info: VideoInfo, config: UpscaleConfig,
                    estimator: MaskEstimator | None = None) -> FrameProcessor:
    """Load the model, build the engine, plan tiles and the mask tracker for ``info``'s frame size."""
    model, desc = resolve_model(config.model, scale=config.scale)
    engine = create_engine(model, desc, backend_from_name(config.backend, device=config.device,
                                                           precision=config.precision))
    plan = plan_tiles(info.height, info.width, tile=config.tile, pad=desc.receptive_radius)
    tracker = MaskTracker(estimator=estimator or FocusEstimator(), every=config.mask_every,
                          threshold=config.fg_threshold, feather_px=config.feather_px)
    return FrameProcessor(engine=engine, plan=plan, tracker=tracker, bg=config.bg,
                          batch=config.batch, full_frame=config.full_frame)


def upscale_video(input_path: str | Path, output_path: str | Path, *, config: UpscaleConfig,
                  estimator: MaskEstimator | None = None,
                  on_frame: Callable[[UpscaleReport], None] | None = None) -> UpscaleReport:
    """Upscale a video file; writes ``output_path`` atomically (temp file + rename).

    Args:
        estimator: mask estimator (default: the weight-free focus map).
        on_frame: called after each frame with the running report (progress bars).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    info = probe(input_path)
    check_output_path(output_path, input_path=input_path)
    if config.save_mask is not None:
        check_output_path(Path(config.save_mask), input_path=input_path)
    if config.batch < 1:
        raise InputError(f"--batch must be >= 1, got {config.batch}")
    proc = build_processor(info, config, estimator)
    s = config.scale
    report = UpscaleReport(input=str(input_path), output=str(output_path), in_size=(info.width, info.height),
                           out_size=(info.width * s, info.height * s), engine=proc.engine.label)
    stats = DecodeStats()
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=config.queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=config.queue_size)
    enc_failure: list[BaseException] = []
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(output_path))
        mask_tmp = stack.enter_context(atomic_output(Path(config.save_mask))) if config.save_mask else None
        writers: list[VideoWriter] = []
        stack.callback(lambda: [w.abort() for w in writers])
        writers.append(VideoWriter(path=tmp, info=info, width=info.width * s, height=info.height * s,
                                   options=config.encode, copy_streams=config.copy_streams))
        if mask_tmp is not None:
            writers.append(VideoWriter(path=mask_tmp, info=info, width=info.width * s,
                                       height=info.height * s, options=config.encode, copy_streams=False))
        report.warnings.extend(writers[0].warnings)
        dec = threading.Thread(target=_decode_worker, name="vidsr-decode", daemon=True,
                               args=(str(input_path), q_in, stop, stats, config.copy_streams, report.stages))
        enc = threading.Thread(target=_encode_worker, name="vidsr-encode", daemon=True,
                               args=(writers, q_out, stop, enc_failure, report.stages))
        dec.start()
        enc.start()
        try:
            _process_loop(proc, q_in, q_out, stop, enc_failure, report, on_frame,
                          want_mask=mask_tmp is not None)
            _put(q_out, _END, stop)
            enc.join()
            if enc_failure:
                raise enc_failure[0]
        finally:
            stop.set()
            dec.join()
            enc.join()
        if report.frames == 0:
            raise InputError(f"no video frames could be decoded from {input_path}")
        for w in writers:
            w.close()
    report.seconds = time.perf_counter() - t_start
    report.bad_packets = stats.bad_packets
    report.mask_passes = proc.tracker.passes
    report.cuts = proc.tracker.cuts
    if stats.bad_packets:
        report.warnings.append(f"{stats.bad_packets} packet(s) could not be decoded and were skipped")
    return report


def _process_loop(proc: FrameProcessor, q_in: queue.Queue, q_out: queue.Queue, stop: threading.Event,
                  enc_failure: list[BaseException], report: UpscaleReport,
                  on_frame: Callable[[UpscaleReport], None] | None, *, want_mask: bool) -> None:
    n_tiles = len(proc.plan)
    while True:
        item = _get(q_in, stop)
        if item is _END:
            return
        if isinstance(item, _Failure):
            raise item.exc
        if isinstance(item, Passthrough):
            if not _put(q_out, item, stop):
                break
            continue
        result = proc.process(item.image, report.stages)
        out, mask, ran = result.image, result.mask, len(result.tiles)
        mask_img = None
        if want_mask:
            h, w = out.shape[:2]
            alpha = mask.alpha if mask is not None else np.ones(item.image.shape[:2], np.float32)
            mask_img = (cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR) * 255 + 0.5).astype(np.uint8)
        if not _put(q_out, (out, item, mask_img), stop):
            break
        report.frames += 1
        report.tiles_total += n_tiles
        report.tiles_run += ran
        report.fg_fraction_sum += mask.fg_fraction if mask is not None else 1.0
        if on_frame is not None:
            on_frame(report)
    if enc_failure:
        raise enc_failure[0]
