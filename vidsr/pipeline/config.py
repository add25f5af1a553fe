"""What an upscale is told (:class:`UpscaleConfig`), what it reports, and the settings derived from them."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vidsr.composite import BgMethod
from vidsr.errors import InputError
from vidsr.masks.base import ThresholdStats
from vidsr.media.deinterlace import DeinterlaceMode
from vidsr.media.codecs import EncodeOptions
from vidsr.media.types import Frame

MERGE_WINDOW_PX = 160_000  # largest merged SR window (LR pixels) on CPU; see benchmarks/README.md

FULL_FRAME_ONE_WORKER_PX = 1_000_000
"""Full-frame SR of LR frames this large runs one frame at a time by default. 1080p -> 4K on the
2-core AVX2 host: two frames at once made 1.76 fps against 1.77 one at a time and peaked at 2020
against 1444 MiB (its windows are large enough for two threads per call); at 540p two frames at
once were 15 % faster, and partial SR at 1080p 20 % faster for 100 MiB more."""

NOT_IN_OUTPUT_KEY = ("copy_streams", "queue_size", "save_mask", "strict")
"""Fields that never change the upscaled video stream (``resume`` and ``segment_frames`` do only
with ``resume`` set: the encoder and the mask restart at each segment)."""


@dataclass(frozen=True)
class UpscaleConfig:
    """Everything ``vidsr upscale`` can be told. Defaults are the benchmarked ones."""

    scale: int = 2
    model: str | None = None
    backend: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 8
    tile: int = 64
    bg: BgMethod = "bicubic"
    full_frame: bool = False
    mask_every: int = 2
    mask_carry: str = "hold"  # between anchors: "hold" the mask or warp it along optical "flow"
    mask_lookahead: int = 1  # anchor frames scored per estimator call (depth batching)
    merge: bool | None = None  # merge neighbouring SR tiles into larger windows (None: on CPU only)
    fg_threshold: float | None = None
    feather_px: float = 4.0
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    copy_streams: bool = True
    queue_size: int = 8
    save_mask: Path | None = None
    strict: bool = False  # fail (no output) when packets were corrupt or the input was cut short
    deinterlace: DeinterlaceMode = "auto"  # interlaced frames through bwdif (vidsr.media.deinterlace)
    input_rate: Fraction | None = None  # frame rate of an image-sequence input (default 25)
    resume: bool = False  # work in resumable segments kept beside the output (see vidsr.pipeline.resume)
    segment_frames: int = 120  # with resume: a segment starts at the first keyframe after this many
    frame_workers: int | None = None  # frames upscaled at once (None: 2 for torch on a multi-core CPU)

    def output_key(self, *, mask_key: str) -> str:
        """Hash of everything besides the input that changes the upscaled video: the fields not in
        :data:`NOT_IN_OUTPUT_KEY`, the model's identity (its file's sha256, or the manifest's for a
        shipped name), ``mask_key`` (the mask estimator's) and vidsr's version.

        The resume journal adds the input's identity to it; the Ray segment cache uses it as is.
        """
        from vidsr import __version__ as version

        skip = NOT_IN_OUTPUT_KEY if self.resume else NOT_IN_OUTPUT_KEY + ("resume", "segment_frames")
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(sorted(settings.items())).encode())
        h.update(f"|{self._model_id()}|{mask_key}|{version}".encode())
        return h.hexdigest()

    def _model_id(self) -> str:
        """sha256 of the model file, or the manifest's for a shipped name (else the name itself)."""
        from vidsr.weights import DEFAULT_MODELS, read_manifest, sha256_file

        model = self.model or DEFAULT_MODELS.get(self.scale, "")
        if Path(model).is_file():
            return sha256_file(Path(model))
        entry = read_manifest().get(model)
        return entry.sha256 if entry else model


@dataclass
class UpscaleReport:
    """What a run did and how long each stage took (seconds, summed over frames)."""

    input: str
    output: str
    frames: int = 0
    seconds: float = 0.0
    in_size: tuple[int, int] = (0, 0)
    out_size: tuple[int, int] = (0, 0)
    pixels_total: int = 0  # LR pixels of all frames
    pixels_sr: int = 0  # LR pixels whose output came from the SR network
    pixels_window: int = 0  # LR pixels the network ran on (cores and context), at most a frame's a frame
    fg_fraction_sum: float = 0.0
    threshold: ThresholdStats = field(default_factory=ThresholdStats)  # the masks' score thresholds
    mask_passes: int = 0
    cuts: int = 0
    bad_packets: int = 0
    expected_frames: int | None = None  # from the input's header, when it says (progress bars)
    resumed_frames: int = 0  # frames finished by earlier runs (--resume)
    engine: str = ""
    warnings: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    threads: dict[str, dict[str, float]] = field(default_factory=dict)  # ThreadClock.summary of the run

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def sr_fraction(self) -> float:
        """Mean fraction of output pixels that went through the SR network."""
        return self.pixels_sr / self.pixels_total if self.pixels_total else 0.0

    @property
    def fg_fraction(self) -> float:
        return self.fg_fraction_sum / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class FrameWindow:
    """Process one stretch of the input (a segment of a longer run), times in seconds.

    Frames with ``start <= t < end`` are output; frames with ``warmup <= t < start`` only
    go through the mask tracker (so its smoothing is settled at ``start``); others are
    decoded and dropped. Side-stream packets are dropped (the joiner copies them once).
    """

    start: Fraction
    end: Fraction | None = None
    warmup: Fraction | None = None

    def role(self, frame: Frame) -> str:
        """``out``, ``warmup`` or ``skip`` for ``frame``."""
        t = Fraction(frame.pts) * frame.time_base
        if self.end is not None and t >= self.end:
            return "skip"
        if t >= self.start:
            return "out"
        return "warmup" if self.warmup is not None and t >= self.warmup else "skip"


def merge_window_px(*, device: str, backend: str, merge: bool | None = None) -> int | None:
    """The merged-window cap for an engine, or None for fixed tiles. ``merge`` None: merge on CPU
    (not with TensorRT, whose profile is sized for the fixed tiles)."""
    if merge is None:
        merge = device == "cpu" and backend != "trt"
    return MERGE_WINDOW_PX if merge else None


def frame_workers(config: UpscaleConfig, *, lr_pixels: int = 0) -> int:
    """Frames upscaled at once: ``config.frame_workers``, or by default 2 for torch on the CPU when
    torch may use 2 threads or more (each frame then gets half of them), except full-frame SR of
    frames of ``lr_pixels`` >= :data:`FULL_FRAME_ONE_WORKER_PX`; else 1.

    More than 1 is refused for the torch and TensorRT engines on CUDA: their CUDA-graph inputs,
    overlap buffers and TensorRT context serve one thread at a time."""
    import torch

    if config.frame_workers is not None:
        if config.frame_workers < 1:
            raise InputError(f"--frame-workers must be >= 1, got {config.frame_workers}")
        on_cuda = config.backend == "trt" or (config.backend == "torch" and config.device != "cpu")
        if config.frame_workers > 1 and on_cuda:
            raise InputError(f"--frame-workers {config.frame_workers} is not available with --backend "
                             f"{config.backend} on {config.device} (its CUDA engine serves one frame at a "
                             "time; the GPU overlaps copies and compute already): use 1")
        return config.frame_workers
    if config.full_frame and lr_pixels >= FULL_FRAME_ONE_WORKER_PX:
        return 1
    return 2 if config.backend == "torch" and config.device == "cpu" and torch.get_num_threads() >= 2 else 1
