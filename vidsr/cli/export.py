"""``vidsr export``: ONNX files checked against torch, TensorRT engines, the export cache."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.options import DEFAULT_MODELS_HELP
from vidsr.cli.progress import fail, logger


def _format_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


@click.command("export")
@click.option("--model", default=None, help=f"Shipped model name or a .pt checkpoint [default: {DEFAULT_MODELS_HELP}, "
              "unless only --depth-model is given].")
@click.option("--scale", type=click.Choice(["2", "4"]), default=None, help="[default: the model's]")
@click.option("--depth-model", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Also export a Depth Anything weights folder to ONNX (needs the [depth] extra).")
@click.option("--depth-size", default=None,
              help="Depth ONNX input HxW, multiples of the network's patch [default: 252x448 for Depth Anything "
                   "(16:9), the square training size for DPT/MiDaS].")
@click.option("--onnx", "onnx_only", is_flag=True, help="ONNX only (the default when --trt is not given).")
@click.option("--trt", is_flag=True, help="Also build a TensorRT engine (needs the [trt] extra and an NVIDIA GPU).")
@click.option("--fp16/--fp32", "fp16", default=True, show_default=True, help="TensorRT engine precision.")
@click.option("--bf16", is_flag=True, help="TensorRT engine in bf16 (overrides --fp16/--fp32).")
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True,
              help="Size the profile for `upscale --tile`: windows of tile + 2 * receptive radius.")
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Size the profile for `upscale --batch`.")
@click.option("--min-shape", default=None, help="Profile minimum, BxHxW (e.g. 1x16x16) [default: from --tile/--batch].")
@click.option("--opt-shape", default=None, help="Profile optimum, BxHxW [default: batch x window x window].")
@click.option("--max-shape", default=None, help="Profile maximum, BxHxW [default: batch x window x window].")
@click.option("--device", default="cuda", show_default=True, help="GPU for the TensorRT build.")
@click.option("--opset", type=click.IntRange(11, 21), default=17, show_default=True)
@click.option("--atol", type=click.FloatRange(0, 1), default=1e-3, show_default=True,
              help="Fail if ONNX differs from torch by more than this.")
@click.option("--precision-report", is_flag=True,
              help="Also report PSNR of bf16/fp16 (and the engine) against fp32 on the sample clip.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="[default: export/ in the checkout, or $VIDSR_EXPORT_DIR]")
@click.option("--list", "list_only", is_flag=True, help="List cached ONNX files and engines, then exit.")
@click.option("-q", "--quiet", is_flag=True, help="No build progress bar.")
def export_command(model: str | None, scale: str | None, depth_model: Path | None, depth_size: str,
                   onnx_only: bool, trt: bool, fp16: bool, bf16: bool, tile: int, batch: int, min_shape: str | None, opt_shape: str | None, max_shape: str | None,
                   device: str, opset: int, atol: float, precision_report: bool, output_dir: Path | None,
                   list_only: bool, quiet: bool) -> None:
    """Export a model to ONNX (checked against torch) and optionally build a TensorRT engine."""
    from vidsr.backends.onnx_cache import export_dir
    from vidsr.backends.trt_cache import Profile, list_cache, parse_shape, pipeline_profile
    from vidsr.export import export_model
    from vidsr.checkpoint import resolve_model

    folder = output_dir or export_dir()
    if list_only:
        entries = list_cache(folder)
        if not entries:
            click.echo(f"nothing cached in {folder}")
        for e in entries:
            key = e.meta.get("key", {})
            extra = (f"  {key.get('precision')} {key.get('gpu')} TensorRT {key.get('trt_version')}"
                     if key else "")
            click.echo(f"{e.kind:12s} {_format_size(e.size):>8s}  {e.path.name}{extra}")
        return
    if onnx_only and trt:
        fail("give --onnx or --trt, not both (--trt writes the ONNX file too)")
    if depth_model is not None:
        from vidsr.masks.depth import load_depth_folder, module_family
        from vidsr.export import export_depth_checked

        depth_net = load_depth_folder(depth_model)
        try:
            dh, dw = ((int(v) for v in depth_size.lower().split("x")) if depth_size
                      else module_family(depth_net).input_size(1080, 1920))
        except ValueError:
            fail(f"--depth-size must look like 252x448, got {depth_size!r}")
        d = export_depth_checked(depth_net, name=depth_model.name, folder=folder, input_size=(dh, dw), opset=opset)
        click.echo(f"depth onnx: {d.path} (opset {d.opset}, dynamic batch, {dh}x{dw}, "
                   f"{_format_size(d.path.stat().st_size)}); max error vs torch {d.max_abs_error:.2e} "
                   "of the depth range")
        if model is None and not trt:
            return
    net, desc = resolve_model(model, scale=int(scale) if scale else None)
    profile = pipeline_profile(tile=tile, batch=batch, pad=desc.receptive_radius)
    profile = Profile(min=parse_shape(min_shape) if min_shape else profile.min,
                      opt=parse_shape(opt_shape) if opt_shape else profile.opt,
                      max=parse_shape(max_shape) if max_shape else profile.max)
    precision = "bf16" if bf16 else "fp16" if fp16 else "fp32"
    log = logger(quiet)
    result = export_model(net, desc, trt=trt, precision=precision, profile=profile, device=device, opset=opset,
                          atol=atol, folder=folder, progress=not quiet, log=log)
    o = result.onnx
    click.echo(f"onnx: {o.path} (opset {o.opset}, dynamic batch/height/width, {_format_size(o.path.stat().st_size)}, "
               f"sha256 {o.sha256[:12]})")
    shapes = ", ".join("x".join(map(str, s)) for s in o.checked_shapes)
    click.echo(f"check: onnx.checker ok; max abs error vs torch {o.max_abs_error:.2e} on {shapes} "
               f"(tolerance {atol:g})")
    extra = {}
    if result.engine is not None:
        e = result.engine
        how = "cached" if e.cached else f"built in {e.seconds:.0f} s"
        click.echo(f"trt: {e.path} ({e.key.precision}, profile {e.key.profile}, TensorRT {e.key.trt_version}, "
                   f"{e.key.gpu}, {how}); max abs error vs torch {result.engine_max_abs_error:.2e}")
        if precision_report:
            from vidsr.backends.trt_engine import TrtEngine

            extra[f"trt-{precision}"] = TrtEngine(engine_path=e.path, descriptor=desc, device=device)
    if precision_report:
        import torch

        from vidsr.export import precision_report as report

        where = device if device.startswith("cuda") and torch.cuda.is_available() else "cpu"
        # an engine's profile covers the --tile/--batch windows, not whole frames: every engine gets those
        for r in report(net, desc, device=where, extra=extra, tile=tile if extra else None, batch=batch):
            vs_ref = "reference" if r.delta_vs_fp32_db == 0 and r.psnr_vs_fp32 == float("inf") \
                else f"{r.psnr_vs_fp32:.2f} dB vs fp32"
            click.echo(f"precision: {r.label:24s} PSNR {r.psnr_vs_gt:.3f} dB vs ground truth "
                       f"({r.delta_vs_fp32_db:+.3f} dB), {vs_ref}")
