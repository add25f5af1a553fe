"""The streaming graph: decode -> mask -> tile-gated SR -> composite -> encode.

Decode, mask and encode run in background threads joined by bounded queues
(:mod:`vidsr.pipeline.stages`), so memory is bounded by the queue sizes, not by the video's
length, and the CPU work of PyAV, OpenCV and the network overlaps; on the CPU, SR + composite
run on two frames at once (:func:`vidsr.pipeline.config.frame_workers`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from vidsr.backends import Engine, backend_from_name, create_engine
from vidsr.errors import InputError
from vidsr.frame import FrameProcessor, build_processor
from vidsr.masks.base import MaskEstimator
from vidsr.media.output import atomic_output, check_output_path
from vidsr.media.reader import Reader
from vidsr.media.types import STDIO, DecodeStats, VideoInfo, is_sequence
from vidsr.media.writer import VideoWriter
from vidsr.pipeline.config import FrameWindow, UpscaleConfig, UpscaleReport, frame_workers, merge_window_px
from vidsr.pipeline.resume import ResumeJob, Segmenter, fingerprint
from vidsr.pipeline.stages import (END, ThreadClock, TimedQueue, decode_worker, encode_worker, mask_worker,
                                   process_loop, put)
from vidsr.platform import frame_threads
from vidsr.checkpoint import resolve_model

MASKED_QUEUE_BYTES = 512 << 20  # decoded frames the mask thread may keep ahead of SR


def load_engine(config: UpscaleConfig) -> Engine:
    """Load ``config.model`` and build its engine for ``config``'s backend, device and precision."""
    model, desc = resolve_model(config.model, scale=config.scale)
    return create_engine(model, desc, backend_from_name(config.backend, device=config.device,
                                                        precision=config.precision,
                                                        tile=config.tile, batch=config.batch))


def processor_for(info: VideoInfo, config: UpscaleConfig, estimator: MaskEstimator | None = None, *,
                  engine: Engine | None = None) -> FrameProcessor:
    """The processor ``vidsr upscale`` runs for ``info``'s frame size and ``config``: loads the model
    and builds its engine (unless ``engine``), plans tiles and makes the mask tracker.

    ``engine``: an engine built before (a worker that upscales many segments loads the model once).
    """
    engine = engine if engine is not None else load_engine(config)
    return build_processor(
        engine=engine, height=info.height, width=info.width, tile=config.tile,
        merge_px=merge_window_px(device=config.device, backend=config.backend, merge=config.merge),
        estimator=estimator, mask_every=config.mask_every, fg_threshold=config.fg_threshold,
        feather_px=config.feather_px, mask_carry=config.mask_carry, mask_lookahead=max(1, config.mask_lookahead),
        bg=config.bg, batch=config.batch, full_frame=config.full_frame)


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
        window: upscale only this stretch, warming the mask up before it (``vidsr.scaleout.ray``).
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
        job = ResumeJob(output_path, fingerprint(input_path, config.output_key(mask_key=repr(estimator))))
        segments = Segmenter(config.segment_frames)
        if job.next_pts is not None:
            reader.seek(job.next_pts)
    proc = processor_for(info, config, estimator, engine=engine)
    s = config.scale
    size = (info.width * s, info.height * s)
    report = UpscaleReport(input=str(input_path), output=str(output_path), in_size=(info.width, info.height),
                           out_size=size, engine=proc.engine.label, expected_frames=info.frames,
                           resumed_frames=job.done_frames if job else 0)
    stop = threading.Event()
    clock = ThreadClock()  # where each thread's time goes (report.threads)
    q_in: queue.Queue = TimedQueue(config.queue_size, clock=clock)
    # room for a whole mask chunk, so the mask thread scores the next chunk while SR works on this one
    # (within MASKED_QUEUE_BYTES of decoded frames, so big frames do not pile up)
    frame_bytes = max(1, info.width * info.height * 3 * 2)  # up to 16 bits per sample
    masked_size = max(config.queue_size, min(proc.mask_chunk, MASKED_QUEUE_BYTES // frame_bytes))
    q_masked: queue.Queue = TimedQueue(masked_size, clock=clock)
    q_out: queue.Queue = TimedQueue(config.queue_size, clock=clock)
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
            dec = threading.Thread(target=decode_worker, name="vidsr-decode", daemon=True,
                                   args=(reader, q_in, stop, report.stages, window))
            msk = threading.Thread(target=mask_worker, name="vidsr-mask", daemon=True,
                                   args=(proc, q_in, q_masked, stop, report.stages, segments))
            enc = threading.Thread(target=encode_worker, name="vidsr-encode", daemon=True,
                                   args=(writers, q_out, stop, enc_failure, report.stages))
            threads = (dec, msk, enc)
            with frame_threads(workers):
                for th in threads:
                    th.start()
                try:
                    process_loop(proc, q_masked, q_out, stop, report, on_frame, want_mask=mask_tmp is not None,
                                 workers=workers)
                    put(q_out, END, stop)
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
    report.threads = clock.summary(t_start)
    report.bad_packets = stats.bad_packets
    report.mask_passes = proc.retired_passes + proc.tracker.passes
    report.cuts = proc.retired_cuts + proc.tracker.cuts
    report.warnings.extend(stats.notes)
    return report
