"""Checkpoint files: save a network self-described, load one back, resolve ``--model``."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from vidsr.arch import REGISTRY, ModelDescriptor, describe
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


def load_checkpoint(path: Path, *, name: str | None = None) -> tuple[nn.Module, ModelDescriptor]:
    """Build the network a checkpoint describes and load its weights (strict)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for non-checkpoint files
        raise ModelError(f"not a vidsr checkpoint: {path} ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"not a vidsr checkpoint: {path} (missing 'format': {CHECKPOINT_FORMAT!r})")
    model = REGISTRY.build(payload["arch"], dict(payload["config"]))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"weights in {path.name} do not match architecture {payload['arch']!r}: {first}") from None
    model.eval()
    return model, describe(model, name=name or path.stem)


def resolve_model(name_or_path: str | None, *, scale: int | None) -> tuple[nn.Module, ModelDescriptor]:
    """A shipped model by name (``compact-x2``), a checkpoint path, or the default for ``scale``.

    ``scale`` None takes the model's own (x2 when no model is named either); otherwise a model of
    another scale is refused."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODELS.get(2 if scale is None else scale)
        if name_or_path is None:
            raise ModelError(f"no shipped model for scale {scale} (available: {sorted(DEFAULT_MODELS)})")
    if is_model_path(name_or_path):
        model, desc = load_checkpoint(Path(name_or_path))
    else:
        manifest = read_manifest()
        entry = manifest.get(name_or_path)
        if entry is None:
            known = ", ".join(sorted(manifest)) or "none"
            raise ModelError(f"unknown model {name_or_path!r} (shipped: {known}; or give a .pt path)")
        path = models_dir() / entry.file
        if not path.is_file():
            raise ModelError(f"model {entry.name!r} is in the manifest but {path} is missing")
        if sha256_file(path) != entry.sha256:
            raise ModelError(f"model file {path} does not match its sha256 in manifest.json")
        model, desc = load_checkpoint(path, name=entry.name)
    if scale is not None and desc.scale != scale:
        raise ModelError(f"model {desc.name!r} upscales x{desc.scale}, but --scale {scale} was asked")
    return model, desc


def model_scale(name_or_path: str | None, scale: int | None) -> int:
    """``scale`` when given, else the scale of the model ``--model`` names (2 for the default)."""
    return scale if scale is not None else resolve_model(name_or_path, scale=None)[1].scale
