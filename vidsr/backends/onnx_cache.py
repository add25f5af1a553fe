"""The ONNX export of an SR network, cached under export/ by a digest of its weights.

Dynamic batch/height/width axes, an explicit opset, ``onnx.checker``, and a comparison against
torch on random input (:func:`check_onnx`). File names encode the model, scale, opset and the
weights' digest (:func:`onnx_name`), so a stale export is never reused.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.errors import ExportCheckFailed
from vidsr.fs import atomic_write

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-3


def export_dir() -> Path:
    """``$VIDSR_EXPORT_DIR``, else export/ in the source checkout, else ~/.cache/vidsr/export."""
    env = os.environ.get("VIDSR_EXPORT_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and os.access(root, os.W_OK):
        return root / "export"
    return Path.home() / ".cache" / "vidsr" / "export"


# Bump when an architecture's forward changes the exported graph (2: residual upscale as a conv,
# 3: SplitPReLU as per-channel scalings),
# so cached exports and the engines built from them are not reused.
GRAPH_REVISION = 3


def weights_digest(model: nn.Module) -> str:
    """sha256 over the class, :data:`GRAPH_REVISION`, and tensor names, shapes and bytes
    (parameters and all buffers): identifies weights + config + graph."""
    h = hashlib.sha256(f"{type(model).__qualname__}/g{GRAPH_REVISION}".encode())
    tensors = dict(model.state_dict())
    tensors.update((k, b) for k, b in model.named_buffers() if k not in tensors)
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def slug(text: str) -> str:
    """``text`` as a file-name part: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


def max_abs_diff(run: Callable[[np.ndarray], np.ndarray], model: nn.Module, *,
                 shapes: Iterable[tuple[int, int, int, int]], seed: int) -> float:
    """Max abs difference between ``run`` and ``model`` (torch fp32 on CPU) on seeded random input."""
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        out = run(x)
        if out.shape != ref.shape:
            raise ExportCheckFailed(f"output shape {out.shape} != torch {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


def onnx_bytes(model: nn.Module, *, opset: int = DEFAULT_OPSET, sample_hw: tuple[int, int] = (64, 64)) -> bytes:
    """Serialized ONNX of ``model`` with dynamic batch/height/width axes, checked by ``onnx.checker``."""
    import onnx

    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    x = torch.rand(1, 3, *sample_hw)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), buf, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return buf.getvalue()


def export_onnx(model: nn.Module, path: Path, *, opset: int = DEFAULT_OPSET,
                sample_hw: tuple[int, int] = (64, 64)) -> Path:
    """Export ``model`` with dynamic batch/height/width axes to ``path`` (written atomically)."""
    atomic_write(path, onnx_bytes(model, opset=opset, sample_hw=sample_hw), what="ONNX file")
    return path


class SplitPReLU(nn.Module):
    """``PReLU`` as ``(1 - a) * relu(x) + a * x``, both scalings per-channel ``BatchNormalization``
    nodes, for ONNX Runtime on CPU: its NCHWc transformer turns those into blocked depthwise
    convolutions, so the graph stays in its blocked layout from the first convolution to the last
    (a PReLU node, or ``relu(x) - a * relu(-x)``, costs two layout conversions and three unblocked
    passes per layer). compact-x2-lite on a 160x960 window, ORT 1.2x on the 2-core AVX2 host, median
    of 10 interleaved runs: 474 ms as relus, 396 as PReLU, 329 as scalings, torch 431
    (docs/performance.md)."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        slope = prelu.weight.detach().reshape(-1).clone()
        self.register_buffer("slope", slope)
        self.register_buffer("rest", 1.0 - slope)
        self.register_buffer("zero", torch.zeros_like(slope))
        self.register_buffer("one", torch.ones_like(slope))

    def _scale(self, x: torch.Tensor, by: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.zero, self.one, by, self.zero, training=False, eps=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.slope.numel() == 1:  # one slope for every channel: a LeakyRelu, fused into the conv
            return F.leaky_relu(x, float(self.slope[0]))
        return self._scale(torch.relu(x), self.rest) + self._scale(x, self.slope)


def split_prelu(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.PReLU`` replaced by :class:`SplitPReLU`."""
    model = copy.deepcopy(model)
    for child in list(model.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.PReLU):
                setattr(child, attr, SplitPReLU(sub))
    return model


def onnx_name(descriptor: ModelDescriptor, digest: str, opset: int, *, split: bool = False) -> str:
    """File name of the ONNX export of one set of weights (``split``: PReLU as relus)."""
    return f"{descriptor.name}-{descriptor.arch}-x{descriptor.scale}-op{opset}-{digest[:16]}{'-sp' if split else ''}.onnx"


def cached_onnx(model: nn.Module, descriptor: ModelDescriptor, *, opset: int = DEFAULT_OPSET,
                folder: Path | None = None, split: bool = False) -> Path:
    """The ONNX file for these exact weights, exported on first use (``split``: :func:`split_prelu`)."""
    path = (folder or export_dir()) / onnx_name(descriptor, weights_digest(model), opset, split=split)
    if not path.is_file():
        export_onnx(split_prelu(model) if split else model, path, opset=opset)
    return path


def check_onnx(model: nn.Module, onnx_model: bytes | Path, *, shapes: Iterable[tuple[int, int, int, int]],
               atol: float = DEFAULT_ATOL, seed: int = 0) -> float:
    """Run the ONNX model (ONNX Runtime, CPU) and ``model`` (torch, CPU, fp32) on random input.

    Args:
        onnx_model: serialized ONNX or a path to it.
        shapes: (B, 3, H, W) input shapes to try (several, to exercise the dynamic axes).
        atol: largest allowed absolute difference.
    Returns:
        The max absolute difference over all shapes.
    Raises:
        ExportCheckFailed: when it is above ``atol`` or an output shape differs.
    """
    from vidsr.backends.ort_session import import_ort

    ort = import_ort()
    data = onnx_model.read_bytes() if isinstance(onnx_model, Path) else onnx_model
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    worst = max_abs_diff(lambda x: session.run(None, {INPUT_NAME: x})[0], model, shapes=shapes, seed=seed)
    if not worst <= atol:  # also catches NaN
        raise ExportCheckFailed(f"ONNX output differs from torch: max abs error {worst:.3g} > tolerance {atol:g}")
    return worst


@dataclass(frozen=True)
class OnnxExport:
    """A checked ONNX export."""

    path: Path
    sha256: str
    opset: int
    max_abs_error: float
    checked_shapes: tuple[tuple[int, int, int, int], ...]


def export_checked(model: nn.Module, descriptor: ModelDescriptor, *, folder: Path | None = None,
                   opset: int = DEFAULT_OPSET, atol: float = DEFAULT_ATOL,
                   shapes: Iterable[tuple[int, int, int, int]] = ((1, 3, 37, 53), (2, 3, 64, 48))) -> OnnxExport:
    """Export, check against torch, and only then write the file (an export that fails is never cached)."""
    shapes = tuple(tuple(s) for s in shapes)
    data = onnx_bytes(model, opset=opset)
    err = check_onnx(model, data, shapes=shapes, atol=atol)
    path = (folder or export_dir()) / onnx_name(descriptor, weights_digest(model), opset)
    atomic_write(path, data, what="ONNX file")
    return OnnxExport(path=path, sha256=hashlib.sha256(data).hexdigest(), opset=opset, max_abs_error=err,
                      checked_shapes=shapes)
