"""The ``vidsr`` command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from vidsr.errors import VidsrError


def _fail(message: str) -> None:
    raise click.ClickException(message)


class _Group(click.Group):
    """Turns every VidsrError (and a Ctrl-C) into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VidsrError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; no output was written", err=True)
            sys.exit(130)
        except MemoryError:
            raise click.ClickException("out of memory: try a smaller --tile or --batch") from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            if os.environ.get("VIDSR_DEBUG"):
                raise
            raise click.ClickException(f"{type(e).__name__}: {e} (set VIDSR_DEBUG=1 for a traceback)") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vidsr")
def main() -> None:
    """Partial super-resolution for shallow depth-of-field video."""


@main.command()
@click.argument("input", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output video (.mp4, .mkv, ...).")
@click.option("--sample", is_flag=True, help="Use the built-in sample clip as input.")
@click.option("--scale", type=click.Choice(["2", "4"]), default="2", show_default=True)
@click.option("--model", default=None, help="Shipped model name or a .pt checkpoint [default: compact-x<scale>].")
@click.option("--backend", type=click.Choice(["torch", "ort"]), default="torch", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True, help="Tiles per network call.")
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True, help="Tile core size (LR px).")
@click.option("--bg", type=click.Choice(["bicubic", "lanczos", "bilinear"]), default="bicubic", show_default=True,
              help="Background upscale.")
@click.option("--mask-every", type=click.IntRange(1, 1000), default=2, show_default=True,
              help="Recompute the focus map every N frames (and on cuts).")
@click.option("--fg-threshold", type=click.FloatRange(0, 1), default=None,
              help="Fixed focus-score threshold [default: Otsu].")
@click.option("--feather", type=click.FloatRange(0, 64), default=4.0, show_default=True,
              help="Mask feather radius (mask working px).")
@click.option("--full-frame", is_flag=True, help="SR every pixel (the baseline).")
@click.option("--codec", default="libx264", show_default=True)
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True)
@click.option("--preset", default="veryfast", show_default=True)
@click.option("--pix-fmt", default="yuv420p", show_default=True)
@click.option("--save-mask", type=click.Path(path_type=Path), default=None, help="Also write the soft mask as a grey video.")
@click.option("--no-audio", is_flag=True, help="Do not copy audio/subtitle streams.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def upscale(input: Path | None, output: Path, sample: bool, scale: str, model: str | None, backend: str,
            device: str, precision: str, batch: int, tile: int, bg: str, mask_every: int,
            fg_threshold: float | None, feather: float, full_frame: bool, codec: str, crf: int, preset: str,
            pix_fmt: str, save_mask: Path | None, no_audio: bool, quiet: bool) -> None:
    """Upscale INPUT (or --sample) to OUTPUT, super-resolving only the in-focus foreground."""
    from tqdm import tqdm

    from vidsr.io import EncodeOptions, probe
    from vidsr.pipeline import UpscaleConfig, upscale_video
    from vidsr.sample import write_sample

    if sample == (input is not None):
        _fail("give either INPUT or --sample")
    config = UpscaleConfig(
        scale=int(scale), model=model, backend=backend, device=device, precision=precision, batch=batch,
        tile=tile, bg=bg, full_frame=full_frame, mask_every=mask_every, fg_threshold=fg_threshold,
        feather_px=feather, encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt),
        copy_streams=not no_audio, save_mask=save_mask,
    )
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
            if not quiet:
                click.echo(f"sample clip: {input.name} (960x540, 60 frames, with audio)", err=True)
        info = probe(input)
        bars: list[tqdm] = []  # made at the first frame, so early errors print one clean line

        def on_frame(report) -> None:
            if not bars:
                bars.append(tqdm(total=info.frames, unit="frame", disable=quiet, dynamic_ncols=True,
                                 file=sys.stderr))
            bars[0].update(1)
            if report.frames % 5 == 0:
                bars[0].set_postfix(sr=f"{report.sr_fraction:.0%}", refresh=False)

        try:
            report = upscale_video(input, output, config=config, on_frame=on_frame)
        finally:
            for bar in bars:
                bar.close()
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if not quiet:
        click.echo(
            f"{report.output}: {report.frames} frames {report.in_size[0]}x{report.in_size[1]} -> "
            f"{report.out_size[0]}x{report.out_size[1]} in {report.seconds:.1f} s ({report.fps:.2f} fps), "
            f"SR on {report.sr_fraction:.1%} of pixels (foreground {report.fg_fraction:.1%}), "
            f"engine {report.engine}, {report.mask_passes} mask passes"
        )


@main.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--seconds", type=click.FloatRange(0.1, 600), default=2.0, show_default=True)
@click.option("--fps", type=click.IntRange(1, 240), default=30, show_default=True)
@click.option("--size", default="960x540", show_default=True, help="WIDTHxHEIGHT of the clip.")
@click.option("--ground-truth", is_flag=True, help="Write the 2x ground-truth crops instead.")
def sample(output: Path, seconds: float, fps: int, size: str, ground_truth: bool) -> None:
    """Write the built-in sample clip (a pan over a real shallow-DoF photo, with audio) to OUTPUT."""
    from vidsr.sample import SampleSpec, write_sample

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        _fail(f"--size must look like 960x540, got {size!r}")
    if w < 16 or h < 16 or w > 1920 or h > 1080:
        _fail("--size must be between 16x16 and 1920x1080")
    path = write_sample(output, spec=SampleSpec(width=w, height=h, fps=fps, seconds=seconds),
                        ground_truth=ground_truth)
    click.echo(str(path))


@main.command("models")
def list_models() -> None:
    """List the shipped models."""
    from vidsr.models import models_dir, read_manifest

    manifest = read_manifest()
    if not manifest:
        _fail(f"no models/manifest.json under {models_dir()}")
    for m in manifest.values():
        click.echo(f"{m.name:16s} arch={m.arch:8s} x{m.scale}  {m.file}")


def _register_feature_commands() -> None:
    """Commands that live beside their feature's library code, added explicitly."""
    from vidsr.train.cli import eval_sr_command, train_command

    for command in (train_command, eval_sr_command):
        main.add_command(command)


_register_feature_commands()
