"""``vidsr compare``: plain, full and partial SR side by side, and a crop sheet."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from vidsr.cli.options import model_options, resolve_scale
from vidsr.cli.progress import fail, progress_bar, warn


@click.command()
@click.argument("input", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Comparison video (.mp4, .mkv, ...).")
@click.option("--sheet", type=click.Path(path_type=Path), default=None,
              help="PNG contact sheet of zoomed foreground/background crops with PSNR and timings.")
@click.option("--sample", is_flag=True, help="Use the built-in sample clip as input.")
@model_options
@click.option("--backend", type=click.Choice(["torch", "ort"]), default="torch", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True, help="Tile core size (LR px).")
@click.option("--bg", type=click.Choice(["bicubic", "lanczos"]), default="bicubic", show_default=True,
              help="Plain upscale (also the partial-SR background).")
@click.option("--layout", default="grid", show_default=True,
              help="grid (2x2 panels), split (two methods, left/right) or wipe (moving divider).")
@click.option("--methods", default="plain,partial", show_default=True,
              help="Two of plain, full, partial, mask for split/wipe (left,right).")
@click.option("--frames", default=None, help="START:END frame range, 0-based, end excluded [default: all].")
@click.option("--gt", type=click.Path(path_type=Path), default=None,
              help="Ground-truth video at the output size: the sheet's PSNR reference [default: bicubic].")
@click.option("--sheet-frame", type=int, default=None, help="Frame for --sheet [default: middle of the range].")
@click.option("--max-width", type=int, default=1920, show_default=True, help="Cap on the comparison video's width.")
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True)
@click.option("--no-audio", is_flag=True, help="Do not copy audio/subtitle streams.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def compare(input: Path | None, output: Path | None, sheet: Path | None, sample: bool, scale: str | None,
            model: str | None, backend: str, device: str, tile: int, bg: str, layout: str, methods: str,
            frames: str | None, gt: Path | None, sheet_frame: int | None, max_width: int, crf: int,
            no_audio: bool, quiet: bool) -> None:
    """Render plain upscale, full-frame SR, partial SR and the mask side by side (and a crop sheet)."""
    from vidsr.compare.config import CompareConfig, parse_frames, parse_methods
    from vidsr.compare.run import compare_video
    from vidsr.compare.sheet import format_psnr
    from vidsr.media.codecs import EncodeOptions
    from vidsr.media.sample import write_sample
    from vidsr.pipeline.config import UpscaleConfig

    if sample == (input is not None):
        fail("give either INPUT or --sample")
    if str(input) == "-":
        fail("vidsr compare reads a file, not '-' (stdin)")
    config = CompareConfig(
        upscale=UpscaleConfig(scale=resolve_scale(scale, model), model=model, backend=backend, device=device, tile=tile,
                              bg=bg, encode=EncodeOptions(crf=crf), copy_streams=not no_audio),
        layout=layout, methods=parse_methods(methods), frames=parse_frames(frames), max_width=max_width,
        sheet_frame=sheet_frame,
    )
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
        bars = []

        def on_frame(report) -> None:
            if not bars:
                bars.append(progress_bar(quiet=quiet))
            bars[0].update(1)

        try:
            report = compare_video(input, output, config=config, sheet_path=sheet, gt_path=gt, on_frame=on_frame)
        finally:
            for bar in bars:
                bar.close()
    for w in report.warnings:
        warn(w)
    if quiet:
        return
    times = ", ".join(f"{m} {report.ms_per_frame(m):.1f}" for m in report.seconds)
    if report.output:
        click.echo(f"{report.output}: {report.frames} frames, {report.layout} "
                   f"{report.out_size[0]}x{report.out_size[1]}; ms/frame: {times}",
                   err=str(report.output) == "-")  # stdout carries the video
    if report.sheet:
        psnr = "; ".join(f"{region}: " + ", ".join(f"{m} {format_psnr(v)}" for m, v in row.items())
                         for region, row in report.sheet_psnr.items())
        click.echo(f"{report.sheet}: frame {report.sheet_frame}, PSNR vs {report.reference}: {psnr}",
                   err=str(report.output) == "-")
