"""Segment-parallel upscaling on Ray: long videos and batches over many workers.

The driver (the process that calls :func:`upscale_distributed` / :func:`upscale_many`)
plans each input's segments at keyframes (:mod:`vidsr.media.segments`), hands them to a pool
of Ray actors, shows one progress count for all of them, and joins each input's upscaled
segments by stream copy once they are all done. Each actor loads the model once and
upscales one segment at a time: it cuts the segment out of the input by stream copy
(warm-up frames included), runs :func:`vidsr.pipeline.run.upscale_video` on it with a
:class:`~vidsr.pipeline.run.FrameWindow`, and writes the result into the segment cache.

The segment cache is a folder of finished segments named by a content key (the
segment's packets and window, the settings, the model's checksum). A segment whose file
is there is never computed again: a run that failed or was stopped continues where it
stopped when started again, and only the missing segments are computed.

Ray is optional (the ``[ray]`` extra) and imported only here, inside functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vidsr.errors import BackendUnavailable, InputError, VidsrError
from vidsr.media.io import VideoInfo, atomic_output, check_output_path, is_sequence, muxer_name, probe
from vidsr.masks.focus import MaskEstimator
from vidsr.pipeline.run import FrameWindow, UpscaleConfig, load_engine, upscale_video
from vidsr.media.segments import (
    Segment,
    SegmentPlan,
    join_segments,
    plan_segments,
    write_segment,
)

RAY_HINT = "pip install 'vidsr[ray]'"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts", ".mts", ".m2ts", ".mxf", ".flv",
                  ".wmv", ".mpg", ".mpeg", ".y4m", ".nut")
# settings that do not change a segment's pixels
_NOT_IN_KEY = ("copy_streams", "queue_size", "save_mask", "strict", "resume", "segment_frames")


class SegmentError(VidsrError, RuntimeError):
    """A segment kept failing after its retries."""


@dataclass(frozen=True)
class ScaleOut:
    """How to spread a run over Ray workers.

    Args:
        workers: actors (each loads the model once and upscales one segment at a time);
            0 runs the segments one after another in this process, without Ray (debugging).
        address: ``None`` starts a local Ray on this machine; ``"auto"`` or ``"HOST:PORT"``
            joins a running cluster (``ray start --head`` / ``ray start --address``).
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


def require_ray():
    """Import Ray or fail with one line naming the extra."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(f"--workers needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


# ---------------------------------------------------------------------------------------- batches

def find_inputs(pattern: str | Path) -> list[Path]:
    """Video files named by a folder (its video files, sorted) or a glob pattern."""
    p = Path(pattern)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES
                       and not f.name.startswith("."))
        if not files:
            raise InputError(f"no video files ({', '.join(VIDEO_SUFFIXES[:4])}, ...) in folder {p}")
        return files
    files = sorted(Path(f) for f in glob.glob(str(pattern)) if Path(f).is_file())
    if not files:
        raise InputError(f"no files match {pattern}")
    return files


def is_batch(input: str | Path) -> bool:
    """True when INPUT names many files: a folder, or a glob pattern that is not itself a file."""
    p = Path(input)
    return p.is_dir() or (not p.exists() and glob.has_magic(str(input)))


def batch_jobs(inputs: Sequence[Path], outdir: Path, *, suffix: str | None = None) -> list[tuple[Path, Path]]:
    """(input, output) pairs: ``outdir/NAME`` with the input's extension (or ``suffix``)."""
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"with many inputs, -o must be a folder, and {outdir} is a file")
    outdir.mkdir(parents=True, exist_ok=True)
    jobs, seen = [], {}
    for f in inputs:
        out = outdir / (f.stem + (suffix or f.suffix or ".mkv"))
        if out in seen:
            raise InputError(f"{f} and {seen[out]} would both be written to {out}")
        if out.resolve() == f.resolve():
            raise InputError(f"output folder {outdir} holds the input {f}: choose another folder")
        seen[out] = f
        jobs.append((f, out))
    return jobs


def is_complete(input_path: Path, output_path: Path, *, scale: int | None = None) -> bool:
    """Whether ``output_path`` is a finished upscale of ``input_path``: it exists (outputs are
    written under a temp name and renamed when done), is readable, has the scaled size when
    ``scale`` is given, and lasts as long as the input (within two frames)."""
    if not output_path.is_file() or output_path.stat().st_size == 0:
        return False
    try:
        a, b = probe(input_path), probe(output_path)
    except VidsrError:
        return False
    if scale is not None and (b.width, b.height) != (a.width * scale, a.height * scale):
        return False
    if a.duration_s is None or b.duration_s is None:
        return a.frames is None or b.frames is None or a.frames == b.frames
    return abs(a.duration_s - b.duration_s) <= 2.0 / a.fps + 1e-3


# ----------------------------------------------------------------------------------- cache keys

def settings_key(config: UpscaleConfig, mask_key: str) -> str:
    """Hash of everything besides the input that changes a segment's output."""
    from vidsr import __version__ as version
    from vidsr.weights import DEFAULT_MODELS, read_manifest, sha256_file

    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_KEY}
    model = config.model or DEFAULT_MODELS.get(config.scale, "")
    path = Path(model)
    if path.is_file():
        model_id = sha256_file(path)
    else:
        entry = read_manifest().get(model)
        model_id = entry.sha256 if entry else model
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(sorted(settings.items())).encode())
    h.update(f"|{model_id}|{mask_key}|{version}".encode())
    return h.hexdigest()


def _segment_key(segment: Segment, settings: str) -> str:
    return hashlib.blake2b(f"{segment.digest}|{settings}".encode(), digest_size=16).hexdigest()


