"""ONNX export with a content-addressed cache under export/."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.errors import OutputError

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"


def export_dir() -> Path:
    """``$VIDSR_EXPORT_DIR``, else export/ in the source checkout, else ~/.cache/vidsr/export."""
    env = os.environ.get("VIDSR_EXPORT_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and os.access(root, os.W_OK):
        return root / "export"
    return Path.home() / ".cache" / "vidsr" / "export"


def weights_digest(model: nn.Module) -> str:
    """sha256 over parameter names, shapes and bytes (identifies weights + config)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def export_onnx(model: nn.Module, path: Path, *, opset: int = 17, sample_hw: tuple[int, int] = (64, 64)) -> Path:
    """Export ``model`` with dynamic batch/height/width axes to ``path`` (written atomically)."""
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
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write ONNX file {path}: {e.strerror}") from None
    return path


def cached_onnx(model: nn.Module, descriptor: ModelDescriptor, *, opset: int = 17) -> Path:
    """The ONNX file for these exact weights, exported on first use."""
    digest = weights_digest(model)[:16]
    path = export_dir() / f"{descriptor.name}-{descriptor.arch}-x{descriptor.scale}-op{opset}-{digest}.onnx"
    if not path.is_file():
        export_onnx(model, path, opset=opset)
    return path
