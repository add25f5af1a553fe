"""What ``vidsr models inspect`` reports about a weights file: architecture, scale, size, receptive
radius, FLOPs per output pixel and the measured time per output megapixel on this machine."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

MEASURED_ARCHS = ("rrdb", "onnx")  # whose receptive radius is measured, not read off the layers


@dataclass(frozen=True)
class ModelInfo:
    """One weights file, as loaded (:func:`vidsr.checkpoint.load_model`)."""

    file: str
    arch: str
    scale: int
    size_multiple: int
    parameters: int
    radius: int
    radius_kind: str  # "exact" or "measured"
    flops_per_px: float  # per output pixel (2 x multiply-adds of convolutions and matrix products)
    ms_per_mpx: float  # median of ``repeats`` whole-input calls, per output megapixel
    probe: tuple[int, int]  # LR input of the timing
    config: dict


def conv_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every convolution and linear layer of one forward of ``x`` (B=1)."""
    total = 0.0

    def hook(m: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += 2.0 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += 2.0 * out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def inspect_model(path: Path, *, probe: int = 96, repeats: int = 3) -> ModelInfo:
    """Load ``path`` and measure it (one warm-up call, then ``repeats`` timed calls on the CPU engine).

    ``probe``: LR side of the timing input (rounded up to the network's size multiple, or the fixed
    input shape of an ONNX file)."""
    from vidsr.backends.base import TorchBackend, create_engine
    from vidsr.checkpoint import load_model

    model, desc = load_model(path)
    m = desc.size_multiple
    side = -(-probe // m) * m
    h, w = desc.fixed_shape or (side, side)
    x = torch.rand(1, desc.in_channels, h, w, generator=torch.Generator().manual_seed(0))
    out_px = h * w * desc.scale ** 2
    has_torch_layers = any(isinstance(mod, nn.Conv2d) for mod in model.modules())
    if has_torch_layers:
        flops = conv_flops(model, x) / out_px
    else:  # an ONNX file: counted from its graph
        from vidsr.backends.onnx_model import onnx_macs

        flops = 2.0 * onnx_macs(Path(path), height=h, width=w) / out_px
    engine = create_engine(model, desc, TorchBackend())
    batch = np.ascontiguousarray(x.numpy())
    engine.run(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        engine.run(batch)
        times.append(time.perf_counter() - t0)
    return ModelInfo(file=Path(path).name, arch=desc.arch, scale=desc.scale, size_multiple=m,
                     parameters=sum(p.numel() for p in model.parameters()), radius=desc.receptive_radius,
                     radius_kind="measured" if desc.arch in MEASURED_ARCHS else "exact", flops_per_px=flops,
                     ms_per_mpx=statistics.median(times) * 1e3 / (out_px / 1e6), probe=(h, w), config=desc.config)


def format_info(info: ModelInfo) -> str:
    """The report as aligned ``name  value`` lines."""
    radius = f"{info.radius} LR px ({info.radius_kind}"
    radius += ": beyond it an input change moves no output by 0.5/255)" if info.radius_kind == "measured" else ")"
    flops = f"{info.flops_per_px / 1e3:,.1f} k per output pixel"
    rows = [("file", info.file), ("architecture", info.arch), ("scale", f"x{info.scale}"),
            ("parameters", f"{info.parameters:,}"), ("receptive radius", radius), ("FLOPs", flops),
            ("speed", f"{info.ms_per_mpx:,.0f} ms per output megapixel (CPU, {info.probe[0]}x{info.probe[1]} input, "
                      "this machine)"),
            ("config", ", ".join(f"{k}={v}" for k, v in info.config.items()))]
    if info.size_multiple > 1:
        rows.insert(3, ("input multiple", f"{info.size_multiple} (windows are aligned and padded to it)"))
    return "\n".join(f"{k:17s} {v}" for k, v in rows)
