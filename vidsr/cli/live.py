"""``vidsr upscale --live``: the live run, its progress line and its summary (imported only then)."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from vidsr.cli.progress import progress_bar, warn


def upscale_live_command(source: str, output: str, config, spec, *, drop_late: bool, reconnect: bool,
                         quiet: bool) -> None:
    """Run :func:`vidsr.pipeline.live.upscale_live` with a frame counter showing latency, SR coverage
    kept and late frames; print warnings and a summary; exit 130/143 after a signal (the output is
    closed validly first)."""
    from vidsr.masks.factory import build_estimator
    from vidsr.pipeline.live import LiveOptions, upscale_live

    bars = []

    def on_frame(report) -> None:
        if not bars:
            bars.append(progress_bar(quiet=quiet))
        bars[0].update(1)
        if report.frames % 5 == 0:
            bars[0].set_postfix(p95=f"{report.latency(95) * 1e3:.0f}ms", kept=f"{report.coverage_kept:.0%}",
                                late=report.late, refresh=False)

    def estimator(info):
        return None if config.full_frame else build_estimator(spec, frame_size=(info.height, info.width))

    try:
        report = upscale_live(source, output, config=config, estimator=estimator, on_frame=on_frame,
                              options=LiveOptions(drop_late=drop_late, reconnect=reconnect))
    finally:
        for bar in bars:
            bar.close()
    if output == "-":  # end the stream now, not when the process exits (a receiver waits for EOF)
        sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):  # not a real descriptor (a test's stand-in)
            fd = sys.stdout.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
    for w in report.warnings:
        warn(w)
    if not quiet:
        stopped = f" ({report.stopped}: the output was closed after the frames done)" if report.stopped else ""
        click.echo(f"{report.output}: {report.frames} frames {report.in_size[0]}x{report.in_size[1]} -> "
                   f"{report.out_size[0]}x{report.out_size[1]} in {report.seconds:.1f} s ({report.fps:.2f} fps), "
                   f"SR on {report.sr_fraction:.1%} of pixels, engine {report.engine}{stopped}", err=True)
        click.echo(f"live: {report.live_summary()}", err=True)
        click.echo(f"live stages, ms per frame (threads overlap): {report.stage_summary()}", err=True)
    if report.stopped:
        sys.exit(143 if report.stopped == "terminated" else 130)