def _window(plan: SegmentPlan, s: Segment) -> FrameWindow:
    tb = plan.time_base
    return FrameWindow(start=Fraction(s.start) * tb, end=None if s.end is None else Fraction(s.end) * tb,
                       warmup=Fraction(s.warmup) * tb if s.warmup_frames else None)


# ------------------------------------------------------------------------------------- the worker

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
    key: str
    frames: int
    seconds: float
    attempt: int
    warnings: tuple[str, ...] = ()
    data: bytes | None = None


class SegmentWorker:
    """Upscales segments; made a Ray actor by :func:`upscale_many` (``ray.remote(SegmentWorker)``).

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


class Progress:
    """Frames done per segment key (a retried segment starts again from 0)."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}

    def set(self, key: str, frames: int) -> None:
        self.done[key] = frames

    def total(self) -> int:
        return sum(self.done.values())


# ------------------------------------------------------------------------------------- the driver

@dataclass
class _Job:
    input: Path
    output: Path
    info: VideoInfo
    plan: SegmentPlan
    keys: list[str]
    parts: list[Path]
    report: ScaleOutReport
    left: set[int] = field(default_factory=set)
    t0: float = 0.0


def _connect(ray, so: ScaleOut, cpus: float) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if so.address is None:
            # Ray runs workers at nice 15 by default; a local run gets the priority a one-process run has
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=max(1, round(so.workers * cpus)), object_store_memory=so.object_store_mb << 20,
                     **kwargs)
        else:
            ray.init(address=so.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {so.address}" if so.address else "a local Ray instance"
        raise BackendUnavailable(f"cannot start or reach {where}: {e}") from None
    return True


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
    todo: list[_Job] = []
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
        keys = [_segment_key(s, settings) for s in plan.segments]
        # Matroska keeps no decode times for B-frames, so a join could not order them: its parts go in mp4
        suffix = ".mp4" if muxer_name(out, config.encode.container) == "matroska" else out.suffix or ".mkv"
        parts = [cache / f"{k}{suffix}" for k in keys]
        report.segments = len(plan.segments)
        report.in_size = (info.width, info.height)
        report.out_size = (info.width * config.scale, info.height * config.scale)
        job = _Job(input=inp, output=out, info=info, plan=plan, keys=keys, parts=parts, report=report,
                   left={i for i, p in enumerate(parts) if not p.is_file()}, t0=time.perf_counter())
        report.cached = len(parts) - len(job.left)
        todo.append(job)
    total = sum(j.plan.frames for j in todo)
    cached_frames = sum(s.frames for j in todo for i, s in enumerate(j.plan.segments) if i not in j.left)
    for job in [j for j in todo if not j.left]:
        _finish(job, config, so)
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


def _task(job: _Job, i: int, *, ship: bool) -> SegmentTask:
    seg = job.plan.segments[i]
    return SegmentTask(key=job.keys[i], source=str(job.input.resolve()), segment=seg, window=_window(job.plan, seg),
                       info=job.info, piece_suffix=job.input.suffix or ".nut",
                       dest=None if ship else str(job.parts[i]), out_suffix=job.parts[i].suffix)


def _done(job: _Job, i: int, result: SegmentResult, config: UpscaleConfig, so: ScaleOut, *, join: bool) -> None:
    """Book a finished segment (storing shipped bytes in the cache); join the file when it was the last."""
    if result.data is not None:
        with atomic_output(job.parts[i]) as tmp:
            Path(tmp).write_bytes(result.data)
    job.report.computed += 1
    job.report.retried += result.attempt - 1
    job.report.warnings.extend(w for w in result.warnings if w not in job.report.warnings)
    job.left.discard(i)
    if not job.left and join:
        _finish(job, config, so)


def _run_inline(pending: list[tuple[_Job, int]], *, config: UpscaleConfig, so: ScaleOut, estimator_factory,
                total: int, cached_frames: int, on_progress) -> None:
    """``workers=0``: the segments one after another in this process (no Ray, no retries)."""
    worker = SegmentWorker(config, estimator_factory, None, None, 0)
    done = cached_frames
    for job, i in pending:
        result = worker.run(_task(job, i, ship=False))
        done += result.frames
        _done(job, i, result, config, so, join=True)
        if on_progress is not None:
            on_progress(min(done, total), total)


def _run(ray, pending: list[tuple[_Job, int]], jobs: list[_Job], *, config: UpscaleConfig, so: ScaleOut,
         estimator_factory, total: int, cached_frames: int, on_progress) -> None:
    local = so.address is None
    cpus = so.cpus_per_worker or (max(1.0, float((os.cpu_count() or 1) // so.workers)) if local else 1.0)
    started = _connect(ray, so, cpus)
    try:
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
    finally:
        if started:
            ray.shutdown()


def _dispatch(ray, pending: deque, actors: list, progress, jobs: list[_Job], *, config: UpscaleConfig,
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
                task = _task(job, i, ship=ship)
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
                _done(job, i, result, config, so, join=failure is None)
            if on_progress is not None:
                done = cached_frames + ray.get(progress.total.remote())
                if done != last_count:
                    last_count = done
                    on_progress(min(done, total), total)
    if failure is not None:
        raise failure


def _finish(job: _Job, config: UpscaleConfig, so: ScaleOut) -> None:
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
    if not so.keep_segments:
        for p in job.parts:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


__all__ = ["ScaleOut", "ScaleOutReport", "SegmentError", "batch_jobs", "find_inputs", "is_batch", "is_complete",
           "require_ray", "settings_key", "upscale_distributed", "upscale_many"]
