"""Shape, dtype and range checks shared by all modules."""

from __future__ import annotations

import numpy as np


def check_image(img: np.ndarray, *, name: str = "image", deep_ok: bool = False) -> None:
    """Check a single RGB frame: (H, W, 3) uint8 (or uint16 with ``deep_ok``)."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name}: expected numpy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name}: expected shape (H, W, 3), got {img.shape}")
    allowed = (np.uint8, np.uint16) if deep_ok else (np.uint8,)
    if img.dtype not in allowed:
        raise ValueError(f"{name}: expected {' or '.join(np.dtype(a).name for a in allowed)}, got {img.dtype}")


def max_value(dtype: np.dtype) -> float:
    """Full-scale value of an integer image dtype (255 for uint8, 65535 for uint16)."""
    return float(np.iinfo(dtype).max)


def check_batch(x: np.ndarray, *, channels: int = 3, name: str = "batch") -> None:
    """Check a float batch for a network: (B, C, H, W) float32."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected numpy array, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name}: expected shape (B, {channels}, H, W), got {x.shape}")
    if x.dtype != np.float32:
        raise ValueError(f"{name}: expected float32, got {x.dtype}")


def check_mask(mask: np.ndarray, shape: tuple[int, int], *, name: str = "mask") -> None:
    """Check a soft mask: (H, W) float32 in [0, 1] matching ``shape``."""
    if mask.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {mask.shape}")
    if mask.dtype != np.float32:
        raise ValueError(f"{name}: expected float32, got {mask.dtype}")
