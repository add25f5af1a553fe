"""The ``vidsr`` command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import click

from vidsr.platform import short_waits

# vidsr runs torch beside its own decode, mask and encode threads on few cores: OpenMP threads may
# spin only briefly (vidsr.platform). Set before torch loads; the environment's own setting wins.
short_waits()

from vidsr.errors import VidsrError  # noqa: E402


DEFAULT_MODELS_HELP = "compact-x2-lite for x2, compact-x4 for x4"
"""vidsr.weights.DEFAULT_MODELS in words (that module loads torch, which the CLI loads late; a test ties the two)."""
_MODEL_HELP = f"Shipped model name or a .pt checkpoint [default: {DEFAULT_MODELS_HELP}]."


def _fail(message: str) -> None:
    raise click.ClickException(message)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, docker stop, systemd): cleaned up like Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated


class _Group(click.Group):
    """Turns every VidsrError (and a Ctrl-C or SIGTERM) into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return super().invoke(ctx)
        except VidsrError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt as e:
            kept = " (finished segments are kept: rerun the same command to continue)" \
                if "--resume" in sys.argv[1:] else ""
            terminated = isinstance(e, _Terminated)
            click.echo(f"{'terminated' if terminated else 'interrupted'}; no output was written{kept}", err=True)
            sys.exit(143 if terminated else 130)
        except MemoryError:
            raise click.ClickException("out of memory: try a smaller --tile or --batch") from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            if os.environ.get("VIDSR_DEBUG"):
                raise
            raise click.ClickException(f"{type(e).__name__}: {e} (set VIDSR_DEBUG=1 for a traceback)") from None


def _scale(scale: str | None, model: str | None) -> int:
    """--scale, else the scale of the model --model names (2 without --model)."""
    from vidsr.weights import model_scale

    return model_scale(model, int(scale) if scale else None)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vidsr")
def main() -> None:
    """Partial super-resolution for shallow depth-of-field video."""


_MASK_OPTIONS = [
    click.option("--mask", "mask", default="focus", show_default=True, metavar="focus|depth|depth+focus|person|FILE",
                 help="Foreground mask: weight-free focus map; depth band at the focal plane (nearest subject or "
                      "--focus-point); depth band where the image is sharpest; person segmentation; or a grey "
                      "mask video (white = foreground)."),
    click.option("--depth-model", type=click.Path(path_type=Path), envvar="VIDSR_DEPTH_MODEL", default=None,
                 help="Depth Anything V2 or DPT/MiDaS folder (config.json + *.safetensors) or .onnx file "
                      "[env VIDSR_DEPTH_MODEL]; see README 'Depth weights (not shipped)'."),
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


def _mask_options(f):
    """The mask options shared by ``upscale`` and ``mask``."""
    for option in reversed(_MASK_OPTIONS):
        f = option(f)
    return f


def _warn_slow_bf16(precision: str, device: str, option: str) -> None:
    """One warning line when bf16 is asked of a CPU that only emulates it."""
    if precision == "bf16" and not device.startswith("cuda"):
        from vidsr.platform import BF16_SLOW, native_bf16

        if not native_bf16():
            click.echo(f"warning: {option} bf16: {BF16_SLOW}", err=True)


def _mask_spec(mask: str, depth_model: Path | None, depth_batch: int | None, depth_size: int | None,
               depth_precision: str, focus_point: str | None, depth_tolerance: float, device: str):
    from vidsr.masks.factory import MaskSpec, parse_mask

    if depth_model is not None:
        _warn_slow_bf16(depth_precision, device, "--depth-precision")
    kind, path = parse_mask(mask)
    return MaskSpec(kind=kind, path=path, depth_model=depth_model, depth_batch=depth_batch, depth_size=depth_size,
                    depth_precision=depth_precision, device=device, focus_point=focus_point,
                    depth_tolerance=depth_tolerance)


@main.command()
@click.argument("input", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output video (.mp4, .mkv, ...) or numbered frames (up/%06d.png).")
@click.option("--sample", is_flag=True, help="Use the built-in sample clip as input.")
@click.option("--scale", type=click.Choice(["2", "4"]), default=None,
              help="[default: the --model's scale; 2 without --model]")
@click.option("--model", default=None, help=_MODEL_HELP)
@click.option("--backend", type=click.Choice(["torch", "ort", "trt"]), default="torch", show_default=True,
              help="trt: TensorRT engine from export/ (built on first use; needs the [trt] extra and a GPU).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cuda for trt, else cpu].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="[default: fp16 for trt, else fp32]")
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True, help="Tiles per network call.")
@click.option("--frame-workers", type=click.IntRange(1, 64), default=None,
              help="Frames upscaled at once, each with its share of torch's threads "
                   "[default: 2 for torch on a multi-core CPU, else 1].")
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True, help="Tile core size (LR px).")
@click.option("--merge/--no-merge", default=None,
              help="Merge neighbouring SR tiles into larger windows [default: on for CPU, off for GPU].")
@click.option("--bg", type=click.Choice(["bicubic", "lanczos", "bilinear"]), default="bicubic", show_default=True,
              help="Background upscale.")
@click.option("--mask-every", type=click.IntRange(1, 1000), default=None,
              help="Recompute the mask every N frames (and on cuts) [default: 2; 16 for depth; 1 for a mask file].")
@_mask_options
@click.option("--fg-threshold", type=click.FloatRange(0, 1), default=None,
              help="Fixed focus-score threshold [default: Otsu].")
@click.option("--feather", type=click.FloatRange(0, 64), default=4.0, show_default=True,
              help="Mask feather radius (mask working px).")
@click.option("--full-frame", is_flag=True, help="SR every pixel (the baseline).")
@click.option("--codec", default=None,
              help="Video encoder, e.g. libx264, libx265, libsvtav1, libvpx-vp9 [default: libx264; "
                   "libvpx-vp9 where the container cannot hold H.264, e.g. .webm].")
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True)
@click.option("--preset", default=None,
              help="x264/x265 preset [veryfast], SVT-AV1 preset number [10], or VP9 cpu-used [8, realtime].")
