"""``vidsr bench``: per-stage throughput and quality per backend."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.options import model_options, resolve_scale
from vidsr.cli.progress import logger


@click.command()
@click.argument("input", required=False, type=click.Path(path_type=Path))
@model_options
@click.option("--backend", "backends", multiple=True,
              help="Repeatable: torch, torch-bf16, torch-fp16, ort, trt [default: torch, torch-bf16, ort; "
                   "torch-bf16 only where the CPU has native bf16].")
@click.option("--frames", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 1000), default=3, show_default=True)
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True)
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--merge/--no-merge", default=True, show_default=True,
              help="Merge neighbouring SR tiles into larger windows on CPU (as upscale does).")
@click.option("--mask-every", type=click.IntRange(1, 1000), default=2, show_default=True)
@click.option("--gt", type=click.Path(path_type=Path), default=None, help="High-resolution ground truth video.")
@click.option("--sweep-fg", is_flag=True, help="Also time synthetic masks of 10..100% foreground.")
@click.option("--threaded", is_flag=True,
              help="Time the threaded pipeline of vidsr upscale instead (whole INPUT, partial vs full frame, CPU): "
                   "per-thread busy and wait time, the critical path and CPU time a frame.")
@click.option("--frame-workers", type=click.IntRange(1, 64), default=None,
              help="With --threaded: frames upscaled at once [default: as vidsr upscale].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--md", "md_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None)
@click.option("-q", "--quiet", is_flag=True)
def bench(input: Path | None, scale: str | None, model: str | None, backends: tuple[str, ...], frames: int, warmup: int,
          repeat: int, tile: int, batch: int, merge: bool, mask_every: int, gt: Path | None, sweep_fg: bool,
          threaded: bool, frame_workers: int | None, json_path: Path | None, md_path: Path | None,
          plot_path: Path | None, quiet: bool) -> None:
    """Per-stage throughput (and quality, with ground truth) of partial vs full-frame SR per backend."""
    from typing import get_args

    from vidsr.backends import BACKEND_NAMES, Precision
    from vidsr.bench.config import BenchConfig, default_backends
    from vidsr.bench.report import plot, to_markdown, write_json
    from vidsr.bench.run import run_bench

    log = logger(quiet)
    for b in backends:
        name, _, precision = b.partition("-")
        if name not in BACKEND_NAMES or (precision and precision not in get_args(Precision)):
            raise click.BadParameter(f"{b!r} (choose from torch, torch-bf16, torch-fp16, ort, trt, trt-fp32)",
                                     param_hint="--backend")
    if plot_path is not None and plot_path.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg"):
        raise click.BadParameter(f"{plot_path}: write a .png, .svg, .pdf or .jpg", param_hint="--plot")
    if not backends:
        backends = default_backends()
        if "torch-bf16" not in backends:
            log("bench: torch-bf16 left out: no native bf16 on this CPU (--backend torch-bf16 times it anyway)")
    config = BenchConfig(scale=resolve_scale(scale, model), model=model, backends=tuple(backends), frames=frames,
                         warmup=warmup, repeat=repeat, tile=tile, batch=batch, merge=merge, mask_every=mask_every,
                         sweep_fg=(0.1, 0.2, 0.3, 0.5, 0.7, 1.0) if sweep_fg else ())
    if threaded:
        from vidsr.bench import threaded as threaded_bench

        if gt is not None or sweep_fg or plot_path is not None:
            raise click.UsageError("--threaded times throughput only: no --gt, --sweep-fg or --plot")
        report = threaded_bench.run_threaded(input, config=config, frame_workers=frame_workers, log=log)
        md = threaded_bench.to_markdown(report)
    else:
        report = run_bench(input, config=config, gt_path=gt, log=log)
        md = to_markdown(report)
    click.echo(md)
    if json_path:
        write_json(report, json_path)
    if md_path:
        md_path.write_text(md)
    if plot_path:
        plot(report, plot_path)
