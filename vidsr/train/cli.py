"""Click commands ``train``, ``eval-sr``, ``dataset build|show`` and ``eval`` (added to the main
``vidsr`` group by vidsr.cli).

Run standalone with ``python -m vidsr.train.cli train ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from torch import nn
from tqdm import tqdm

from vidsr.arch import ModelDescriptor
from vidsr.errors import VidsrError
from vidsr.train.data import PatchConfig, list_images
from vidsr.train.dataset import BuildConfig, build_dataset, format_summary, is_dataset, read_dataset, summarize_dataset
from vidsr.train.degrade import DegradeConfig
from vidsr.train.evaluate import EvalImage, EvalRecord, evaluate, folder_photos, format_table, skimage_photos, summarize
from vidsr.train.loop import CompactSpec, ESPCNSpec, TrainConfig, train, write_final
from vidsr.train.losses import LossConfig
from vidsr.train.samplers import SAMPLERS


def _eval_images(*, use_skimage: bool, folders: tuple[Path, ...], long_side: int | None) -> list[EvalImage]:
    images = skimage_photos() if use_skimage else []
    for folder in folders:
        images += folder_photos(folder, long_side=long_side)
    return images


def _load_model(name_or_path: str) -> tuple[nn.Module, ModelDescriptor]:
    """A checkpoint path, or a model name from models/manifest.json, at its own scale."""
    from vidsr.weights import resolve_model

    return resolve_model(name_or_path, scale=None)  # raises a clear ModelError for unknown names


def _print_eval(records: list[EvalRecord], json_path: Path | None) -> dict:
    click.echo(format_table(records))
    summary = summarize(records)
    for kind, m in summary["mean"].items():
        click.echo(f"{kind}: mean PSNR-Y gain {m['gain_psnr_y']:+.2f} dB (worst image {m['min_gain_psnr_y']:+.2f} dB), "
                   f"RGB gain {m['gain_psnr_rgb']:+.2f} dB over {m['images']} images")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class _Progress:
    """Two tqdm bars: photos cut into patches, then optimiser steps."""

    def __init__(self, *, images: int, steps: int) -> None:
        self._steps = steps
        self._photos = tqdm(total=images, desc="photos->patches", unit="photo")
        self._train: tqdm | None = None

    def image(self, _path: Path) -> None:
        self._photos.update(1)

    def step(self, step: int, loss: float) -> None:
        if self._train is None:
            self._photos.close()
            self._train = tqdm(total=self._steps, initial=step - 1, desc="train", unit="step")
        self._train.update(1)
        if step % 50 == 0:
            self._train.set_postfix(loss=f"{loss:.4f}")

    def close(self) -> None:
        self._photos.close()
        if self._train is not None:
            self._train.close()


@click.command("train")
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of photographs (searched recursively), or a dataset folder from `vidsr dataset build` "
                   "(its train split; needed by the foreground samplers and the depth semantic loss).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: config.json, metrics.jsonl, state.pt, model.pt, metrics.json.")
@click.option("--scale", type=click.Choice(["2", "3", "4"]), default="2", show_default=True)
@click.option("--arch", type=click.Choice(["compact", "espcn"]), default="compact", show_default=True)
@click.option("--num-feat", type=int, default=16, show_default=True, help="compact: body channels.")
@click.option("--num-conv", type=int, default=4, show_default=True, help="compact: body convolutions.")
@click.option("--feat1", type=int, default=16, show_default=True, help="espcn: head channels.")
@click.option("--feat2", type=int, default=16, show_default=True, help="espcn: middle channels.")
@click.option("--steps", type=int, default=10_000, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--patch", "lr_patch", type=int, default=64, show_default=True,
              help="LR patch side (HR = patch * scale).")
@click.option("--patches-per-image", type=int, default=96, show_default=True)
@click.option("--long-side", type=(int, int), default=(1280, 2560), show_default=True,
              help="Photos are shrunk so the longer side is random in this range before cutting patches.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--lr-min", type=float, default=1e-5, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True)
@click.option("--warmup", "warmup_steps", type=int, default=200, show_default=True, help="Linear LR warmup steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--p-area", type=float, default=0.5, show_default=True,
              help="Chance of area (vs antialiased bicubic) downscale.")
@click.option("--p-blur", type=float, default=0.1, show_default=True,
              help="Chance of a mild Gaussian blur before downscale.")
@click.option("--p-jpeg", type=float, default=0.15, show_default=True, help="Chance of a JPEG round trip (q 60-95).")
@click.option("--p-h264", type=float, default=0.1, show_default=True, help="Chance a batch gets an H.264 round trip.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--log-every", type=int, default=100, show_default=True)
@click.option("--ckpt-every", type=int, default=1000, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out (same options required).")
@click.option("--eval-skimage/--no-eval-skimage", default=True, show_default=True,
              help="After training, evaluate on skimage.data photographs.")
@click.option("--eval-folder", "eval_folders", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="After training, also evaluate on the photos in this held-out folder (repeatable).")
@click.option("--eval-long-side", type=int, default=1280, show_default=True,
              help="Held-out folder photos are area-shrunk to this longer side to serve as ground truth.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="full", show_default=True,
              help="Patch positions in dataset frames: full (uniform), unique (non-overlapping cells packing "
                   "the mask), random (centre on the mask), jitter (one per unique cell, randomly shifted).")
@click.option("--min-coverage", type=float, default=0.5, show_default=True,
              help="unique/jitter: share of a cell that must be foreground.")
@click.option("--loss", "loss_kind", type=click.Choice(["l1", "charbonnier", "semantic"]), default="l1",
              show_default=True, help="Pixel loss; semantic = the depth semantic loss (L1 weighted by the "
                                      "soft foreground mask with --w-fg/--w-bg).")
@click.option("--w-fg", type=float, default=None, help="Foreground weight (semantic default 1.0).")
@click.option("--w-bg", type=float, default=None, help="Background weight (semantic default 0.1).")
@click.option("--ema", type=float, default=0.0, show_default=True,
              help="Decay of an exponential moving average of the weights, saved as the result (0 = off).")
@click.option("--init", "init_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from this checkpoint's weights (fine-tuning; same architecture).")
@click.option("--thesis-lr", is_flag=True,
              help="LR = antialiased bicubic shrink only, as in the thesis (sets every --p-* to 0).")
def train_command(data: Path, run_dir: Path, scale: str, arch: str, num_feat: int, num_conv: int, feat1: int,
                  feat2: int, steps: int, batch_size: int, lr_patch: int, patches_per_image: int,
                  long_side: tuple[int, int], lr: float, lr_min: float, schedule: str, warmup_steps: int,
                  seed: int, p_area: float, p_blur: float, p_jpeg: float, p_h264: float, threads: int,
                  log_every: int, ckpt_every: int,
                  resume: bool, eval_skimage: bool, eval_folders: tuple[Path, ...], eval_long_side: int,
                  sampler: str, min_coverage: float, loss_kind: str, w_fg: float | None, w_bg: float | None,
                  ema: float, init_path: Path | None, thesis_lr: bool) -> None:
    """Train a small SR network on patches of photographs or of a dataset's frames, then evaluate it."""
    s = int(scale)
    if thesis_lr:
        p_area = p_blur = p_jpeg = p_h264 = 0.0
    try:
        semantic = loss_kind == "semantic"
        loss = LossConfig(pixel="l1" if semantic else loss_kind,  # type: ignore[arg-type]
                          w_fg=w_fg if w_fg is not None else 1.0,
                          w_bg=w_bg if w_bg is not None else (0.1 if semantic else 1.0))
        model = (CompactSpec(num_feat=num_feat, num_conv=num_conv) if arch == "compact"
                 else ESPCNSpec(feat1=feat1, feat2=feat2))
        cfg = TrainConfig(
            data=data, run_dir=run_dir, scale=s, model=model, steps=steps, batch_size=batch_size,
            patches=PatchConfig(patch_size=lr_patch * s, patches_per_image=patches_per_image, long_side=long_side),
            degrade=DegradeConfig(p_area=p_area, p_blur=p_blur, p_jpeg=p_jpeg, p_h264=p_h264),
            lr=lr, lr_min=lr_min, schedule=schedule, warmup_steps=warmup_steps, seed=seed,
            log_every=log_every, ckpt_every=ckpt_every, threads=threads,
            sampler=sampler, min_coverage=min_coverage, loss=loss, ema=ema, init=init_path,  # type: ignore[arg-type]
        )
        n_images = len(read_dataset(data).split("train")) if is_dataset(data) else len(list_images(data))
        bars = _Progress(images=n_images, steps=steps)
        try:
            result = train(cfg, resume=resume, on_step=bars.step, on_image=bars.image)
        finally:
            bars.close()
        click.echo(f"trained {result.steps} steps in {result.elapsed_s / 60:.1f} min -> {result.model_path}")
        if eval_skimage or eval_folders:
            images = _eval_images(use_skimage=eval_skimage, folders=eval_folders, long_side=eval_long_side)
            records = evaluate(result.model, images, scale=s)
            summary = dict(result.summary)
            summary["eval"] = _print_eval(records, run_dir / "eval.json")
            write_final(run_dir, result.model, summary)
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None


