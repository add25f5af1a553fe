"""Monocular depth networks: Depth Anything (V1/V2) and DPT/MiDaS via ``transformers``, or ONNX Runtime.

A depth net takes a list of frames and returns relative *inverse* depth (larger =
nearer) per frame, at the size the caller asks for. Frames are resized to a reduced
input size that the network's family wants (:class:`DepthFamily`: Depth Anything keeps
the aspect ratio with sides that are multiples of its 14-px ViT patch; DPT/MiDaS
releases take a square of their training size), normalised with the family's
statistics, run ``batch`` at a time, and the prediction is upsampled.

Weights never download: the user gives a local folder (``config.json`` +
``*.safetensors``, the layout of the official ``Depth-Anything-V2-*-hf`` and
``Intel/dpt-*`` releases) or a ``.onnx`` file (see :func:`export_depth_onnx`).
``transformers`` is the ``[depth]`` extra and is imported only here, when a folder is loaded.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, Sequence

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.errors import BackendUnavailable, InputError, ModelError
from vidsr.extras import require
from vidsr.fs import atomic_write

if TYPE_CHECKING:
    from torch import nn

PATCH = 14
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "predicted_depth"
DepthPrecision = Literal["fp32", "bf16"]
FAMILY_KEY = "vidsr.depth_family"  # ONNX metadata: the DepthFamily (JSON) whose preprocessing a file wants


@dataclass(frozen=True)
class DepthFamily:
    """How one family of depth networks wants its input.

    Args:
        name: ``model_type`` in the weights' config.json.
        multiple: input sides are multiples of this (the backbone's patch or stride).
        square: resize frames to side x side (how the DPT/MiDaS releases were trained)
            instead of keeping the aspect ratio.
        side: default long side (or square side) of the input.
        mean, std: per-channel normalisation of [0, 1] RGB.
    """

    name: str
    multiple: int
    square: bool
    side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def check_size(self, height: int, width: int) -> None:
        """Raise InputError unless an input of ``height`` x ``width`` fits this family."""
        if height % self.multiple or width % self.multiple:
            raise InputError(f"depth input size must be a multiple of {self.multiple}, got {height}x{width}")

    def input_size(self, height: int, width: int, side: int | None = None) -> tuple[int, int]:
        """Network input (h, w) for a ``height`` x ``width`` frame."""
        side = side or self.side
        m = self.multiple
        if side < m:
            raise InputError(f"depth input size must be >= {m}, got {side}")
        if self.square:
            s = max(m, round(side / m) * m)
            return s, s
        return depth_input_size(height, width, long_side=side, multiple=m)


FAMILIES: dict[str, DepthFamily] = {
    "depth_anything": DepthFamily(name="depth_anything", multiple=PATCH, square=False, side=448,
                                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    # DPT / MiDaS v3 and v3.1 (Intel/dpt-large, dpt-hybrid-midas, dpt-swinv2-tiny-256, ...); their
    # image processor normalises with 0.5 / 0.5 and resizes to a square of the training size
    "dpt": DepthFamily(name="dpt", multiple=32, square=True, side=384, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}


def family_for(config: dict) -> DepthFamily:
    """The :class:`DepthFamily` of a config.json dict; a DPT's square side is its training size."""
    kind = config.get("model_type")
    fam = FAMILIES.get(kind)
    if fam is None:
        raise ModelError(f"unsupported depth model type {kind!r} (supported: {', '.join(FAMILIES)})")
    if fam.name == "dpt":
        backbone = config.get("backbone_config") or {}
        size = backbone.get("image_size") or config.get("image_size")
        if isinstance(size, (list, tuple)):
            size = max(size)
        patch = backbone.get("patch_size") or config.get("patch_size") or 16
        multiple = 32 if backbone else int(patch)  # backbones (Swin, BEiT, BiT) downsample by 32
        fam = dataclasses.replace(fam, side=int(size or fam.side), multiple=multiple)
    return fam

WEIGHTS_HELP = ("depth weights do not ship with vidsr: download a Depth-Anything-V2-*-hf (or Intel/dpt-*) "
                "folder (config.json + model.safetensors) from the official release and pass it with "
                "--depth-model (see README, 'Depth weights (not shipped)')")

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


def depth_input_size(height: int, width: int, *, long_side: int = 448, multiple: int = PATCH) -> tuple[int, int]:
    """Network input (h, w): long side ``long_side``, aspect kept, both multiples of ``multiple``.

    A 16:9 frame gets (252, 448) by default; ``long_side=518`` matches the Depth Anything
    release's training size (294, 518).
    """
    if long_side < multiple:
        raise InputError(f"depth input size must be >= {multiple}, got {long_side}")
    s = long_side / max(height, width)

    def snap(v: float) -> int:
        return max(multiple, round(v / multiple) * multiple)

    return snap(height * s), snap(width * s)


def preprocess(images: Sequence[np.ndarray], size: tuple[int, int], *,
               family: DepthFamily = FAMILIES["depth_anything"]) -> np.ndarray:
    """Frames -> network input.

    Args:
        images: each (H, W, 3) uint8 RGB.
        size: (h, w) input size, multiples of ``family.multiple``.
        family: whose normalisation to use.
    Returns:
        (B, 3, h, w) float32, normalised.
    """
    h, w = size
    family.check_size(h, w)
    mean, std = np.array(family.mean, np.float32), np.array(family.std, np.float32)
    out = np.empty((len(images), 3, h, w), np.float32)
    for i, img in enumerate(images):
        check_image(img)
        big = img.shape[0] * img.shape[1] > h * w
        x = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if big else cv2.INTER_CUBIC)
        x = (x.astype(np.float32) * (1.0 / 255.0) - mean) / std
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
    family: DepthFamily  # optional: nets without it get Depth Anything's normalisation

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
        x = preprocess(images[i:i + net.batch], size, family=getattr(net, "family", FAMILIES["depth_anything"]))
        parts.append(upsample(net.run(x), out_size))
    return np.concatenate(parts)


