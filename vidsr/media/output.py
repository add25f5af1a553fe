"""Where the output goes: checking the path before a run, and writing it atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

import av
import av.error

from vidsr.errors import OutputError
from vidsr.fs import atomic_path, temp_path_for
from vidsr.media.codecs import IMAGE_CODECS, image_codec
from vidsr.media.types import STDIO, is_sequence


def check_output_path(output: Path, *, input_path: Path | None = None, container: str | None = None) -> None:
    """Fail early (one clear line) when ``output`` cannot be written (``-``, stdout, always can)."""
    if str(output) == STDIO:
        return
    output = Path(output)
    if input_path is not None and str(input_path) != STDIO and output.resolve() == Path(input_path).resolve():
        raise OutputError(f"output is the same file as the input: {output}")
    if output.is_dir():
        raise OutputError(f"output is a folder: {output}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    if not output.suffix and not container:
        raise OutputError(f"output needs a container extension such as .mp4 or .mkv: {output}")
    if not is_sequence(output) and output.suffix.lower() in IMAGE_CODECS and not container:
        raise OutputError(f"{output} is one image: to write frames, give a numbered pattern such as "
                          f"{output.with_name(output.stem + '_%06d' + output.suffix)}")
    if is_sequence(output):
        image_codec(output)
    probe_path = temp_path_for(output)
    try:
        with open(probe_path, "wb"):
            pass
    except OSError as e:
        raise OutputError(f"cannot create files in {parent}: {e.strerror}") from None
    try:
        av.open(str(probe_path), mode="w", format=container).close()
    except (ValueError, av.error.FFmpegError) as e:
        reason = getattr(e, "strerror", None) or e
        raise OutputError(f"cannot write {output} (extension {output.suffix!r}): {reason}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe_path.unlink()


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temp path; on success rename it to ``final``, on any error remove it.

    ``-`` (stdout) is yielded as is: a stream cannot be taken back, a failure is only in the exit code.
    """
    if str(final) == STDIO:
        yield final
        return
    if is_sequence(final):
        yield from _atomic_sequence(final)
        return
    with atomic_path(final) as tmp:
        yield tmp


def _atomic_sequence(pattern: Path) -> Iterator[Path]:
    """:func:`atomic_output` for numbered frames: they are written into a hidden folder beside
    them and moved into place at the end."""
    folder = pattern.parent / f".vidsr-{os.getpid()}.tmp-frames"
    folder.mkdir(exist_ok=True)
    try:
        yield folder / pattern.name
        try:  # only the move: an error while writing keeps its own message
            for f in sorted(folder.iterdir()):
                os.replace(f, pattern.parent / f.name)
        except OSError as e:
            raise OutputError(f"cannot move finished frames to {pattern.parent}: {e.strerror}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
