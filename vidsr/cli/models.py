"""``vidsr models``: the shipped models (reads the manifest; no torch); ``vidsr models inspect FILE``."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.progress import fail


@click.group("models", invoke_without_command=True)
@click.pass_context
def list_models(ctx: click.Context) -> None:
    """List the shipped models; `models inspect FILE` describes any weights file."""
    if ctx.invoked_subcommand is not None:
        return
    from vidsr.weights import DEFAULT_MODELS, models_dir, read_manifest

    manifest = read_manifest()
    if not manifest:
        fail(f"no manifest.json in {models_dir()} (the shipped models folder; $VIDSR_MODELS_DIR overrides it)")
    for m in manifest.values():
        default = f"  (default for --scale {m.scale})" if DEFAULT_MODELS.get(m.scale) == m.name else ""
        click.echo(f"{m.name:16s} arch={m.arch:8s} x{m.scale}  {m.file}{default}")


@list_models.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect_command(file: Path, as_json: bool) -> None:
    """Architecture, scale, parameters, receptive radius, FLOPs and CPU speed of a weights file
    (vidsr checkpoint, .pth/.pt/.ckpt/.safetensors state dict or .onnx)."""
    import dataclasses
    import json

    from vidsr.bench.model_info import format_info, inspect_model

    info = inspect_model(file)
    click.echo(json.dumps(dataclasses.asdict(info), indent=2, default=str) if as_json else format_info(info))
