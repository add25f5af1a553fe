from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from vidsr.arch import Compact  # noqa: E402
from vidsr.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_export_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VIDSR_EXPORT_DIR", str(tmp_path_factory.getbasetemp() / "export"))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A small random x2 Compact checkpoint (fast; the shipped models are tested separately)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-x2.pt"
    save_checkpoint(Compact(scale=2, num_feat=8, num_conv=2), path)
    return path
