"""Atomic file writes: a temp file beside the target, renamed over it once complete.

A reader never sees a half-written file, and a failed or interrupted write leaves the old
file (or none) in place. Temp names are hidden, contain ``vidsr-`` and the process and
thread ids, so concurrent writers of one target do not collide.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

from vidsr.errors import OutputError


def _tag() -> str:
    return f"{os.getpid()}-{threading.get_ident()}"


def temp_path_for(final: Path) -> Path:
    """A hidden temp file next to ``final`` that keeps its extension (so a muxer picked by name is the same)."""
    return final.with_name(f".{final.stem}.vidsr-{_tag()}.tmp{final.suffix}")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path (:func:`temp_path_for`) to write; on success rename it to ``final``,
    on any error remove it.

    Raises:
        OutputError: the finished file cannot be moved to ``final``.
    """
    tmp = temp_path_for(final)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    try:
        os.replace(tmp, final)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise OutputError(f"cannot move finished output to {final}: {e.strerror}") from None


def atomic_write(path: Path, data: bytes, *, what: str) -> None:
    """Write ``data`` to ``path`` (making its folder) through a synced temp file.

    The temp file ends in ``.tmp``, so nothing that lists files by extension sees it.

    Args:
        what: how the error names the file, e.g. ``"ONNX file"``.
    Raises:
        OutputError: ``cannot write {what} {path}: {reason}``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.vidsr-{_tag()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # e.g. the folder is a file: there is no temp file either
            tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {what} {path}: {e.strerror}") from None