@click.command("eval-sr")
@click.option("--model", "model_name", required=True, help="Shipped model name (e.g. compact-x2) or a .pt checkpoint.")
@click.option("--skimage/--no-skimage", "use_skimage", default=True, show_default=True,
              help="Evaluate on skimage.data photographs.")
@click.option("--folder", "folders", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Also evaluate on the photos in this folder (repeatable).")
@click.option("--long-side", type=int, default=1280, show_default=True,
              help="Folder photos are area-shrunk to this longer side to serve as ground truth.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write per-image scores and means here.")
@click.option("--threads", type=int, default=2, show_default=True)
def eval_sr_command(model_name: str, use_skimage: bool, folders: tuple[Path, ...], long_side: int,
                    json_path: Path | None, threads: int) -> None:
    """PSNR/SSIM (Y and RGB) of a model vs bicubic on antialiased-bicubic and area-downscaled LR."""
    import torch

    torch.set_num_threads(threads)
    try:
        model, desc = _load_model(model_name)
        images = _eval_images(use_skimage=use_skimage, folders=folders, long_side=long_side)
        click.echo(f"{desc.name}: {desc.arch} x{desc.scale}, {len(images)} images")
        _print_eval(evaluate(model, images, scale=desc.scale), json_path)
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None


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
    try:
        summary = summarize_dataset(read_dataset(folder))
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


def _named_model(spec: str):
    """``LABEL=PATH_OR_NAME`` or ``PATH_OR_NAME`` (label: the run folder's name for RUN/model.pt)."""
    from vidsr.train.research_eval import NamedModel

    label, _, target = spec.rpartition("=")
    if not label:
        p = Path(target)
        label = p.parent.name if p.name == "model.pt" and p.parent.name else (p.stem if p.suffix else target)
    model, desc = _load_model(target)
    return NamedModel(label=label, model=model, descriptor=desc)


@click.command("eval")
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "models", multiple=True, required=True,
              help="Model name or checkpoint, optionally LABEL=...; repeatable (all of one scale).")
