"""``vidsr dataset build|show``: KPopStarsSR-style datasets of RGB | depth | masked-RGB samples."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("dataset")
def dataset_group() -> None:
    """Build and inspect KPopStarsSR-style datasets (RGB | depth | masked RGB samples + manifest)."""


@dataset_group.command("build")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder: samples/, masks/, manifest.json, manifest.csv.")
@click.option("--every", type=int, default=30, show_default=True,
              help="Videos: keep every k-th frame (with --keyframes cuts: every k-th within a shot, 0 = shot starts only).")
@click.option("--keyframes", "select", type=click.Choice(["every", "cuts"]), default="every", show_default=True,
              help="every: every k-th frame; cuts: the first frame of each shot (scene-cut keyframes).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="At most this many frames per video.")
@click.option("--long-side", type=int, default=None, help="Area-shrink frames whose longer side is larger.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of the sources (not frames) in the test split, chosen by a seeded hash of the name.")
@click.option("--test-source", "test_sources", multiple=True,
              help="Glob on source names/paths: exactly the matching sources form the test split (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Salt of the split hash.")
@click.option("--depth-model", type=click.Path(exists=True, path_type=Path), default=None,
              help="Depth Anything folder or .onnx: grey panel = inverse depth, mask = in-focus depth band. "
                   "Default: the weight-free focus map.")
@click.option("--depth-size", type=int, default=None,
              help="Depth network input long side [default: 448 for Depth Anything, a DPT's training size].")
@click.option("--focus-floor", type=float, default=1e-3, show_default=True,
              help="Focus map floor: higher keeps grain in smooth bokeh/sky from scoring as sharp.")
@click.option("--workers", type=int, default=2, show_default=True, help="Worker processes.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in --out.")
def dataset_build_command(sources: tuple[Path, ...], out: Path, every: int, select: str, max_frames: int | None,
                          long_side: int | None, test_fraction: float, test_sources: tuple[str, ...], seed: int,
                          depth_model: Path | None, depth_size: int | None, focus_floor: float, workers: int,
                          overwrite: bool) -> None:
    """Frames of videos (and photos) -> one RGB | depth | masked-RGB image per sample + manifest."""
    from tqdm import tqdm

    from vidsr.errors import VidsrError
    from vidsr.train.dataset import BuildConfig, build_dataset, format_summary, summarize_dataset

    try:
        cfg = BuildConfig(every=every, select=select, max_frames=max_frames, long_side=long_side,  # type: ignore[arg-type]
                          test_fraction=test_fraction, test_sources=test_sources, seed=seed,
                          depth_model=depth_model, depth_size=depth_size, focus_floor=focus_floor, workers=workers)
        with tqdm(desc="dataset", unit="sample") as bar:
            ds = build_dataset(sources, out, config=cfg, overwrite=overwrite, on_sample=lambda _r: bar.update(1))
        click.echo(format_summary(summarize_dataset(ds)))
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None


@dataset_group.command("show")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def dataset_show_command(folder: Path, as_json: bool) -> None:
    """Counts per split, sources and foreground statistics of a dataset folder."""
    from vidsr.errors import VidsrError
    from vidsr.train.dataset import format_summary, read_dataset, summarize_dataset

    try:
        summary = summarize_dataset(read_dataset(folder))
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
