"""The shipped-weights manifest (vidsr/models/manifest.json): names, files, scales and checksums.

No torch here: ``vidsr models`` and the CLI's help read it cheaply. Loading the networks is
:mod:`vidsr.checkpoint`'s job.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODELS = {2: "compact-x2-lite", 4: "compact-x4"}
# files --model takes (vidsr.checkpoint.load_model); any existing file is tried too
WEIGHTS_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".onnx")


def models_dir() -> Path:
    """Folder holding manifest.json, the shipped checkpoints and person/: ``$VIDSR_MODELS_DIR``,
    else the package's own ``models`` folder (package data, so a wheel install has it too)."""
    env = os.environ.get("VIDSR_MODELS_DIR")
    if env:
        return Path(env)
    return Path(str(importlib.resources.files("vidsr") / "models"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    file: str
    arch: str
    scale: int
    sha256: str
    data: str
    license: str


def read_manifest(folder: Path | None = None) -> dict[str, ManifestEntry]:
    folder = folder or models_dir()
    path = folder / "manifest.json"
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {m["name"]: ManifestEntry(**{k: m[k] for k in ManifestEntry.__dataclass_fields__})
            for m in raw["models"]}


def is_model_path(name_or_path: str) -> bool:
    """Whether ``--model`` names a checkpoint file rather than a shipped model."""
    return os.sep in name_or_path or name_or_path.lower().endswith(WEIGHTS_SUFFIXES) or Path(name_or_path).is_file()
