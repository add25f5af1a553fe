"""The ``vidsr`` command line: one module per command, imported only when that command runs.

``vidsr --help`` lists the commands from :data:`COMMANDS` without importing them, so it loads
click and nothing heavy; each command imports the library inside its body.
"""

from __future__ import annotations

import importlib

import click

from vidsr.cli.progress import Group

# command -> ("module:attr", its short help for `vidsr --help`; a test ties it to the command's own)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("vidsr.cli.bench:bench",
              "Per-stage throughput (and quality, with ground truth) of partial vs full-frame SR per backend."),
    "compare": ("vidsr.cli.compare:compare",
                "Render plain upscale, full-frame SR, partial SR and the mask side by side (and a crop sheet)."),
    "dataset": ("vidsr.cli.dataset:dataset_group",
                "Build and inspect KPopStarsSR-style datasets (RGB | depth | masked RGB samples + manifest)."),
    "eval": ("vidsr.cli.research:eval_command",
             "PSNR/SSIM (Y, RGB) on full frame, foreground and background: bicubic vs full-frame vs partial SR."),
    "eval-sr": ("vidsr.cli.train:eval_sr_command",
                "PSNR/SSIM (Y and RGB) of a model vs bicubic on antialiased-bicubic and area-downscaled LR."),
    "export": ("vidsr.cli.export:export_command",
               "Export a model to ONNX (checked against torch) and optionally build a TensorRT engine."),
    "mask": ("vidsr.cli.mask:mask_command",
             "Run only the mask stage on INPUT and write the soft mask as a grey video (same size, frames, pts)."),
    "models": ("vidsr.cli.models:list_models",
               "List the shipped models; `models inspect FILE` describes any weights file."),
    "sample": ("vidsr.cli.sample:sample",
               "Write the built-in sample clip (a pan over a real shallow-DoF photo, with audio) to OUTPUT."),
    "train": ("vidsr.cli.train:train_command",
              "Train a small SR network on patches of photographs or of a dataset's frames, then evaluate it."),
    "upscale": ("vidsr.cli.upscale:upscale",
                "Upscale INPUT (or --sample) to OUTPUT, super-resolving only the in-focus foreground."),
}


class LazyGroup(Group):
    """Imports a command's module when the command is run or its help is asked for (click's
    lazily loaded group); the group's own help takes the short help from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module, _, attr = COMMANDS[name][0].partition(":")
            self.commands[name] = getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # as click.Group.format_commands, with stand-ins that carry only the short help
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name][1])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vidsr")
def main() -> None:
    """Partial super-resolution for shallow depth-of-field video."""
    from vidsr.platform import short_waits

    # vidsr runs torch beside its own decode, mask and encode threads on few cores: OpenMP threads
    # may spin only briefly. Set before any command loads torch; the environment's own setting wins.
    short_waits()
