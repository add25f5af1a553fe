"""Dense optical flow (OpenCV DIS) to carry a mask from one frame to the next."""

from __future__ import annotations

import cv2
import numpy as np

from vidsr.checks import check_image

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def flow_gray(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (h, w) uint8 grey at ``size`` (the mask's working size)."""
    check_image(image)
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if g.shape != tuple(size):
        g = cv2.resize(g, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return g


def backward_flow(curr: np.ndarray, prev: np.ndarray, *, preset: str = "ultrafast") -> np.ndarray:
    """For each pixel of ``curr``, where it was in ``prev``: (h, w, 2) float32 (dx, dy).

    Args:
        curr, prev: (h, w) uint8 grey frames of one size.
    """
    if curr.shape != prev.shape:
        raise ValueError(f"flow frames differ in size: {curr.shape} vs {prev.shape}")
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    return dis.calc(curr, prev, None)


def warp_back(array: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Resample ``array`` (the previous frame's (h, w) map) into the current frame.

    Float maps are interpolated bilinearly; bool maps are warped as 0/1 and re-thresholded at 0.5.
    """
    h, w = flow.shape[:2]
    if array.shape != (h, w):
        raise ValueError(f"array {array.shape} and flow {flow.shape[:2]} differ in size")
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    src = array.astype(np.float32)
    out = cv2.remap(src, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if array.dtype == bool:
        return out > 0.5
    return out.astype(array.dtype, copy=False)
