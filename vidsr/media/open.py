"""Opening inputs for reading: files, image sequences (``frames/%06d.png``) and stdin (``-``).

Each failure becomes one :class:`~vidsr.errors.InputError` line that names the input.
"""

from __future__ import annotations

import os
import re
import sys
from fractions import Fraction
from pathlib import Path

import av
import av.error

from vidsr.errors import InputError
from vidsr.media.types import SEQUENCE_NUMBER, STDIO, is_sequence


def _av_open(target, label: str, **kwargs) -> av.container.InputContainer:
    try:
        return av.open(target, mode="r", **kwargs)
    except av.error.EOFError:
        raise InputError(f"no video frames in {label} (the file ends before any data: empty or truncated)") from None
    except av.error.InvalidDataError as e:
        raise InputError(f"not a readable video file: {label} ({e.strerror or e})") from None
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"cannot open {label}: {getattr(e, 'strerror', None) or e}") from None


def _open_sequence(p: Path, rate: Fraction | None) -> av.container.InputContainer:
    if not p.parent.is_dir():
        raise InputError(f"image sequence folder not found: {p.parent}")
    m = SEQUENCE_NUMBER.search(p.name)
    digits = rf"\d{{{int(m.group(2))},}}" if m.group(2) else r"\d+"
    regex = re.compile(re.escape(p.name[:m.start()]) + f"({digits})" + re.escape(p.name[m.end():]) + "$")
    numbers = [int(n.group(1)) for n in map(regex.match, os.listdir(p.parent)) if n]
    if not numbers:
        raise InputError(f"no images match {p}")
    options = {"framerate": str(rate or 25), "start_number": str(min(numbers))}
    return _av_open(str(p), str(p), format="image2", options=options)


def open_input(path: str | os.PathLike | None, *, rate: Fraction | None = None) -> av.container.InputContainer:
    """Open a file, an image-sequence pattern (at ``rate`` frames/s, default 25) or ``-`` (stdin)."""
    if str(path) == STDIO:
        stdin = sys.stdin.buffer
        if stdin.isatty():
            raise InputError("input '-' reads a video from stdin, but stdin is a terminal")
        return _av_open(stdin, "stdin")
    p = Path(path)
    if is_sequence(p):
        return _open_sequence(p, rate)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a folder, not a video file: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"input is an empty file: {p}")
    return _av_open(str(p), str(p))


def open_file(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a file (not a pipe or an image sequence) to copy its packets."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input not found or not a file: {p}")
    try:
        return av.open(str(p))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"cannot open {p}: {getattr(e, 'strerror', None) or e}") from None
