"""What the commands print besides their result: progress bars, warnings, one-line failures.

:class:`Group` turns every error into one line and an exit code: a :class:`~vidsr.errors.VidsrError`
or an unexpected exception exits 1, Ctrl-C 130, SIGTERM 143.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

import click

from vidsr.errors import VidsrError


def fail(message: str) -> NoReturn:
    """Stop the command with ``Error: message`` and exit code 1."""
    raise click.ClickException(message)


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr."""
    click.echo(f"warning: {message}", err=True)


def logger(quiet: bool) -> Callable[[str], None]:
    """A ``log(message)`` that writes a line to stderr, or nothing with ``-q``."""
    return (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))


def progress_bar(*, quiet: bool, total: int | None = None, initial: int = 0, desc: str | None = None):
    """A frame counter on stderr (a tqdm bar), silent with ``-q``."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="frame", disable=quiet, dynamic_ncols=True, file=sys.stderr,
                desc=desc)


def warn_slow_bf16(precision: str, device: str, option: str) -> None:
    """One warning line when bf16 is asked of a CPU that only emulates it."""
    if precision == "bf16" and not device.startswith("cuda"):
        from vidsr.platform import BF16_SLOW, native_bf16

        if not native_bf16():
            warn(f"{option} bf16: {BF16_SLOW}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, docker stop, systemd): cleaned up like Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


class Group(click.Group):
    """Turns every VidsrError (and a Ctrl-C or SIGTERM) into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return super().invoke(ctx)
        except VidsrError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt as e:
            kept = " (finished segments are kept: rerun the same command to continue)" \
                if "--resume" in sys.argv[1:] else ""
            terminated = isinstance(e, Terminated)
            click.echo(f"{'terminated' if terminated else 'interrupted'}; no output was written{kept}", err=True)
            sys.exit(143 if terminated else 130)
        except MemoryError:
            raise click.ClickException("out of memory: try a smaller --tile or --batch") from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            if os.environ.get("VIDSR_DEBUG"):
                raise
            raise click.ClickException(f"{type(e).__name__}: {e} (set VIDSR_DEBUG=1 for a traceback)") from None
