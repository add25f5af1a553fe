"""``vidsr mask``: run only the mask stage and write the soft mask as a grey video."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from vidsr.errors import InputError
from vidsr.media.codecs import EncodeOptions
from vidsr.media.output import atomic_output, check_output_path
from vidsr.media.reader import probe, read_items
from vidsr.media.types import Frame
from vidsr.media.writer import VideoWriter
from vidsr.masks.base import ThresholdStats
from vidsr.masks.tracker import MaskTracker


@dataclass
class MaskReport:
    """What ``write_mask_video`` did. ``stages``: seconds per stage, summed over frames."""

    input: str
    output: str
    estimator: str
    frames: int = 0
    passes: int = 0
    cuts: int = 0
    fg_fraction_sum: float = 0.0
    threshold: ThresholdStats = field(default_factory=ThresholdStats)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def fg_fraction(self) -> float:
        return self.fg_fraction_sum / self.frames if self.frames else 0.0


def _chunks(frames: Iterator[Frame], n: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for f in frames:
        chunk.append(f)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_mask_video(input_path: str | Path, output_path: str | Path, *, tracker: MaskTracker,
                     lookahead: int = 1, encode: EncodeOptions | None = None,
                     on_frame: Callable[[MaskReport], None] | None = None) -> MaskReport:
    """Write ``tracker``'s feathered mask of every frame of ``input_path`` as a grey video.

    The mask video has the input's size, frame count and timestamps (no audio), so it
    lines up frame by frame with the input (and, scaled, with the upscaled output).

    Args:
        tracker: the mask tracker (its estimator, anchor spacing, smoothing, carry).
        lookahead: anchor frames whose scores are computed in one estimator call
            (frames are handed to the tracker ``lookahead x tracker.every`` at a time).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    info = probe(input_path)
    check_output_path(output_path, input_path=input_path)
    report = MaskReport(input=str(input_path), output=str(output_path), estimator=tracker.estimator.name)
    t_start = time.perf_counter()
    frames = (item for item in read_items(input_path, copy_streams=False) if isinstance(item, Frame))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(output_path))
        writer = VideoWriter(path=tmp, info=info, width=info.width, height=info.height,
                             options=encode or EncodeOptions(), copy_streams=False)
        stack.callback(writer.abort)
        for chunk in _chunks(frames, max(1, lookahead) * tracker.every):
            t0 = time.perf_counter()
            masks = tracker.update_many([f.image for f in chunk])
            t1 = time.perf_counter()
            report.stages["mask"] += t1 - t0
            for f, m in zip(chunk, masks):
                grey = (np.clip(m.alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
                writer.write(grey, pts=f.pts, time_base=f.time_base, duration=f.duration, fmt="gray")
                report.frames += 1
                report.fg_fraction_sum += m.fg_fraction
                report.threshold.add(m.threshold)
                if on_frame is not None:
                    on_frame(report)
            report.stages["encode"] += time.perf_counter() - t1
        if report.frames == 0:
            raise InputError(f"no video frames could be decoded from {input_path}")
        writer.close()
    report.seconds = time.perf_counter() - t_start
    report.passes, report.cuts = tracker.passes, tracker.cuts
    return report
