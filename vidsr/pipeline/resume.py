"""Resumable runs (``vidsr upscale --resume``): the output is made in segments kept beside it.

A resumable run encodes the video in *segments*, each a run of whole input GOPs: a new
segment starts at the first input keyframe once the current one holds ``segment_frames``
frames. Every segment gets a fresh encoder (it starts with an IDR frame) and a fresh mask
tracker (as after a scene cut), is written to its own file in a work folder beside the
output (``.NAME.vidsr-resume/``) and then committed to a journal. A stopped run, started
again with ``--resume`` and the same input and settings, seeks the input to the keyframe
that starts the first unfinished segment and goes on from there. At the end the segments'
video packets are joined (decode timestamps renumbered across the joins) with the input's
audio and subtitle streams into the output, and the work folder is removed.

What "the same output as one run" means here: an interrupted and resumed run writes the
same bytes as an uninterrupted ``--resume`` run (decoder, encoder and network are
deterministic on one machine; the test suite checks the bytes). It is *not* byte-equal to
a run without ``--resume``: the encoder and the mask restart at every segment start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import av.error
import numpy as np

from vidsr.errors import InputError, OutputError
from vidsr.fs import atomic_write
from vidsr.media.segments import renumber_segments
from vidsr.media.streams import carries, is_side, main_video_stream
from vidsr.media.types import Frame, Passthrough
from vidsr.media.writer import VideoWriter

JOURNAL = "journal.json"
VERSION = 2  # 2: the key holds UpscaleConfig.output_key (model by sha256)
SEGMENT_SUFFIX = ".nut"
"""Segments are NUT files: NUT keeps any time base exactly (mp4's edit lists round a late start
to the movie's 1 ms clock, Matroska rounds every timestamp to 1 ms) and holds any codec; its
missing dts are rebuilt when the segments are joined anyway."""


@dataclass(frozen=True)
class SegmentStart:
    """Marker in the frame stream: a new segment starts with the frame at ``pts``."""

    pts: int


def work_dir_for(output: Path) -> Path:
    """The hidden folder beside ``output`` that holds a resumable run's segments."""
    return output.with_name(f".{output.name}.vidsr-resume")


def fingerprint(input_path: Path, output_key: str) -> str:
    """What a journal must match to be continued: the input file (path, size, mtime) and
    ``output_key`` (:meth:`vidsr.pipeline.config.UpscaleConfig.output_key`: settings and model)."""
    st = input_path.stat()
    ident = {"input": str(input_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "output": output_key, "version": VERSION}
    blob = json.dumps(ident, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


class Segmenter:
    """Decides, in the processing thread, where segments start; resets the mask there."""

    def __init__(self, min_frames: int) -> None:
        if min_frames < 1:
            raise ValueError(f"segment_frames must be >= 1, got {min_frames}")
        self.min_frames = min_frames
        self.count = 0

    def starts(self, frame: Frame) -> bool:
        """True when ``frame`` starts a segment: the first frame, or a keyframe after enough frames."""
        start = self.count == 0 or (frame.key and self.count >= self.min_frames)
        self.count = 1 if start else self.count + 1
        return start

    @staticmethod
    def reset_tracker(proc) -> None:
        """A fresh mask tracker with the same settings (the state a new shot starts from)."""
        proc.retired_passes += proc.tracker.passes
        proc.retired_cuts += proc.tracker.cuts
        proc.tracker = dataclasses.replace(proc.tracker, state=type(proc.tracker.state)())


class ResumeJob:
    """The journal and segment files of one resumable run."""

    def __init__(self, output: Path, key: str) -> None:
        self.output = output
        self.dir = work_dir_for(output)
        self.key = key
        self.segments: list[dict] = []
        self.next_pts: int | None = None
        self.finished = False
        journal = self.dir / JOURNAL
        if journal.exists():
            try:
                data = json.loads(journal.read_text())
            except (OSError, ValueError) as e:
                raise OutputError(f"cannot read resume journal {journal}: {e}") from None
            if data.get("key") != key:
                raise InputError(f"{self.dir} holds a resumable run of another input or other settings; "
                                 "delete it, or run with the same input and options")
            self.segments = [s for s in data["segments"] if self._intact(s)]
            if len(self.segments) == len(data["segments"]):
                self.next_pts, self.finished = data.get("next_pts"), bool(data.get("finished"))
            else:  # a segment file went missing: continue after the last intact one in order
                self.segments = self.segments[:self._prefix(data["segments"])]
                self.next_pts = self._next_after(data["segments"], len(self.segments))
                self.finished = False
        else:
            try:
                self.dir.mkdir(exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create {self.dir}: {e.strerror}") from None
        for stale in self.dir.glob("*.partial*"):
            stale.unlink()

    def _intact(self, seg: dict) -> bool:
        p = self.dir / seg["file"]
        return p.is_file() and p.stat().st_size == seg["bytes"]

    def _prefix(self, segs: list[dict]) -> int:
        n = 0
        while n < len(segs) and self._intact(segs[n]):
            n += 1
        return n

    @staticmethod
    def _next_after(segs: list[dict], n: int) -> int | None:
        return segs[n]["start_pts"] if n < len(segs) else None

    @property
    def done_frames(self) -> int:
        return sum(s["frames"] for s in self.segments)

    @property
    def resuming(self) -> bool:
        return bool(self.segments)

    def _save(self) -> None:
        data = {"key": self.key, "version": VERSION, "segments": self.segments,
                "next_pts": self.next_pts, "finished": self.finished}
        atomic_write(self.dir / JOURNAL, json.dumps(data, indent=1).encode(), what="resume journal")

    def commit(self, partial: Path, *, start_pts: int, frames: int, next_pts: int | None) -> None:
        """Make a finished segment file permanent and record it."""
        name = f"seg-{len(self.segments):05d}{SEGMENT_SUFFIX}"
        os.replace(partial, self.dir / name)
        self.segments.append({"file": name, "start_pts": start_pts, "frames": frames,
                              "bytes": (self.dir / name).stat().st_size})
        self.next_pts, self.finished = next_pts, next_pts is None
        self._save()

    def partial_path(self) -> Path:
        return self.dir / f"seg-{len(self.segments):05d}.partial{SEGMENT_SUFFIX}"

    def writer(self, make: Callable[[Path], VideoWriter]) -> SegmentedWriter:
        return SegmentedWriter(self, make)

    def assemble(self, path: Path, make: Callable[[Path, av.stream.Stream, list[av.stream.Stream]], VideoWriter],
                 input_path: Path, time_base: Fraction, copy_streams: bool) -> list[str]:
        """Join the segments' video with the input's audio/subtitles into ``path``; returns warnings.

        ``make(path, template, sources)`` builds the final writer: video stream copied from
        ``template`` (a segment's), side streams from ``sources`` (the input's). ``time_base``:
        the input video's, in which the journal's ``start_pts`` are.
        """
        if not self.finished or not self.segments:
            raise OutputError(f"resumable run in {self.dir} is not complete")
        with contextlib.ExitStack() as stack:
            parts = [stack.enter_context(contextlib.closing(av.open(str(self.dir / s["file"]))))
                     for s in self.segments]
            src = stack.enter_context(contextlib.closing(av.open(str(input_path)))) if copy_streams else None
            sources = []
            if src is not None:
                video = main_video_stream(src, input_path)
                sources = [s for s in src.streams if is_side(s) and s.index != video.index]
            writer = make(path, parts[0].streams.video[0], sources)
            stack.callback(writer.abort)
            video = renumber_segments(parts, [s["start_pts"] * time_base for s in self.segments])
            side = (Passthrough(packet=p, stream_index=p.stream.index)
                    for p in src.demux(*sources) if carries(p)) if sources else iter(())
            for item in heapq.merge(video, side, key=_seconds):
                if isinstance(item, Passthrough):
                    writer.copy(item)
                else:
                    writer.mux_video(item)
            writer.close()
            return writer.warnings

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _seconds(item) -> float:
    p = item.packet if isinstance(item, Passthrough) else item
    t = p.dts if p.dts is not None else p.pts
    return float(t * p.time_base) if t is not None else 0.0


class SegmentedWriter:
    """The pipeline's writer in a resumable run: one :class:`VideoWriter` per segment.

    The processing loop sends :class:`SegmentStart` before each segment's first frame;
    the finished segment is closed and committed then (and at :meth:`close`).
    """

    def __init__(self, job: ResumeJob, make: Callable[[Path], VideoWriter]) -> None:
        self.job = job
        self.make = make
        self.current: VideoWriter | None = None
        self.start_pts = 0
        self.frames = 0
        self.warnings: list[str] = []

    def start_segment(self, marker: SegmentStart) -> None:
        self._finish(next_pts=marker.pts)
        self.current = self.make(self.job.partial_path())
        if not self.warnings:
            self.warnings = list(self.current.warnings)
        self.start_pts, self.frames = marker.pts, 0

    def _finish(self, *, next_pts: int | None) -> None:
        if self.current is None:
            return
        w, self.current = self.current, None
        w.close()
        self.job.commit(w.path, start_pts=self.start_pts, frames=self.frames, next_pts=next_pts)

    def write(self, image: np.ndarray, *, pts: int, time_base: Fraction, duration: int | None,
              fmt: str = "rgb24") -> None:
        if self.current is None:
            raise RuntimeError("SegmentedWriter.write before start_segment")
        self.current.write(image, pts=pts, time_base=time_base, duration=duration, fmt=fmt)
        self.frames += 1

    def copy(self, item: Passthrough) -> None:
        """Side streams are added when the segments are joined (:meth:`ResumeJob.assemble`)."""

    def close(self) -> None:
        self._finish(next_pts=None)

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            with contextlib.suppress(FileNotFoundError):
                self.current.path.unlink()
            self.current = None
