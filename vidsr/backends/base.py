"""The Engine protocol, one dataclass per backend, and :func:`create_engine` (engines are imported
lazily, when one is created)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol, Union

import numpy as np
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.errors import BackendUnavailable

Precision = Literal["fp32", "fp16", "bf16"]


class Engine(Protocol):
    """Runs an SR network on a batch: (B, 3, h, w) float32 in [0, 1] -> (B, 3, h*s, w*s) float32.

    ``trims``: ``run`` also takes ``trim=(rows, cols)`` for windows with the receptive radius of
    context at both ends of those axes, and skips computing that context
    (:meth:`vidsr.arch.base.SubpixelNet.forward_trimmed`). An engine may also offer
    ``run_images(batch, *, dtype, trim)``, returning ``vidsr.backends.images.to_images`` of ``run`` by a faster
    route (:func:`vidsr.sr.run_images` uses it).
    """

    descriptor: ModelDescriptor
    label: str
    trims: bool

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TorchBackend:
    """PyTorch. ``device``: cpu, cuda, cuda:N. ``precision``: bf16 autocast on CPU; on CUDA the
    weights are cast to fp16/bf16. On CUDA, ``cuda_graphs`` replays each tile shape from a captured
    graph and ``overlap`` runs H2D / SR / D2H on separate streams with pinned buffers."""

    device: str = "cpu"
    precision: Precision = "fp32"
    channels_last: bool = True
    cuda_graphs: bool = True
    overlap: bool = True


@dataclass(frozen=True)
class OrtBackend:
    """ONNX Runtime; the model is exported to ONNX on first use and cached.

    ``device``: cpu, or cuda (needs the ``[gpu]`` extra: onnxruntime-gpu).
    """

    device: str = "cpu"
    threads: int = 0
    opset: int = 17


@dataclass(frozen=True)
class TrtBackend:
    """TensorRT engine built from the ONNX export and cached in export/ (needs the ``[trt]`` extra and
    an NVIDIA GPU). The optimisation profile covers the pipeline's ``tile + 2 * radius`` windows,
    ``batch`` at a time; ``overlap`` as for :class:`TorchBackend`."""

    device: str = "cuda"
    precision: Precision = "fp16"
    tile: int = 64
    batch: int = 8
    opset: int = 17
    overlap: bool = True


Backend = Union[TorchBackend, OrtBackend, TrtBackend]
BACKEND_NAMES = ("torch", "ort", "trt")


def backend_from_name(name: str, *, device: str | None = None, precision: Precision = "fp32",
                      tile: int = 64, batch: int = 8) -> Backend:
    """Map a CLI name to its backend dataclass (``tile``/``batch`` size TensorRT's profile).

    ``device`` None means the backend's own default: cuda for trt, cpu for the others.
    """
    if device is None:
        device = "cuda" if name == "trt" else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise BackendUnavailable(f"unknown device {device!r} (cpu, cuda or cuda:N)")
    if name == "torch":
        return TorchBackend(device=device, precision=precision)
    if name == "ort":
        if precision != "fp32":
            raise BackendUnavailable(f"--precision {precision} is not available with the ort backend on {device}")
        return OrtBackend(device=device)
    if name == "trt":
        return TrtBackend(device=device, precision=precision, tile=tile, batch=batch)
    raise BackendUnavailable(f"unknown backend {name!r} (choose from: {', '.join(BACKEND_NAMES)})")


def create_engine(model: nn.Module, descriptor: ModelDescriptor, backend: Backend) -> Engine:
    """Build the engine for ``backend``."""
    if any(getattr(m, "arch_name", None) == "onnx" for m in model.modules()):
        # an ONNX file's network (vidsr.backends.onnx_model) runs in ONNX Runtime on the CPU whatever the
        # backend: the torch engine only calls it
        if backend.device != "cpu" or getattr(backend, "precision", "fp32") != "fp32":
            raise BackendUnavailable("an .onnx --model runs on the CPU in fp32 (its own precision); "
                                     "drop --device/--precision")
        backend = TorchBackend()
    if isinstance(backend, TorchBackend):
        from vidsr.backends.torch_engine import TorchEngine

        engine = TorchEngine(model=model, descriptor=descriptor, backend=backend)
        if backend.overlap and engine.device.type == "cuda":
            from vidsr.backends.cuda_overlap import OverlapEngine

            return OverlapEngine(engine)
        return engine
    if isinstance(backend, OrtBackend):
        from vidsr.backends.ort_engine import OrtEngine

        return OrtEngine(model=model, descriptor=descriptor, backend=backend)
    if isinstance(backend, TrtBackend):
        from vidsr.backends.trt_engine import TrtEngine

        trt_engine = TrtEngine.build(model=model, descriptor=descriptor, backend=backend)
        if backend.overlap:
            from vidsr.backends.cuda_overlap import OverlapEngine

            return OverlapEngine(trt_engine)
        return trt_engine
    raise TypeError(f"unknown backend {backend!r}")
