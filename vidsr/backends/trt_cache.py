"""TensorRT engines built from the ONNX export and cached beside it in export/.

One optimisation profile sized for the pipeline's tile windows (:func:`pipeline_profile`), a
timing cache on disk, a progress bar, and a file name that encodes everything the engine depends
on (:class:`EngineKey`), so a stale engine is never loaded. ``tensorrt`` is imported only inside
the functions that need it (the ``[trt]`` extra).

TensorRT 10 and 11 build the same way: a strongly typed network (11 has no other kind; it removed
``BuilderFlag.FP16``/``BF16``) parsed from an ONNX graph that carries the precision itself: the fp32
export, or for fp16/bf16 :class:`~vidsr.backends.low_precision.LowPrecision`'s graph (fp32 input,
residual upscale and output; the body in fp16/bf16). TF32 is off, so fp32 layers are fp32.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends.onnx_cache import (
    DEFAULT_OPSET,
    INPUT_NAME,
    cached_onnx,
    export_dir,
    export_onnx,
    onnx_name,
    slug,
    weights_digest,
)
from vidsr.errors import BackendUnavailable, ExportCheckFailed, InputError, VidsrError
from vidsr.extras import install_hint, require
from vidsr.fs import atomic_write
from vidsr.weights import sha256_file

TRT_PRECISIONS = ("fp32", "fp16", "bf16")
TRT_MAJORS = (10, 11)  # the TensorRT major versions vidsr builds for (the [trt] extra pins them)
TYPED_MIN_OPSET = {"bf16": 22}  # ONNX Conv takes bfloat16 from opset 22 on


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
        return (f"{slug(self.model)}-x{self.scale}_{self.precision}_{self.profile}"
                f"_trt{slug(self.trt_version)}_{slug(self.gpu)}_onnx{self.onnx_sha256[:12]}.engine")

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


def sidecar(engine_path: Path) -> Path:
    """The JSON metadata file beside an engine."""
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
            if sidecar(p).is_file():
                try:
                    meta = json.loads(sidecar(p).read_text())
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


def import_tensorrt():
    """``import tensorrt``, or one line naming the extra."""
    return require("tensorrt", extra="trt", what="TensorRT is not installed (it needs an NVIDIA GPU)")


def trt_major(trt) -> int:
    """The installed TensorRT's major version, refused unless it is one of :data:`TRT_MAJORS`."""
    version = str(getattr(trt, "__version__", ""))
    head = version.split(".")[0]
    if not head.isdigit() or int(head) not in TRT_MAJORS:
        raise BackendUnavailable(f"TensorRT {version or '(unknown version)'} is not supported: vidsr builds with "
                                 f"TensorRT {' or '.join(map(str, TRT_MAJORS))} ({install_hint('trt')})")
    return int(head)


def network_flags(trt) -> int:
    """``create_network`` flags: strongly typed (TensorRT 10's opt-in bit; 11 accepts it and is always
    strongly typed, so where its enum lacks the member no bit is needed)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        if trt_major(trt) < 11:
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no strongly typed networks; "
                                     f"upgrade it: {install_hint('trt')}")
        return 0
    return 1 << int(flag)


def configure_precision(trt, config) -> None:
    """Builder flags for a strongly typed network: none of the precision flags (TensorRT 10 refuses
    them with strong typing, 11 removed them) and TF32 off, so fp32 layers (the whole fp32 graph,
    the residual of the fp16/bf16 ones) are computed in fp32."""
    config.clear_flag(trt.BuilderFlag.TF32)


def engine_onnx(model: nn.Module, descriptor: ModelDescriptor, *, precision: str, opset: int = DEFAULT_OPSET,
                folder: Path | None = None) -> Path:
    """The ONNX file a ``precision`` engine is built from (exported on first use): the fp32 export,
    or the typed graph of :class:`~vidsr.backends.low_precision.LowPrecision` for fp16/bf16 (at
    opset 22 at least for bf16). Its name adds the precision to the fp32 file's."""
    if precision not in TRT_PRECISIONS:
        raise InputError(f"unknown TensorRT precision {precision!r} (choose from {', '.join(TRT_PRECISIONS)})")
    if precision == "fp32":
        return cached_onnx(model, descriptor, opset=opset, folder=folder)
    from vidsr.backends.low_precision import LOW_DTYPES, LowPrecision

    opset = max(opset, TYPED_MIN_OPSET.get(precision, opset))
    name = onnx_name(descriptor, weights_digest(model), opset).removesuffix(".onnx") + f"-{precision}.onnx"
    path = (folder or export_dir()) / name
    if not path.is_file():
        export_onnx(LowPrecision(model, dtype=LOW_DTYPES[precision]), path, opset=opset)
    return path


def require_trt_gpu(device: str = "cuda") -> torch.device:
    """The CUDA device TensorRT will use, or one line saying there is none."""
    if not device.startswith("cuda"):
        raise BackendUnavailable(f"TensorRT runs on CUDA devices only, not {device!r} (use --device cuda)")
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU and torch sees none "
                                 f"(the [trt] extra, {install_hint('trt')}, is for GPU machines)")
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

    ``onnx_path`` must carry ``key.precision`` in its graph (:func:`engine_onnx`).

    The timing cache (``timing_trt<ver>_<gpu>.cache`` beside the engines) makes rebuilds fast.
    """
    folder = folder or export_dir()
    found = find_engine(key, folder=folder)
    if found is not None:
        return EngineBuild(path=found, key=key, seconds=0.0, cached=True)
    trt = import_tensorrt()
    if key.precision not in TRT_PRECISIONS:
        raise InputError(f"unknown TensorRT precision {key.precision!r} (choose from {', '.join(TRT_PRECISIONS)})")
    trt_major(trt)
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportCheckFailed(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    configure_precision(trt, config)
    profile = builder.create_optimization_profile()
    p = key.profile
    profile.set_shape(INPUT_NAME, p.min.nchw, p.opt.nchw, p.max.nchw)
    config.add_optimization_profile(profile)
    timing_path = folder / f"timing_trt{slug(key.trt_version)}_{slug(key.gpu)}.cache"
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
    atomic_write(timing_path, bytes(config.get_timing_cache().serialize()), what="timing cache")
    path = folder / key.filename()
    atomic_write(path, bytes(serialized), what="TensorRT engine")
    seconds = time.perf_counter() - t0
    meta = {"key": key.to_json(), "onnx": Path(onnx_path).name, "built_seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(sidecar(path), (json.dumps(meta, indent=2) + "\n").encode(), what="engine metadata")
    return EngineBuild(path=path, key=key, seconds=seconds, cached=False)


def cached_engine(model: nn.Module, descriptor: ModelDescriptor, *, profile: Profile, precision: str = "fp16",
                  device: str = "cuda", opset: int = DEFAULT_OPSET, folder: Path | None = None,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> EngineBuild:
    """The TensorRT engine for these weights, profile, precision, GPU and TensorRT, built on first use."""
    import_tensorrt()
    dev = require_trt_gpu(device)
    onnx_path = engine_onnx(model, descriptor, precision=precision, opset=opset, folder=folder)
    key = engine_key(descriptor, onnx_path=onnx_path, profile=profile, precision=precision, device=dev)
    with torch.cuda.device(dev):
        return build_engine(onnx_path, key, folder=folder, progress=progress, log=log)