@click.option("--pix-fmt", default=None, help="[default: yuv420p; yuv420p10le for 10-bit or deeper input]")
@click.option("--format", "container", default=None,
              help="Output container (FFmpeg muxer name) [default: from OUTPUT's extension; matroska for '-'].")
@click.option("--input-fps", default=None, help="Frame rate of an image-sequence INPUT, e.g. 24 or 30000/1001 [25].")
@click.option("--strict", is_flag=True, help="Fail (no output) if packets were corrupt or the input is cut short.")
@click.option("--deinterlace", type=click.Choice(["auto", "all", "off"]), default="auto", show_default=True,
              help="Deinterlace (bwdif, same frame count) the frames flagged interlaced, every frame, or none.")
@click.option("--resume", is_flag=True,
              help="Work in segments kept beside OUTPUT; rerun the same command to continue a stopped run.")
@click.option("--save-mask", type=click.Path(path_type=Path), default=None, help="Also write the soft mask as a grey video.")
@click.option("--no-audio", is_flag=True, help="Do not copy audio/subtitle streams.")
@click.option("--workers", type=click.IntRange(1, 4096), default=None,
              help="Upscale segments in parallel on N Ray workers (needs the [ray] extra); see README 'Scale out'.")
@click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
              help="Join this Ray cluster instead of starting Ray on this machine (with --workers).")
