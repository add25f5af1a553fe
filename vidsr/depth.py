"""Monocular depth networks: Depth Anything V2 via ``transformers`` or ONNX Runtime.

A depth net takes a list of frames and returns relative *inverse* depth (larger =
nearer) per frame, at the size the caller asks for. Frames are resized to a reduced
input size whose sides are multiples of the ViT patch (14 px), normalised with the
ImageNet statistics, run ``batch`` at a time, and the prediction is upsampled.

Weights never download: the user gives a local folder (``config.json`` +
``*.safetensors``, the layout of the official ``Depth-Anything-V2-*-hf`` releases) or a
``.onnx`` file (see :func:`export_depth_onnx`). ``transformers`` is the ``[depth]``
extra and is imported only here, when a folder is loaded.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, Sequence

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.errors import BackendUnavailable, InputError, ModelError, OutputError

if TYPE_CHECKING:
    from torch import nn

PATCH = 14
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "predicted_depth"
DepthPrecision = Literal["fp32", "bf16"]

WEIGHTS_HELP = ("Depth Anything V2 weights do not ship with vidsr: download a Depth-Anything-V2-*-hf "
                "folder (config.json + model.safetensors) from the official release and pass it with "
                "--depth-model (see README, 'Depth masks')")

# Depth Anything V2 Small: the architecture of the official "Depth-Anything-V2-Small-hf" config
# (DINOv2 ViT-S/14 backbone, DPT head). Base and Large differ only in these numbers.
SMALL_CONFIG: dict = {
    "model_type": "depth_anything",
    "backbone_config": {
        "model_type": "dinov2", "hidden_size": 384, "num_attention_heads": 6, "num_hidden_layers": 12,
        "mlp_ratio": 4, "image_size": 518, "patch_size": PATCH, "out_indices": [3, 6, 9, 12],
        "out_features": ["stage3", "stage6", "stage9", "stage12"], "reshape_hidden_states": False,
    },
    "neck_hidden_sizes": [48, 96, 192, 384], "fusion_hidden_size": 64, "head_hidden_size": 32,
    "reassemble_hidden_size": 384, "reassemble_factors": [4, 2, 1, 0.5], "patch_size": PATCH,
    "depth_estimation_type": "relative", "max_depth": 1,
}


def depth_input_size(height: int, width: int, *, long_side: int = 448) -> tuple[int, int]:
    """Network input (h, w): long side ``long_side``, aspect kept, both multiples of 14.

    A 16:9 frame gets (252, 448) by default; ``long_side=518`` matches the release's
    training size (294, 518).
    """
    if long_side < PATCH:
        raise InputError(f"depth input size must be >= {PATCH}, got {long_side}")
    s = long_side / max(height, width)

    def snap(v: float) -> int:
        return max(PATCH, int(round(v / PATCH)) * PATCH)

    return snap(height * s), snap(width * s)


def preprocess(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Frames -> network input.

    Args:
        images: each (H, W, 3) uint8 RGB.
        size: (h, w) input size, multiples of 14.
    Returns:
        (B, 3, h, w) float32, ImageNet-normalised.
    """
    h, w = size
    if h % PATCH or w % PATCH:
        raise InputError(f"depth input size must be a multiple of {PATCH}, got {h}x{w}")
    out = np.empty((len(images), 3, h, w), np.float32)
    for i, img in enumerate(images):
        check_image(img)
        big = img.shape[0] * img.shape[1] > h * w
        x = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if big else cv2.INTER_CUBIC)
        x = (x.astype(np.float32) * (1.0 / 255.0) - IMAGENET_MEAN) / IMAGENET_STD
        out[i] = x.transpose(2, 0, 1)
    return out


