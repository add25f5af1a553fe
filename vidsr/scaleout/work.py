"""The work of one segment and the bookkeeping of one input, for :mod:`vidsr.scaleout.ray`.

The segment cache is a folder of finished segments named by a content key (the
segment's packets and window, the settings, the model's checksum). A segment whose file
is there is never computed again: a run that failed or was stopped continues where it
stopped when started again, and only the missing segments are computed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vidsr.masks.base import MaskEstimator
from vidsr.media.output import atomic_output
from vidsr.media.types import VideoInfo
from vidsr.media.segments import Segment, SegmentPlan, join_segments, write_segment
from vidsr.pipeline.config import FrameWindow, UpscaleConfig
from vidsr.pipeline.run import load_engine, upscale_video

@dataclass
class ScaleOutReport:
    """What a distributed run of one input did."""

    input: str
    output: str
    frames: int = 0
    segments: int = 0
    computed: int = 0
    cached: int = 0
    retried: int = 0
    seconds: float = 0.0
    in_size: tuple[int, int] = (0, 0)
    out_size: tuple[int, int] = (0, 0)
    skipped: bool = False
    warnings: list[str] = field(default_factory=list)


def settings_key(config: UpscaleConfig, mask_key: str) -> str:
    """Hash of everything besides the input that changes a segment's output: the output key of
    the config the workers run (never resumable, see :class:`SegmentWorker`)."""
    return dataclasses.replace(config, resume=False).output_key(mask_key=mask_key)


def segment_key(segment: Segment, settings: str) -> str:
    return hashlib.blake2b(f"{segment.digest}|{settings}".encode(), digest_size=16).hexdigest()


def segment_window(plan: SegmentPlan, s: Segment) -> FrameWindow:
    tb = plan.time_base
    return FrameWindow(start=Fraction(s.start) * tb, end=None if s.end is None else Fraction(s.end) * tb,
                       warmup=Fraction(s.warmup) * tb if s.warmup_frames else None)


@dataclass(frozen=True)
class SegmentTask:
    """One segment's work, as sent to an actor."""

    key: str
    source: str
    segment: Segment
    window: FrameWindow
    info: VideoInfo
    piece_suffix: str
    dest: str | None  # write the result here (shared file system), or return its bytes when None
    out_suffix: str


@dataclass(frozen=True)
class SegmentResult:
    """One finished segment, as an actor returns it."""

    key: str
    frames: int
    seconds: float
    attempt: int
    warnings: tuple[str, ...] = ()
    data: bytes | None = None


class SegmentWorker:
    """Upscales segments; made a Ray actor by :func:`vidsr.scaleout.ray.upscale_many` (``ray.remote(SegmentWorker)``).

    Loads the model (and the mask estimator) once, in the constructor.
    """

    def __init__(self, config: UpscaleConfig, estimator_factory: Callable[[], MaskEstimator] | None,
                 model_bytes: bytes | None, progress: str | None, threads: int) -> None:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self._tmp = tempfile.TemporaryDirectory(prefix="vidsr-worker-")
        if model_bytes is not None:
            model_path = Path(self._tmp.name) / Path(config.model or "model.pt").name
            model_path.write_bytes(model_bytes)
            config = dataclasses.replace(config, model=str(model_path))
        if config.device.startswith("cuda:"):
            config = dataclasses.replace(config, device="cuda")  # Ray sets CUDA_VISIBLE_DEVICES per actor
        self.config = dataclasses.replace(config, copy_streams=False, save_mask=None)
        if hasattr(self.config, "resume"):
            self.config = dataclasses.replace(self.config, resume=False)
        self.engine = load_engine(self.config)
        self.estimator = estimator_factory() if estimator_factory is not None else None
        self.progress = None
        if progress is not None:
            import ray

            self.progress = ray.get_actor(progress)
        self.attempts: dict[str, int] = {}

    def run(self, task: SegmentTask, piece: bytes | None = None) -> SegmentResult:
        attempt = self.attempts[task.key] = self.attempts.get(task.key, 0) + 1
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="vidsr-seg-", dir=self._tmp.name) as tmp:
            src = Path(tmp) / f"piece{task.piece_suffix}"
            if piece is not None:
                src.write_bytes(piece)
            else:
                src, _ = write_segment(task.source, task.segment, src)
            out = Path(task.dest) if task.dest is not None else Path(tmp) / f"out{task.out_suffix}"
            last = [0.0]
            self._report(task.key, 0)

            def on_frame(report) -> None:
                now = time.monotonic()
                if now - last[0] > 0.25:
                    last[0] = now
                    self._report(task.key, report.frames)

            report = upscale_video(src, out, config=self.config, estimator=self.estimator, on_frame=on_frame,
                                   window=task.window, output_info=task.info, engine=self.engine)
            self._report(task.key, report.frames)
            data = out.read_bytes() if task.dest is None else None
        return SegmentResult(key=task.key, frames=report.frames, seconds=time.perf_counter() - t0,
                             attempt=attempt, warnings=tuple(report.warnings), data=data)

    def close(self) -> None:
        """Remove the worker's temp folder (Ray ends actors without running their finalizers)."""
        self._tmp.cleanup()

    def _report(self, key: str, frames: int) -> None:
        if self.progress is not None:
            self.progress.set.remote(key, frames)