@click.option("--segment-s", type=click.FloatRange(1, 3600), default=10.0, show_default=True,
              help="With --workers: segment length in seconds (cut at keyframes).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def upscale(input: Path | None, output: Path, sample: bool, scale: str | None, model: str | None, backend: str,
            device: str | None, precision: str | None, batch: int, frame_workers: int | None, tile: int,
            merge: bool | None, bg: str, mask_every: int | None, mask: str, depth_model: Path | None, depth_batch: int | None,
            depth_size: int | None, depth_precision: str, focus_point: str | None, depth_tolerance: float,
            mask_carry: str | None, fg_threshold: float | None, feather: float, full_frame: bool,
            codec: str | None, crf: int, preset: str | None,
            pix_fmt: str | None, container: str | None, input_fps: str | None, strict: bool, deinterlace: str,
            resume: bool, save_mask: Path | None, no_audio: bool, workers: int | None, ray_address: str | None,
            segment_s: float, quiet: bool) -> None:
    """Upscale INPUT (or --sample) to OUTPUT, super-resolving only the in-focus foreground.

    INPUT: any video FFmpeg reads, an image sequence (frames/%06d.png) or - (stdin);
    OUTPUT: a file (container from the extension) or - (stdout). INPUT may also be a folder
    or a quoted glob ('clips/*.mp4'): then OUTPUT is a folder, and outputs that are already
    complete are skipped.
    """
    from tqdm import tqdm

    from vidsr.masks.factory import build_estimator
    from vidsr.media.io import EncodeOptions, probe
    from vidsr.pipeline.run import UpscaleConfig, upscale_video
    from vidsr.media.sample import write_sample

    if sample == (input is not None):
        _fail("give either INPUT or --sample")
    if workers is None and click.get_current_context().get_parameter_source("segment_s") \
            == click.core.ParameterSource.COMMANDLINE:
        _fail("--segment-s needs --workers N")
    device = device or ("cuda" if backend == "trt" else "cpu")
    precision = precision or ("fp16" if backend == "trt" else "fp32")
    if backend == "torch":
        _warn_slow_bf16(precision, device, "--precision")
    spec = _mask_spec(mask, depth_model, depth_batch, depth_size, depth_precision, focus_point, depth_tolerance,
                      device)
    config = UpscaleConfig(
        scale=_scale(scale, model), model=model, backend=backend, device=device, precision=precision, batch=batch,
        tile=tile, merge=merge, bg=bg, full_frame=full_frame, mask_every=spec.anchor_every(mask_every),
        fg_threshold=fg_threshold,
        mask_carry=mask_carry or spec.carry, mask_lookahead=spec.lookahead,
        feather_px=feather, encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                                                 container=container),
        copy_streams=not no_audio, save_mask=save_mask, strict=strict, deinterlace=deinterlace,
        resume=resume, input_rate=_fraction(input_fps, "--input-fps") if input_fps else None,
        frame_workers=frame_workers,
    )
    from vidsr.scaleout.distributed import is_batch

    if workers is not None or ray_address is not None or (input is not None and is_batch(input)):
        _upscale_scaled(input, output, config, spec, sample=sample, workers=workers, ray_address=ray_address,
                        segment_s=segment_s, quiet=quiet)
        return
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
            if not quiet:
                click.echo(f"sample clip: {input.name} (960x540, 60 frames, with audio)", err=True)
        elif str(input) == "-" and resume:
            _fail("--resume needs an input file, not '-' (stdin)")
        elif str(input) == "-":  # spooled, as the mask estimator needs the frame size before the run
            input = _spool_stdin(Path(tmpdir) / "stdin")
        try:
            info = probe(input, rate=config.input_rate)
        except VidsrError as e:  # name stdin as the user did, not the spool file
            raise type(e)(str(e).replace(str(Path(tmpdir) / "stdin"), "- (stdin)")) from None
        estimator = None if full_frame else build_estimator(spec, frame_size=(info.height, info.width))
        bars: list[tqdm] = []  # made at the first frame, so early errors print one clean line

        def on_frame(report) -> None:
            if not bars:  # a resumed run starts the bar at the frames finished before
                bars.append(tqdm(total=info.frames, initial=report.resumed_frames, unit="frame", disable=quiet,
                                 dynamic_ncols=True, file=sys.stderr))
            bars[0].update(1)
            if report.frames % 5 == 0:
                bars[0].set_postfix(sr=f"{report.sr_fraction:.0%}", refresh=False)

        try:
            report = upscale_video(input, output, config=config, estimator=estimator, on_frame=on_frame)
        finally:
            for bar in bars:
                bar.close()
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if not quiet:
        resumed = f" (+{report.resumed_frames} from the earlier run)" if report.resumed_frames else ""
        click.echo(
            f"{report.output}: {report.frames} frames{resumed} {report.in_size[0]}x{report.in_size[1]} -> "
            f"{report.out_size[0]}x{report.out_size[1]} in {report.seconds:.1f} s ({report.fps:.2f} fps), "
            f"SR on {report.sr_fraction:.1%} of pixels (foreground {report.fg_fraction:.1%}), "
            f"engine {report.engine}, {report.mask_passes} {estimator.name if estimator else 'mask'} passes",
            err=str(output) == "-",  # stdout carries the video
        )