def _import_torch_transformers():
    import torch

    transformers = require("transformers", extra="depth",
                           what="Depth Anything from a weights folder needs transformers (a .onnx file does not)")
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


def build_dpt(config: dict, *, seed: int | None = 0) -> nn.Module:
    """A DPT/MiDaS network with random weights from a config dict (tests, benchmarks); the last
    conv gets non-negative weights so the output varies instead of sitting at the final ReLU's zero."""
    torch, transformers = _import_torch_transformers()
    cfg = transformers.DPTConfig(**{k: v for k, v in copy.deepcopy(config).items() if k != "model_type"})
    if seed is not None:
        torch.manual_seed(seed)
    model = transformers.DPTForDepthEstimation(cfg)
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.abs_()
        last.bias.zero_()
    return model.eval()


def _read_config(folder: Path) -> dict:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"{folder} has no config.json: not a depth weights folder. {WEIGHTS_HELP}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {cfg_path}: {e}") from None
    kind = cfg.get("model_type") if isinstance(cfg, dict) else None
    if kind not in FAMILIES:
        what = f"a {kind} model" if kind else "a model without a model_type"
        raise ModelError(f"{folder} holds {what}, not a depth network vidsr runs "
                         f"(config.json model_type must be one of: {', '.join(FAMILIES)}). {WEIGHTS_HELP}")
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"{folder} has config.json but no *.safetensors weights. {WEIGHTS_HELP}")
    return cfg


def load_depth_folder(folder: str | os.PathLike) -> nn.Module:
    """A depth network (Depth Anything V1/V2 or DPT/MiDaS, any size) from a local folder; never
    touches the network. Its :class:`DepthFamily` is :func:`module_family` of it."""
    folder = Path(folder)
    family = family_for(_read_config(folder))
    _, transformers = _import_torch_transformers()
    transformers.utils.logging.disable_progress_bar()
    cls = (transformers.DepthAnythingForDepthEstimation if family.name == "depth_anything"
           else transformers.DPTForDepthEstimation)
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # its load report table: vidsr says it in one line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = cls.from_pretrained(str(folder), local_files_only=True, output_loading_info=True,
                                              use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load depth weights from {folder}: {first}") from None
    finally:
        transformers.utils.logging.set_verbosity(level)
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        what = (missing or [m[0] if isinstance(m, tuple) else m for m in mismatched])[:3]
        raise ModelError(f"weights in {folder} do not fit its config.json: {len(missing)} missing and "
                         f"{len(mismatched)} mismatched tensors (e.g. {', '.join(map(str, what))})")
    return model.eval()


def module_family(model: nn.Module) -> DepthFamily:
    """The :class:`DepthFamily` of a loaded ``transformers`` depth module (from its config)."""
    return family_for(model.config.to_dict())


@dataclass
class TorchDepth:
    """A ``transformers`` depth network run eagerly with PyTorch.

    Args:
        model: a ``DepthAnythingForDepthEstimation`` or ``DPTForDepthEstimation``.
        long_side: input's long side, or a DPT's square side (snapped to the family's multiple;
            None: the family's default, 448 for Depth Anything, the training size for DPT).
        batch: frames per network call.
        precision: fp32, or bf16 (CPU autocast; CUDA too).
        device: cpu, cuda, cuda:N.
    """

    model: nn.Module
    long_side: int | None = None
    batch: int = 4
    precision: DepthPrecision = "fp32"
    device: str = "cpu"
    name: str = "depth-torch"
    family: DepthFamily = field(init=False)  # from the model's config

    def __post_init__(self) -> None:
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"depth on {self.device}: torch sees no CUDA GPU")
        if self.precision not in ("fp32", "bf16"):
            raise BackendUnavailable(f"depth precision must be fp32 or bf16, got {self.precision!r}")
        self.model = self.model.to(self.device).eval()
        # on CUDA, depth gets its own stream: the mask thread's passes overlap the SR loop's work,
        # which runs on the default stream in another thread
        self._stream = torch.cuda.Stream(device=self.device) if self.device.startswith("cuda") else None
        self.family = module_family(self.model)
        self.name = f"{self.family.name}-torch-{self.device}-{self.precision}"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.family.input_size(height, width, self.long_side)

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        amp = (torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
               if self.precision == "bf16" else contextlib.nullcontext())
        stream = torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()
        with stream, torch.inference_mode(), amp:
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            y = self.model(pixel_values=x).predicted_depth
            return y.float().cpu().numpy()  # the copy waits for this stream only


