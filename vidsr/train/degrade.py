"""LR generation: realistic downscales plus light blur and compression, as pure functions.

Every function takes and returns uint8 RGB arrays, because real low-resolution input is a
quantised frame. Randomness only comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Downscale = Literal["bicubic_aa", "area"]
DOWNSCALES: tuple[Downscale, ...] = ("bicubic_aa", "area")


@dataclass(frozen=True, kw_only=True)
class DegradeConfig:
    """Probabilities and ranges of the LR degradations.

    Args:
        p_area: chance of an area (box) downscale; otherwise antialiased bicubic.
        p_blur: chance of a mild Gaussian blur of the HR patch before downscaling.
        blur_sigma: range of that blur's sigma, in HR pixels.
        p_jpeg: chance of a JPEG round trip of the LR patch.
        jpeg_quality: range of JPEG quality (inclusive).
        p_h264: chance that a whole LR batch goes through an H.264 round trip.
        h264_crf: range of x264 CRF (inclusive).
    """

    p_area: float = 0.5
    p_blur: float = 0.1
    blur_sigma: tuple[float, float] = (0.3, 0.9)
    p_jpeg: float = 0.15
    jpeg_quality: tuple[int, int] = (60, 95)
    p_h264: float = 0.1
    h264_crf: tuple[int, int] = (16, 28)

    def __post_init__(self) -> None:
        for name in ("p_area", "p_blur", "p_jpeg", "p_h264"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be 1 <= lo <= hi <= 100, got {self.jpeg_quality}")
        if not 0 <= self.h264_crf[0] <= self.h264_crf[1] <= 51:
            raise ValueError(f"h264_crf must be 0 <= lo <= hi <= 51, got {self.h264_crf}")
        if not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be 0 < lo <= hi, got {self.blur_sigma}")


CLEAN = DegradeConfig(p_area=0.5, p_blur=0.0, p_jpeg=0.0, p_h264=0.0)


def _check_divisible(shape: tuple[int, ...], scale: int) -> None:
    h, w = shape[-3], shape[-2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {w}x{h} is not a multiple of scale {scale}")


def downscale_bicubic_aa(hr: np.ndarray, scale: int) -> np.ndarray:
    """Antialiased bicubic downscale (PyTorch ``antialias=True``, like PIL/Matlab ``imresize``).

    Args:
        hr: (H, W, 3) or (B, H, W, 3) uint8, H and W multiples of ``scale``.
        scale: integer factor.

    Returns:
        (H/scale, W/scale, 3) or (B, H/scale, W/scale, 3) uint8.
    """
    _check_divisible(hr.shape, scale)
    single = hr.ndim == 3
    x = torch.from_numpy(np.ascontiguousarray(hr[None] if single else hr)).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    y = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    out = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return out[0] if single else out


def downscale_area(hr: np.ndarray, scale: int) -> np.ndarray:
    """Area (box-average) downscale with ``cv2.INTER_AREA``.

    Args:
        hr: (H, W, 3) or (B, H, W, 3) uint8, H and W multiples of ``scale``.
        scale: integer factor.

    Returns:
        (H/scale, W/scale, 3) or (B, H/scale, W/scale, 3) uint8.
    """
    _check_divisible(hr.shape, scale)
    if hr.ndim == 4:
        return np.stack([downscale_area(im, scale) for im in hr])
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return cv2.resize(hr, (w, h), interpolation=cv2.INTER_AREA)


def downscale(hr: np.ndarray, scale: int, kind: Downscale) -> np.ndarray:
    """Downscale ``hr`` ((H, W, 3) or (B, H, W, 3) uint8) with the named kernel."""
    if kind == "bicubic_aa":
        return downscale_bicubic_aa(hr, scale)
    if kind == "area":
        return downscale_area(hr, scale)
    raise ValueError(f"unknown downscale {kind!r} (known: {', '.join(DOWNSCALES)})")


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of one (H, W, 3) uint8 image; kernel covers +-3 sigma, reflected borders."""
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(img, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode one (H, W, 3) uint8 RGB image as JPEG at ``quality`` and decode it again."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write JPEG")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def h264_roundtrip(frames: np.ndarray, crf: int, *, preset: str = "veryfast") -> np.ndarray:
    """Encode frames as one H.264 stream (yuv420p, libx264) and decode them back.

    Args:
        frames: (N, H, W, 3) uint8 RGB, H and W even.
        crf: x264 constant rate factor (higher = stronger compression).
        preset: x264 preset.

    Returns:
        (N, H, W, 3) uint8 RGB, same order.
    """
    import av  # local: only this degradation needs it

    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 round trip needs even frame size, got {w}x{h}")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.framerate = Fraction(25, 1)
    enc.thread_count = 1
    enc.options = {"crf": str(int(crf)), "preset": preset, "tune": "zerolatency"}
    packets = []
    for i, arr in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    out = []
    for p in packets:
        out += dec.decode(p)
    out += dec.decode(None)
    if len(out) != n:
        raise RuntimeError(f"H.264 round trip returned {len(out)} frames for {n}")
    return np.stack([f.to_ndarray(format="rgb24") for f in out])


def degrade_batch(hr: np.ndarray, *, scale: int, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """Make an LR batch from HR patches with a random mix of degradations.

    Per patch: optional mild blur, then area or antialiased-bicubic downscale, then optional
    JPEG. Per batch: optional H.264 round trip of all LR patches as one short clip.

    Args:
        hr: (B, H, W, 3) uint8, H and W multiples of ``scale``.
        scale: integer downscale factor.
        cfg: probabilities and ranges.
        rng: source of all randomness.

    Returns:
        (B, H/scale, W/scale, 3) uint8.
    """
    if hr.ndim != 4 or hr.shape[-1] != 3 or hr.dtype != np.uint8:
        raise ValueError(f"hr: expected (B, H, W, 3) uint8, got {hr.shape} {hr.dtype}")
    b = hr.shape[0]
    src = hr.copy()
    blur = rng.random(b) < cfg.p_blur
    sigmas = rng.uniform(*cfg.blur_sigma, size=b)
    for i in np.flatnonzero(blur):
        src[i] = gaussian_blur(src[i], float(sigmas[i]))
    area = rng.random(b) < cfg.p_area
    lr = np.empty((b, hr.shape[1] // scale, hr.shape[2] // scale, 3), np.uint8)
    if area.any():
        lr[area] = downscale_area(src[area], scale)
    if (~area).any():
        lr[~area] = downscale_bicubic_aa(src[~area], scale)
    jpeg = rng.random(b) < cfg.p_jpeg
    qualities = rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, size=b)
    for i in np.flatnonzero(jpeg):
        lr[i] = jpeg_roundtrip(lr[i], int(qualities[i]))
    if rng.random() < cfg.p_h264:
        crf = int(rng.integers(cfg.h264_crf[0], cfg.h264_crf[1] + 1))
        lr = h264_roundtrip(lr, crf)
    return lr
