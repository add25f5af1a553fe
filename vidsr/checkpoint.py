"""Weights files: save a network self-described, load any supported file back (vidsr checkpoints,
community state dicts, ONNX), resolve ``--model``."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import torch
from torch import nn

from vidsr.arch import REGISTRY, ModelDescriptor, describe
from vidsr.arch.base import SCALES
from vidsr.errors import ModelError
from vidsr.fs import atomic_write
from vidsr.weights import DEFAULT_MODELS, is_model_path, models_dir, read_manifest, sha256_file

CHECKPOINT_FORMAT = "vidsr-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(model: nn.Module, path: Path, *, meta: dict | None = None) -> None:
    """Write a self-describing checkpoint: arch name, its config and the state dict."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": model.arch_name,
        "config": model.config(),
        "state_dict": state,
        "meta": meta or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, buf.getvalue(), what="checkpoint")


def save_realesrgan(model: nn.Module, path: Path) -> None:
    """Write an SRVGGNetCompact-shaped network (a :class:`~vidsr.arch.Compact` with a nearest residual)
    as Real-ESRGAN publishes its weights: ``{"params_ema": {"body.N.weight": ...}}``, for tools that
    read that layout (and vidsr's own detection)."""
    if getattr(model, "arch_name", None) != "compact" or model.residual != "nearest":
        raise ModelError("Real-ESRGAN's layout holds SRVGGNetCompact: a compact network with a nearest residual")
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"params_ema": state}, buf)
    atomic_write(Path(path), buf.getvalue(), what="weights")


def load_checkpoint(path: Path, *, name: str | None = None) -> tuple[nn.Module, ModelDescriptor]:
    """Build the network a vidsr checkpoint describes and load its weights (strict)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for non-checkpoint files
        raise ModelError(f"not a vidsr checkpoint: {path} ({type(e).__name__})") from None
    if not _is_checkpoint(payload):
        raise ModelError(f"not a vidsr checkpoint: {path} (missing 'format': {CHECKPOINT_FORMAT!r})")
    return _build_checkpoint(payload, path, name=name)


def _is_checkpoint(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


def _build_checkpoint(payload: dict, path: Path, *, name: str | None) -> tuple[nn.Module, ModelDescriptor]:
    model = REGISTRY.build(payload["arch"], dict(payload["config"]))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"weights in {path.name} do not match architecture {payload['arch']!r}: {first}") from None
    model.eval()
    return model, describe(model, name=name or path.stem)


def load_model(path: Path, *, name: str | None = None) -> tuple[nn.Module, ModelDescriptor]:
    """Any supported weights file at its own scale: a vidsr checkpoint, a community state dict
    (``.pth``/``.pt``/``.ckpt``/``.safetensors``: architecture detected from its keys and shapes,
    :func:`vidsr.arch.detect.detect`) or an ONNX SR model (:class:`~vidsr.backends.onnx_model.OnnxNet`).

    Receptive radii that have to be measured (RRDBNet, ONNX) are cached by the file's sha256 under
    the export folder. SPAN in its training form comes back reparameterised (same output).

    Raises:
        ModelError: missing, truncated or unreadable file, unknown architecture, mismatched shapes.
    """
    from vidsr.arch.detect import architecture_of, detect, load_state_dict_file, unwrap_state_dict

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    name = name or path.stem
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, name=name)
    if path.suffix.lower() == ".safetensors":
        state = load_state_dict_file(path)
    else:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for bad files
            raise ModelError(f"cannot read {path.name}: truncated, or not a vidsr checkpoint nor a PyTorch "
                             f"state dict ({type(e).__name__})") from None
        if _is_checkpoint(payload):
            return _build_checkpoint(payload, path, name=name)
        state = unwrap_state_dict(payload, source=path.name)
    measured = architecture_of(state) in ("rrdb", "rrdb-old")
    radius = _cached_radius(path) if measured else None
    model, desc = detect(state, name=name, radius=radius)
    if measured and radius is None:
        _store_radius(path, desc.receptive_radius)
    if getattr(model, "arch_name", "") == "span":
        model = model.reparameterize().eval()
        desc = dataclasses.replace(desc, config=model.config())
    return model, desc


def _load_onnx(path: Path, *, name: str) -> tuple[nn.Module, ModelDescriptor]:
    from vidsr.arch.detect import measure_radius
    from vidsr.backends.onnx_model import OnnxNet

    net = OnnxNet(path=path)
    radius = _cached_radius(path)
    if radius is None:
        # a fixed input shape bounds what can be measured; its windows keep at least half as core
        limit = None if net.fixed is None else (min(net.fixed) - 1) // 2
        radius = measure_radius(net, net.scale, size_multiple=net.size_multiple, limit=limit)
        _store_radius(path, radius)
    if net.fixed is not None:
        net.context = min(radius, min(net.fixed) // 4)
    return net, ModelDescriptor(name=name, arch=net.arch_name, scale=net.scale, in_channels=net.in_channels,
                                size_multiple=net.size_multiple, receptive_radius=radius, config=net.config(),
                                fixed_shape=net.fixed)


def _radius_path(path: Path) -> Path:
    from vidsr.backends.onnx_cache import export_dir

    return export_dir() / "radius" / f"{sha256_file(path)}.json"


def _cached_radius(path: Path) -> int | None:
    """The receptive radius measured before for this file's contents, if any."""
    from vidsr.arch.detect import THRESHOLD

    cache = _radius_path(path)
    try:
        entry = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(entry, dict) and entry.get("threshold") == THRESHOLD and isinstance(entry.get("radius"), int)
    return entry["radius"] if ok else None


