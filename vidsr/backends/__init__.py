"""Inference backends behind one Engine protocol. Heavy or optional imports happen lazily."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Union

import numpy as np
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.errors import BackendUnavailable

Precision = Literal["fp32", "fp16", "bf16"]


class Engine(Protocol):
    """Runs an SR network on a batch: (B, 3, h, w) float32 in [0, 1] -> (B, 3, h*s, w*s) float32."""

    descriptor: ModelDescriptor
    label: str

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TorchBackend:
    """Eager PyTorch. ``device``: cpu, cuda, cuda:N; ``precision`` uses autocast when not fp32."""

    device: str = "cpu"
    precision: Precision = "fp32"
    channels_last: bool = True


@dataclass(frozen=True)
class OrtBackend:
    """ONNX Runtime; the model is exported to ONNX on first use and cached.

    ``device``: cpu, or cuda (needs the ``[gpu]`` extra: onnxruntime-gpu).
    """

    device: str = "cpu"
    threads: int = 0
    opset: int = 17


Backend = Union[TorchBackend, OrtBackend]
BACKEND_NAMES = ("torch", "ort")


def backend_from_name(name: str, *, device: str = "cpu", precision: Precision = "fp32") -> Backend:
    """Map a CLI name to its backend dataclass."""
    if name == "torch":
        return TorchBackend(device=device, precision=precision)
    if name == "ort":
        if precision != "fp32":
            raise BackendUnavailable(f"--precision {precision} is not available with the ort backend on {device}")
        return OrtBackend(device=device)
    raise BackendUnavailable(f"unknown backend {name!r} (choose from: {', '.join(BACKEND_NAMES)})")


def create_engine(model: nn.Module, descriptor: ModelDescriptor, backend: Backend) -> Engine:
    """Build the engine for ``backend``."""
    if isinstance(backend, TorchBackend):
        from vidsr.backends.torch_engine import TorchEngine

        return TorchEngine(model=model, descriptor=descriptor, backend=backend)
    if isinstance(backend, OrtBackend):
        from vidsr.backends.ort_engine import OrtEngine

        return OrtEngine(model=model, descriptor=descriptor, backend=backend)
    raise TypeError(f"unknown backend {backend!r}")
