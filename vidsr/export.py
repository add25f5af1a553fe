"""ONNX export with a content-addressed cache under export/, and TensorRT engine builds.

ONNX: dynamic batch/height/width axes, an explicit opset, ``onnx.checker``, and a
comparison against torch on random input (:func:`check_onnx`). TensorRT: an engine
built from that ONNX file with one optimisation profile sized for the pipeline's
tile windows (:func:`pipeline_profile`), a timing cache on disk, a progress bar, and
a file name that encodes everything the engine depends on (:class:`EngineKey`), so a
stale engine is never loaded. ``tensorrt`` is imported only inside the TensorRT path.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends import Engine
from vidsr.errors import BackendUnavailable, InputError, OutputError, VidsrError
from vidsr.weights import sha256_file

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-3
TRT_INSTALL_HINT = 'pip install -e ".[trt]"'
TRT_PRECISIONS = ("fp32", "fp16", "bf16")


class ExportCheckFailed(VidsrError, RuntimeError):
    """An exported file does not reproduce the torch model within tolerance, or a build failed."""


def export_dir() -> Path:
    """``$VIDSR_EXPORT_DIR``, else export/ in the source checkout, else ~/.cache/vidsr/export."""
    env = os.environ.get("VIDSR_EXPORT_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and os.access(root, os.W_OK):
        return root / "export"
    return Path.home() / ".cache" / "vidsr" / "export"


# Bump when an architecture's forward changes the exported graph (2: residual upscale as a conv),
# so cached exports and the engines built from them are not reused.
GRAPH_REVISION = 2


def weights_digest(model: nn.Module) -> str:
    """sha256 over the class, :data:`GRAPH_REVISION`, and tensor names, shapes and bytes
    (parameters and all buffers): identifies weights + config + graph."""
    h = hashlib.sha256(f"{type(model).__qualname__}/g{GRAPH_REVISION}".encode())
    tensors = dict(model.state_dict())
    tensors.update((k, b) for k, b in model.named_buffers() if k not in tensors)
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes, *, what: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {what} {path}: {e.strerror}") from None


# ----------------------------------------------------------------------------- ONNX


def onnx_bytes(model: nn.Module, *, opset: int = DEFAULT_OPSET, sample_hw: tuple[int, int] = (64, 64)) -> bytes:
    """Serialized ONNX of ``model`` with dynamic batch/height/width axes, checked by ``onnx.checker``."""
    import onnx

    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    x = torch.rand(1, 3, *sample_hw)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), buf, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return buf.getvalue()


def export_onnx(model: nn.Module, path: Path, *, opset: int = DEFAULT_OPSET,
                sample_hw: tuple[int, int] = (64, 64)) -> Path:
    """Export ``model`` with dynamic batch/height/width axes to ``path`` (written atomically)."""
    _atomic_write(path, onnx_bytes(model, opset=opset, sample_hw=sample_hw), what="ONNX file")
    return path


class SplitPReLU(nn.Module):
    """``PReLU`` as ``relu(x) - a * relu(-x)`` (the same for any slope), for ONNX Runtime on CPU:
    it keeps the graph in its blocked convolution layout, where a PReLU node costs two layout
    conversions (a 148x972 window: 49 -> 36 ms)."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.register_buffer("slope", prelu.weight.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) - self.slope * torch.relu(-x)


