"""Image quality metrics: PSNR, SSIM (Wang et al. 2004) and BT.601 luma.

Pure numpy/OpenCV. ``data_range`` is the peak value: 255 for uint8 frames, 1 for floats in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

SSIM_RADIUS = 5  # half-width of the 11x11 Gaussian window


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of (..., 3) RGB floats in [0, 1], in [16/255, 235/255] (Matlab ``rgb2ycbcr``)."""
    return (16.0 + img @ np.array([65.481, 128.553, 24.966])) / 255.0


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, *, data_range: float = 255.0) -> float:
    """PSNR in dB of two same-shape arrays (inf when equal).

    Args:
        a, b: (H, W) or (H, W, C) arrays.
        mask: (H, W) bool; score only these pixels (NaN when none is set).
        data_range: peak value (255 for uint8, 1 for floats in [0, 1]).
    """
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        if not mask.any():
            return float("nan")
        d = d[mask]
    mse = float(d.mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim_map(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0) -> np.ndarray:
    """Per-pixel SSIM of two (H, W) arrays (11x11 Gaussian, sigma 1.5, K1=0.01, K2=0.03).

    The image is mirrored at the edges (OpenCV's default), so pixels within SSIM_RADIUS
    of the edge depend on it; :func:`ssim` with ``border=SSIM_RADIUS`` leaves them out.
    """
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), sigmaX=1.5, sigmaY=1.5)

    mu_a, mu_b = blur(a), blur(b)
    va = blur(a * a) - mu_a**2
    vb = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, *, data_range: float = 255.0,
         border: int = 0) -> float:
    """Mean SSIM; channels are scored apart and averaged.

    Args:
        a, b: (H, W) or (H, W, C) arrays.
        mask: (H, W) bool; average only these pixels (NaN when none is left).
        data_range: peak value (255 for uint8, 1 for floats in [0, 1]).
        border: map pixels this close to the edge are left out (SSIM_RADIUS: as
            scikit-image and SR papers, none depends on the mirrored edge).
    """
    if a.ndim == 3:
        return float(np.mean([ssim(a[..., c], b[..., c], mask, data_range=data_range, border=border)
                              for c in range(a.shape[2])]))
    s = ssim_map(a, b, data_range=data_range)
    if border:
        inner = (slice(border, -border), slice(border, -border))
        s = s[inner]
        mask = None if mask is None else mask[inner]
    if mask is not None:
        return float(s[mask].mean()) if mask.any() else float("nan")
    return float(s.mean())


__all__ = ["SSIM_RADIUS", "psnr", "rgb_to_y", "ssim", "ssim_map"]
