"""Live mode: upscale a stream frame by frame as it arrives, with bounded latency.

The source (stdin, a URL, a capture device: :mod:`vidsr.media.live`) is opened with a small probe
and read once, never spooled; the mask tracker runs forward one frame at a time; the output is
encoded for latency (no lookahead, no B-frames) and every packet is flushed as it is written, with
audio and subtitle packets passed along in stream order. A :class:`DeadlineController` caps the SR
tiles per frame when the stream falls behind real time and lets them grow back when it catches up;
frames are dropped only with ``drop_late``. A source that ends, stalls or fails finishes the output
cleanly (or, with ``reconnect``, a URL is opened again and the stream goes on); Ctrl-C and SIGTERM
close the output validly too. Queues between the threads are bounded, so a slow consumer of the
output holds the input back instead of growing memory.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import queue
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from vidsr.backends import Engine
from vidsr.errors import InputError, OutputError
from vidsr.frame import FrameProcessor, FrameResult, to_uint8
from vidsr.masks.base import MaskEstimator, MaskFrame
from vidsr.media.codecs import muxer_name
from vidsr.media.live import PROBE_BYTES, LiveSource, is_url, muxing_options, output_target
from vidsr.media.streams import describe_stream
from vidsr.media.output import atomic_output, check_output_path
from vidsr.media.reader import Reader
from vidsr.media.types import STDIO, DecodeStats, Frame, Passthrough, VideoInfo, is_sequence
from vidsr.media.writer import VideoWriter
from vidsr.pipeline.config import UpscaleConfig, UpscaleReport, frame_workers
from vidsr.pipeline.deadline import DeadlineController
from vidsr.pipeline.run import load_engine, processor_for
from vidsr.pipeline.stages import END, Failure, count_frame, get, put
from vidsr.platform import frame_threads
from vidsr.sr import sr_tiles

LATENCY_SAMPLES = 100_000
"""Per-frame latencies kept for the percentiles (the newest; a live stream may never end)."""
RETRY_S = 0.5
"""Pause between attempts to open a source again (``reconnect``)."""
ENCODE_QUEUE = 2
"""Frames that may wait between SR and the encoder. Short: the deadline controller sees a frame's
latency when it leaves SR, so a slow encoder must hold SR back (and show in that latency) at once,
not after a queue of ``queue_size`` frames (320 ms at 25 fps) has filled unseen."""
LIVE_PRESETS = {"libx264": "ultrafast", "libx265": "ultrafast"}
"""Encoder presets of a live output when ``--preset`` is not given. The encoder is the costliest stage
of a live run on few cores: a 640x272 pan upscaled x2 took 55 ms per frame with veryfast (the file
default), 35-40 with superfast, 18-20 with ultrafast; x4 (2560x1088) 200-260, 165 and 40-46 ms (2 cores
under load 5; crf 18: ultrafast's stream 1.6x larger at x2, the same size at x4). A 40 ms frame period
leaves room only for ultrafast."""


@dataclass(frozen=True)
class LiveOptions:
    """How a live run treats time and trouble.

    Args:
        drop_late: drop a frame that is already past its deadline before SR (else none is dropped).
        reconnect: open a URL source again when it ends, stalls or fails.
        reconnect_s: give up reconnecting after this long without a source (then finish).
        stall_s: a network source silent this long has stalled.
        target_s: the deadline: latency above which SR coverage is cut (default: the controller's).
    """

    drop_late: bool = False
    reconnect: bool = False
    reconnect_s: float = 30.0
    stall_s: float = 5.0
    target_s: float | None = None


@dataclass
class LiveReport(UpscaleReport):
    """:class:`UpscaleReport` plus what live mode measures; latencies in seconds, from a frame's
    arrival (decoded from the source) to its packet written."""

    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    first_output_s: float | None = None  # the first frame's latency
    max_latency_s: float = 0.0
    late: int = 0  # frames written past their deadline
    dropped: int = 0  # frames dropped as late (drop_late only)
    kept_sum: float = 0.0  # per frame: SR tiles kept / tiles the mask selected
    coverage_changes: int = 0
    reconnects: int = 0
    stopped: str | None = None  # "interrupted" or "terminated" when a signal ended the run

    def latency(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the per-frame latency."""
        return float(np.percentile(self.latencies, q)) if self.latencies else 0.0

    @property
    def coverage_kept(self) -> float:
        """Mean share of the mask's tiles that went through SR (1: the deadline cut nothing)."""
        return self.kept_sum / self.frames if self.frames else 1.0

    def live_summary(self) -> str:
        return (f"latency p50 {self.latency(50) * 1e3:.0f} ms, p95 {self.latency(95) * 1e3:.0f} ms, "
                f"max {self.max_latency_s * 1e3:.0f} ms (first frame {(self.first_output_s or 0) * 1e3:.0f} ms); "
                f"SR coverage kept {self.coverage_kept:.0%}; {self.late} late, {self.dropped} dropped")

    def stage_summary(self) -> str:
        """Milliseconds per frame in each stage (they run in threads of their own, overlapping; ``input``
        includes waiting for the source, a frame period per frame when it keeps up)."""
        n = max(1, self.frames + self.dropped)
        return ", ".join(f"{k} {v / n * 1e3:.1f}" for k, v in self.stages.items() if v)


@dataclass(frozen=True)
class _Arrived:
    frame: Frame
    arrival: float  # perf_counter when it came out of the decoder
    mask: MaskFrame | None = None


@dataclass
class _Done:
    result: FrameResult
    timings: dict[str, float]


def _described(stream) -> bool:
    """Whether an audio stream's layout and rate are known (else the muxer cannot take it)."""
    ctx = stream.codec_context
    return stream.type != "audio" or bool(ctx and ctx.sample_rate and ctx.channels)


class _LiveInput:
    """The source, opened again after it ends when reconnecting; frames keep one clock."""

    def __init__(self, source: LiveSource, options: LiveOptions, *, config: UpscaleConfig,
                 stats: DecodeStats) -> None:
        self.source, self.options, self.stats = source, options, stats
        self._copy, self._deinterlace = config.copy_streams, config.deinterlace
        self.reconnects = 0
        self.reader = self._open()
        self.opened_at = time.perf_counter()  # when the first frame was decoded
        self.info = dataclasses.replace(self.reader.info, source="pipe", frames=None, duration_s=None)
        # a stream whose parameters were not in the small probe cannot be written: left out, named
        self.side_streams = [st for st in self.reader.side_streams if _described(st)]
        self.notes = [f"{describe_stream(st)} left out: its parameters were not in the first "
                      f"{PROBE_BYTES // 1024} KiB of the live stream" for st in self.reader.side_streams
                      if not _described(st)]

    def _open(self, source: LiveSource | None = None) -> Reader:
        container = (source or self.source).open()
        try:  # slice threading: frame threading holds a frame per thread before the first comes out
            return Reader(self.source.source, copy_streams=self._copy, deep=True, stats=self.stats,
                          deinterlace=self._deinterlace, container=container, thread_type="SLICE")
        except BaseException:
            container.close()
            raise

    def _reopen(self, halt: threading.Event) -> Reader | None:
        """A new reader of the source, or None when ``reconnect_s`` passed (or ``halt`` was set)."""
        give_up = time.monotonic() + self.options.reconnect_s
        while not halt.is_set() and (left := give_up - time.monotonic()) > 0:
            try:
                return self._open(dataclasses.replace(self.source, open_s=left))
            except InputError:
                time.sleep(min(RETRY_S, max(0.0, give_up - time.monotonic())))
        return None

    def items(self, halt: threading.Event) -> Iterator[_Arrived | Passthrough]:
        """Frames (with their arrival times) and side packets until the source ends for good."""
        tb = self.reader.time_base
        size = (self.info.width, self.info.height)
        next_pts: int | None = None  # where the next frame is due on the output clock (continues a reconnect)
        last_pts: int | None = None
        shift_s = Fraction(0)  # added to a reconnected source's times
        last_dts: dict[int, int] = {}  # per side stream: its packets never go back in time
        held: list[Passthrough] = []  # a reopened source's side packets before its first frame
        reader, first, rebase = self.reader, True, False
        while True:
            for item in reader.items():
                if halt.is_set():
                    return
                if isinstance(item, Passthrough):
                    if rebase:  # its shift is known only at the first frame of the new connection
                        held.append(item)
                    elif (packet := _shifted(item, shift_s, last_dts)) is not None:
                        yield packet
                    continue
                if rebase:  # a reopened source's first frame: continue the clock where it stopped
                    rebase = False
                    if next_pts is not None:
                        shift_s = next_pts * tb - Fraction(item.pts) * item.time_base
                    yield from filter(None, (_shifted(p, shift_s, last_dts) for p in held))
                    held.clear()
                pts = round((Fraction(item.pts) * item.time_base + shift_s) / tb)
                if last_pts is not None and pts <= last_pts:  # never backwards, even across a reconnect
                    pts = last_pts + 1
                dur = item.duration
                if dur is not None and item.time_base != tb:
                    dur = max(1, round(Fraction(dur) * item.time_base / tb))
                image = item.image
                if (image.shape[1], image.shape[0]) != size:  # a reconnected source of another size
                    image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
                frame = dataclasses.replace(item, image=image, pts=pts, duration=dur, time_base=tb)
                step = dur or max(1, round(1 / ((self.info.average_rate or 25) * tb)))
                next_pts, last_pts = pts + step, pts
                yield _Arrived(frame=frame, arrival=self.opened_at if first else time.perf_counter())
                first = False
            if halt.is_set() or not self.options.reconnect or not is_url(self.source.source):
                return
            reader.close()
            reader = self._reopen(halt)
            if reader is None:
                return
            self.reader, rebase = reader, True
            held.clear()  # a connection that brought no frame: its side packets have no place on the clock
            self.reconnects += 1
            self.stats.read_error = None  # the stream went on: the gap is noted as a reconnect


def _shifted(item: Passthrough, shift_s: Fraction, last_dts: dict[int, int]) -> Passthrough | None:
    """``item`` moved by ``shift_s`` onto the output clock; None when it would go back in time in its
    stream (a reconnected source's packets that overlap what the last connection sent)."""
    packet = item.packet
    if shift_s and packet.time_base:
        ticks = round(shift_s / packet.time_base)
        packet.pts = None if packet.pts is None else packet.pts + ticks
        packet.dts = None if packet.dts is None else packet.dts + ticks
    if packet.dts is not None:
        if packet.dts <= last_dts.get(item.stream_index, -(1 << 62)):
            return None
        last_dts[item.stream_index] = packet.dts
    return item


def _decode_worker(live: _LiveInput, out: queue.Queue, stop: threading.Event, timings: dict[str, float]) -> None:
    try:
        t = time.perf_counter()
        for item in live.items(stop):
            timings["input"] += time.perf_counter() - t  # decoding, and waiting for the source
            if not put(out, item, stop):
                return
            t = time.perf_counter()
        put(out, END, stop)
    except BaseException as e:  # handed to the main thread, which re-raises it
        put(out, Failure(e), stop)


def _mask_worker(proc: FrameProcessor, inbox: queue.Queue, out: queue.Queue, stop: threading.Event,
                 timings: dict[str, float]) -> None:
    """Masks one frame at a time as it arrives (forward only: no lookahead chunk to wait for)."""
    try:
        while True:
            item = get(inbox, stop)
            if isinstance(item, _Arrived) and not proc.full_frame:
                t = time.perf_counter()
                item = dataclasses.replace(item, mask=proc.tracker.update(to_uint8(item.frame.image)))
                timings["mask"] += time.perf_counter() - t
            if not put(out, item, stop) or item is END or isinstance(item, Failure):
                return
    except BaseException as e:
        put(out, Failure(e), stop)


def _tile_seconds(proc: FrameProcessor) -> float:
    """Seconds the SR of one tile takes (timed after a warm-up call): primes the deadline controller."""
    image = np.zeros((proc.plan.height, proc.plan.width, 3), np.uint8)
    tile = proc.plan.tiles[:1]
    sr_tiles(proc.engine, image, tile, batch=1)
    t = time.perf_counter()
    sr_tiles(proc.engine, image, tile, batch=1)
    return time.perf_counter() - t


def _process(proc: FrameProcessor, item: _Arrived, cap: int | None) -> _Done:
    timings: dict[str, float] = defaultdict(float)
    return _Done(result=proc.process(item.frame.image, timings, mask=item.mask, max_tiles=cap), timings=timings)


def _ready(job: _Done | concurrent.futures.Future | None) -> bool:
    return not isinstance(job, concurrent.futures.Future) or job.done()


def _encode_worker(writer: VideoWriter, inbox: queue.Queue, stop: threading.Event, failure: list[BaseException],
                   report: LiveReport, control: DeadlineController, flush: Callable[[], None] | None) -> None:
    try:
        while True:
            item = get(inbox, stop)
            if item is END:
                return
            t = time.perf_counter()
            if isinstance(item, Passthrough):
                writer.copy(item)
            else:
                image, arrived = item
                f = arrived.frame
                writer.write(image, pts=f.pts, time_base=f.time_base, duration=f.duration)
                if flush is not None:
                    flush()
                latency = time.perf_counter() - arrived.arrival
                report.latencies.append(latency)
                report.max_latency_s = max(report.max_latency_s, latency)
                if report.first_output_s is None:
                    report.first_output_s = latency
                report.late += control.late(latency)
            report.stages["encode"] += time.perf_counter() - t
    except BaseException as e:
        failure.append(e)
        stop.set()


def _sr_loop(proc: FrameProcessor, inbox: queue.Queue, q_out: queue.Queue, stop: threading.Event,
             report: LiveReport, control: DeadlineController, on_frame: Callable[[LiveReport], None] | None, *,
             workers: int, drop_late: bool) -> None:
    """SR + composite of each masked frame under the controller's tile cap, in stream order."""
    n_pixels = proc.plan.height * proc.plan.width
    pending: collections.deque = collections.deque()
    in_flight = 0

    def emit() -> bool:
        nonlocal in_flight
        item, job = pending.popleft()
        if job is None:
            return put(q_out, item, stop)
        in_flight -= 1
        done: _Done = job.result() if isinstance(job, concurrent.futures.Future) else job
        r = done.result
        kept, selected = len(r.tiles), len(r.tiles) + r.dropped
        sr_s = done.timings.get("sr", 0.0)
        control.observe(latency_s=time.perf_counter() - item.arrival, sr_s=sr_s,
                        other_s=sum(done.timings.values()) - sr_s, tiles=kept, selected=selected)
        for k, v in done.timings.items():
            report.stages[k] += v
        if not put(q_out, (r.image, item), stop):
            return False
        count_frame(report, r, n_pixels=n_pixels)
        report.kept_sum += kept / selected if selected else 1.0
        report.coverage_changes = control.changes
        if on_frame is not None:
            on_frame(report)
        return True

    with contextlib.ExitStack() as stack:
        pool = None
        if workers > 1:
            pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="vidsr-sr")
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        while True:
            try:  # while frames are in SR, wake often: a finished frame leaves without waiting for the next
                item = inbox.get(timeout=0.005 if pending else 0.1)
            except queue.Empty:
                if stop.is_set():
                    item = END
                else:
                    while pending and _ready(pending[0][1]):
                        if not emit():
                            return
                    continue
            if isinstance(item, Failure):
                raise item.exc
            if item is END:
                break
            if not isinstance(item, _Arrived):
                pending.append((item, None))
            elif drop_late and report.frames and control.late(time.perf_counter() - item.arrival):
                report.dropped += 1
            else:
                while in_flight >= workers:
                    if not emit():
                        return
                cap = control.limit()
                job = pool.submit(_process, proc, item, cap) if pool else _process(proc, item, cap)
                pending.append((item, job))
                in_flight += 1
            while pending and _ready(pending[0][1]):
                if not emit():
                    return
        while pending:
            if not emit():
                return


def _open_writer(output: str, target: str, muxer: str, info: VideoInfo, config: UpscaleConfig,
                 live: _LiveInput) -> VideoWriter:
    options = dataclasses.replace(config.encode, container=muxer, low_latency=True).for_output(target)
    if options.preset is None and options.codec in LIVE_PRESETS:
        options = dataclasses.replace(options, preset=LIVE_PRESETS[options.codec])
    s = config.scale
    return VideoWriter(path=target, info=info, width=info.width * s, height=info.height * s, options=options,
                       copy_streams=config.copy_streams, sources=live.side_streams, name=output,
                       container_options=muxing_options(muxer))


def upscale_live(source: str, output: str | Path, *, config: UpscaleConfig, options: LiveOptions = LiveOptions(),
                 estimator: Callable[[VideoInfo], MaskEstimator | None] | None = None,
                 on_frame: Callable[[LiveReport], None] | None = None, engine: Engine | None = None) -> LiveReport:
    """Upscale the live ``source`` (``-``, a URL or a capture device) to ``output`` as it arrives.

    ``output``: ``-`` (stdout; Matroska unless ``config.encode.container``), a URL (MPEG-TS for
    udp/tcp/srt/http, FLV for rtmp, or ``config.encode.container``) or a file (written to a temp
    file and renamed when the stream ends, also after Ctrl-C or SIGTERM, which end the run with
    ``report.stopped`` set instead of raising).

    Args:
        estimator: makes the mask estimator for the stream's :class:`VideoInfo` (default: focus map).
        on_frame: called after each frame with the running report (progress line).
        engine: an already built engine instead of loading ``config.model``.
    """
    output = str(output)
    if config.resume:
        raise InputError("--resume cannot be combined with --live (a live stream cannot be read again)")
    if config.save_mask is not None:
        raise InputError("--save-mask cannot be combined with --live")
    if config.batch < 1:
        raise InputError(f"--batch must be >= 1, got {config.batch}")
    target, muxer = output_target(output)
    if muxer is None:  # a file
        if is_sequence(output):
            raise OutputError("live output is a video stream or file, not numbered frames")
        check_output_path(Path(output), container=config.encode.container)
        muxer = muxer_name(output, config.encode.container)
    muxer = config.encode.container or muxer
    engine = engine if engine is not None else load_engine(config)  # before the source: no frame waits for it
    stats = DecodeStats()
    src = LiveSource(source=source, stall_s=options.stall_s)
    live = _LiveInput(src, options, config=config, stats=stats)
    halt = threading.Event()
    dec: threading.Thread | None = None
    try:
        info = live.info
        proc = processor_for(info, dataclasses.replace(config, mask_lookahead=1),
                             estimator(info) if estimator is not None else None, engine=engine)
        workers = frame_workers(config, lr_pixels=info.width * info.height)
        control = DeadlineController(budget_s=1 / info.fps, tiles_total=len(proc.plan), workers=workers,
                                     target_s=options.target_s)
        if not proc.full_frame:
            with frame_threads(workers):
                control.prime(_tile_seconds(proc))
        s = config.scale
        report = LiveReport(input=live.source.label, output=output, in_size=(info.width, info.height),
                            out_size=(info.width * s, info.height * s), engine=proc.engine.label)
        t_start = time.perf_counter()
        q_in: queue.Queue = queue.Queue(maxsize=config.queue_size)
        q_masked: queue.Queue = queue.Queue(maxsize=config.queue_size)
        q_out: queue.Queue = queue.Queue(maxsize=min(ENCODE_QUEUE, config.queue_size))
        failure: list[BaseException] = []
        streamed = is_url(output) or output == STDIO
        with contextlib.ExitStack() as stack:
            path = target if streamed else str(stack.enter_context(atomic_output(Path(output))))
            writer = _open_writer(output, path, muxer, info, config, live)
            stack.callback(writer.abort)
            report.warnings.extend(writer.warnings)
            flush = sys.stdout.buffer.flush if path == STDIO else None
            dec = threading.Thread(target=_decode_worker, name="vidsr-live-read", daemon=True,
                                   args=(live, q_in, halt, report.stages))
            msk = threading.Thread(target=_mask_worker, name="vidsr-live-mask", daemon=True,
                                   args=(proc, q_in, q_masked, halt, report.stages))
            enc = threading.Thread(target=_encode_worker, name="vidsr-live-encode", daemon=True,
                                   args=(writer, q_out, halt, failure, report, control, flush))
            stack.enter_context(frame_threads(workers))
            for th in (dec, msk, enc):
                th.start()
            try:
                _sr_loop(proc, q_masked, q_out, halt, report, control, on_frame, workers=workers,
                         drop_late=options.drop_late)
                put(q_out, END, halt)
            except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the frames done so far make the output
                report.stopped = "interrupted" if type(e) is KeyboardInterrupt else "terminated"
            finally:
                halt.set()  # the encoder writes what is queued, then stops
                enc.join()
                msk.join(timeout=1.0)
            if failure:
                raise failure[0]
            if report.frames == 0:
                raise InputError(f"no video frames could be decoded from {live.source.label}")
            writer.close()
    finally:
        halt.set()
        if dec is not None:
            dec.join(timeout=1.0)
        if dec is None or not dec.is_alive():  # a read blocked on a silent pipe keeps its container
            live.reader.close()
    report.seconds = time.perf_counter() - t_start
    report.reconnects = live.reconnects
    report.bad_packets = stats.bad_packets
    report.mask_passes, report.cuts = proc.tracker.passes, proc.tracker.cuts
    report.warnings.extend(live.notes + stats.notes)
    if report.reconnects:
        report.warnings.append(f"the source was opened again {report.reconnects} time(s) after it ended or stalled")
    return report
