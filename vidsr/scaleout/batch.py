"""Batches: the video files a folder or a glob names, their outputs, and which are already done."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from vidsr.errors import InputError, VidsrError
from vidsr.media.reader import probe

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts", ".mts", ".m2ts", ".mxf", ".flv",
                  ".wmv", ".mpg", ".mpeg", ".y4m", ".nut")


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


__all__ = ["VIDEO_SUFFIXES", "batch_jobs", "find_inputs", "is_batch", "is_complete"]
