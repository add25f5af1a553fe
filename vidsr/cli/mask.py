"""``vidsr mask``: only the mask stage, written as a grey video."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.options import mask_options, mask_spec
from vidsr.cli.progress import fail
from vidsr.cli.summary import mask_threshold


@click.command("mask")
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Grey mask video (.mp4, .mkv).")
@mask_options
@click.option("--mask-every", type=click.IntRange(1, 1000), default=None,
              help="Recompute the mask every N frames (and on cuts) [default: 2; 16 for depth; 1 for a mask file].")
@click.option("--fg-threshold", type=click.FloatRange(0, 1), default=None, help="Fixed score threshold.")
@click.option("--feather", type=click.FloatRange(0, 64), default=4.0, show_default=True,
              help="Mask feather radius (mask working px).")
@click.option("--device", default="cpu", show_default=True, help="Device of the depth network.")
@click.option("--crf", type=click.IntRange(0, 63), default=10, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def mask_command(input: Path, output: Path, mask: str, depth_model: Path | None, depth_batch: int | None,
                 depth_size: int | None, depth_precision: str, focus_point: str | None, depth_tolerance: float,
                 mask_carry: str | None,
                 mask_every: int | None, fg_threshold: float | None, feather: float, device: str, crf: int,
                 quiet: bool) -> None:
    """Run only the mask stage on INPUT and write the soft mask as a grey video (same size, frames, pts)."""
    from vidsr.masks.factory import build_estimator
    from vidsr.media.codecs import EncodeOptions
    from vidsr.media.reader import probe
    from vidsr.masks.tracker import MaskTracker
    from vidsr.masks.video import write_mask_video

    if str(input) == "-":
        fail("vidsr mask reads a file, not '-' (stdin)")

    spec = mask_spec(mask, depth_model, depth_batch, depth_size, depth_precision, focus_point, depth_tolerance,
                     device)
    info = probe(input)
    estimator = build_estimator(spec, frame_size=(info.height, info.width))
    tracker = MaskTracker(estimator=estimator, every=spec.anchor_every(mask_every), threshold=fg_threshold,
                          feather_px=feather, carry=mask_carry or spec.carry)
    report = write_mask_video(input, output, tracker=tracker, lookahead=spec.lookahead,
                              encode=EncodeOptions(crf=crf))
    if not quiet:
        click.echo(f"{report.output}: {report.frames} frames, foreground {report.fg_fraction:.1%}"
                   f"{mask_threshold(report.threshold, estimator, fg_threshold)}, "
                   f"{report.passes} {report.estimator} passes, {report.cuts} cuts, "
                   f"{report.seconds:.1f} s (mask {report.stages['mask']:.1f} s)",
                   err=str(output) == "-")  # stdout carries the video
