"""What ``vidsr bench`` measures (``BenchConfig``) and one configuration's numbers (``ConfigResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidsr.media.codecs import EncodeOptions

STAGES = ("decode", "mask", "sr", "background", "composite", "encode")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. ``backends`` are names like torch, torch-bf16, ort, trt."""

    scale: int = 2
    model: str | None = None
    backends: tuple[str, ...] = ("torch", "ort")
    frames: int = 30
    warmup: int = 3
    repeat: int = 3
    tile: int = 64
    batch: int = 8
    mask_every: int = 2
    merge: bool = True  # merge neighbouring tiles into larger windows on CPU (as vidsr upscale does)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    sweep_fg: tuple[float, ...] = ()


@dataclass
class ConfigResult:
    """One configuration's numbers (ms per frame unless named otherwise)."""

    name: str
    mode: str
    backend: str
    status: str = "ok"
    reason: str = ""
    stages_median_ms: dict[str, float] = field(default_factory=dict)
    stages_p90_ms: dict[str, float] = field(default_factory=dict)
    wall_ms_per_frame: float = 0.0
    fps: float = 0.0
    stage_sum_ms_per_frame: float = 0.0
    fg_fraction: float = 0.0
    sr_pixel_fraction: float = 0.0
    sr_tile_fraction: float = 0.0
    sr_window_pixels_ratio: float = 0.0
    mask_passes: int = 0
    peak_rss_mb: float = 0.0
    gpu_peak_mb: float | None = None
    mask_flicker: float | None = None
    quality: dict[str, dict[str, float]] | None = None


def default_backends() -> tuple[str, ...]:
    """What ``vidsr bench`` times unless told: torch fp32, torch bf16 where the CPU has native bf16
    (emulated bf16 takes ~10x fp32's time and tells nothing about deployment), ONNX Runtime."""
    from vidsr.platform import native_bf16

    return ("torch", "torch-bf16", "ort") if native_bf16() else ("torch", "ort")


__all__ = ["STAGES", "BenchConfig", "ConfigResult", "default_backends"]