def split_prelu(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.PReLU`` replaced by :class:`SplitPReLU`."""
    model = copy.deepcopy(model)
    for child in list(model.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.PReLU):
                setattr(child, attr, SplitPReLU(sub))
    return model


def onnx_name(descriptor: ModelDescriptor, digest: str, opset: int, *, split: bool = False) -> str:
    """File name of the ONNX export of one set of weights (``split``: PReLU as relus)."""
    return f"{descriptor.name}-{descriptor.arch}-x{descriptor.scale}-op{opset}-{digest[:16]}{'-sp' if split else ''}.onnx"


def cached_onnx(model: nn.Module, descriptor: ModelDescriptor, *, opset: int = DEFAULT_OPSET,
                folder: Path | None = None, split: bool = False) -> Path:
    """The ONNX file for these exact weights, exported on first use (``split``: :func:`split_prelu`)."""
    path = (folder or export_dir()) / onnx_name(descriptor, weights_digest(model), opset, split=split)
    if not path.is_file():
        export_onnx(split_prelu(model) if split else model, path, opset=opset)
    return path


def check_onnx(model: nn.Module, onnx_model: bytes | Path, *, shapes: Iterable[tuple[int, int, int, int]],
               atol: float = DEFAULT_ATOL, seed: int = 0) -> float:
    """Run the ONNX model (ONNX Runtime, CPU) and ``model`` (torch, CPU, fp32) on random input.

    Args:
        onnx_model: serialized ONNX or a path to it.
        shapes: (B, 3, H, W) input shapes to try (several, to exercise the dynamic axes).
        atol: largest allowed absolute difference.
    Returns:
        The max absolute difference over all shapes.
    Raises:
        ExportCheckFailed: when it is above ``atol`` or an output shape differs.
    """
    import onnxruntime as ort

    data = onnx_model.read_bytes() if isinstance(onnx_model, Path) else onnx_model
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    worst = _max_abs_diff(lambda x: session.run(None, {INPUT_NAME: x})[0], model, shapes=shapes, seed=seed)
    if not worst <= atol:  # also catches NaN
        raise ExportCheckFailed(f"ONNX output differs from torch: max abs error {worst:.3g} > tolerance {atol:g}")
    return worst


@dataclass(frozen=True)
class OnnxExport:
    """A checked ONNX export."""

    path: Path
    sha256: str
    opset: int
    max_abs_error: float
    checked_shapes: tuple[tuple[int, int, int, int], ...]


def export_checked(model: nn.Module, descriptor: ModelDescriptor, *, folder: Path | None = None,
                   opset: int = DEFAULT_OPSET, atol: float = DEFAULT_ATOL,
                   shapes: Iterable[tuple[int, int, int, int]] = ((1, 3, 37, 53), (2, 3, 64, 48))) -> OnnxExport:
    """Export, check against torch, and only then write the file (an export that fails is never cached)."""
    shapes = tuple(tuple(s) for s in shapes)
    data = onnx_bytes(model, opset=opset)
    err = check_onnx(model, data, shapes=shapes, atol=atol)
    path = (folder or export_dir()) / onnx_name(descriptor, weights_digest(model), opset)
    _atomic_write(path, data, what="ONNX file")
    return OnnxExport(path=path, sha256=hashlib.sha256(data).hexdigest(), opset=opset, max_abs_error=err,
                      checked_shapes=shapes)


# ----------------------------------------------------------------------------- shapes and profiles


@dataclass(frozen=True, order=True)
class Shape:
    """A network input shape without its channel axis: (batch, height, width)."""

    batch: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if min(self.batch, self.height, self.width) < 1:
            raise InputError(f"shape {self} must be positive")

    def __str__(self) -> str:
        return f"{self.batch}x{self.height}x{self.width}"

    @property
    def nchw(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.height, self.width)

    def fits_in(self, other: Shape) -> bool:
        return self.batch <= other.batch and self.height <= other.height and self.width <= other.width


def parse_shape(text: str) -> Shape:
    """``BxHxW`` or ``Bx3xHxW`` (as trtexec writes it) -> :class:`Shape`."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 4 and dims[1] == 3:
        dims = [dims[0], dims[2], dims[3]]
    if len(dims) != 3:
        raise InputError(f"shape must look like 8x96x96 (BxHxW) or 8x3x96x96, got {text!r}")
    return Shape(*dims)


@dataclass(frozen=True)
class Profile:
    """A TensorRT optimisation profile: the engine accepts every shape between min and max."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not (self.min.fits_in(self.opt) and self.opt.fits_in(self.max)):
            raise InputError(f"profile needs min <= opt <= max in every axis, got {self}")

    def __str__(self) -> str:
        return f"min{self.min}-opt{self.opt}-max{self.max}"

    def contains(self, shape: Shape) -> bool:
        return self.min.fits_in(shape) and shape.fits_in(self.max)


def pipeline_profile(*, tile: int, batch: int, pad: int, min_side: int = 16) -> Profile:
    """The profile for ``vidsr upscale --tile TILE --batch BATCH`` with a network of receptive radius ``pad``.

    The pipeline's windows are ``tile + 2 * pad`` square (smaller only for frames smaller than
    that), sent ``batch`` at a time; a frame's last group may hold fewer.
    """
    win = tile + 2 * pad
    side = min(min_side, win)
    return Profile(min=Shape(1, side, side), opt=Shape(batch, win, win), max=Shape(batch, win, win))


# ----------------------------------------------------------------------------- engine cache


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT engine depends on; its file name encodes all of it."""

    model: str
    scale: int
    profile: Profile
    precision: str
    trt_version: str
    gpu: str
    onnx_sha256: str

    def filename(self) -> str:
        return (f"{_slug(self.model)}-x{self.scale}_{self.precision}_{self.profile}"
                f"_trt{_slug(self.trt_version)}_{_slug(self.gpu)}_onnx{self.onnx_sha256[:12]}.engine")

    def to_json(self) -> dict:
        d = asdict(self)
        d["profile"] = {k: str(v) for k, v in (("min", self.profile.min), ("opt", self.profile.opt),
                                               ("max", self.profile.max))}
        return d

    @classmethod
    def from_json(cls, d: dict) -> EngineKey:
        p = d["profile"]
        return cls(model=d["model"], scale=int(d["scale"]), precision=d["precision"],
                   trt_version=d["trt_version"], gpu=d["gpu"], onnx_sha256=d["onnx_sha256"],
                   profile=Profile(parse_shape(p["min"]), parse_shape(p["opt"]), parse_shape(p["max"])))


