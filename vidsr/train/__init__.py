"""Training and evaluation of the small SR networks.

Modules: ``degrade`` (LR generation), ``data`` (photos -> patch cache), ``loop`` (TrainConfig,
train), ``evaluate`` (PSNR/SSIM vs bicubic), ``cli`` (click commands ``train``, ``eval-sr``).
"""

from __future__ import annotations

from vidsr.train.data import PatchConfig
from vidsr.train.degrade import DegradeConfig
from vidsr.train.evaluate import evaluate
from vidsr.train.loop import CompactSpec, ESPCNSpec, TrainConfig, TrainResult, train

__all__ = ["CompactSpec", "DegradeConfig", "ESPCNSpec", "PatchConfig", "TrainConfig", "TrainResult",
           "evaluate", "train"]
