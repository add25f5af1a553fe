"""``vidsr export``: a checked ONNX export, the TensorRT engine built from it and checked against
torch, and a report of what lower precisions cost in PSNR.

The caches themselves live in :mod:`vidsr.backends.onnx_cache` and :mod:`vidsr.backends.trt_cache`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends import Engine
from vidsr.backends.onnx_cache import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    OnnxExport,
    export_checked,
    export_dir,
    max_abs_diff,
    slug,
    weights_digest,
)
from vidsr.backends.trt_cache import (
    EngineBuild,
    Profile,
    build_engine,
    engine_key,
    engine_onnx,
    import_tensorrt,
    require_trt_gpu,
    sidecar,
    trt_major,
)
from vidsr.errors import ExportCheckFailed, ModelError
from vidsr.metrics import psnr
from vidsr.weights import sha256_file


@dataclass(frozen=True)
class PrecisionResult:
    """One engine's output on the sample frames, against the fp32 torch output and the ground truth."""

    label: str
    psnr_vs_fp32: float
    psnr_vs_gt: float
    delta_vs_fp32_db: float  # psnr_vs_gt - (fp32's psnr_vs_gt)


def compare_precision(engines: dict[str, Engine], reference: Engine, frames: list[np.ndarray],
                      ground_truth: list[np.ndarray], *, tile: int | None = None,
                      batch: int = 8) -> list[PrecisionResult]:
    """SR of ``frames`` with each engine, scored against ``reference`` (fp32) and the truth.

    Args:
        engines: label -> Engine.
        reference: the fp32 Engine.
        frames: (H, W, 3) uint8 LR frames; ground_truth: the matching (H*s, W*s, 3) uint8 HR frames.
        tile, batch: None: whole frames, one engine call each. Else the pipeline's tiles of this
            side (windows of ``tile + 2 * receptive radius``), ``batch`` at a time: what an
            engine whose TensorRT profile was sized by ``--tile``/``--batch`` accepts.
    """
    from vidsr.sr import sr_tiles, sr_whole, stitch
    from vidsr.tiling import plan_tiles

    def sr(engine: Engine, frame: np.ndarray) -> np.ndarray:
        if tile is None:
            return sr_whole(engine, frame)
        h, w = frame.shape[:2]
        plan = plan_tiles(h, w, tile=tile, pad=engine.descriptor.receptive_radius)
        tiles = sr_tiles(engine, frame, plan.tiles, batch=batch)
        return stitch(tiles, height=h, width=w, scale=engine.descriptor.scale)

    ref_out = [sr(reference, f) for f in frames]
    ref_gt = float(np.mean([psnr(o, g) for o, g in zip(ref_out, ground_truth)]))
    results = [PrecisionResult(reference.label, float("inf"), ref_gt, 0.0)]
    for label, engine in engines.items():
        outs = [sr(engine, f) for f in frames]
        vs_ref = float(np.mean([psnr(o, r) for o, r in zip(outs, ref_out)]))
        vs_gt = float(np.mean([psnr(o, g) for o, g in zip(outs, ground_truth)]))
        results.append(PrecisionResult(label, vs_ref, vs_gt, vs_gt - ref_gt))
    return results


def check_engine(engine: Engine, model: nn.Module, *, shapes: Iterable[tuple[int, int, int, int]],
                 seed: int = 0) -> float:
    """Max abs difference between ``engine`` and ``model`` (torch fp32 on CPU) on random input."""
    return max_abs_diff(engine.run, model, shapes=shapes, seed=seed)