def _upscale_scaled(input: Path | None, output: Path, config, spec, *, sample: bool, workers: int | None,
                    ray_address: str | None, segment_s: float, quiet: bool) -> None:
    """``upscale`` with --workers (segments on Ray) and/or many inputs (a folder or a glob)."""
    if str(input) == "-":
        _fail("--workers needs an input file, not '-' (stdin)")
    import functools

    from tqdm import tqdm

    from vidsr.scaleout.distributed import (ScaleOut, batch_jobs, find_inputs, is_batch, is_complete, require_ray,
                                   upscale_many)
    from vidsr.masks.factory import build_estimator
    from vidsr.media.io import probe
    from vidsr.pipeline.run import upscale_video
    from vidsr.media.sample import write_sample

    if ray_address is not None and workers is None:
        _fail("--ray-address needs --workers N")

    if workers is not None:
        require_ray()  # one clear line before any work
        if spec.kind == "file":
            _fail("--mask FILE cannot be combined with --workers (the mask video is read from its start)")
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
        if is_batch(input):
            jobs = batch_jobs(find_inputs(input), output)
        else:
            jobs = [(input, output)]
        if workers is None:  # many files, one process
            failed = []
            for src, dst in jobs:
                if is_complete(src, dst, scale=config.scale):
                    if not quiet:
                        click.echo(f"{dst}: complete, skipped")
                    continue
                try:
                    info = probe(src, rate=config.input_rate)
                    estimator = None if config.full_frame else build_estimator(spec,
                                                                               frame_size=(info.height, info.width))
                    with tqdm(total=info.frames, unit="frame", disable=quiet, dynamic_ncols=True, file=sys.stderr,
                              desc=src.name) as bar:
                        report = upscale_video(src, dst, config=config, estimator=estimator,
                                               on_frame=lambda r: bar.update(1))
                except VidsrError as e:
                    if len(jobs) == 1:
                        raise
                    click.echo(f"error: {src.name}: {e}", err=True)  # the other files go on
                    failed.append(src.name)
                    continue
                for w in report.warnings:
                    click.echo(f"warning: {src.name}: {w}", err=True)
                if not quiet:
                    click.echo(f"{report.output}: {report.frames} frames in {report.seconds:.1f} s "
                               f"({report.fps:.2f} fps)")
            if failed:
                _fail(f"{len(failed)} of {len(jobs)} files failed: {', '.join(failed)}")
            return
        first = probe(jobs[0][0])
        factory = None
        if not config.full_frame and (spec.kind != "focus" or spec.focus_point is not None):
            factory = functools.partial(build_estimator, spec, frame_size=(first.height, first.width))
        scale_out = ScaleOut(workers=workers, address=ray_address, segment_s=segment_s)
        bars: list[tqdm] = []  # made at the first report, after Ray has started

        def on_progress(done: int, total: int) -> None:
            if not bars:
                bars.append(tqdm(total=total, unit="frame", disable=quiet, dynamic_ncols=True, file=sys.stderr))
            bars[0].total, bars[0].n = total, done
            bars[0].refresh()

        try:
            reports = upscale_many(jobs, config=config, scale_out=scale_out, estimator_factory=factory,
                                   mask_key=repr(spec) if factory else "focus", skip_complete=is_batch(input),
                                   on_progress=on_progress)
        finally:
            for bar in bars:
                bar.close()
    for r in reports:
        for w in r.warnings:
            click.echo(f"warning: {Path(r.input).name}: {w}", err=True)
        if quiet:
            continue
        if r.skipped:
            click.echo(f"{r.output}: complete, skipped")
        else:
            fps = r.frames / r.seconds if r.seconds else 0.0
            click.echo(f"{r.output}: {r.frames} frames {r.in_size[0]}x{r.in_size[1]} -> {r.out_size[0]}x"
                       f"{r.out_size[1]} in {r.seconds:.1f} s ({fps:.2f} fps), {r.segments} segments on "
                       f"{workers} workers ({r.cached} cached, {r.retried} retried)")


def _fraction(text: str, option: str):
    from fractions import Fraction

    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        _fail(f"{option} must be a number or a ratio such as 30000/1001, got {text!r}")
    if value <= 0:
        _fail(f"{option} must be > 0, got {text}")
    return value


