"""Inference backends behind one Engine protocol (:mod:`~vidsr.backends.base`): torch, ONNX Runtime and
TensorRT engines, the ONNX and TensorRT caches, CUDA overlap. Heavy or optional imports happen lazily."""

from vidsr.backends.base import (
    BACKEND_NAMES,
    Backend,
    Engine,
    OrtBackend,
    Precision,
    TorchBackend,
    TrtBackend,
    backend_from_name,
    create_engine,
)

__all__ = ["BACKEND_NAMES", "Backend", "Engine", "OrtBackend", "Precision", "TorchBackend", "TrtBackend",
           "backend_from_name", "create_engine"]
