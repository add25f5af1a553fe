"""What ``vidsr compare`` can be told: the frame range, the methods, the layout and the sheet settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vidsr.errors import InputError
from vidsr.pipeline.config import UpscaleConfig

Method = Literal["plain", "full", "partial", "mask"]
Layout = Literal["grid", "split", "wipe"]

METHODS: tuple[str, ...] = ("plain", "full", "partial", "mask")
LAYOUTS: tuple[str, ...] = ("grid", "split", "wipe")
GRID_ORDER: tuple[str, ...] = ("plain", "full", "partial", "mask")  # row-major 2x2
SHEET_METHODS: tuple[str, ...] = ("plain", "full", "partial")  # the mask is not an upscale


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start`` (inclusive) to ``stop`` (exclusive; ``None`` = to the end), 0-based."""

    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.stop is not None and self.stop < 0):
            raise InputError(f"--frames: frame numbers must be >= 0, got {self}")
        if self.stop is not None and self.stop <= self.start:
            raise InputError(f"--frames {self.start}:{self.stop} is empty: the end must be greater than the start")

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.stop is None else self.stop}"

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop is None

    def count(self, total: int | None) -> int | None:
        """How many frames the range selects from a clip of ``total`` frames (None if unknown)."""
        ends = [e for e in (self.stop, total) if e is not None]
        return max(0, min(ends) - self.start) if ends else None


def parse_frames(text: str | None) -> FrameRange:
    """``"a:b"``, ``"a:"``, ``":b"`` or ``None`` (all frames) -> FrameRange; anything else is an InputError."""
    if text is None or text.strip() in ("", ":"):
        return FrameRange()
    a, sep, b = text.strip().partition(":")
    if not sep:
        raise InputError(f"--frames must look like START:END (e.g. 10:50, 10: or :50), got {text!r}")
    try:
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        raise InputError(f"--frames must look like START:END with whole numbers (e.g. 10:50), got {text!r}") from None
    return FrameRange(start, stop)


def parse_methods(text: str) -> tuple[str, str]:
    """``"plain,partial"`` -> ("plain", "partial"): two different names from METHODS."""
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 2 or len(set(names)) != 2 or any(n not in METHODS for n in names):
        raise InputError(f"--methods must be two different names from {', '.join(METHODS)} "
                         f"separated by a comma (e.g. plain,partial), got {text!r}")
    return names  # type: ignore[return-value]


@dataclass(frozen=True)
class CompareConfig:
    """What ``vidsr compare`` can be told; ``upscale`` carries the model, tiles and mask settings.

    ``upscale.bg`` is both the ``plain`` method and the partial-SR background.
    """

    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    layout: str = "grid"
    methods: tuple[str, str] = ("plain", "partial")
    frames: FrameRange = field(default_factory=FrameRange)
    max_width: int = 1920
    sheet_frame: int | None = None
    crop: int = 48
    labels: bool = True

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        parse_methods(",".join(self.methods))
        if self.max_width < 64:
            raise InputError(f"--max-width must be >= 64, got {self.max_width}")
        if self.sheet_frame is not None and self.sheet_frame < 0:
            raise InputError(f"--sheet-frame must be >= 0, got {self.sheet_frame}")
        if self.crop < 8:
            raise InputError(f"crop must be >= 8 LR pixels, got {self.crop}")


__all__ = ["GRID_ORDER", "LAYOUTS", "METHODS", "SHEET_METHODS", "CompareConfig", "FrameRange", "Layout", "Method",
           "parse_frames", "parse_methods"]