@dataclass
class OrtDepth:
    """A depth ``.onnx`` file run with ONNX Runtime (CPU, or CUDA with the ``[gpu]`` extra).

    The input must be (B, 3, H, W); when the file fixes H and W (as :func:`export_depth_onnx`
    does) frames are resized to them, else ``long_side`` picks the size. The file's
    ``vidsr.depth_family`` metadata (written by :func:`export_depth_onnx`) picks the
    normalisation; files without it are taken for Depth Anything.
    """

    path: Path
    long_side: int | None = None
    batch: int = 4
    threads: int = 0
    device: str = "cpu"
    name: str = "depth-onnx"
    family: DepthFamily = field(init=False)  # from the file's metadata

    def __post_init__(self) -> None:
        from vidsr.backends.ort_session import check_providers, import_ort, providers_for

        ort = import_ort()
        self.path = Path(self.path)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        # cuda:N runs on GPU N; a session that fell back to the CPU is refused
        providers = providers_for(ort, self.device, what="depth ONNX")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf classes
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load depth ONNX file {self.path}: {first}") from None
        check_providers(self.session, self.device, what="depth ONNX")
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"depth ONNX file {self.path} has {len(inputs)} inputs, expected 1 (B, 3, H, W)")
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise ModelError(f"depth ONNX file {self.path}: input {inputs[0].name!r} has rank {len(shape)} "
                             f"{tuple(shape)}, expected rank 4 (B, 3, H, W)")
        if isinstance(shape[1], int) and shape[1] != 3:
            raise ModelError(f"depth ONNX file {self.path}: input has {shape[1]} channels, expected 3")
        out_shape = list(self.session.get_outputs()[0].shape)
        if len(out_shape) not in (3, 4):
            raise ModelError(f"depth ONNX file {self.path}: output has rank {len(out_shape)}, expected (B, H, W)")
        if len(out_shape) == 4 and isinstance(out_shape[1], int) and out_shape[1] != 1:
            raise ModelError(f"{self.path} is not a depth network: its output has {out_shape[1]} channels "
                             "(a depth map has 1; an image-to-image model such as vidsr's SR export has 3)")
        self.input_name = inputs[0].name
        meta = self.session.get_modelmeta().custom_metadata_map.get(FAMILY_KEY)
        try:
            self.family = DepthFamily(**json.loads(meta)) if meta else FAMILIES["depth_anything"]
        except (ValueError, TypeError):
            raise ModelError(f"depth ONNX file {self.path}: unreadable {FAMILY_KEY} metadata {meta!r}") from None
        h, w = shape[2], shape[3]
        self.fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        m = self.family.multiple
        if self.fixed and (h % m or w % m):
            raise ModelError(f"depth ONNX file {self.path}: input size {h}x{w} is not a multiple of {m}")
        self.name = f"{self.family.name}-onnx-{self.device}"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.fixed or self.family.input_size(height, width, self.long_side)

    def run(self, batch: np.ndarray) -> np.ndarray:
        y = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]
        return (y[:, 0] if y.ndim == 4 else y).astype(np.float32, copy=False)


def load_depth_net(path: str | os.PathLike | None, *, long_side: int | None = None, batch: int = 4,
                   precision: DepthPrecision = "fp32", device: str = "cpu") -> DepthNet:
    """A depth net from ``path``: a Depth Anything or DPT/MiDaS folder (transformers) or a ``.onnx`` file.

    ``long_side``: input long side (square side for DPT); None: the family's default.

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
    return TorchDepth(model=load_depth_folder(p), long_side=long_side, batch=batch,
                      precision=precision, device=device)


def export_depth_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: tuple[int, int] = (252, 448),
                      opset: int = 17) -> Path:
    """Export a depth module to ONNX with a dynamic batch axis and a fixed input size.

    The DPT head's resize targets are traced as constants, so H and W are fixed at
    ``input_size``; :class:`OrtDepth` reads them back from the file, and its family (for
    the normalisation) from the file's metadata.
    """
    import onnx
    import torch

    h, w = input_size
    family = module_family(model)
    family.check_size(h, w)
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
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = FAMILY_KEY, json.dumps(dataclasses.asdict(family))
    onnx.checker.check_model(proto)
    atomic_write(path, proto.SerializeToString(), what="depth ONNX file")
    return path
