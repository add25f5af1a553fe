"""``vidsr models``: the shipped models (reads the manifest; no torch)."""

from __future__ import annotations

import click

from vidsr.cli.progress import fail


@click.command("models")
def list_models() -> None:
    """List the shipped models."""
    from vidsr.weights import DEFAULT_MODELS, models_dir, read_manifest

    manifest = read_manifest()
    if not manifest:
        fail(f"no models/manifest.json under {models_dir()}")
    for m in manifest.values():
        default = f"  (default for --scale {m.scale})" if DEFAULT_MODELS.get(m.scale) == m.name else ""
        click.echo(f"{m.name:16s} arch={m.arch:8s} x{m.scale}  {m.file}{default}")