def _sidecar(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


@dataclass(frozen=True)
class CachedFile:
    """One entry of ``vidsr export --list``."""

    path: Path
    kind: str  # "onnx" | "engine" | "timing-cache"
    size: int
    meta: dict


def list_cache(folder: Path | None = None) -> list[CachedFile]:
    """ONNX files, TensorRT engines (with their sidecar metadata) and timing caches in ``folder``."""
    folder = folder or export_dir()
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix == ".onnx":
            out.append(CachedFile(p, "onnx", p.stat().st_size, {}))
        elif p.suffix == ".engine":
            meta = {}
            if _sidecar(p).is_file():
                try:
                    meta = json.loads(_sidecar(p).read_text())
                except (OSError, ValueError):
                    meta = {}
            out.append(CachedFile(p, "engine", p.stat().st_size, meta))
        elif p.suffix == ".cache" and p.name.startswith("timing"):
            out.append(CachedFile(p, "timing-cache", p.stat().st_size, {}))
    return out


def find_engine(key: EngineKey, *, folder: Path | None = None) -> Path | None:
    """The engine for ``key``: the exact file name, else any cached engine that differs only by a
    profile that contains ``key.profile`` (e.g. one built with ``--max-shape``)."""
    folder = folder or export_dir()
    exact = folder / key.filename()
    if exact.is_file():
        return exact
    for entry in list_cache(folder):
        if entry.kind != "engine" or not entry.meta.get("key"):
            continue
        try:
            other = EngineKey.from_json(entry.meta["key"])
        except (KeyError, TypeError, VidsrError):
            continue
        same = (other.onnx_sha256, other.precision, other.trt_version, other.gpu) == \
               (key.onnx_sha256, key.precision, key.trt_version, key.gpu)
        if same and other.profile.contains(key.profile.min) and other.profile.contains(key.profile.max):
            return entry.path
    return None


# ----------------------------------------------------------------------------- TensorRT


def import_tensorrt():
    """``import tensorrt``, or one line naming the extra."""
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable(f"TensorRT is not installed: {TRT_INSTALL_HINT} (needs an NVIDIA GPU)") from None
    return tensorrt


def require_trt_gpu(device: str = "cuda") -> torch.device:
    """The CUDA device TensorRT will use, or one line saying there is none."""
    if not device.startswith("cuda"):
        raise BackendUnavailable(f"TensorRT runs on CUDA devices only, not {device!r} (use --device cuda)")
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU and torch sees none "
                                 f"(the [trt] extra, {TRT_INSTALL_HINT}, is for GPU machines)")
    dev = torch.device(device)
    return torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())


