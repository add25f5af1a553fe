"""A network in fp16/bf16 behind fp32 input and output, for CUDA torch engines and the typed ONNX
that TensorRT builds strongly typed engines from.

The cheap residual upscale of a :class:`~vidsr.arch.base.SubpixelNet` (Compact, ESPCN) stays in
fp32 on the fp32 input: casting the input first would round the residual, which carries most of
each output pixel's value (the architecture's own rule, :func:`vidsr.arch.base.subpixel_residual`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vidsr.arch.base import SubpixelNet, subpixel_residual

LOW_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class LowPrecision(nn.Module):
    """``model``'s layers in ``dtype``; (B, 3, h, w) float32 -> (B, 3, h*s, w*s) float32.

    Args:
        model: the fp32 network (left alone: a copy is cast).
        dtype: torch.float16 or torch.bfloat16.
    """

    def __init__(self, model: nn.Module, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.net = copy.deepcopy(model).to(dtype).eval()
        self.split = isinstance(model, SubpixelNet) and model.residual != "none"
        if self.split:
            self.register_buffer("residual_kernel", model.residual_kernel.detach().float().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.split:
            return self.net(x.to(self.dtype)).float()
        body = self.net.body(x.to(self.dtype)).float()
        return self.net.shuffle(body + subpixel_residual(x, self.residual_kernel))
