"""The stages of the streaming graph: decode, mask and encode threads, and the SR loop between them.

Stages are joined by bounded queues; an item is a decoded :class:`Frame`, a side-stream
:class:`Passthrough` packet, a :class:`SegmentStart`, a :class:`Failure` (a stage's exception,
re-raised on the main thread) or :data:`END`. Everything leaves in file order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterator

import cv2
import numpy as np

from vidsr.frame import FrameProcessor, FrameResult, to_uint8
from vidsr.masks.base import MaskFrame
from vidsr.media.reader import Reader
from vidsr.media.types import Frame, Passthrough
from vidsr.media.writer import VideoWriter
from vidsr.pipeline.config import FrameWindow, UpscaleReport
from vidsr.pipeline.resume import Segmenter, SegmentStart
from vidsr.platform import lower_thread_priority

END = object()
"""The last item a stage sends."""


class Failure:
    """A stage's exception, sent on in place of items; the main thread re-raises it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


@dataclass(frozen=True)
class _Warmup:
    frame: Frame


@dataclass(frozen=True)
class _Masked:
    frame: Frame
    mask: MaskFrame | None


class ThreadClock:
    """Where each pipeline thread's time goes: seconds blocked in ``get`` (waiting for input) and in
    ``put`` (waiting for room downstream), seconds of ``work`` (SR pool workers, which wait inside
    the pool), its CPU seconds since first seen (``time.thread_time``: the Python thread itself,
    not the worker threads of x264, ONNX Runtime or OpenMP) and when it was first and last seen, keyed by
    thread name (:class:`TimedQueue` and the SR workers report here). A queue thread's busy time is
    its span less both waits; the thread busy closest to the whole run bounds throughput
    (``vidsr bench --threaded``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.threads: dict[str, dict[str, float]] = {}

    def add(self, kind: str, seconds: float = 0.0) -> None:
        """Add ``seconds`` to this thread's ``kind`` (get_wait, put_wait or work; "" notes it is alive)."""
        name, now, cpu = threading.current_thread().name, time.perf_counter(), time.thread_time()
        with self._lock:
            t = self.threads.get(name)
            if t is None:
                t = self.threads[name] = {"get_wait": 0.0, "put_wait": 0.0, "work": 0.0, "cpu": 0.0, "cpu0": cpu,
                                          "first": now - seconds, "last": now}
            if kind:
                t[kind] += seconds
            t["cpu"], t["last"] = cpu - t["cpu0"], now

    def summary(self, start: float) -> dict[str, dict[str, float]]:
        """Per thread: span (first to last seen, s), busy (span less waits), get_wait, put_wait, cpu,
        and start (offset from ``start``)."""
        with self._lock:
            out = {}
            for name, t in sorted(self.threads.items()):
                span = t["last"] - t["first"]
                busy = t["work"] or span - t["get_wait"] - t["put_wait"]
                out[name] = {"start": t["first"] - start, "span": span, "busy": busy,
                             "get_wait": t["get_wait"], "put_wait": t["put_wait"], "cpu": t["cpu"]}
            return out


class TimedQueue(queue.Queue):
    """A bounded queue that tells ``clock`` how long each caller blocked in ``put`` and ``get``."""

    def __init__(self, maxsize: int, *, clock: ThreadClock) -> None:
        super().__init__(maxsize=maxsize)
        self.clock = clock

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        t = time.perf_counter()
        try:
            super().put(item, block, timeout)
        finally:
            self.clock.add("put_wait", time.perf_counter() - t)

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        t = time.perf_counter()
        try:
            return super().get(block, timeout)
        finally:
            self.clock.add("get_wait", time.perf_counter() - t)


def count_frame(report: UpscaleReport, result: FrameResult, *, n_pixels: int) -> None:
    """Add one output frame to ``report``: pixels, SR pixels, foreground share and threshold."""
    report.frames += 1
    report.pixels_total += n_pixels
    report.pixels_sr += sum(w.core_pixels for w in result.windows)
    report.pixels_window += min(n_pixels, sum(w.window_pixels for w in result.windows))
    mask = result.mask
    report.fg_fraction_sum += mask.fg_fraction if mask is not None else 1.0
    report.threshold.add(mask.threshold if mask is not None else None)