def _spool_stdin(path: Path) -> Path:
    """Copy stdin to ``path`` (a pipe can be read only once; probing and the run both read it)."""
    import shutil

    if sys.stdin.isatty():
        _fail("input '-' reads a video from stdin, but stdin is a terminal")
    with open(path, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    if path.stat().st_size == 0:
        _fail("input '-': stdin was empty")
    return path


@main.command("mask")
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Grey mask video (.mp4, .mkv).")
@_mask_options
@click.option("--mask-every", type=click.IntRange(1, 1000), default=None,
              help="Recompute the mask every N frames (and on cuts) [default: 2; 16 for depth; 1 for a mask file].")
@click.option("--fg-threshold", type=click.FloatRange(0, 1), default=None, help="Fixed score threshold.")
@click.option("--feather", type=click.FloatRange(0, 64), default=4.0, show_default=True,
              help="Mask feather radius (mask working px).")
@click.option("--device", default="cpu", show_default=True, help="Device of the depth network.")
@click.option("--crf", type=click.IntRange(0, 63), default=10, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def mask_command(input: Path, output: Path, mask: str, depth_model: Path | None, depth_batch: int | None,
                 depth_size: int | None, depth_precision: str, focus_point: str | None, depth_tolerance: float,
                 mask_carry: str | None,
                 mask_every: int | None, fg_threshold: float | None, feather: float, device: str, crf: int,
                 quiet: bool) -> None:
    """Run only the mask stage on INPUT and write the soft mask as a grey video (same size, frames, pts)."""
    from vidsr.masks.factory import build_estimator
    from vidsr.media.io import EncodeOptions, probe
    from vidsr.masks.focus import MaskTracker
    from vidsr.masks.video import write_mask_video

    if str(input) == "-":
        _fail("vidsr mask reads a file, not '-' (stdin)")

    spec = _mask_spec(mask, depth_model, depth_batch, depth_size, depth_precision, focus_point, depth_tolerance,
                      device)
    info = probe(input)
    estimator = build_estimator(spec, frame_size=(info.height, info.width))
    tracker = MaskTracker(estimator=estimator, every=spec.anchor_every(mask_every), threshold=fg_threshold,
                          feather_px=feather, carry=mask_carry or spec.carry)
    report = write_mask_video(input, output, tracker=tracker, lookahead=spec.lookahead,
                              encode=EncodeOptions(crf=crf))
    if not quiet:
        click.echo(f"{report.output}: {report.frames} frames, foreground {report.fg_fraction:.1%}, "
                   f"{report.passes} {report.estimator} passes, {report.cuts} cuts, "
                   f"{report.seconds:.1f} s (mask {report.stages['mask']:.1f} s)",
                   err=str(output) == "-")  # stdout carries the video


@main.command()
@click.argument("input", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Comparison video (.mp4, .mkv, ...).")
@click.option("--sheet", type=click.Path(path_type=Path), default=None,
              help="PNG contact sheet of zoomed foreground/background crops with PSNR and timings.")
@click.option("--sample", is_flag=True, help="Use the built-in sample clip as input.")
@click.option("--scale", type=click.Choice(["2", "4"]), default=None,
              help="[default: the --model's scale; 2 without --model]")
@click.option("--model", default=None, help=_MODEL_HELP)
@click.option("--backend", type=click.Choice(["torch", "ort"]), default="torch", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True, help="Tile core size (LR px).")
@click.option("--bg", type=click.Choice(["bicubic", "lanczos"]), default="bicubic", show_default=True,
              help="Plain upscale (also the partial-SR background).")
@click.option("--layout", default="grid", show_default=True,
              help="grid (2x2 panels), split (two methods, left/right) or wipe (moving divider).")
@click.option("--methods", default="plain,partial", show_default=True,
              help="Two of plain, full, partial, mask for split/wipe (left,right).")
@click.option("--frames", default=None, help="START:END frame range, 0-based, end excluded [default: all].")
@click.option("--gt", type=click.Path(path_type=Path), default=None,
              help="Ground-truth video at the output size: the sheet's PSNR reference [default: bicubic].")
@click.option("--sheet-frame", type=int, default=None, help="Frame for --sheet [default: middle of the range].")
@click.option("--max-width", type=int, default=1920, show_default=True, help="Cap on the comparison video's width.")
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True)
@click.option("--no-audio", is_flag=True, help="Do not copy audio/subtitle streams.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def compare(input: Path | None, output: Path | None, sheet: Path | None, sample: bool, scale: str | None,
            model: str | None, backend: str, device: str, tile: int, bg: str, layout: str, methods: str,
            frames: str | None, gt: Path | None, sheet_frame: int | None, max_width: int, crf: int,
            no_audio: bool, quiet: bool) -> None:
    """Render plain upscale, full-frame SR, partial SR and the mask side by side (and a crop sheet)."""
    from tqdm import tqdm

    from vidsr.compare.run import CompareConfig, compare_video, format_psnr, parse_frames, parse_methods
    from vidsr.media.io import EncodeOptions
    from vidsr.pipeline.run import UpscaleConfig
    from vidsr.media.sample import write_sample

    if sample == (input is not None):
        _fail("give either INPUT or --sample")
    if str(input) == "-":
        _fail("vidsr compare reads a file, not '-' (stdin)")
    config = CompareConfig(
        upscale=UpscaleConfig(scale=_scale(scale, model), model=model, backend=backend, device=device, tile=tile, bg=bg,
                              encode=EncodeOptions(crf=crf), copy_streams=not no_audio),
        layout=layout, methods=parse_methods(methods), frames=parse_frames(frames), max_width=max_width,
        sheet_frame=sheet_frame,
    )
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
        bars: list[tqdm] = []

        def on_frame(report) -> None:
            if not bars:
                bars.append(tqdm(unit="frame", disable=quiet, dynamic_ncols=True, file=sys.stderr))
            bars[0].update(1)

        try:
            report = compare_video(input, output, config=config, sheet_path=sheet, gt_path=gt, on_frame=on_frame)
        finally:
            for bar in bars:
                bar.close()
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if quiet:
        return
    times = ", ".join(f"{m} {report.ms_per_frame(m):.1f}" for m in report.seconds)
    if report.output:
        click.echo(f"{report.output}: {report.frames} frames, {report.layout} "
                   f"{report.out_size[0]}x{report.out_size[1]}; ms/frame: {times}",
                   err=str(report.output) == "-")  # stdout carries the video
    if report.sheet:
        psnr = "; ".join(f"{region}: " + ", ".join(f"{m} {format_psnr(v)}" for m, v in row.items())
                         for region, row in report.sheet_psnr.items())
        click.echo(f"{report.sheet}: frame {report.sheet_frame}, PSNR vs {report.reference}: {psnr}",
                   err=str(report.output) == "-")


@main.command()
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
        _fail(f"--size must look like 960x540, got {size!r}")
    if w < 16 or h < 16 or w > 1920 or h > 1080:
        _fail("--size must be between 16x16 and 1920x1080")
    if w % 2 or h % 2:
        _fail(f"--size must be even (4:2:0 video), got {w}x{h}")
    spec = SampleSpec(width=w, height=h, fps=fps, seconds=seconds, photo=photo)
    image = sample_photo(photo) if photo is not None else None
    if image is not None and spec.too_small(image):
        ch, cw = spec.crop_shape
        click.echo(f"warning: {photo.name} is {image.shape[1]}x{image.shape[0]}, smaller than the {cw}x{ch} "
                   f"crops: it is upscaled first, so the crops are no true {spec.gt_scale}x ground truth", err=True)
    path = write_sample(output, spec=spec, ground_truth=ground_truth, photo=image)
    click.echo(str(path))


@main.command()
@click.argument("input", required=False, type=click.Path(path_type=Path))
@click.option("--scale", type=click.Choice(["2", "4"]), default=None,
              help="[default: the --model's scale; 2 without --model]")
@click.option("--model", default=None, help=_MODEL_HELP)
@click.option("--backend", "backends", multiple=True,
              help="Repeatable: torch, torch-bf16, torch-fp16, ort, trt [default: torch, torch-bf16, ort; "
                   "torch-bf16 only where the CPU has native bf16].")
@click.option("--frames", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 1000), default=3, show_default=True)
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True)
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--merge/--no-merge", default=True, show_default=True,
              help="Merge neighbouring SR tiles into larger windows on CPU (as upscale does).")