def _store_radius(path: Path, radius: int) -> None:
    from vidsr.arch.detect import THRESHOLD

    entry = {"file": path.name, "radius": radius, "threshold": THRESHOLD}
    try:
        atomic_write(_radius_path(path), json.dumps(entry).encode(), what="radius cache")
    except OSError:  # a read-only cache folder costs a re-measurement next time, nothing else
        pass


def resolve_model(name_or_path: str | None, *, scale: int | None) -> tuple[nn.Module, ModelDescriptor]:
    """A shipped model by name (``compact-x2``), a weights file (:func:`load_model`), or the default for ``scale``.

    ``scale`` None takes the model's own (x2 when no model is named either). A ``scale`` below the
    network's resizes its output down (:class:`~vidsr.arch.outscale.Outscaled`); one above it is refused."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODELS.get(2 if scale is None else scale)
        if name_or_path is None:
            raise ModelError(f"no shipped model for scale {scale} (available: {sorted(DEFAULT_MODELS)})")
    if is_model_path(name_or_path):
        model, desc = load_model(Path(name_or_path))
    else:
        manifest = read_manifest()
        entry = manifest.get(name_or_path)
        if entry is None:
            known = ", ".join(sorted(manifest)) or "none"
            raise ModelError(f"unknown model {name_or_path!r} (shipped: {known}; or give a weights file: "
                             ".pt, .pth, .ckpt, .safetensors, .onnx)")
        path = models_dir() / entry.file
        if not path.is_file():
            raise ModelError(f"model {entry.name!r} is in the manifest but {path} is missing")
        if sha256_file(path) != entry.sha256:
            raise ModelError(f"model file {path} does not match its sha256 in manifest.json")
        model, desc = load_checkpoint(path, name=entry.name)
    if scale is not None and scale > desc.scale:
        raise ModelError(f"model {desc.name!r} upscales x{desc.scale}, but --scale {scale} was asked "
                         "(a network's output can be resized down, not up)")
    if (scale or desc.scale) not in SCALES:
        raise ModelError(f"model {desc.name!r} upscales x{desc.scale}; vidsr upscales x2-x4")
    if scale is not None and scale < desc.scale:
        return _outscaled(model, desc, scale)
    return model, desc


def _outscaled(model: nn.Module, desc: ModelDescriptor, scale: int) -> tuple[nn.Module, ModelDescriptor]:
    """``model`` at output scale ``scale`` (below its own): :class:`~vidsr.arch.outscale.Outscaled`."""
    from vidsr.arch.outscale import Outscaled

    net = Outscaled(net=model, scale=scale, radius=desc.receptive_radius).eval()
    return net, dataclasses.replace(desc, name=f"{desc.name}-to-x{scale}", scale=scale,
                                    receptive_radius=net.receptive_radius, config=net.config())


def model_scale(name_or_path: str | None, scale: int | None) -> int:
    """``scale`` when given, else the scale of the model ``--model`` names (2 for the default)."""
    return scale if scale is not None else resolve_model(name_or_path, scale=None)[1].scale
