"""Network output -> images: float values in [0, 1] rounded to uint8 or uint16 levels."""

from __future__ import annotations

import numpy as np
import torch

from vidsr.checks import max_value


def to_images(batch: np.ndarray, dtype: np.dtype = np.uint8) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) ``dtype`` (uint8 or uint16), rounded and clipped.

    Any strides: a channels_last batch is read without a transposing copy (torch, all threads)."""
    return quantize(torch.from_numpy(batch).permute(0, 2, 3, 1), dtype).contiguous().numpy().astype(dtype, copy=False)


def quantize(y: torch.Tensor, dtype: np.dtype, *, in_place: bool = False) -> torch.Tensor:
    """Float values in [0, 1] -> integer levels of ``dtype`` (uint8 or uint16), rounded half up and
    clipped, as a uint8 tensor (int32 for uint16). ``in_place`` reuses ``y``'s memory for the float steps."""
    top = max_value(dtype)
    y = y.mul_(top) if in_place else y.mul(top)
    # float -> int truncates; the +0.5 makes it round half up
    return y.add_(0.5).clamp_(0, top).to(torch.uint8 if dtype == np.uint8 else torch.int32)
