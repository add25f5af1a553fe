"""``vidsr eval``: bicubic vs full-frame vs partial SR on a dataset, scored on foreground and background."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _named_model(spec: str):
    """``LABEL=PATH_OR_NAME`` or ``PATH_OR_NAME`` (label: the run folder's name for RUN/model.pt)."""
    from vidsr.checkpoint import resolve_model
    from vidsr.train.research_eval import NamedModel

    label, _, target = spec.rpartition("=")
    if not label:
        p = Path(target)
        label = p.parent.name if p.name == "model.pt" and p.parent.name else (p.stem if p.suffix else target)
    model, desc = resolve_model(target, scale=None)
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
    from tqdm import tqdm

    from vidsr.errors import VidsrError
    from vidsr.platform import torch_threads
    from vidsr.train.research_eval import evaluate_dataset, to_markdown

    try:
        named = [_named_model(m) for m in models]
        with torch_threads(threads), tqdm(desc="eval", unit="frame") as bar:
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
