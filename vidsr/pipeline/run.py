"""The streaming graph: decode -> mask -> tile-gated SR -> composite -> encode.

Decode, mask and encode run in background threads joined by bounded queues, so memory is
bounded by the queue sizes, not by the video's length, and the CPU work of PyAV,
OpenCV and the network overlaps; on the CPU, SR + composite run on two frames at once
(:func:`frame_workers`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from vidsr.backends import Engine, backend_from_name, create_engine
from vidsr.composite import BgMethod, blend_tiles, upscale_background
from vidsr.media.deinterlace import DeinterlaceMode
from vidsr.errors import InputError
from vidsr.media.io import (
    STDIO,
    DecodeStats,
    EncodeOptions,
    Frame,
    Passthrough,
    Reader,
    VideoInfo,
    VideoWriter,
    atomic_output,
    check_output_path,
    is_sequence,
)
from vidsr.masks.focus import FocusEstimator, MaskEstimator, MaskFrame, MaskTracker
from vidsr.weights import resolve_model
from vidsr.pipeline.resume import ResumeJob, Segmenter, SegmentStart, fingerprint
from vidsr.sr import sr_tiles, stitch
from vidsr.tiling import (
    Tile,
    TilePlan,
    mask_support,
    merge_tiles,
    plan_tiles,
    select_tiles,
    shrink_to_support,
)

MERGE_WINDOW_PX = 160_000  # largest merged SR window (LR pixels) on CPU; see benchmarks/README.md
MASKED_QUEUE_BYTES = 512 << 20  # decoded frames the mask thread may keep ahead of SR


def merge_window_px(*, device: str, backend: str, merge: bool | None = None) -> int | None:
    """The merged-window cap for an engine, or None for fixed tiles. ``merge`` None: merge on CPU
    (not with TensorRT, whose profile is sized for the fixed tiles)."""
    if merge is None:
        merge = device == "cpu" and backend != "trt"
    return MERGE_WINDOW_PX if merge else None


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
    mask_carry: str = "hold"  # between anchors: "hold" the mask or warp it along optical "flow"
    mask_lookahead: int = 1  # anchor frames scored per estimator call (depth batching)
    merge: bool | None = None  # merge neighbouring SR tiles into larger windows (None: on CPU only)
    fg_threshold: float | None = None
    feather_px: float = 4.0
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    copy_streams: bool = True
    queue_size: int = 8
    save_mask: Path | None = None
    strict: bool = False  # fail (no output) when packets were corrupt or the input was cut short
    deinterlace: DeinterlaceMode = "auto"  # interlaced frames through bwdif (vidsr.media.deinterlace)
    input_rate: Fraction | None = None  # frame rate of an image-sequence input (default 25)
    resume: bool = False  # work in resumable segments kept beside the output (see vidsr.pipeline.resume)
    segment_frames: int = 120  # with resume: a segment starts at the first keyframe after this many
    frame_workers: int | None = None  # frames upscaled at once (None: 2 for torch on a multi-core CPU)


@dataclass
class UpscaleReport:
    """What a run did and how long each stage took (seconds, summed over frames)."""

    input: str
    output: str
    frames: int = 0
    seconds: float = 0.0
    in_size: tuple[int, int] = (0, 0)
    out_size: tuple[int, int] = (0, 0)
    pixels_total: int = 0  # LR pixels of all frames
    pixels_sr: int = 0  # LR pixels whose output came from the SR network
    fg_fraction_sum: float = 0.0
    mask_passes: int = 0
    cuts: int = 0
    bad_packets: int = 0
    expected_frames: int | None = None  # from the input's header, when it says (progress bars)
    resumed_frames: int = 0  # frames finished by earlier runs (--resume)
    engine: str = ""
    warnings: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def sr_fraction(self) -> float:
        """Mean fraction of output pixels that went through the SR network."""
        return self.pixels_sr / self.pixels_total if self.pixels_total else 0.0

    @property
    def fg_fraction(self) -> float:
        return self.fg_fraction_sum / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class FrameWindow:
    """Process one stretch of the input (a segment of a longer run), times in seconds.

    Frames with ``start <= t < end`` are output; frames with ``warmup <= t < start`` only
    go through the mask tracker (so its smoothing is settled at ``start``); others are
    decoded and dropped. Side-stream packets are dropped (the joiner copies them once).
    """

    start: Fraction
    end: Fraction | None = None
    warmup: Fraction | None = None

    def role(self, frame: Frame) -> str:
        """``out``, ``warmup`` or ``skip`` for ``frame``."""
        t = Fraction(frame.pts) * frame.time_base
        if self.end is not None and t >= self.end:
            return "skip"
        if t >= self.start:
            return "out"
        return "warmup" if self.warmup is not None and t >= self.warmup else "skip"


@dataclass(frozen=True)
class _Warmup:
    frame: Frame


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the (H*s, W*s, 3) uint8 output, its mask (None in full-frame mode),
    the indices of the plan's tiles that went through SR and the windows the network ran on."""

    image: np.ndarray
    mask: MaskFrame | None
    tiles: list[int]
    windows: list[Tile] = field(default_factory=list)