def gpu_name(device: torch.device) -> str:
    """GPU model and compute capability, e.g. ``NVIDIA H100 80GB HBM3 sm90``."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm{major}{minor}"


def engine_key(descriptor: ModelDescriptor, *, onnx_path: Path, profile: Profile, precision: str,
               device: torch.device) -> EngineKey:
    """The cache key of an engine for this ONNX file on this GPU with the installed TensorRT."""
    trt = import_tensorrt()
    return EngineKey(model=descriptor.name, scale=descriptor.scale, profile=profile, precision=precision,
                     trt_version=trt.__version__, gpu=gpu_name(device), onnx_sha256=sha256_file(onnx_path))


def _progress_monitor(trt, enabled: bool):
    """A TensorRT IProgressMonitor drawing one tqdm bar per top-level build phase."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, tqdm] = {}
            self._parents: dict[str, str | None] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._parents[phase_name] = parent_phase
                if parent_phase is None:
                    self._bars[phase_name] = tqdm(total=num_steps, desc=f"TensorRT: {phase_name}", unit="step",
                                                  disable=not enabled, leave=False, dynamic_ncols=True)
                else:
                    root = self._root(phase_name)
                    if root in self._bars:
                        self._bars[root].set_postfix_str(phase_name, refresh=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                if phase_name in self._bars:
                    self._bars[phase_name].update(1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()
                self._parents.pop(phase_name, None)

        def _root(self, name: str) -> str:
            while self._parents.get(name) is not None:
                name = self._parents[name]
            return name

    return Monitor()


@dataclass(frozen=True)
class EngineBuild:
    """A built (or found) engine."""

    path: Path
    key: EngineKey
    seconds: float
    cached: bool


def build_engine(onnx_path: Path, key: EngineKey, *, folder: Path | None = None, workspace_gib: float = 4.0,
                 progress: bool = True, log: Callable[[str], None] | None = None) -> EngineBuild:
    """Build the TensorRT engine ``key`` describes from ``onnx_path`` (or return the cached one).

    The timing cache (``timing_trt<ver>_<gpu>.cache`` beside the engines) makes rebuilds fast.
    """
    folder = folder or export_dir()
    found = find_engine(key, folder=folder)
    if found is not None:
        return EngineBuild(path=found, key=key, seconds=0.0, cached=True)
    trt = import_tensorrt()
    if key.precision not in TRT_PRECISIONS:
        raise InputError(f"unknown TensorRT precision {key.precision!r} (choose from {', '.join(TRT_PRECISIONS)})")
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportCheckFailed(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if key.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default; fp32 should mean fp32
    elif key.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif key.precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no bf16; use fp16")
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    p = key.profile
    profile.set_shape(INPUT_NAME, p.min.nchw, p.opt.nchw, p.max.nchw)
    config.add_optimization_profile(profile)
    timing_path = folder / f"timing_trt{_slug(key.trt_version)}_{_slug(key.gpu)}.cache"
    cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    if cache is None:  # unreadable cache file: start an empty one (it is only a speed-up)
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt, progress)
    config.progress_monitor = monitor
    if log:
        log(f"building TensorRT engine ({key.precision}, profile {p}); this can take minutes")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportCheckFailed(f"TensorRT could not build an engine from {onnx_path.name} (see its log above)")
    _atomic_write(timing_path, bytes(config.get_timing_cache().serialize()), what="timing cache")
    path = folder / key.filename()
    _atomic_write(path, bytes(serialized), what="TensorRT engine")
    seconds = time.perf_counter() - t0
    meta = {"key": key.to_json(), "onnx": Path(onnx_path).name, "built_seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _atomic_write(_sidecar(path), (json.dumps(meta, indent=2) + "\n").encode(), what="engine metadata")
    return EngineBuild(path=path, key=key, seconds=seconds, cached=False)


def cached_engine(model: nn.Module, descriptor: ModelDescriptor, *, profile: Profile, precision: str = "fp16",
                  device: str = "cuda", opset: int = DEFAULT_OPSET, folder: Path | None = None,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> EngineBuild:
    """The TensorRT engine for these weights, profile, precision, GPU and TensorRT, built on first use."""
    import_tensorrt()
    dev = require_trt_gpu(device)
    onnx_path = cached_onnx(model, descriptor, opset=opset, folder=folder)
    key = engine_key(descriptor, onnx_path=onnx_path, profile=profile, precision=precision, device=dev)
    with torch.cuda.device(dev):
        return build_engine(onnx_path, key, folder=folder, progress=progress, log=log)


# ----------------------------------------------------------------------------- precision


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


@dataclass(frozen=True)
class PrecisionResult:
    """One engine's output on the sample frames, against the fp32 torch output and the ground truth."""

    label: str
    psnr_vs_fp32: float
    psnr_vs_gt: float
    delta_vs_fp32_db: float  # psnr_vs_gt - (fp32's psnr_vs_gt)


def compare_precision(engines: dict[str, Engine], reference: Engine, frames: list[np.ndarray],
                      ground_truth: list[np.ndarray]) -> list[PrecisionResult]:
    """Whole-frame SR of ``frames`` with each engine, scored against ``reference`` (fp32) and the truth.

    Args:
        engines: label -> Engine.
        reference: the fp32 Engine.
        frames: (H, W, 3) uint8 LR frames; ground_truth: the matching (H*s, W*s, 3) uint8 HR frames.
    """
    from vidsr.sr import sr_whole

    ref_out = [sr_whole(reference, f) for f in frames]
    ref_gt = float(np.mean([psnr(o, g) for o, g in zip(ref_out, ground_truth)]))
    results = [PrecisionResult(reference.label, float("inf"), ref_gt, 0.0)]
    for label, engine in engines.items():
        outs = [sr_whole(engine, f) for f in frames]
        vs_ref = float(np.mean([psnr(o, r) for o, r in zip(outs, ref_out)]))
        vs_gt = float(np.mean([psnr(o, g) for o, g in zip(outs, ground_truth)]))
        results.append(PrecisionResult(label, vs_ref, vs_gt, vs_gt - ref_gt))
    return results


def check_engine(engine: Engine, model: nn.Module, *, shapes: Iterable[tuple[int, int, int, int]],
                 seed: int = 0) -> float:
    """Max abs difference between ``engine`` and ``model`` (torch fp32 on CPU) on random input."""
    return _max_abs_diff(engine.run, model, shapes=shapes, seed=seed)


def _max_abs_diff(run: Callable[[np.ndarray], np.ndarray], model: nn.Module, *,
                  shapes: Iterable[tuple[int, int, int, int]], seed: int) -> float:
    """Max abs difference between ``run`` and ``model`` (torch fp32 on CPU) on seeded random input."""
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        out = run(x)
        if out.shape != ref.shape:
            raise ExportCheckFailed(f"output shape {out.shape} != torch {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


def sample_for_precision(scale: int, *, frames: int = 4, width: int = 320,
                         height: int = 180) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(LR frames, HR ground truth) from the built-in sample clip, ``frames`` spread over the pan."""
    from vidsr.media.sample import SampleSpec, sample_frames

    spec = SampleSpec(width=width, height=height, fps=frames, seconds=1.0, gt_scale=scale, audio=False)
    return list(sample_frames(spec)), list(sample_frames(spec, ground_truth=True))


def precision_report(model: nn.Module, descriptor: ModelDescriptor, *, device: str,
                     extra: dict[str, Engine] | None = None, frames: int = 4) -> list[PrecisionResult]:
    """PSNR of the low-precision engines available on ``device`` against torch fp32, on the sample clip.

    CPU: torch bf16 (autocast). CUDA: torch fp16 and bf16 (cast weights), plus ``extra`` engines
    (e.g. a TensorRT fp16 engine).
    """
    from vidsr.backends import TorchBackend, create_engine

    lr, gt = sample_for_precision(descriptor.scale, frames=frames)
    ref = create_engine(model, descriptor, TorchBackend(device=device, precision="fp32"))
    lows = ("fp16", "bf16") if device.startswith("cuda") else ("bf16",)
    engines = {f"torch-{device}-{p}": create_engine(model, descriptor, TorchBackend(device=device, precision=p))
               for p in lows}
    engines.update(extra or {})
    return compare_precision(engines, ref, lr, gt)


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
        import_tensorrt()
        require_trt_gpu(device)
    folder = folder or export_dir()
    checks = [(1, 3, 37, 53), profile.min.nchw, profile.opt.nchw]
    onnx_export = export_checked(model, descriptor, folder=folder, opset=opset, atol=atol, shapes=checks)
    if not trt:
        return ExportResult(descriptor=descriptor, onnx=onnx_export, profile=profile)
    dev = require_trt_gpu(device)
    key = engine_key(descriptor, onnx_path=onnx_export.path, profile=profile, precision=precision, device=dev)
    with torch.cuda.device(dev):
        built = build_engine(onnx_export.path, key, folder=folder, progress=progress, log=log)
    from vidsr.backends.trt_engine import TrtEngine

    engine = TrtEngine(engine_path=built.path, descriptor=descriptor, device=device)
    err = check_engine(engine, model, shapes=[profile.min.nchw, profile.opt.nchw])
    tol = ENGINE_ATOL[precision]
    if not err <= tol:
        if not built.cached:  # never leave an engine that failed its check in the cache
            built.path.unlink(missing_ok=True)
            _sidecar(built.path).unlink(missing_ok=True)
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
    import onnxruntime as ort

    from vidsr.masks.depth import INPUT_NAME as DEPTH_IN
    from vidsr.masks.depth import export_depth_onnx

    h, w = input_size
    path = (folder or export_dir()) / f"depth-{_slug(name)}-{h}x{w}-op{opset}-{weights_digest(model)[:16]}.onnx"
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
