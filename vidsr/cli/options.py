"""Options that several commands share, and turning them into library settings.

Imports click only: the library loads inside the functions, when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_MODELS_HELP = "compact-x2-lite for x2, compact-x4 for x4"
"""vidsr.weights.DEFAULT_MODELS in words (a test ties the two)."""
MODEL_HELP = f"Shipped model name or a .pt checkpoint [default: {DEFAULT_MODELS_HELP}]."


def _apply(f, options: list):
    for option in reversed(options):
        f = option(f)
    return f


def model_options(f):
    """``--scale`` (2 or 4, default from the model) and ``--model``, for upscale, compare and bench."""
    return _apply(f, [
        click.option("--scale", type=click.Choice(["2", "4"]), default=None,
                     help="[default: the --model's scale; 2 without --model]"),
        click.option("--model", default=None, help=MODEL_HELP),
    ])


def resolve_scale(scale: str | None, model: str | None) -> int:
    """--scale, else the scale of the model --model names (2 without --model)."""
    from vidsr.checkpoint import model_scale

    return model_scale(model, int(scale) if scale else None)


MASK_OPTIONS = [
    click.option("--mask", "mask", default="focus", show_default=True, metavar="focus|depth|depth+focus|person|FILE",
                 help="Foreground mask: weight-free focus map; depth band at the focal plane (nearest subject or "
                      "--focus-point); depth band where the image is sharpest; person segmentation; or a grey "
                      "mask video (white = foreground)."),
    click.option("--depth-model", type=click.Path(path_type=Path), envvar="VIDSR_DEPTH_MODEL", default=None,
                 help="Depth Anything V2 or DPT/MiDaS folder (config.json + *.safetensors) or .onnx file "
                      "[env VIDSR_DEPTH_MODEL]; see docs/masks.md 'Depth weights (not shipped)'."),
    click.option("--depth-batch", type=click.IntRange(1, 256), default=None,
                 help="Anchor frames per depth-network call [default: 4 on CUDA, 1 on CPU]."),
    click.option("--depth-size", type=click.IntRange(14, 2044), default=None,
                 help="Long side of the depth network's input, snapped to its multiple [default: 448 for "
                      "Depth Anything (16:9 -> 252x448); a DPT/MiDaS's square training size]."),
    click.option("--depth-precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True),
    click.option("--focus-point", default=None, metavar="X,Y",
                 help="Focal plane = depth at this point: fractions (0.5,0.4) or pixels (960,400)."),
    click.option("--depth-tolerance", type=click.FloatRange(0.01, 1.0), default=0.15, show_default=True,
                 help="Half-width of the in-focus depth band (normalised inverse depth, 0-1)."),
    click.option("--mask-carry", type=click.Choice(["hold", "flow"]), default=None,
                 help="Between anchors: hold the mask or warp it along optical flow "
                      "[default: flow for depth masks, else hold]."),
]


def mask_options(f):
    """The mask options shared by ``upscale`` and ``mask``."""
    return _apply(f, MASK_OPTIONS)


def mask_spec(mask: str, depth_model: Path | None, depth_batch: int | None, depth_size: int | None,
              depth_precision: str, focus_point: str | None, depth_tolerance: float, device: str):
    """The :class:`~vidsr.masks.factory.MaskSpec` the mask options describe."""
    from vidsr.cli.progress import warn_slow_bf16
    from vidsr.masks.factory import MaskSpec, parse_mask

    if depth_model is not None:
        warn_slow_bf16(depth_precision, device, "--depth-precision")
    kind, path = parse_mask(mask)
    return MaskSpec(kind=kind, path=path, depth_model=depth_model, depth_batch=depth_batch, depth_size=depth_size,
                    depth_precision=depth_precision, device=device, focus_point=focus_point,
                    depth_tolerance=depth_tolerance)
