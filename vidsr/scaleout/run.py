"""``upscale`` of many inputs: a batch of files in this process, or segments on Ray workers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vidsr.errors import VidsrError
from vidsr.masks.factory import MaskSpec, build_estimator
from vidsr.media.reader import probe
from vidsr.media.types import VideoInfo
from vidsr.pipeline.config import UpscaleConfig, UpscaleReport
from vidsr.pipeline.run import upscale_video
from vidsr.scaleout.batch import batch_jobs, find_inputs, is_batch, is_complete
from vidsr.scaleout.ray import ScaleOut, upscale_many
from vidsr.scaleout.work import ScaleOutReport


def plan_jobs(input: Path, output: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: each file of a folder or glob into the folder ``output``, else the one pair."""
    if is_batch(input):
        return batch_jobs(find_inputs(input), output)
    return [(input, output)]


@dataclass(frozen=True)
class FileResult:
    """One file of :func:`upscale_files`: skipped (complete already), failed, or its report."""

    input: Path
    output: Path
    report: UpscaleReport | None = None
    error: VidsrError | None = None

    @property
    def skipped(self) -> bool:
        return self.report is None and self.error is None


def upscale_files(jobs: Sequence[tuple[Path, Path]], *, config: UpscaleConfig, spec: MaskSpec,
                  on_start: Callable[[Path, VideoInfo], None] | None = None,
                  on_frame: Callable[[UpscaleReport], None] | None = None) -> Iterator[FileResult]:
    """Upscale the files one after another in this process, skipping complete outputs.

    A failed file is yielded with its error and the others go on, unless it is the only one.

    Args:
        on_start: called with each input and its probe before its frames are upscaled.
        on_frame: called after each frame, as :func:`~vidsr.pipeline.run.upscale_video` does.
    Raises:
        VidsrError: the only file failed.
    """
    for src, dst in jobs:
        if is_complete(src, dst, scale=config.scale):
            yield FileResult(input=src, output=dst)
            continue
        try:
            info = probe(src, rate=config.input_rate)
            estimator = None if config.full_frame else build_estimator(spec, frame_size=(info.height, info.width))
            if on_start is not None:
                on_start(src, info)
            report = upscale_video(src, dst, config=config, estimator=estimator, on_frame=on_frame)
        except VidsrError as e:
            if len(jobs) == 1:
                raise
            yield FileResult(input=src, output=dst, error=e)
            continue
        yield FileResult(input=src, output=dst, report=report)


def upscale_on_ray(jobs: Sequence[tuple[Path, Path]], *, config: UpscaleConfig, spec: MaskSpec, workers: int,
                   address: str | None, segment_s: float, skip_complete: bool,
                   on_progress: Callable[[int, int], None] | None = None) -> list[ScaleOutReport]:
    """Upscale the files in segments on ``workers`` Ray actors (see :func:`~vidsr.scaleout.ray.upscale_many`).

    The focus map is built in each actor; other masks from ``spec``, sized to the first input.
    """
    first = probe(jobs[0][0])  # an unreadable first input fails before Ray starts
    factory = None
    if not config.full_frame and (spec.kind != "focus" or spec.focus_point is not None):
        factory = functools.partial(build_estimator, spec, frame_size=(first.height, first.width))
    scale_out = ScaleOut(workers=workers, address=address, segment_s=segment_s)
    return upscale_many(jobs, config=config, scale_out=scale_out, estimator_factory=factory,
                        mask_key=repr(spec) if factory else "focus", skip_complete=skip_complete,
                        on_progress=on_progress)