@dataclass
class FrameProcessor:
    """Mask + tile-gated SR + composite for one frame at a time (no I/O)."""

    engine: Engine
    plan: TilePlan
    tracker: MaskTracker
    bg: BgMethod = "bicubic"
    batch: int = 8
    full_frame: bool = False
    mask_lookahead: int = 1
    merge_px: int | None = None  # merge selected tiles into windows of at most this many LR pixels
    retired_passes: int = 0  # estimator passes and cuts of trackers replaced by fresh ones (resume segments)
    retired_cuts: int = 0

    @property
    def mask_chunk(self) -> int:
        """Frames handed to the mask tracker at once: ``mask_lookahead`` anchors' worth (1 when no mask)."""
        return 1 if self.full_frame else self.mask_lookahead * self.tracker.every

    def windows(self, indices: list[int], support: np.ndarray | None = None) -> list[Tile]:
        """The SR windows for the selected tile ``indices``: the tiles themselves, or (``merge_px``)
        merged rectangles shrunk to ``support`` (:func:`mask_support` of the LR mask) when given."""
        if self.merge_px is None:
            return [self.plan.tiles[i] for i in indices]
        regions = merge_tiles(self.plan, indices, max_window_px=self.merge_px)
        return regions if support is None else shrink_to_support(self.plan, regions, support)

    @functools.cached_property
    def full_windows(self) -> list[Tile]:
        """The windows of every tile: the same for each frame in full-frame mode."""
        return self.windows(list(range(len(self.plan))))

    def process(self, image: np.ndarray, timings: dict[str, float], mask: MaskFrame | None = None) -> FrameResult:
        """SR one (H, W, 3) uint8 LR frame; adds seconds per stage to ``timings``.

        A uint16 frame (10-bit or deeper input) stays uint16 through SR, background and blend;
        only the mask estimator sees its 8-bit view.
        ``mask``: this frame's mask when already computed (``tracker.update_many``)."""
        s = self.engine.descriptor.scale
        if self.full_frame:
            t0 = time.perf_counter()
            indices = list(range(len(self.plan)))
            windows = self.full_windows
            tiles = sr_tiles(self.engine, image, windows, batch=self.batch)
            t1 = time.perf_counter()
            out = stitch(tiles, height=image.shape[0], width=image.shape[1], scale=s)
            timings["sr"] += t1 - t0
            timings["composite"] += time.perf_counter() - t1
            return FrameResult(image=out, mask=None, tiles=indices, windows=windows)
        t0 = time.perf_counter()
        mask = mask if mask is not None else self.tracker.update(to_uint8(image))
        support = mask_support(mask.alpha)
        indices = select_tiles(self.plan, support)
        windows = self.windows(indices, support)
        t1 = time.perf_counter()
        tiles = sr_tiles(self.engine, image, windows, batch=self.batch) if windows else []
        t2 = time.perf_counter()
        background = upscale_background(image, scale=s, method=self.bg)
        t3 = time.perf_counter()
        out = blend_tiles(background, tiles, mask.alpha, scale=s) if tiles else background
        t4 = time.perf_counter()
        timings["mask"] += t1 - t0
        timings["sr"] += t2 - t1
        timings["background"] += t3 - t2
        timings["composite"] += t4 - t3
        return FrameResult(image=out, mask=mask, tiles=indices, windows=windows)

def to_uint8(image: np.ndarray) -> np.ndarray:
    """The 8-bit view of a frame: uint8 as is, uint16 rounded to 0..255."""
    return image if image.dtype == np.uint8 else cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)


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


