"""PyTorch engine: eager on CPU (optional bf16 autocast); on CUDA, weights cast to fp16/bf16
(:class:`~vidsr.backends.low_precision.LowPrecision`: fp32 input, output and residual), IEEE fp32
convolutions and matmuls (no TF32), channels_last and CUDA-graph replay per tile shape
(see backends/cuda_overlap.py)."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.arch.base import NO_TRIM, SubpixelNet, Trim
from vidsr.backends.base import TorchBackend
from vidsr.checks import check_batch
from vidsr.errors import BackendUnavailable

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def strict_fp32() -> None:
    """Make float32 convolutions and matmuls on CUDA IEEE fp32, process-wide.

    torch lets cuDNN convolutions use TF32 by default (10-bit mantissa inputs), so an "fp32"
    engine would not be fp32 on Ampere and later; TensorRT engines are built with TF32 off too.
    Uses torch's fp32_precision settings (mixing them with the legacy ``allow_tf32`` flags is an
    error in torch 2.9 and later)."""
    torch.backends.cudnn.fp32_precision = "ieee"  # conv and rnn
    torch.backends.cuda.matmul.fp32_precision = "ieee"


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
        self.memory_format = torch.channels_last if backend.channels_last else torch.contiguous_format
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            strict_fp32()
        # on CUDA the weights themselves are cast (faster than autocast), behind fp32 input and output;
        # the caller's module is left alone
        if on_cuda and backend.precision != "fp32":
            from vidsr.backends.low_precision import LowPrecision

            net = LowPrecision(model, dtype=_DTYPES[backend.precision])
        else:
            net = copy.deepcopy(model).float()
        self.model = net.to(self.device).eval().to(memory_format=self.memory_format)
        if not on_cuda:
            from vidsr.platform import keep_heap

            keep_heap()
        self._graphs = None
        if on_cuda and backend.cuda_graphs:
            from vidsr.backends.cuda_overlap import CudaGraphRunner

            self._graphs = CudaGraphRunner(self._forward)
        self.label = f"torch-{backend.device}-{backend.precision}" + ("-graphs" if self._graphs else "")
        # CUDA graphs are captured per input shape, so trimming stays on the CPU
        self.trims = not on_cuda and isinstance(self.model, SubpixelNet)
        # any input shape costs the same on the CPU: small windows go side by side into one call (vidsr.sr.packs)
        self.packs = not on_cuda
        # on the CPU, images are rounded before the pixel shuffle (run_images)
        self._phases = self.model.phase_major(pad_to=8).to(memory_format=self.memory_format) if self.trims else None

    def _autocast(self):
        if self.backend.precision == "fp32" or self.device.type == "cuda":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.backend.precision])

    def _forward(self, x: torch.Tensor, trim: Trim = NO_TRIM) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        return (self.model.forward_trimmed(x, trim) if any(trim) else self.model(x)).float()

    def run_tensor(self, x: torch.Tensor, *, trim: Trim = NO_TRIM) -> torch.Tensor:
        """(B, 3, h, w) float32 tensor on ``self.device`` -> (B, 3, h*s, w*s) float32, on the current stream."""
        if any(trim) and not self.trims:
            raise ValueError(f"{self.label} does not trim windows")
        with torch.inference_mode(), self._autocast():
            return self._graphs(x) if self._graphs is not None else self._forward(x, trim)

    def run(self, batch: np.ndarray, *, trim: Trim = NO_TRIM) -> np.ndarray:
        check_batch(batch)
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        # channels_last stays as it is: to_images reads it as (B, H, W, 3) without a transposing copy
        return self.run_tensor(x, trim=trim).cpu().numpy()

    def run_images(self, batch: np.ndarray, *, dtype: np.dtype = np.uint8, trim: Trim = NO_TRIM) -> np.ndarray:
        """``to_images(run(batch))``: (B, h*s, w*s, 3) ``dtype`` (uint8 or uint16).

        On the CPU the network's sub-pixel output (:meth:`SubpixelNet.phase_major`) is rounded at LR
        size and the pixel shuffle moves the rounded values: no float image at output size is made
        or shuffled (6-13 % less time per call of compact-x2 on the AVX2 host)."""
        from vidsr.backends.images import quantize, to_images

        if self._phases is None:
            return to_images(self.run(batch, trim=trim), dtype)
        check_batch(batch)  # the phase-major copy exists only where the engine trims
        x = torch.from_numpy(batch).contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            with self._autocast():
                y = self._phases.subpixels(x, trim).float()
            y = quantize(y, dtype, in_place=True)
            b, _, h, w = y.shape
            s = self.descriptor.scale
            # (B, h, w, dy, dx, 3) -> (B, h, dy, w, dx, 3)
            y = y.permute(0, 2, 3, 1).reshape(b, h, w, s, s, 3).permute(0, 1, 3, 2, 4, 5)
            return y.reshape(b, h * s, w * s, 3).numpy().astype(dtype, copy=False)