@click.option("--mask-every", type=click.IntRange(1, 1000), default=2, show_default=True)
@click.option("--gt", type=click.Path(path_type=Path), default=None, help="High-resolution ground truth video.")
@click.option("--sweep-fg", is_flag=True, help="Also time synthetic masks of 10..100% foreground.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--md", "md_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None)
@click.option("-q", "--quiet", is_flag=True)
def bench(input: Path | None, scale: str | None, model: str | None, backends: tuple[str, ...], frames: int, warmup: int,
          repeat: int, tile: int, batch: int, merge: bool, mask_every: int, gt: Path | None, sweep_fg: bool,
          json_path: Path | None, md_path: Path | None, plot_path: Path | None, quiet: bool) -> None:
    """Per-stage throughput (and quality, with ground truth) of partial vs full-frame SR per backend."""
    from vidsr.bench.run import BenchConfig, default_backends, plot, run_bench, to_markdown, write_json

    from typing import get_args

    from vidsr.backends import BACKEND_NAMES, Precision

    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    for b in backends:
        name, _, precision = b.partition("-")
        if name not in BACKEND_NAMES or (precision and precision not in get_args(Precision)):
            raise click.BadParameter(f"{b!r} (choose from torch, torch-bf16, torch-fp16, ort, trt, trt-fp32)",
                                     param_hint="--backend")
    if plot_path is not None and plot_path.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg"):
        raise click.BadParameter(f"{plot_path}: write a .png, .svg, .pdf or .jpg", param_hint="--plot")
    if not backends:
        backends = default_backends()
        if "torch-bf16" not in backends:
            log("bench: torch-bf16 left out: no native bf16 on this CPU (--backend torch-bf16 times it anyway)")
    config = BenchConfig(scale=_scale(scale, model), model=model, backends=tuple(backends), frames=frames, warmup=warmup,
                         repeat=repeat, tile=tile, batch=batch, merge=merge, mask_every=mask_every,
                         sweep_fg=(0.1, 0.2, 0.3, 0.5, 0.7, 1.0) if sweep_fg else ())
    report = run_bench(input, config=config, gt_path=gt, log=log)
    md = to_markdown(report)
    click.echo(md)
    if json_path:
        write_json(report, json_path)
    if md_path:
        md_path.write_text(md)
    if plot_path:
        plot(report, plot_path)


@main.command("models")
def list_models() -> None:
    """List the shipped models."""
    from vidsr.weights import DEFAULT_MODELS, models_dir, read_manifest

    manifest = read_manifest()
    if not manifest:
        _fail(f"no models/manifest.json under {models_dir()}")
    for m in manifest.values():
        default = f"  (default for --scale {m.scale})" if DEFAULT_MODELS.get(m.scale) == m.name else ""
        click.echo(f"{m.name:16s} arch={m.arch:8s} x{m.scale}  {m.file}{default}")


def _format_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


@main.command("export")
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
    from vidsr.export import Profile, export_dir, export_model, list_cache, parse_shape, pipeline_profile
    from vidsr.weights import resolve_model

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
        _fail("give --onnx or --trt, not both (--trt writes the ONNX file too)")
    if depth_model is not None:
        from vidsr.masks.depth import load_depth_folder, module_family
        from vidsr.export import export_depth_checked

        depth_net = load_depth_folder(depth_model)
        try:
            dh, dw = ((int(v) for v in depth_size.lower().split("x")) if depth_size
                      else module_family(depth_net).input_size(1080, 1920))
        except ValueError:
            _fail(f"--depth-size must look like 252x448, got {depth_size!r}")
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
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
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
        for r in report(net, desc, device=where, extra=extra):
            vs_ref = "reference" if r.delta_vs_fp32_db == 0 and r.psnr_vs_fp32 == float("inf") \
                else f"{r.psnr_vs_fp32:.2f} dB vs fp32"
            click.echo(f"precision: {r.label:24s} PSNR {r.psnr_vs_gt:.3f} dB vs ground truth "
                       f"({r.delta_vs_fp32_db:+.3f} dB), {vs_ref}")


def _register_feature_commands() -> None:
    """Commands that live beside their feature's library code, added explicitly."""
    from vidsr.train.cli import dataset_group, eval_command, eval_sr_command, train_command

    for command in (train_command, eval_sr_command, dataset_group, eval_command):
        main.add_command(command)


_register_feature_commands()
