"""Eager PyTorch engine (CPU or CUDA, optional fp16/bf16 autocast)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends import TorchBackend
from vidsr.checks import check_batch
from vidsr.errors import BackendUnavailable

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine:
    """Runs a module under inference mode; input and output are numpy float32 (B, 3, H, W)."""

    def __init__(self, *, model: nn.Module, descriptor: ModelDescriptor, backend: TorchBackend) -> None:
        if backend.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"--device {backend.device}: torch sees no CUDA GPU")
        if backend.precision == "fp16" and not backend.device.startswith("cuda"):
            raise BackendUnavailable("fp16 needs a CUDA device; use bf16 on CPU")
        self.descriptor = descriptor
        self.backend = backend
        self.device = torch.device(backend.device)
        self.model = model.to(self.device).eval()
        self.memory_format = torch.channels_last if backend.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.label = f"torch-{backend.device}-{backend.precision}"

    def _autocast(self):
        if self.backend.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.backend.precision])

    def run(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), self._autocast():
            y = self.model(x)
        return y.float().contiguous().cpu().numpy()