def _decode_worker(reader: Reader, out: queue.Queue, stop: threading.Event, timings: dict[str, float],
                   window: FrameWindow | None = None) -> None:
    try:
        items: Iterator[Frame | Passthrough] = reader.items()
        t = time.perf_counter()
        for item in items:
            timings["decode"] += time.perf_counter() - t
            if window is not None:
                role = window.role(item) if isinstance(item, Frame) else "skip"
                item = _Warmup(item) if role == "warmup" else item
                if role == "skip":
                    t = time.perf_counter()
                    continue
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
            elif isinstance(item, SegmentStart):
                writer.start_segment(item)
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


def load_engine(config: UpscaleConfig) -> Engine:
    """Load ``config.model`` and build its engine for ``config``'s backend, device and precision."""
    model, desc = resolve_model(config.model, scale=config.scale)
    return create_engine(model, desc, backend_from_name(config.backend, device=config.device,
                                                        precision=config.precision,
                                                        tile=config.tile, batch=config.batch))


def build_processor(info: VideoInfo, config: UpscaleConfig,
                    estimator: MaskEstimator | None = None, *, engine: Engine | None = None) -> FrameProcessor:
    """Load the model, build the engine, plan tiles and the mask tracker for ``info``'s frame size.

    ``engine``: an engine built before (a worker that upscales many segments loads the model once).
    """
    engine = engine if engine is not None else load_engine(config)
    desc = engine.descriptor
    plan = plan_tiles(info.height, info.width, tile=config.tile, pad=desc.receptive_radius)
    tracker = MaskTracker(estimator=estimator or FocusEstimator(), every=config.mask_every,
                          threshold=config.fg_threshold, feather_px=config.feather_px, carry=config.mask_carry)
    merge_px = merge_window_px(device=config.device, backend=config.backend, merge=config.merge)
    return FrameProcessor(engine=engine, plan=plan, tracker=tracker, bg=config.bg,
                          batch=config.batch, full_frame=config.full_frame,
                          mask_lookahead=max(1, config.mask_lookahead), merge_px=merge_px)