# ------------------------------------------------------------------------------ one input's bookkeeping

@dataclass
class Job:
    """One input of a run: its plan, its segments' cache keys and files, the segments left."""

    input: Path
    output: Path
    info: VideoInfo
    plan: SegmentPlan
    keys: list[str]
    parts: list[Path]
    report: ScaleOutReport
    left: set[int] = field(default_factory=set)
    t0: float = 0.0


def make_task(job: Job, i: int, *, ship: bool) -> SegmentTask:
    """The task of ``job``'s segment ``i``; ``ship``: return its bytes instead of writing the cache."""
    seg = job.plan.segments[i]
    return SegmentTask(key=job.keys[i], source=str(job.input.resolve()), segment=seg,
                       window=segment_window(job.plan, seg), info=job.info, piece_suffix=job.input.suffix or ".nut",
                       dest=None if ship else str(job.parts[i]), out_suffix=job.parts[i].suffix)


def record(job: Job, i: int, result: SegmentResult, config: UpscaleConfig, *, keep_segments: bool,
           join: bool) -> None:
    """Book a finished segment (storing shipped bytes in the cache); join the file when it was the last."""
    if result.data is not None:
        with atomic_output(job.parts[i]) as tmp:
            Path(tmp).write_bytes(result.data)
    job.report.computed += 1
    job.report.retried += result.attempt - 1
    job.report.warnings.extend(w for w in result.warnings if w not in job.report.warnings)
    job.left.discard(i)
    if not job.left and join:
        finish(job, config, keep_segments=keep_segments)


def finish(job: Job, config: UpscaleConfig, *, keep_segments: bool) -> None:
    """Join ``job``'s segments into its output (atomically) and drop them from the cache."""
    with atomic_output(job.output) as tmp:
        joined = join_segments(job.parts, tmp, source=job.input if config.copy_streams else None,
                               container=config.encode.container,
                               starts=[Fraction(s.start) * job.plan.time_base for s in job.plan.segments])
    job.report.frames = joined.frames
    job.report.warnings.extend(joined.warnings)
    job.report.seconds = time.perf_counter() - job.t0
    if joined.frames != job.plan.frames:
        job.report.warnings.append(f"{job.plan.frames - joined.frames} of {job.plan.frames} video packets "
                                   "gave no frame (corrupt packets are skipped)")
    if not keep_segments:
        for p in job.parts:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


__all__ = ["Job", "ScaleOutReport", "SegmentResult", "SegmentTask", "SegmentWorker", "finish", "make_task", "record",
           "segment_key", "segment_window", "settings_key"]