def sample_for_precision(scale: int, *, frames: int = 4, width: int = 320,
                         height: int = 180) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(LR frames, HR ground truth) from the built-in sample clip, ``frames`` spread over the pan."""
    from vidsr.media.sample import SampleSpec, sample_frames

    spec = SampleSpec(width=width, height=height, fps=frames, seconds=1.0, gt_scale=scale, audio=False)
    return list(sample_frames(spec)), list(sample_frames(spec, ground_truth=True))


def precision_report(model: nn.Module, descriptor: ModelDescriptor, *, device: str,
                     extra: dict[str, Engine] | None = None, frames: int = 4, tile: int | None = None,
                     batch: int = 8) -> list[PrecisionResult]:
    """PSNR of the low-precision engines available on ``device`` against torch fp32, on the sample clip.

    CPU: torch bf16 (autocast). CUDA: torch fp16 and bf16 (cast weights), plus ``extra`` engines
    (e.g. a TensorRT fp16 engine, whose profile needs ``tile``/``batch``: :func:`compare_precision`).
    """
    from vidsr.backends import TorchBackend, create_engine

    lr, gt = sample_for_precision(descriptor.scale, frames=frames)
    ref = create_engine(model, descriptor, TorchBackend(device=device, precision="fp32"))
    lows = ("fp16", "bf16") if device.startswith("cuda") else ("bf16",)
    engines = {f"torch-{device}-{p}": create_engine(model, descriptor, TorchBackend(device=device, precision=p))
               for p in lows}
    engines.update(extra or {})
    return compare_precision(engines, ref, lr, gt, tile=tile, batch=batch)


ENGINE_ATOL = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 1e-1}


@dataclass(frozen=True)
class ExportResult:
    """What ``vidsr export`` produced."""

    descriptor: ModelDescriptor
    onnx: OnnxExport
    profile: Profile
    engine: EngineBuild | None = None
    engine_max_abs_error: float | None = None


def export_model(model: nn.Module, descriptor: ModelDescriptor, *, trt: bool = False, precision: str = "fp16",
                 profile: Profile, device: str = "cuda", opset: int = DEFAULT_OPSET, atol: float = DEFAULT_ATOL,
                 folder: Path | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> ExportResult:
    """Checked ONNX export, then (``trt``) the TensorRT engine for ``profile``, checked against torch.

    TensorRT and the GPU are checked first, so a machine without them fails before any work.
    """
    if trt:
        trt_module = import_tensorrt()
        require_trt_gpu(device)
        trt_major(trt_module)
    if descriptor.arch == "onnx":
        raise ModelError(f"{descriptor.name} is an ONNX file already: give it to --model as it is")
    folder = folder or export_dir()
    m = descriptor.size_multiple  # RRDBNet x2/x1 take multiples of 2/4 only
    checks = [(b, c, -(-h // m) * m, -(-w // m) * m) for b, c, h, w in ((1, 3, 37, 53), profile.min.nchw, profile.opt.nchw)]
    onnx_export = export_checked(model, descriptor, folder=folder, opset=opset, atol=atol, shapes=checks)
    if not trt:
        return ExportResult(descriptor=descriptor, onnx=onnx_export, profile=profile)
    dev = require_trt_gpu(device)
    # fp16/bf16 engines come from the typed graph (TensorRT 11 builds strongly typed networks only)
    onnx_path = engine_onnx(model, descriptor, precision=precision, opset=opset, folder=folder)
    key = engine_key(descriptor, onnx_path=onnx_path, profile=profile, precision=precision, device=dev)
    with torch.cuda.device(dev):
        built = build_engine(onnx_path, key, folder=folder, progress=progress, log=log)
    from vidsr.backends.trt_engine import TrtEngine

    engine = TrtEngine(engine_path=built.path, descriptor=descriptor, device=device)
    err = check_engine(engine, model, shapes=[profile.min.nchw, profile.opt.nchw])
    tol = ENGINE_ATOL[precision]
    if not err <= tol:
        if not built.cached:  # never leave an engine that failed its check in the cache
            built.path.unlink(missing_ok=True)
            sidecar(built.path).unlink(missing_ok=True)
        raise ExportCheckFailed(f"TensorRT {precision} engine differs from torch: max abs error {err:.3g} > {tol:g}")
    return ExportResult(descriptor=descriptor, onnx=onnx_export, profile=profile, engine=built,
                        engine_max_abs_error=err)


def export_depth_checked(model: nn.Module, *, name: str, folder: Path | None = None,
                         input_size: tuple[int, int] = (252, 448), opset: int = DEFAULT_OPSET,
                         rtol: float = 1e-3) -> OnnxExport:
    """Export a Depth Anything module (vidsr.masks.depth) to ONNX and check it against torch.

    The depth file has a dynamic batch axis and a fixed (H, W) = ``input_size`` (see
    :func:`vidsr.masks.depth.export_depth_onnx`). ``max_abs_error`` here is relative to the largest
    |depth| of the torch output (depth is unnormalised). A file that fails is deleted.
    """
    from vidsr.backends.ort_session import import_ort
    from vidsr.masks.depth import INPUT_NAME as DEPTH_IN
    from vidsr.masks.depth import export_depth_onnx

    ort = import_ort()
    h, w = input_size
    path = (folder or export_dir()) / f"depth-{slug(name)}-{h}x{w}-op{opset}-{weights_digest(model)[:16]}.onnx"
    export_depth_onnx(model, path, input_size=input_size, opset=opset)
    x = np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32)
    with torch.inference_mode():
        ref = model.eval().cpu().float()(pixel_values=torch.from_numpy(x)).predicted_depth.numpy()
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {DEPTH_IN: x})[0]
    out = out[:, 0] if out.ndim == 4 else out
    err = float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-12)) if out.shape == ref.shape else np.inf
    if not err <= rtol:
        path.unlink(missing_ok=True)
        raise ExportCheckFailed(f"depth ONNX differs from torch: max error {err:.3g} of the depth range > {rtol:g}")
    return OnnxExport(path=path, sha256=sha256_file(path), opset=opset, max_abs_error=err,
                      checked_shapes=((2, 3, h, w),))