def upscale_video(input_path: str | Path, output_path: str | Path, *, config: UpscaleConfig,
                  estimator: MaskEstimator | None = None,
                  on_frame: Callable[[UpscaleReport], None] | None = None, window: FrameWindow | None = None,
                  output_info: VideoInfo | None = None, engine: Engine | None = None) -> UpscaleReport:
    """Upscale a video; writes ``output_path`` atomically (temp file + rename).

    ``input_path``: a file in any container FFmpeg reads, an image sequence
    (``frames/%06d.png``) or ``-`` (stdin). ``output_path``: a file (container from its
    extension, or ``config.encode.container``) or ``-`` (stdout, Matroska by default).
    Inputs deeper than 8 bits are processed at 16 bits (see ``FrameProcessor``) and written
    at 10 bits unless ``config.encode.pix_fmt`` says otherwise. Corrupt packets are skipped
    and reported in ``warnings``; with ``config.strict`` they fail the run (no output).
    With ``config.resume`` the work is kept in segments beside the output and a stopped
    run continues where it stopped (:mod:`vidsr.pipeline.resume`).

    Args:
        estimator: mask estimator (default: the weight-free focus map).
        on_frame: called after each frame with the running report (progress bars).
        window: upscale only this stretch, warming the mask up before it (``vidsr.scaleout.distributed``).
        output_info: describe the output with this (the whole video's) instead of the input's
            info, when the input is a piece cut out of a longer video.
        engine: an already built engine instead of loading ``config.model``.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if window is not None and config.resume:
        raise InputError("a frame window cannot be combined with --resume")
    if config.resume and STDIO in (str(input_path), str(output_path)):
        raise InputError("--resume needs a seekable input file and an output file, not '-' (a pipe)")
    if config.resume and config.save_mask is not None:
        raise InputError("--resume cannot be combined with --save-mask")
    if config.resume and is_sequence(output_path):
        raise InputError("--resume writes a video file, not numbered frames")
    stats = DecodeStats()
    reader = Reader(input_path, copy_streams=config.copy_streams and not config.resume, deep=True,
                    rate=config.input_rate, stats=stats, deinterlace=config.deinterlace)
    with contextlib.closing(reader):
        return _upscale(reader, output_path, config=config, estimator=estimator, on_frame=on_frame,
                        window=window, output_info=output_info, engine=engine)


def _upscale(reader: Reader, output_path: Path, *, config: UpscaleConfig, estimator: MaskEstimator | None,
             on_frame: Callable[[UpscaleReport], None] | None, window: FrameWindow | None = None,
             output_info: VideoInfo | None = None, engine: Engine | None = None) -> UpscaleReport:
    info, stats, input_path = output_info or reader.info, reader.stats, Path(reader.source)
    check_output_path(output_path, input_path=input_path, container=config.encode.container)
    if config.save_mask is not None:
        check_output_path(Path(config.save_mask), input_path=input_path)
        if str(output_path) != STDIO and Path(config.save_mask).resolve() == output_path.resolve():
            raise InputError(f"--save-mask names the output file itself: {config.save_mask}")
    if config.batch < 1:
        raise InputError(f"--batch must be >= 1, got {config.batch}")
    workers = frame_workers(config, lr_pixels=info.width * info.height)
    mask_encode = config.encode  # the mask video's codec follows its own container
    # resumable segments (.nut) and the file they are joined into must agree on the codec
    config = dataclasses.replace(config, encode=config.encode.for_output(output_path))
    job = segments = None
    if config.resume:
        settings = {k: v for k, v in dataclasses.asdict(config).items()
                    if k not in ("save_mask", "queue_size", "strict", "copy_streams")}
        settings["estimator"] = repr(estimator) if estimator is not None else None
        job = ResumeJob(output_path, fingerprint(input_path, settings))
        segments = Segmenter(config.segment_frames)
        if job.next_pts is not None:
            reader.seek(job.next_pts)
    proc = build_processor(info, config, estimator, engine=engine)
    s = config.scale
    size = (info.width * s, info.height * s)
    report = UpscaleReport(input=str(input_path), output=str(output_path), in_size=(info.width, info.height),
                           out_size=size, engine=proc.engine.label, expected_frames=info.frames,
                           resumed_frames=job.done_frames if job else 0)
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=config.queue_size)
    # room for a whole mask chunk, so the mask thread scores the next chunk while SR works on this one
    # (within MASKED_QUEUE_BYTES of decoded frames, so big frames do not pile up)
    frame_bytes = max(1, info.width * info.height * 3 * 2)  # up to 16 bits per sample
    q_masked: queue.Queue = queue.Queue(
        maxsize=max(config.queue_size, min(proc.mask_chunk, MASKED_QUEUE_BYTES // frame_bytes)))
    q_out: queue.Queue = queue.Queue(maxsize=config.queue_size)
    enc_failure: list[BaseException] = []
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(output_path))
        mask_tmp = stack.enter_context(atomic_output(Path(config.save_mask))) if config.save_mask else None
        writers: list = []
        stack.callback(lambda: [w.abort() for w in writers])

        def video_writer(path: Path, *, copy_streams: bool) -> VideoWriter:
            return VideoWriter(path=path, info=info, width=size[0], height=size[1], options=config.encode,
                               copy_streams=copy_streams, sources=reader.side_streams, name=str(output_path))

        if job is None:
            writers.append(video_writer(tmp, copy_streams=config.copy_streams))
            report.warnings.extend(writers[0].warnings)
        else:
            segment_options = dataclasses.replace(config.encode, container=None)  # the .nut name decides
            writers.append(job.writer(lambda path: VideoWriter(
                path=path, info=info, width=size[0], height=size[1], options=segment_options, copy_streams=False,
                name=str(output_path))))
        if mask_tmp is not None:
            writers.append(VideoWriter(path=mask_tmp, info=info, width=size[0], height=size[1],
                                       options=mask_encode, copy_streams=False))
        if job is None or not job.finished:
            dec = threading.Thread(target=_decode_worker, name="vidsr-decode", daemon=True,
                                   args=(reader, q_in, stop, report.stages, window))
            msk = threading.Thread(target=_mask_worker, name="vidsr-mask", daemon=True,
                                   args=(proc, q_in, q_masked, stop, report.stages, segments))
            enc = threading.Thread(target=_encode_worker, name="vidsr-encode", daemon=True,
                                   args=(writers, q_out, stop, enc_failure, report.stages))
            threads = (dec, msk, enc)
            for th in threads:
                th.start()
            try:
                with torch_threads(threads_per_frame(workers)):
                    _process_loop(proc, q_masked, q_out, stop, report, on_frame, want_mask=mask_tmp is not None,
                                  workers=workers)
                _put(q_out, _END, stop)
                enc.join()
                if enc_failure:
                    raise enc_failure[0]
            finally:
                stop.set()
                for th in threads:
                    th.join()
        if report.frames == 0 and not report.resumed_frames:
            raise InputError(f"no video frames could be decoded from {input_path}")
        if config.strict and stats.damage:
            raise InputError(f"--strict: {'; '.join(stats.damage)} (no output written)")
        for w in writers:
            w.close()
        if job is not None:
            report.warnings.extend(writers[0].warnings)

            def joined(path: Path, template, sources) -> VideoWriter:
                return VideoWriter(path=path, info=info, width=size[0], height=size[1], options=config.encode,
                                   copy_streams=config.copy_streams, sources=sources, name=str(output_path),
                                   template=template, bitexact=True)

            report.warnings.extend(job.assemble(tmp, joined, input_path, info.time_base, config.copy_streams))
    if job is not None:
        job.remove()
    report.seconds = time.perf_counter() - t_start
    report.bad_packets = stats.bad_packets
    report.mask_passes = proc.retired_passes + proc.tracker.passes
    report.cuts = proc.retired_cuts + proc.tracker.cuts
    report.warnings.extend(stats.notes)
    return report


@dataclass(frozen=True)
class _Masked:
    frame: Frame
    mask: MaskFrame | None


def _mask_worker(proc: FrameProcessor, inbox: queue.Queue, out: queue.Queue, stop: threading.Event,
                 timings: dict[str, float], segments: Segmenter | None = None) -> None:
    """The mask stage in its own thread: decoded items in, ``_Masked`` frames (and the packets
    and segment starts between them) out, in file order.

    Frames go to the tracker ``mask_lookahead x every`` at a time, so the anchors among them are
    scored in one estimator call (batched depth); packets that arrive meanwhile wait with them.
    While the network upscales one frame, this thread already scores the next ones.
    """
    chunk = proc.mask_chunk
    pending: list[Frame | Passthrough] = []
    warm: list[np.ndarray] = []  # warm-up frames (FrameWindow): through the mask tracker only

    def track(images: list[np.ndarray]) -> Iterator[MaskFrame | None]:
        if proc.full_frame:
            yield from [None] * len(images)
            return
        masks = proc.tracker.iter_many([to_uint8(im) for im in images])
        while True:
            t = time.perf_counter()
            mask = next(masks, None)
            timings["mask"] += time.perf_counter() - t
            if mask is None:
                return
            yield mask

    def flush() -> bool:
        masks = track([p.image for p in pending if isinstance(p, Frame)])
        for p in pending:  # each frame leaves as soon as its mask is ready
            if not _put(out, _Masked(p, next(masks)) if isinstance(p, Frame) else p, stop):
                return False
        pending.clear()
        return True

    try:
        while True:
            item = _get(inbox, stop)
            if isinstance(item, _Failure):
                _put(out, item, stop)
                return
            if isinstance(item, _Warmup):
                warm.append(item.frame.image)
            if warm and (len(warm) >= chunk or not isinstance(item, _Warmup)):
                list(track(warm))  # warm-up frames only settle the tracker
                warm = []
            if isinstance(item, _Warmup):
                continue
            if item is _END:
                if flush():
                    _put(out, _END, stop)
                return
            if segments is not None and isinstance(item, Frame) and segments.starts(item):
                # a resumable segment starts: finish the frames before it, restart the mask
                if not flush():
                    return
                segments.reset_tracker(proc)
                if not _put(out, SegmentStart(item.pts), stop):
                    return
            if not pending and isinstance(item, Passthrough):
                if not _put(out, item, stop):
                    return
                continue
            pending.append(item)
            if sum(not isinstance(p, Passthrough) for p in pending) >= chunk and not flush():
                return
    except BaseException as e:  # handed to the main thread, which re-raises it
        _put(out, _Failure(e), stop)


FULL_FRAME_ONE_WORKER_PX = 1_000_000
"""Full-frame SR of LR frames this large runs one frame at a time by default. 1080p -> 4K on the
2-core AVX2 host: two frames at once made 1.76 fps against 1.77 one at a time and peaked at 2020
against 1444 MiB (its windows are large enough for two threads per call); at 540p two frames at
once were 15 % faster, and partial SR at 1080p 20 % faster for 100 MiB more."""


def frame_workers(config: UpscaleConfig, *, lr_pixels: int = 0) -> int:
    """Frames upscaled at once: ``config.frame_workers``, or by default 2 for torch on the CPU when
    torch may use 2 threads or more (each frame then gets half of them), except full-frame SR of
    frames of ``lr_pixels`` >= :data:`FULL_FRAME_ONE_WORKER_PX`; else 1."""
    if config.frame_workers is not None:
        if config.frame_workers < 1:
            raise InputError(f"--frame-workers must be >= 1, got {config.frame_workers}")
        return config.frame_workers
    if config.full_frame and lr_pixels >= FULL_FRAME_ONE_WORKER_PX:
        return 1
    return 2 if config.backend == "torch" and config.device == "cpu" and torch.get_num_threads() >= 2 else 1


def threads_per_frame(workers: int) -> int:
    """torch threads each of ``workers`` frames upscaled at once gets: an equal share, at least 1."""
    return max(1, torch.get_num_threads() // workers)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (all threads of the process) for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _Done:
    """One frame's SR result, ready for the encoder."""

    out: np.ndarray
    mask_img: np.ndarray | None
    result: FrameResult
    timings: dict[str, float]


