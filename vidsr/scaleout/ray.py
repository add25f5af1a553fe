"""Segment-parallel upscaling on Ray: long videos and batches over many workers.

The driver (the process that calls :func:`upscale_distributed` / :func:`upscale_many`)
plans each input's segments at keyframes (:mod:`vidsr.media.segments`), hands them to a pool
of Ray actors, shows one progress count for all of them, and joins each input's upscaled
segments by stream copy once they are all done. Each actor (:class:`~vidsr.scaleout.work.SegmentWorker`)
loads the model once and upscales one segment at a time: it cuts the segment out of the input
by stream copy (warm-up frames included), runs :func:`vidsr.pipeline.run.upscale_video` on it
with a :class:`~vidsr.pipeline.config.FrameWindow`, and writes the result into the segment cache
(:mod:`vidsr.scaleout.work`).

Starting a private Ray or joining a cluster: :mod:`vidsr.scaleout.connect`. Ray is optional
(the ``[ray]`` extra) and imported only inside functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vidsr.errors import BackendUnavailable, InputError, SegmentError
from vidsr.extras import require
from vidsr.masks.base import MaskEstimator
from vidsr.media.codecs import muxer_name
from vidsr.media.output import check_output_path
from vidsr.media.reader import probe
from vidsr.media.types import is_sequence
from vidsr.media.segments import plan_segments, write_segment
from vidsr.pipeline.config import UpscaleConfig
from vidsr.scaleout.batch import is_complete
from vidsr.scaleout.connect import ray_session
from vidsr.scaleout.work import (
    Job,
    ScaleOutReport,
    SegmentResult,
    SegmentWorker,
    finish,
    make_task,
    record,
    segment_key,
    settings_key,
)


@dataclass(frozen=True)
class ScaleOut:
    """How to spread a run over Ray workers.

    Args:
        workers: actors (each loads the model once and upscales one segment at a time);
            0 runs the segments one after another in this process, without Ray (debugging).
        address: ``None`` starts a private Ray on this machine (on 127.0.0.1; never a running
            one); ``"auto"`` or ``"HOST:PORT"`` joins a running cluster (``ray start --head`` /
            ``ray start --address``) with Ray's token, if there is one (:mod:`vidsr.scaleout.connect`).
        segment_s: wanted segment length in seconds (cut at the nearest closed-GOP keyframe).
        warmup_anchors: mask anchors run before each segment's start (x ``mask_every`` frames).
        retries: times a failed segment is tried again (Python errors and lost workers).
        cache_dir: finished segments; default ``.vidsr-segments/`` beside the output.
        keep_segments: keep the cached segments after a successful join.
        cpus_per_worker: CPUs each actor reserves (default: this machine's cores / workers
            for a local Ray, 1 on a cluster).
        gpus_per_worker: GPUs each actor reserves (default: 1 when ``--device`` is cuda).
        ship: send segments through Ray's object store instead of the file system (default:
            when joining a cluster, whose nodes may not see this machine's files).
        object_store_mb: object store size of a local Ray.
    """

    workers: int = 2
    address: str | None = None
    segment_s: float = 10.0
    warmup_anchors: int = 8
    retries: int = 2
    cache_dir: Path | None = None
    keep_segments: bool = False
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    ship: bool | None = None
    object_store_mb: int = 128


def require_ray():
    """Import Ray or fail with one line naming the extra."""
    return require("ray", extra="ray", what="--workers needs Ray, which is not installed")


class Progress:
    """Frames done per segment key (a retried segment starts again from 0)."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}

    def set(self, key: str, frames: int) -> None:
        self.done[key] = frames

    def total(self) -> int:
        return sum(self.done.values())


def upscale_distributed(input_path: str | Path, output_path: str | Path, *, config: UpscaleConfig,
                        scale_out: ScaleOut, estimator_factory: Callable[[], MaskEstimator] | None = None,
                        mask_key: str | None = None,
                        on_progress: Callable[[int, int], None] | None = None) -> ScaleOutReport:
    """Upscale one video in segments on Ray workers; see :func:`upscale_many`."""
    return upscale_many([(Path(input_path), Path(output_path))], config=config, scale_out=scale_out,
                        estimator_factory=estimator_factory, mask_key=mask_key, on_progress=on_progress)[0]


