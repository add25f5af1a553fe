"""ONNX Runtime engine: CPU provider, or CUDA when onnxruntime-gpu is installed."""

from __future__ import annotations

import numpy as np
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends.base import OrtBackend
from vidsr.backends.onnx_cache import cached_onnx
from vidsr.checks import check_batch
from vidsr.errors import BackendUnavailable
from vidsr.extras import install_hint


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install -e . (or the [gpu] extra)") from None
    return onnxruntime


class OrtEngine:
    """Exports the module to ONNX (cached under export/) and runs it with ONNX Runtime."""

    trims = False  # the exported graph pads every convolution: whole windows only

    def __init__(self, *, model: nn.Module, descriptor: ModelDescriptor, backend: OrtBackend) -> None:
        ort = _import_ort()
        if backend.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(f"ort on cuda needs onnxruntime-gpu: {install_hint('gpu')}")
            dev = backend.device.split(":")
            providers = [("CUDAExecutionProvider", {"device_id": int(dev[1]) if len(dev) > 1 else 0}),
                         "CPUExecutionProvider"]
        elif backend.device == "cpu":
            from vidsr.platform import keep_heap

            keep_heap()
            providers = ["CPUExecutionProvider"]
        else:
            raise BackendUnavailable(f"ort backend: unknown device {backend.device!r} (cpu or cuda)")
        self.descriptor = descriptor
        # on CPU, PReLU as relus keeps ORT in its blocked conv layout (onnx_cache.SplitPReLU)
        self.path = cached_onnx(model, descriptor, opset=backend.opset, split=backend.device == "cpu")
        opts = ort.SessionOptions()
        if backend.threads:
            opts.intra_op_num_threads = backend.threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if backend.device == "cpu":
            # threads that spin after a call take the cores the decode, mask and encode threads need
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.label = f"ort-{backend.device}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
