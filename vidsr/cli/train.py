"""``vidsr train`` and ``vidsr eval-sr``: train a small SR network, score a model on photographs.

Run standalone with ``python -m vidsr.cli.train train ...``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from vidsr.train.evaluate import EvalImage, EvalRecord

SAMPLERS = ("full", "unique", "random", "jitter")
"""vidsr.train.samplers.SAMPLERS (that module loads torch; a test ties the two)."""


def _eval_images(*, use_skimage: bool, folders: tuple[Path, ...], long_side: int | None) -> list[EvalImage]:
    from vidsr.train.evaluate import folder_photos, skimage_photos

    images = skimage_photos() if use_skimage else []
    for folder in folders:
        images += folder_photos(folder, long_side=long_side)
    return images


def _print_eval(records: list[EvalRecord], json_path: Path | None) -> dict:
    from vidsr.train.evaluate import format_table, summarize

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
        from tqdm import tqdm

        self._tqdm = tqdm
        self._steps = steps
        self._photos = tqdm(total=images, desc="photos->patches", unit="photo")
        self._train = None

    def image(self, _path: Path) -> None:
        self._photos.update(1)

    def step(self, step: int, loss: float) -> None:
        if self._train is None:
            self._photos.close()
            self._train = self._tqdm(total=self._steps, initial=step - 1, desc="train", unit="step")
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
@click.option("--residual", type=click.Choice(["bicubic", "nearest", "bilinear", "none"]), default="bicubic",
              show_default=True, help="Cheap upscale the network's output is added to (nearest = Real-ESRGAN's "
                                      "SRVGGNetCompact, which --realesrgan-out saves).")
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
@click.option("--gan-weight", type=float, default=0.0, show_default=True,
              help="Weight of the adversarial loss next to the pixel loss (0 = none): trains against a "
                   "spectral-norm PatchGAN discriminator, as ESRGAN/Real-ESRGAN do; makes the network invent "
                   "texture.")
@click.option("--gan-feat", type=int, default=32, show_default=True, help="Discriminator: first layer's channels.")
@click.option("--gan-down", type=int, default=3, show_default=True,
              help="Discriminator: strided convolutions (patch size ~ 2**(down+2) HR pixels).")
@click.option("--gan-lr", type=float, default=1e-4, show_default=True, help="Discriminator learning rate.")
@click.option("--gan-spectral/--no-gan-spectral", default=True, show_default=True,
              help="Spectral norm on the discriminator (Real-ESRGAN's); without it the discriminator learns "
                   "faster in short runs.")
@click.option("--gan-highpass/--no-gan-highpass", default=True, show_default=True,
              help="Discriminator scores a high-pass (detail) of the image, which it learns from far sooner.")
@click.option("--realesrgan-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save the result in Real-ESRGAN's key layout (params_ema, body.N) here "
                   "(compact with --residual nearest).")
@click.option("--thesis-lr", is_flag=True,
              help="LR = antialiased bicubic shrink only, as in the thesis (sets every --p-* to 0).")
def train_command(data: Path, run_dir: Path, scale: str, arch: str, num_feat: int, num_conv: int, feat1: int,
                  feat2: int, steps: int, batch_size: int, lr_patch: int, patches_per_image: int,
                  long_side: tuple[int, int], lr: float, lr_min: float, schedule: str, warmup_steps: int,
                  seed: int, p_area: float, p_blur: float, p_jpeg: float, p_h264: float, threads: int,
                  log_every: int, ckpt_every: int,
                  resume: bool, eval_skimage: bool, eval_folders: tuple[Path, ...], eval_long_side: int,
                  sampler: str, min_coverage: float, loss_kind: str, w_fg: float | None, w_bg: float | None,
                  ema: float, init_path: Path | None, residual: str, gan_weight: float, gan_feat: int,
                  gan_down: int, gan_lr: float, gan_spectral: bool, gan_highpass: bool,
                  realesrgan_out: Path | None,
                  thesis_lr: bool) -> None:
    """Train a small SR network on patches of photographs or of a dataset's frames, then evaluate it."""
    from vidsr.errors import VidsrError
    from vidsr.train.data import PatchConfig, list_images
    from vidsr.train.dataset import is_dataset, read_dataset
    from vidsr.checkpoint import save_realesrgan
    from vidsr.train.degrade import DegradeConfig
    from vidsr.train.evaluate import evaluate
    from vidsr.train.gan import GanConfig
    from vidsr.train.loop import CompactSpec, ESPCNSpec, TrainConfig, train, write_final
    from vidsr.train.losses import LossConfig

    s = int(scale)
    if thesis_lr:
        p_area = p_blur = p_jpeg = p_h264 = 0.0
    try:
        semantic = loss_kind == "semantic"
        loss = LossConfig(pixel="l1" if semantic else loss_kind,  # type: ignore[arg-type]
                          w_fg=w_fg if w_fg is not None else 1.0,
                          w_bg=w_bg if w_bg is not None else (0.1 if semantic else 1.0))
        model = (CompactSpec(num_feat=num_feat, num_conv=num_conv, residual=residual) if arch == "compact"
                 else ESPCNSpec(feat1=feat1, feat2=feat2, residual=residual))
        cfg = TrainConfig(
            data=data, run_dir=run_dir, scale=s, model=model, steps=steps, batch_size=batch_size,
            patches=PatchConfig(patch_size=lr_patch * s, patches_per_image=patches_per_image, long_side=long_side),
            degrade=DegradeConfig(p_area=p_area, p_blur=p_blur, p_jpeg=p_jpeg, p_h264=p_h264),
            lr=lr, lr_min=lr_min, schedule=schedule, warmup_steps=warmup_steps, seed=seed,
            log_every=log_every, ckpt_every=ckpt_every, threads=threads,
            sampler=sampler, min_coverage=min_coverage, loss=loss, ema=ema, init=init_path,  # type: ignore[arg-type]
            gan=GanConfig(weight=gan_weight, num_feat=gan_feat, num_down=gan_down, lr=gan_lr,
                          spectral=gan_spectral, highpass=gan_highpass),
        )
        if realesrgan_out is not None and (arch != "compact" or residual != "nearest"):
            raise click.ClickException("--realesrgan-out needs --arch compact --residual nearest "
                                       "(Real-ESRGAN's SRVGGNetCompact)")
        n_images = len(read_dataset(data).split("train")) if is_dataset(data) else len(list_images(data))
        bars = _Progress(images=n_images, steps=steps)
        try:
            result = train(cfg, resume=resume, on_step=bars.step, on_image=bars.image)
        finally:
            bars.close()
        click.echo(f"trained {result.steps} steps in {result.elapsed_s / 60:.1f} min -> {result.model_path}")
        if realesrgan_out is not None:
            save_realesrgan(result.model, realesrgan_out)
            click.echo(f"Real-ESRGAN layout -> {realesrgan_out}")
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
    from vidsr.checkpoint import resolve_model
    from vidsr.errors import VidsrError
    from vidsr.platform import torch_threads
    from vidsr.train.evaluate import evaluate

    try:
        model, desc = resolve_model(model_name, scale=None)  # a checkpoint path or a shipped name, at its scale
        images = _eval_images(use_skimage=use_skimage, folders=folders, long_side=long_side)
        click.echo(f"{desc.name}: {desc.arch} x{desc.scale}, {len(images)} images")
        with torch_threads(threads):
            _print_eval(evaluate(model, images, scale=desc.scale), json_path)
    except (VidsrError, ValueError) as e:
        raise click.ClickException(str(e)) from None


@click.group()
def _standalone() -> None:
    """vidsr training commands (standalone entry point)."""


if __name__ == "__main__":
    from vidsr.cli.dataset import dataset_group
    from vidsr.cli.research import eval_command

    for command in (train_command, eval_sr_command, dataset_group, eval_command):
        _standalone.add_command(command)
    _standalone()
