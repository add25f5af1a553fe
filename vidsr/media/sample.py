"""The built-in sample clip: a pan across a real shallow depth-of-field photograph, with audio.

The same pan over any photograph (``SampleSpec.photo``) makes a test clip with a known ground
truth: the crops are the HR frames, their area-downscaled copies the clip."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path

import av
import cv2
import numpy as np

from vidsr.errors import InputError, OutputError
from vidsr.media.codecs import muxer_name
from vidsr.media.output import atomic_output, check_output_path

SAMPLE_RATE = 48000


@dataclass(frozen=True)
class SampleSpec:
    """Size of the low-resolution clip; ``gt_scale`` x that is the crop taken from the photo.

    ``photo``: an image file to pan across instead of the bundled photograph (upscaled first,
    bicubic, if it is smaller than the crop, so then the crops are no true ground truth)."""

    width: int = 960
    height: int = 540
    fps: int = 30
    seconds: float = 2.0
    gt_scale: int = 2
    audio: bool = True
    photo: Path | None = None

    @property
    def frames(self) -> int:
        return max(1, round(self.fps * self.seconds))

    @property
    def crop_shape(self) -> tuple[int, int]:
        """(height, width) of the crops taken from the photo: the ground-truth frames."""
        return self.height * self.gt_scale, self.width * self.gt_scale

    def too_small(self, photo: np.ndarray) -> bool:
        """Whether ``photo`` is smaller than the crops (so it is upscaled first, and they are no true ground truth)."""
        ch, cw = self.crop_shape
        return ch > photo.shape[0] or cw > photo.shape[1]

    @property
    def source(self) -> str:
        """What the clip pans across, in words (benchmark reports)."""
        return f"pan across {Path(self.photo).name}" if self.photo is not None else "built-in sample"


def sample_photo(path: str | Path | None = None) -> np.ndarray:
    """The bundled photograph, or the image file at ``path`` (EXIF rotation applied, 8 bits),
    as (H, W, 3) uint8 RGB."""
    if path is None:
        data = resources.files("vidsr").joinpath("assets/sample.jpg").read_bytes()
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read photo {path}: {e.strerror or e}") from None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path} is not an image OpenCV can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sample_frames(spec: SampleSpec, *, ground_truth: bool = False, photo: np.ndarray | None = None):
    """Yield (H, W, 3) uint8 RGB frames of the pan (LR, or the HR crops with ``ground_truth``).
    ``photo``: ``spec.photo`` already read (:func:`sample_photo`)."""
    if photo is None:
        photo = sample_photo(spec.photo)
    ch, cw = spec.crop_shape
    if spec.too_small(photo):
        f = max(ch / photo.shape[0], cw / photo.shape[1])
        photo = cv2.resize(photo, (int(np.ceil(photo.shape[1] * f)), int(np.ceil(photo.shape[0] * f))),
                           interpolation=cv2.INTER_CUBIC)
    travel_x, travel_y = photo.shape[1] - cw, photo.shape[0] - ch
    n = spec.frames
    for i in range(n):
        t = i / max(1, n - 1)
        x = round(travel_x * t)
        y = round(travel_y * (0.5 - 0.5 * np.cos(np.pi * t)) * 0.5)
        crop = photo[y:y + ch, x:x + cw]
        if ground_truth:
            yield np.ascontiguousarray(crop)
        else:
            yield cv2.resize(crop, (spec.width, spec.height), interpolation=cv2.INTER_AREA)


def _tone(n_samples: int, start: int) -> np.ndarray:
    t = (np.arange(n_samples) + start) / SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    env = 0.25 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    left = chord * env
    right = np.roll(left, 240)
    return np.stack([left, right]).astype(np.float32)


def write_sample(path: str | Path, *, spec: SampleSpec = SampleSpec(), ground_truth: bool = False,
                 crf: int = 16, photo: np.ndarray | None = None) -> Path:
    """Write the sample clip (H.264 + AAC stereo) to ``path`` atomically and return it.
    ``photo``: ``spec.photo`` already read (:func:`sample_photo`)."""
    path = Path(path)
    check_output_path(path)
    if muxer_name(path) not in ("mp4", "mov", "matroska"):
        raise OutputError(f"the sample is H.264 + AAC: write it as .mp4, .mkv or .mov, not {path.suffix or path}")
    h, w = spec.crop_shape if ground_truth else (spec.height, spec.width)
    if photo is None:
        photo = sample_photo(spec.photo)  # a bad photo fails before the output is opened
    with atomic_output(path) as tmp, contextlib.closing(av.open(str(tmp), "w")) as c:
        v = c.add_stream("libx264", rate=spec.fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": str(crf), "preset": "veryfast"}
        a = None
        if spec.audio:
            a = c.add_stream("aac", rate=SAMPLE_RATE)
            a.layout = "stereo"
        tb = Fraction(1, spec.fps)
        for i, img in enumerate(sample_frames(spec, ground_truth=ground_truth, photo=photo)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, tb
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        if a is not None:
            total = round(spec.frames / spec.fps * SAMPLE_RATE)
            for start in range(0, total, 1024):
                chunk = _tone(min(1024, total - start), start)
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path