def put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless ``stop`` is set; returns False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def get(q: queue.Queue, stop: threading.Event) -> object:
    """The next item, or :data:`END` once ``stop`` is set and nothing is left."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return END


def decode_worker(reader: Reader, out: queue.Queue, stop: threading.Event, timings: dict[str, float],
                  window: FrameWindow | None = None) -> None:
    """The decode stage: ``reader``'s frames and packets into ``out`` (only ``window``'s, when given)."""
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
            if not put(out, item, stop):
                return
            t = time.perf_counter()
        put(out, END, stop)
    except BaseException as e:  # handed to the main thread, which re-raises it
        put(out, Failure(e), stop)


def encode_worker(writers: list[VideoWriter], inbox: queue.Queue, stop: threading.Event,
                  failure: list[BaseException], timings: dict[str, float]) -> None:
    """The encode stage: frames into ``writers[0]`` (and masks into ``writers[1]``); an error
    goes to ``failure`` and stops the run."""
    writer = writers[0]
    mask_writer = writers[1] if len(writers) > 1 else None
    try:
        while True:
            item = get(inbox, stop)
            if item is END:
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


def mask_worker(proc: FrameProcessor, inbox: queue.Queue, out: queue.Queue, stop: threading.Event,
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
            if not put(out, _Masked(p, next(masks)) if isinstance(p, Frame) else p, stop):
                return False
        pending.clear()
        return True

    try:
        while True:
            item = get(inbox, stop)
            if isinstance(item, Failure):
                put(out, item, stop)
                return
            if isinstance(item, _Warmup):
                warm.append(item.frame.image)
            if warm and (len(warm) >= chunk or not isinstance(item, _Warmup)):
                list(track(warm))  # warm-up frames only settle the tracker
                warm = []
            if isinstance(item, _Warmup):
                continue
            if item is END:
                if flush():
                    put(out, END, stop)
                return
            if segments is not None and isinstance(item, Frame) and segments.starts(item):
                # a resumable segment starts: finish the frames before it, restart the mask
                if not flush():
                    return
                segments.reset_tracker(proc)
                if not put(out, SegmentStart(item.pts), stop):
                    return
            if not pending and isinstance(item, Passthrough):
                if not put(out, item, stop):
                    return
                continue
            pending.append(item)
            if sum(not isinstance(p, Passthrough) for p in pending) >= chunk and not flush():
                return
    except BaseException as e:  # handed to the main thread, which re-raises it
        put(out, Failure(e), stop)


@dataclass
class _Done:
    """One frame's SR result, ready for the encoder."""

    out: np.ndarray
    mask_img: np.ndarray | None
    result: FrameResult
    timings: dict[str, float]


def _finish(proc: FrameProcessor, item: _Masked, want_mask: bool, clock: ThreadClock | None = None) -> _Done:
    """SR + composite of one masked frame (thread-safe: its own stage timings); a pool worker
    adds its time to ``clock``."""
    t0 = time.perf_counter()
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
    if clock is not None:
        clock.add("work", time.perf_counter() - t0)
    return _Done(out=out, mask_img=mask_img, result=result, timings=timings)


def _ready(job: _Done | concurrent.futures.Future | None) -> bool:
    """Whether a pending item can leave now: a packet (None), a frame done in this thread, a finished future."""
    return not isinstance(job, concurrent.futures.Future) or job.done()


PIPELINE_AHEAD = 1
"""Frames queued in the SR pool beyond its workers. Frames take unequal times (partial SR's windows
vary, and a shared host stalls threads), and with as many frames in flight as workers a worker that
finished early idled until the oldest frame left (head-of-line blocking). One frame ahead, 2 workers,
compact-x2-lite, 2-core Xeon, taking turns in one process (benchmarks/pipeline_ahead.py): the SR
workers' busy share of the run rose in every pair, +2.5 to +7.3 points on the 10-s dragonfly pan
640x272 (8 pairs, wall time a pair 0.74-1.14, median 0.94) and +1.4 to +6.9 on the 2-s pan (10 pairs,
median 0.98), +1.9 to +4.0 in full-frame mode (4 pairs, median 0.95); two ahead measured as one."""


def process_loop(proc: FrameProcessor, inbox: queue.Queue, q_out: queue.Queue, stop: threading.Event,
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
    clock: ThreadClock | None = getattr(inbox, "clock", None)
    pending: collections.deque = collections.deque()  # in file order: items, and futures of frames
    in_flight = 0

    def emit() -> bool:
        """Send the oldest pending item on (waiting for its frame); False when stopped."""
        nonlocal in_flight
        item, job = pending.popleft()
        if job is None:  # packets and segment starts
            return put(q_out, item, stop)
        in_flight -= 1
        t = time.perf_counter()
        done: _Done = job.result() if isinstance(job, concurrent.futures.Future) else job
        if clock is not None and isinstance(job, concurrent.futures.Future):
            clock.add("get_wait", time.perf_counter() - t)  # waiting for an SR worker counts as waiting for input
        for k, v in done.timings.items():
            report.stages[k] += v
        if not put(q_out, (done.out, item.frame, done.mask_img), stop):
            return False
        count_frame(report, done.result, n_pixels=n_pixels)
        if on_frame is not None:
            on_frame(report)
        return True

    with contextlib.ExitStack() as stack:
        pool, ahead = None, 0
        if workers > 1:
            # one frame waits in the pool beyond its workers: a worker done before the oldest frame starts
            # the next at once instead of idling until the oldest leaves (PIPELINE_AHEAD)
            ahead = PIPELINE_AHEAD
            # below the other stages' threads: they are one thread each, the pool takes the cores they leave
            pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="vidsr-sr",
                                                         initializer=lower_thread_priority)
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        while True:
            item = get(inbox, stop)
            if isinstance(item, Failure):
                raise item.exc
            if item is END:
                break
            if not isinstance(item, _Masked):
                pending.append((item, None))
            else:
                while in_flight >= workers + ahead:  # the oldest frame leaves before another is queued
                    if not emit():
                        return
                job = pool.submit(_finish, proc, item, want_mask, clock) if pool else _finish(proc, item, want_mask)
                pending.append((item, job))
                in_flight += 1
            while pending and _ready(pending[0][1]):
                if not emit():
                    return
        while pending:
            if not emit():
                return