def upscale_many(jobs: Sequence[tuple[Path, Path]], *, config: UpscaleConfig, scale_out: ScaleOut,
                 estimator_factory: Callable[[], MaskEstimator] | None = None, mask_key: str | None = None,
                 skip_complete: bool = False,
                 on_progress: Callable[[int, int], None] | None = None) -> list[ScaleOutReport]:
    """Upscale (input, output) pairs, all their segments sharing one pool of Ray actors.

    Each output is written atomically once all its segments are done; the segments of all
    inputs are spread over the actors together, so many short files keep every worker busy.

    Args:
        estimator_factory: picklable callable building the mask estimator in each actor
            (default: the focus map); ``mask_key`` names it in the cache key (default: its repr).
        skip_complete: leave outputs that exist and are complete (:func:`is_complete`) alone.
        on_progress: called in the driver with (frames done, frames in all) about 4 times a second.
    Raises:
        BackendUnavailable: Ray is not installed or cannot be started/reached.
        InputError / OutputError: an input that cannot be cut, an output that cannot be written.
        SegmentError: a segment failed ``1 + retries`` times (finished segments stay cached).
    """
    so = scale_out
    if so.workers < 0:
        raise InputError(f"--workers must be >= 1, got {so.workers}")
    ray = require_ray() if so.workers else None
    if so.segment_s <= 0:
        raise InputError(f"--segment-s must be > 0, got {so.segment_s}")
    if config.save_mask is not None:
        raise InputError("--save-mask is not supported with --workers")
    mask_key = mask_key if mask_key is not None else repr(estimator_factory)
    settings = settings_key(config, mask_key)
    warmup = 0 if config.full_frame else so.warmup_anchors * config.mask_every
    align = max(1, config.mask_every * max(1, config.mask_lookahead))
    reports: list[ScaleOutReport] = []
    todo: list[Job] = []
    for inp, out in jobs:
        report = ScaleOutReport(input=str(inp), output=str(out))
        reports.append(report)
        if skip_complete and is_complete(inp, out, scale=config.scale):
            report.skipped = True
            continue
        if str(inp) == "-" or str(out) == "-":
            raise InputError("--workers needs an input file and an output file, not '-' (a pipe)")
        info = probe(inp)
        if info.source != "file":
            raise InputError(f"--workers needs a video file, not an image sequence: {inp}")
        if is_sequence(out):
            raise InputError(f"--workers writes a video file, not numbered frames: {out}")
        check_output_path(out, input_path=inp, container=config.encode.container)
        plan = plan_segments(inp, segment_s=so.segment_s, warmup_frames=warmup, align=align)
        # absolute: Ray workers need not share the driver's working folder
        cache = (Path(so.cache_dir) if so.cache_dir else out.parent / ".vidsr-segments").resolve()
        cache.mkdir(parents=True, exist_ok=True)
        keys = [segment_key(s, settings) for s in plan.segments]
        # Matroska keeps no decode times for B-frames, so a join could not order them: its parts go in mp4
        suffix = ".mp4" if muxer_name(out, config.encode.container) == "matroska" else out.suffix or ".mkv"
        parts = [cache / f"{k}{suffix}" for k in keys]
        report.segments = len(plan.segments)
        report.in_size = (info.width, info.height)
        report.out_size = (info.width * config.scale, info.height * config.scale)
        job = Job(input=inp, output=out, info=info, plan=plan, keys=keys, parts=parts, report=report,
                   left={i for i, p in enumerate(parts) if not p.is_file()}, t0=time.perf_counter())
        report.cached = len(parts) - len(job.left)
        todo.append(job)
    total = sum(j.plan.frames for j in todo)
    cached_frames = sum(s.frames for j in todo for i, s in enumerate(j.plan.segments) if i not in j.left)
    for job in [j for j in todo if not j.left]:
        finish(job, config, keep_segments=so.keep_segments)
    pending = [(j, i) for j in todo for i in sorted(j.left)]
    if not pending:
        if on_progress is not None:
            on_progress(total, total)
    elif ray is None:
        _run_inline(pending, config=config, so=so, estimator_factory=estimator_factory, total=total,
                    cached_frames=cached_frames, on_progress=on_progress)
    else:
        _run(ray, pending, todo, config=config, so=so, estimator_factory=estimator_factory,
             total=total, cached_frames=cached_frames, on_progress=on_progress)
    if not so.keep_segments:  # the files of a batch share the cache: removed once all are joined
        for folder in {j.parts[0].parent for j in todo if j.parts}:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
    return reports


