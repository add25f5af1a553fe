"""``vidsr sample``: the built-in test clip (or its ground truth)."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.progress import fail, warn


@click.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--seconds", type=click.FloatRange(0.1, 600), default=2.0, show_default=True)
@click.option("--fps", type=click.IntRange(1, 240), default=30, show_default=True)
@click.option("--size", default="960x540", show_default=True, help="WIDTHxHEIGHT of the clip.")
@click.option("--ground-truth", is_flag=True, help="Write the 2x ground-truth crops instead.")
@click.option("--photo", type=click.Path(path_type=Path), default=None,
              help="Pan across this photograph instead of the bundled one (a test clip of your own "
                   "subject; its crops are ground truth when the photo is at least 2x --size).")
def sample(output: Path, seconds: float, fps: int, size: str, ground_truth: bool, photo: Path | None) -> None:
    """Write the built-in sample clip (a pan over a real shallow-DoF photo, with audio) to OUTPUT."""
    from vidsr.media.sample import SampleSpec, sample_photo, write_sample

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        fail(f"--size must look like 960x540, got {size!r}")
    if w < 16 or h < 16 or w > 1920 or h > 1080:
        fail("--size must be between 16x16 and 1920x1080")
    if w % 2 or h % 2:
        fail(f"--size must be even (4:2:0 video), got {w}x{h}")
    spec = SampleSpec(width=w, height=h, fps=fps, seconds=seconds, photo=photo)
    image = sample_photo(photo) if photo is not None else None
    if image is not None and spec.too_small(image):
        ch, cw = spec.crop_shape
        warn(f"{photo.name} is {image.shape[1]}x{image.shape[0]}, smaller than the {cw}x{ch} "
             f"crops: it is upscaled first, so the crops are no true {spec.gt_scale}x ground truth")
    path = write_sample(output, spec=spec, ground_truth=ground_truth, photo=image)
    click.echo(str(path))