def upsample(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B, h, w) -> (B, H, W) float32, bilinear."""
    if depth.shape[1:] == tuple(size):
        return depth.astype(np.float32, copy=False)
    return np.stack([cv2.resize(d.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                     for d in depth])


class DepthNet(Protocol):
    """Relative inverse depth for a list of frames."""

    name: str
    batch: int

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for frames of this size."""
        ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, h, w) float32 normalised -> (B, h, w) float32 relative inverse depth."""
        ...


def predict(net: DepthNet, images: Sequence[np.ndarray], *, out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Run ``net`` on ``images`` ``net.batch`` at a time.

    Args:
        images: frames of one size, each (H, W, 3) uint8 RGB.
        out_size: (h, w) of the result; default the frames' own size.
    Returns:
        (B, h, w) float32 relative inverse depth (larger = nearer).
    """
    if not images:
        return np.zeros((0, *(out_size or (0, 0))), np.float32)
    H, W = images[0].shape[:2]
    size = net.input_size(H, W)
    out_size = out_size or (H, W)
    parts = []
    for i in range(0, len(images), max(1, net.batch)):
        x = preprocess(images[i:i + net.batch], size)
        parts.append(upsample(net.run(x), out_size))
    return np.concatenate(parts)


def _import_torch_transformers():
    try:
        import torch
        import transformers
    except ImportError:
        raise BackendUnavailable("Depth Anything from a weights folder needs transformers: "
                                 "pip install 'vidsr[depth]' (or give a .onnx file)") from None
    return torch, transformers


def build_depth_anything(config: dict | None = None, *, seed: int | None = 0) -> nn.Module:
    """A Depth Anything network with random weights from a config dict (tests, benchmarks).

    Args:
        config: ``config.json`` contents; default :data:`SMALL_CONFIG` (V2 Small's architecture).
        seed: torch seed for the weights. Layers get PyTorch's default init and the last
            conv non-negative weights, so the output varies over the image instead of
            sitting at the final ReLU's zero (as it does with the release's init).
    """
    torch, transformers = _import_torch_transformers()
    cfg = transformers.DepthAnythingConfig(**{k: v for k, v in copy.deepcopy(config or SMALL_CONFIG).items()
                                              if k != "model_type"})
    if seed is not None:
        torch.manual_seed(seed)
    model = transformers.DepthAnythingForDepthEstimation(cfg)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    with torch.no_grad():
        model.head.conv3.weight.abs_()
        model.head.conv3.bias.zero_()
    return model.eval()


def _read_config(folder: Path) -> dict:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"{folder} has no config.json: not a Depth Anything weights folder. {WEIGHTS_HELP}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {cfg_path}: {e}") from None
    kind = cfg.get("model_type") if isinstance(cfg, dict) else None
    if kind != "depth_anything":
        raise ModelError(f"{folder} holds a {kind or 'unknown'!s} model, not Depth Anything "
                         f"(config.json model_type must be 'depth_anything'). {WEIGHTS_HELP}")
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"{folder} has config.json but no *.safetensors weights. {WEIGHTS_HELP}")
    return cfg


