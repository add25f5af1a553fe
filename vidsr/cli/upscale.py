"""``vidsr upscale``: the whole pipeline on one video, a batch of files, or Ray workers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from vidsr.cli.options import mask_options, mask_spec, model_options, resolve_scale
from vidsr.cli.progress import fail, progress_bar, warn, warn_slow_bf16
from vidsr.cli.summary import full_frame_note, mask_threshold, sr_spill_note


@click.command()
@click.argument("input", required=False, type=click.Path(dir_okay=True))  # a str: URLs keep their //
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output video (.mp4, .mkv, ...), numbered frames (up/%06d.png), - (stdout) or, with --live, a URL.")
@click.option("--sample", is_flag=True, help="Use the built-in sample clip as input.")
@model_options
@click.option("--backend", type=click.Choice(["torch", "ort", "trt"]), default="torch", show_default=True,
              help="trt: TensorRT engine from export/ (built on first use; needs the [trt] extra and a GPU).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cuda for trt, else cpu].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="[default: fp16 for trt, else fp32]")
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True, help="Tiles per network call.")
@click.option("--frame-workers", type=click.IntRange(1, 64), default=None,
              help="Frames upscaled at once, each with its share of torch's threads; more than 1 run "
                   "5 nice levels below vidsr's other threads on Linux "
                   "[default: 2 for torch on a multi-core CPU, else 1].")
@click.option("--tile", type=click.IntRange(16, 4096), default=64, show_default=True, help="Tile core size (LR px).")
@click.option("--merge/--no-merge", default=None,
              help="Merge neighbouring SR tiles into larger windows [default: on for CPU, off for GPU].")
@click.option("--bg", type=click.Choice(["bicubic", "lanczos", "bilinear"]), default="bicubic", show_default=True,
              help="Background upscale.")
@click.option("--mask-every", type=click.IntRange(1, 1000), default=None,
              help="Recompute the mask every N frames (and on cuts) [default: 2; 16 for depth; 1 for a mask file].")
@mask_options
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
@click.option("--live/--no-live", default=None,
              help="Read INPUT as a stream as it arrives (no spooling), encode for latency and keep real time by "
                   "shrinking SR coverage when behind (docs/live.md) [default: on for URLs, capture devices and "
                   "a pipe on stdin; --no-live reads a pipe as a file].")
@click.option("--drop-late", is_flag=True, help="With --live: drop frames already past their deadline.")
@click.option("--reconnect", is_flag=True, help="With --live: open a URL INPUT again when it ends, stalls or fails.")
@click.option("--workers", type=click.IntRange(1, 4096), default=None,
              help="Upscale segments in parallel on N Ray workers (needs the [ray] extra); see docs/scale-out.md.")
@click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
              help="Join this Ray cluster instead of starting Ray on this machine (with --workers).")
@click.option("--segment-s", type=click.FloatRange(1, 3600), default=10.0, show_default=True,
              help="With --workers: segment length in seconds (cut at keyframes).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def upscale(input: str | None, output: str, sample: bool, scale: str | None, model: str | None, backend: str,
            device: str | None, precision: str | None, batch: int, frame_workers: int | None, tile: int,
            merge: bool | None, bg: str, mask_every: int | None, mask: str, depth_model: Path | None, depth_batch: int | None,
            depth_size: int | None, depth_precision: str, focus_point: str | None, depth_tolerance: float,
            mask_carry: str | None, fg_threshold: float | None, feather: float, full_frame: bool,
            codec: str | None, crf: int, preset: str | None,
            pix_fmt: str | None, container: str | None, input_fps: str | None, strict: bool, deinterlace: str,
            resume: bool, save_mask: Path | None, no_audio: bool, live: bool | None, drop_late: bool,
            reconnect: bool, workers: int | None, ray_address: str | None, segment_s: float, quiet: bool) -> None:
    """Upscale INPUT (or --sample) to OUTPUT, super-resolving only the in-focus foreground.

    INPUT: any video FFmpeg reads, an image sequence (frames/%06d.png) or - (stdin);
    OUTPUT: a file (container from the extension) or - (stdout). INPUT may also be a folder
    or a quoted glob ('clips/*.mp4'): then OUTPUT is a folder, and outputs that are already
    complete are skipped.
    """
    from vidsr.errors import VidsrError
    from vidsr.masks.factory import build_estimator
    from vidsr.media.codecs import EncodeOptions
    from vidsr.media.inputs import parse_rate, spool_stdin
    from vidsr.media.reader import probe
    from vidsr.media.sample import write_sample
    from vidsr.pipeline.config import UpscaleConfig
    from vidsr.pipeline.run import upscale_video
    from vidsr.scaleout.batch import is_batch

    if sample == (input is not None):
        fail("give either INPUT or --sample")
    if workers is None and click.get_current_context().get_parameter_source("segment_s") \
            == click.core.ParameterSource.COMMANDLINE:
        fail("--segment-s needs --workers N")
    device = device or ("cuda" if backend == "trt" else "cpu")
    precision = precision or ("fp16" if backend == "trt" else "fp32")
    if backend == "torch":
        warn_slow_bf16(precision, device, "--precision")
    spec = mask_spec(mask, depth_model, depth_batch, depth_size, depth_precision, focus_point, depth_tolerance,
                     device)
    config = UpscaleConfig(
        scale=resolve_scale(scale, model), model=model, backend=backend, device=device, precision=precision,
        batch=batch, tile=tile, merge=merge, bg=bg, full_frame=full_frame, mask_every=spec.anchor_every(mask_every),
        fg_threshold=fg_threshold,
        mask_carry=mask_carry or spec.carry, mask_lookahead=spec.lookahead,
        feather_px=feather, encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                                                 container=container),
        copy_streams=not no_audio, save_mask=save_mask, strict=strict, deinterlace=deinterlace,
        resume=resume, input_rate=parse_rate(input_fps, option="--input-fps") if input_fps else None,
        frame_workers=frame_workers,
    )
    from vidsr.media.live import device_format, is_url, live_by_default

    if live is None:  # a pipe asked for file-only work (--resume, --save-mask) is read as a file
        live = input is not None and live_by_default(input, output) and not (
            input == "-" and (resume or save_mask is not None or workers is not None))
    if live:
        if sample or input is None or workers is not None:
            fail("--live reads INPUT as a stream: give - (stdin), a URL or a capture device, without --workers")
        from vidsr.cli.live import upscale_live_command

        upscale_live_command(input, output, config, spec, drop_late=drop_late, reconnect=reconnect, quiet=quiet)
        return
    if drop_late or reconnect:
        fail("--drop-late and --reconnect need --live")
    if input is not None and (is_url(input) or device_format(input) or is_url(output)):
        fail("URLs and capture devices are read and written live: drop --no-live")
    input, output = (Path(input) if input is not None else None), Path(output)
    if workers is not None or ray_address is not None or (input is not None and is_batch(input)):
        _upscale_many(input, output, config, spec, sample=sample, workers=workers, ray_address=ray_address,
                      segment_s=segment_s, quiet=quiet)
        return
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
            if not quiet:
                click.echo(f"sample clip: {input.name} (960x540, 60 frames, with audio)", err=True)
        elif str(input) == "-" and resume:
            fail("--resume needs an input file, not '-' (stdin)")
        elif str(input) == "-":  # spooled, as the mask estimator needs the frame size before the run
            input = spool_stdin(Path(tmpdir) / "stdin")
        try:
            info = probe(input, rate=config.input_rate)
        except VidsrError as e:  # name stdin as the user did, not the spool file
            raise type(e)(str(e).replace(str(Path(tmpdir) / "stdin"), "- (stdin)")) from None
        estimator = None if full_frame else build_estimator(spec, frame_size=(info.height, info.width))
        bars = []  # made at the first frame, so early errors print one clean line

        def on_frame(report) -> None:
            if not bars:  # a resumed run starts the bar at the frames finished before
                bars.append(progress_bar(quiet=quiet, total=info.frames, initial=report.resumed_frames))
            bars[0].update(1)
            if report.frames % 5 == 0:
                bars[0].set_postfix(sr=f"{report.sr_fraction:.0%}", refresh=False)

        try:
            report = upscale_video(input, output, config=config, estimator=estimator, on_frame=on_frame)
        finally:
            for bar in bars:
                bar.close()
    for w in report.warnings:
        warn(w)
    if not quiet:
        resumed = f" (+{report.resumed_frames} from the earlier run)" if report.resumed_frames else ""
        click.echo(
            f"{report.output}: {report.frames} frames{resumed} {report.in_size[0]}x{report.in_size[1]} -> "
            f"{report.out_size[0]}x{report.out_size[1]} in {report.seconds:.1f} s ({report.fps:.2f} fps), "
            f"SR on {report.sr_fraction:.1%} of pixels (foreground {report.fg_fraction:.1%}"
            f"{mask_threshold(report.threshold, estimator, fg_threshold)}), "
            f"engine {report.engine}, {report.mask_passes} {estimator.name if estimator else 'mask'} passes",
            err=str(output) == "-",  # stdout carries the video
        )
        notes = (sr_spill_note(report.sr_fraction, report.fg_fraction, threshold=report.threshold.mean,
                               feather=feather), full_frame_note(report))
        for note in filter(None, notes):
            click.echo(note, err=True)


def _upscale_many(input: Path | None, output: Path, config, spec, *, sample: bool, workers: int | None,
                  ray_address: str | None, segment_s: float, quiet: bool) -> None:
    """``upscale`` with --workers (segments on Ray) and/or many inputs (a folder or a glob)."""
    if str(input) == "-":
        fail("--workers needs an input file, not '-' (stdin)")
    from vidsr.media.sample import write_sample
    from vidsr.scaleout.batch import is_batch
    from vidsr.scaleout.ray import require_ray
    from vidsr.scaleout.run import plan_jobs, upscale_on_ray

    if ray_address is not None and workers is None:
        fail("--ray-address needs --workers N")
    if workers is not None:
        require_ray()  # one clear line before any work
        if spec.kind == "file":
            fail("--mask FILE cannot be combined with --workers (the mask video is read from its start)")
    with tempfile.TemporaryDirectory(prefix="vidsr-") as tmpdir:
        if sample:
            input = write_sample(Path(tmpdir) / "sample.mp4")
        jobs = plan_jobs(input, output)
        if workers is None:  # many files, one process
            _upscale_files(jobs, config, spec, quiet=quiet)
            return
        bars = []  # made at the first report, after Ray has started

        def on_progress(done: int, total: int) -> None:
            if not bars:
                bars.append(progress_bar(quiet=quiet, total=total))
            bars[0].total, bars[0].n = total, done
            bars[0].refresh()

        try:
            reports = upscale_on_ray(jobs, config=config, spec=spec, workers=workers, address=ray_address,
                                     segment_s=segment_s, skip_complete=is_batch(input), on_progress=on_progress)
        finally:
            for bar in bars:
                bar.close()
    for r in reports:
        for w in r.warnings:
            warn(f"{Path(r.input).name}: {w}")
        if quiet:
            continue
        if r.skipped:
            click.echo(f"{r.output}: complete, skipped")
        else:
            fps = r.frames / r.seconds if r.seconds else 0.0
            click.echo(f"{r.output}: {r.frames} frames {r.in_size[0]}x{r.in_size[1]} -> {r.out_size[0]}x"
                       f"{r.out_size[1]} in {r.seconds:.1f} s ({fps:.2f} fps), {r.segments} segments on "
                       f"{workers} workers ({r.cached} cached, {r.retried} retried)")


def _upscale_files(jobs: list[tuple[Path, Path]], config, spec, *, quiet: bool) -> None:
    """Many files in this process: a bar per file; a failed file is reported and the others go on."""
    from vidsr.scaleout.run import upscale_files

    bars = []

    def close_bars() -> None:
        while bars:
            bars.pop().close()

    failed = []
    try:
        for result in upscale_files(jobs, config=config, spec=spec,
                                    on_start=lambda src, info: bars.append(
                                        progress_bar(quiet=quiet, total=info.frames, desc=src.name)),
                                    on_frame=lambda r: bars[-1].update(1)):
            close_bars()
            src = result.input
            if result.skipped:
                if not quiet:
                    click.echo(f"{result.output}: complete, skipped")
                continue
            if result.error is not None:
                click.echo(f"error: {src.name}: {result.error}", err=True)  # the other files go on
                failed.append(src.name)
                continue
            report = result.report
            for w in report.warnings:
                warn(f"{src.name}: {w}")
            if not quiet:
                click.echo(f"{report.output}: {report.frames} frames in {report.seconds:.1f} s "
                           f"({report.fps:.2f} fps)")
    finally:
        close_bars()
    if failed:
        fail(f"{len(failed)} of {len(jobs)} files failed: {', '.join(failed)}")
