"""ONNX Runtime engine: CPU provider, or CUDA when onnxruntime-gpu is installed (checked, never a
silent CPU fallback: :mod:`vidsr.backends.ort_session`)."""

from __future__ import annotations

import numpy as np
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends.base import OrtBackend
from vidsr.backends.onnx_cache import cached_onnx
from vidsr.backends.ort_session import check_providers, import_ort, providers_for
from vidsr.checks import check_batch
from vidsr.errors import BackendUnavailable


class OrtEngine:
    """Exports the module to ONNX (cached under export/) and runs it with ONNX Runtime."""

    trims = False  # the exported graph pads every convolution: whole windows only

    def __init__(self, *, model: nn.Module, descriptor: ModelDescriptor, backend: OrtBackend) -> None:
        ort = import_ort()
        if backend.device == "cpu":
            from vidsr.platform import keep_heap

            keep_heap()
        elif not backend.device.startswith("cuda"):
            raise BackendUnavailable(f"ort backend: unknown device {backend.device!r} (cpu or cuda)")
        providers = providers_for(ort, backend.device)  # before the export: a machine without CUDA fails first
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
        check_providers(self.session, backend.device)
        self.input_name = self.session.get_inputs()[0].name
        self.label = f"ort-{backend.device}"
        self.packs = backend.device == "cpu"  # vidsr.sr.packs

    def run(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
