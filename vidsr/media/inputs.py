"""Inputs as a command line gives them: a video on stdin, a frame rate written as text."""

from __future__ import annotations

import shutil
import sys
from fractions import Fraction
from pathlib import Path

from vidsr.errors import InputError


def spool_stdin(path: Path) -> Path:
    """Copy stdin to ``path``: a pipe can be read only once, and probing and the run both read it.

    Raises:
        InputError: stdin is a terminal, or empty.
    """
    if sys.stdin.isatty():
        raise InputError("input '-' reads a video from stdin, but stdin is a terminal")
    with open(path, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    if path.stat().st_size == 0:
        raise InputError("input '-': stdin was empty")
    return path


def parse_rate(text: str, *, option: str) -> Fraction:
    """A frame rate such as ``24``, ``29.97`` or ``30000/1001``.

    Raises:
        InputError: not a number or ratio, or not above 0 (the message names ``option``).
    """
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{option} must be a number or a ratio such as 30000/1001, got {text!r}") from None
    if value <= 0:
        raise InputError(f"{option} must be > 0, got {text}")
    return value
