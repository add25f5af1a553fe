"""Training and evaluation of the small SR networks.

Modules: ``degrade`` (LR generation), ``data`` (photos -> patch cache), ``loop`` (TrainConfig,
train), ``evaluate`` (PSNR/SSIM vs bicubic), ``dataset`` (RGB | depth | masked-RGB dataset
builder), ``samplers`` (foreground patch samplers), ``losses`` (depth semantic loss),
``research_eval`` (FG/BG scores of bicubic, full and partial SR on a dataset). Their commands
(``train``, ``eval-sr``, ``dataset``, ``eval``) live in vidsr/cli/.
"""

from __future__ import annotations

import importlib

# Imported on first use, so that a process that only needs a light module (the dataset
# builder's spawned workers) does not pay for importing torch.
_LAZY = {"PatchConfig": "data", "DegradeConfig": "degrade", "evaluate": "evaluate", "CompactSpec": "loop",
         "ESPCNSpec": "loop", "TrainConfig": "loop", "TrainResult": "loop", "train": "loop"}

__all__ = ["CompactSpec", "DegradeConfig", "ESPCNSpec", "PatchConfig", "TrainConfig", "TrainResult",
           "evaluate", "train"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"vidsr.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vidsr.train' has no attribute {name!r}")