@click.option("--split", type=click.Choice(["test", "train", "all"]), default="test", show_default=True)
@click.option("--lr-kernel", type=click.Choice(["bicubic_aa", "area"]), default="bicubic_aa", show_default=True,
              help="How LR frames are made from the dataset frames.")
@click.option("--partial-mask", type=click.Choice(["estimated", "dataset"]), default="estimated", show_default=True,
              help="Partial SR's mask: estimated on the LR frame (as vidsr upscale) or the dataset's (oracle).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Score at most this many frames (evenly spaced).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report (per frame and means) here.")
@click.option("--md", "md_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown table here.")
@click.option("--threads", type=int, default=2, show_default=True)
def eval_command(dataset: Path, models: tuple[str, ...], split: str, lr_kernel: str, partial_mask: str,
                 max_frames: int | None, json_path: Path | None, md_path: Path | None, threads: int) -> None:
    """PSNR/SSIM (Y, RGB) on full frame, foreground and background: bicubic vs full-frame vs partial SR."""
    import torch

    from vidsr.train.research_eval import evaluate_dataset, to_markdown

    torch.set_num_threads(threads)
    try:
        named = [_named_model(m) for m in models]
        with tqdm(desc="eval", unit="frame") as bar:
            report = evaluate_dataset(dataset, named, split=split, degradation=lr_kernel,  # type: ignore[arg-type]
                                      partial_mask=partial_mask, max_frames=max_frames,  # type: ignore[arg-type]
                                      on_frame=lambda _s: bar.update(1))
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    table = to_markdown(report)
    click.echo(table)
    for path, text in ((json_path, json.dumps(report, indent=1) + "\n"), (md_path, table + "\n")):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


@click.group()
def _standalone() -> None:
    """vidsr training commands (standalone entry point)."""


_standalone.add_command(train_command)
_standalone.add_command(eval_sr_command)
_standalone.add_command(dataset_group)
_standalone.add_command(eval_command)

if __name__ == "__main__":
    _standalone()