def _run_inline(pending: list[tuple[Job, int]], *, config: UpscaleConfig, so: ScaleOut, estimator_factory,
                total: int, cached_frames: int, on_progress) -> None:
    """``workers=0``: the segments one after another in this process (no Ray, no retries)."""
    worker = SegmentWorker(config, estimator_factory, None, None, 0)
    done = cached_frames
    for job, i in pending:
        result = worker.run(make_task(job, i, ship=False))
        done += result.frames
        record(job, i, result, config, keep_segments=so.keep_segments, join=True)
        if on_progress is not None:
            on_progress(min(done, total), total)


def _run(ray, pending: list[tuple[Job, int]], jobs: list[Job], *, config: UpscaleConfig, so: ScaleOut,
         estimator_factory, total: int, cached_frames: int, on_progress) -> None:
    local = so.address is None
    cpus = so.cpus_per_worker or (max(1.0, float((os.cpu_count() or 1) // so.workers)) if local else 1.0)
    with ray_session(ray, address=so.address, num_cpus=max(1, round(so.workers * cpus)),
                     object_store_mb=so.object_store_mb):
        ship = so.ship if so.ship is not None else not local
        gpus = so.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if config.device.startswith("cuda") else 0.0
        if gpus and ray.cluster_resources().get("GPU", 0) < gpus:
            raise BackendUnavailable(f"--device {config.device} asks for a GPU per worker, but the Ray cluster "
                                     "has no GPUs")
        model_bytes = None
        if ship and config.model and Path(config.model).is_file():
            model_bytes = Path(config.model).read_bytes()
        progress_name = f"vidsr-progress-{os.getpid()}-{time.monotonic_ns()}"
        progress = ray.remote(num_cpus=0)(Progress).options(name=progress_name).remote()
        actor_cls = ray.remote(SegmentWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=so.retries,
                                                      max_task_retries=so.retries)
        n = min(so.workers, len(pending))
        actors = [actor_cls.remote(config, estimator_factory, model_bytes, progress_name, int(cpus))
                  for _ in range(n)]
        try:
            _dispatch(ray, deque(pending), actors, progress, jobs, config=config, so=so, ship=ship, total=total,
                      cached_frames=cached_frames, on_progress=on_progress)
        finally:
            with contextlib.suppress(Exception):
                ray.get([a.close.remote() for a in actors], timeout=30)


def _dispatch(ray, pending: deque, actors: list, progress, jobs: list[Job], *, config: UpscaleConfig,
              so: ScaleOut, ship: bool, total: int, cached_frames: int, on_progress) -> None:
    from ray.exceptions import RayActorError, RayError, RayTaskError

    idle = list(actors)
    inflight: dict = {}
    failure: SegmentError | None = None
    last_count = -1
    with tempfile.TemporaryDirectory(prefix="vidsr-split-") as split_dir:
        while (pending and failure is None) or inflight:
            while idle and pending and failure is None:
                job, i = pending.popleft()
                actor = idle.pop()
                task = make_task(job, i, ship=ship)
                piece = None
                if ship:
                    path, _ = write_segment(job.input, task.segment,
                                            Path(split_dir) / f"{task.key}{task.piece_suffix}")
                    task = dataclasses.replace(task, piece_suffix=path.suffix)
                    piece = ray.put(path.read_bytes())
                    path.unlink()
                ref = actor.run.options(max_task_retries=so.retries, retry_exceptions=True).remote(task, piece)
                inflight[ref] = (actor, job, i)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.25)
            for ref in ready:
                actor, job, i = inflight.pop(ref)
                seg = job.plan.segments[i]
                try:
                    result: SegmentResult = ray.get(ref)
                except RayError as e:
                    if not isinstance(e, RayActorError):
                        idle.append(actor)
                    cause = e.cause if isinstance(e, RayTaskError) and e.cause is not None else e
                    detail = str(cause).strip().splitlines()[-1] if str(cause).strip() else ""
                    failure = failure or SegmentError(
                        f"segment {i + 1}/{len(job.plan.segments)} of {job.input} "
                        f"({job.plan.seconds(seg.start - job.plan.keyframes[0]):.1f} s on) failed "
                        f"{1 + so.retries} times: {type(cause).__name__}: {detail}; "
                        "finished segments are kept, run again to continue")
                    continue
                idle.append(actor)
                record(job, i, result, config, keep_segments=so.keep_segments, join=failure is None)
            if on_progress is not None:
                done = cached_frames + ray.get(progress.total.remote())
                if done != last_count:
                    last_count = done
                    on_progress(min(done, total), total)
    if failure is not None:
        raise failure


__all__ = ["ScaleOut", "ScaleOutReport", "require_ray", "upscale_distributed", "upscale_many"]