def load_depth_anything(folder: str | os.PathLike) -> nn.Module:
    """Depth Anything (V1 or V2, any size) from a local folder; never touches the network."""
    folder = Path(folder)
    _read_config(folder)
    _, transformers = _import_torch_transformers()
    transformers.utils.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = transformers.DepthAnythingForDepthEstimation.from_pretrained(
                str(folder), local_files_only=True, output_loading_info=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load Depth Anything weights from {folder}: {first}") from None
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        what = (missing or [m[0] if isinstance(m, tuple) else m for m in mismatched])[:3]
        raise ModelError(f"weights in {folder} do not fit its config.json: {len(missing)} missing and "
                         f"{len(mismatched)} mismatched tensors (e.g. {', '.join(map(str, what))})")
    return model.eval()


@dataclass
class TorchDepth:
    """Depth Anything run eagerly with PyTorch.

    Args:
        model: a ``DepthAnythingForDepthEstimation``.
        long_side: input's long side (snapped to multiples of 14).
        batch: frames per network call.
        precision: fp32, or bf16 (CPU autocast; CUDA too).
        device: cpu, cuda, cuda:N.
    """

    model: nn.Module
    long_side: int = 448
    batch: int = 4
    precision: DepthPrecision = "fp32"
    device: str = "cpu"
    name: str = "depth-anything-torch"

    def __post_init__(self) -> None:
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"depth on {self.device}: torch sees no CUDA GPU")
        if self.precision not in ("fp32", "bf16"):
            raise BackendUnavailable(f"depth precision must be fp32 or bf16, got {self.precision!r}")
        self.model = self.model.to(self.device).eval()
        self.name = f"depth-anything-torch-{self.device}-{self.precision}"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return depth_input_size(height, width, long_side=self.long_side)

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        amp = (torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
               if self.precision == "bf16" else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            y = self.model(pixel_values=x).predicted_depth
        return y.float().cpu().numpy()


@dataclass
class OrtDepth:
    """A depth ``.onnx`` file run with ONNX Runtime (CPU, or CUDA with the ``[gpu]`` extra).

    The input must be (B, 3, H, W); when the file fixes H and W (as :func:`export_depth_onnx`
    does) frames are resized to them, else ``long_side`` picks the size.
    """

    path: Path
    long_side: int = 448
    batch: int = 4
    threads: int = 0
    device: str = "cpu"
    name: str = "depth-onnx"

    def __post_init__(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install -e .") from None
        self.path = Path(self.path)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        providers = ["CPUExecutionProvider"]
        if self.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable("depth ONNX on cuda needs onnxruntime-gpu: pip install 'vidsr[gpu]'")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf classes
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load depth ONNX file {self.path}: {first}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"depth ONNX file {self.path} has {len(inputs)} inputs, expected 1 (B, 3, H, W)")
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise ModelError(f"depth ONNX file {self.path}: input {inputs[0].name!r} has rank {len(shape)} "
                             f"{tuple(shape)}, expected rank 4 (B, 3, H, W)")
        if isinstance(shape[1], int) and shape[1] != 3:
            raise ModelError(f"depth ONNX file {self.path}: input has {shape[1]} channels, expected 3")
        out_rank = len(self.session.get_outputs()[0].shape)
        if out_rank not in (3, 4):
            raise ModelError(f"depth ONNX file {self.path}: output has rank {out_rank}, expected (B, H, W)")
        self.input_name = inputs[0].name
        h, w = shape[2], shape[3]
        self.fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        if self.fixed and (h % PATCH or w % PATCH):
            raise ModelError(f"depth ONNX file {self.path}: input size {h}x{w} is not a multiple of {PATCH}")
        self.name = f"depth-onnx-{self.device}"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.fixed or depth_input_size(height, width, long_side=self.long_side)

    def run(self, batch: np.ndarray) -> np.ndarray:
        y = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]
        return (y[:, 0] if y.ndim == 4 else y).astype(np.float32, copy=False)


def load_depth_net(path: str | os.PathLike | None, *, long_side: int = 448, batch: int = 4,
                   precision: DepthPrecision = "fp32", device: str = "cpu") -> DepthNet:
    """A depth net from ``path``: a Depth Anything folder (transformers) or a ``.onnx`` file.

    Raises:
        ModelError: nothing at ``path``, a folder of another model, weights that do not fit,
            or an ONNX file whose input is not (B, 3, H, W).
        BackendUnavailable: the ``[depth]`` extra is missing (folders only).
    """
    if path is None or str(path) == "":
        raise ModelError(f"depth masks need --depth-model PATH. {WEIGHTS_HELP}")
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"depth model not found: {p}. {WEIGHTS_HELP}")
    if p.is_file():
        if p.suffix.lower() != ".onnx":
            raise ModelError(f"depth model {p}: expected a .onnx file or a folder with config.json and "
                             f"*.safetensors, got a {p.suffix or 'extension-less'} file")
        if precision != "fp32":
            raise BackendUnavailable(f"depth precision {precision} is not available for .onnx files (fp32 only)")
        return OrtDepth(path=p, long_side=long_side, batch=batch, device=device)
    return TorchDepth(model=load_depth_anything(p), long_side=long_side, batch=batch,
                      precision=precision, device=device)


def export_depth_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: tuple[int, int] = (252, 448),
                      opset: int = 17) -> Path:
    """Export a Depth Anything module to ONNX with a dynamic batch axis and a fixed input size.

    The DPT head's resize targets are traced as constants, so H and W are fixed at
    ``input_size``; :class:`OrtDepth` reads them back from the file.
    """
    import onnx
    import torch

    h, w = input_size
    if h % PATCH or w % PATCH:
        raise InputError(f"depth input size must be a multiple of {PATCH}, got {h}x{w}")
    path = Path(path)
    x = torch.rand(1, 3, h, w)

    class _Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            return self.inner(pixel_values=pixel_values).predicted_depth

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Wrapped(model.eval().cpu().float()), (x,), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write depth ONNX file {path}: {e.strerror}") from None
    return path