def _finish(proc: FrameProcessor, item: _Masked, want_mask: bool) -> _Done:
    """SR + composite of one masked frame (thread-safe: its own stage timings)."""
    timings: dict[str, float] = defaultdict(float)
    result = proc.process(item.frame.image, timings, mask=item.mask)
    out, mask = result.image, result.mask
    mask_img = None
    if want_mask:  # the blend's alpha (1 in full-frame mode)
        h, w = out.shape[:2]
        if mask is None:
            alpha = np.ones((h, w), np.float32)
        else:
            alpha = cv2.resize(mask.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        mask_img = (alpha * 255 + 0.5).astype(np.uint8)
    return _Done(out=out, mask_img=mask_img, result=result, timings=timings)


def _ready(job: _Done | concurrent.futures.Future | None) -> bool:
    """Whether a pending item can leave now: a packet (None), a frame done in this thread, a finished future."""
    return not isinstance(job, concurrent.futures.Future) or job.done()


def _process_loop(proc: FrameProcessor, inbox: queue.Queue, q_out: queue.Queue, stop: threading.Event,
                  report: UpscaleReport, on_frame: Callable[[UpscaleReport], None] | None, *,
                  want_mask: bool, workers: int = 1) -> None:
    """SR + composite of each masked frame; packets pass through; everything leaves in file order.

    ``workers`` > 1: that many frames are upscaled at once in a thread pool (torch releases the GIL),
    each with its share of torch's threads (the caller sets them; a depth network in the mask
    thread gets the same share): on a 2-core CPU two single-threaded frames made 15-25 % more
    frames per second than one frame on two threads, which wait for each other at every operator
    (benchmarks/README.md, "AVX2-only host"). Masks come with the frames (the tracker is not shared
    between threads). 1: in this (the calling) thread, as on a GPU."""
    n_pixels = proc.plan.height * proc.plan.width
    pending: collections.deque = collections.deque()  # in file order: items, and futures of frames
    in_flight = 0

    def emit() -> bool:
        """Send the oldest pending item on (waiting for its frame); False when stopped."""
        nonlocal in_flight
        item, job = pending.popleft()
        if job is None:  # packets and segment starts
            return _put(q_out, item, stop)
        in_flight -= 1
        done: _Done = job.result() if isinstance(job, concurrent.futures.Future) else job
        for k, v in done.timings.items():
            report.stages[k] += v
        if not _put(q_out, (done.out, item.frame, done.mask_img), stop):
            return False
        report.frames += 1
        report.pixels_total += n_pixels
        report.pixels_sr += sum(w.core_pixels for w in done.result.windows)
        mask = done.result.mask
        report.fg_fraction_sum += mask.fg_fraction if mask is not None else 1.0
        if on_frame is not None:
            on_frame(report)
        return True

    with contextlib.ExitStack() as stack:
        pool = None
        if workers > 1:
            pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="vidsr-sr")
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        while True:
            item = _get(inbox, stop)
            if isinstance(item, _Failure):
                raise item.exc
            if item is _END:
                break
            if not isinstance(item, _Masked):
                pending.append((item, None))
            else:
                while in_flight >= workers:  # the oldest frame leaves before another starts
                    if not emit():
                        return
                job = pool.submit(_finish, proc, item, want_mask) if pool else _finish(proc, item, want_mask)
                pending.append((item, job))
                in_flight += 1
            while pending and _ready(pending[0][1]):
                if not emit():
                    return
        while pending:
            if not emit():
                return
