"""Choosing how the output is encoded: encoder and its settings, image-sequence codecs, pixel format."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from vidsr.errors import OutputError
from vidsr.media.types import STDIO, VideoInfo


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings.

    ``codec=None`` picks one the container holds (:func:`pick_codec`: libx264, or VP9 for webm).
    ``preset``: the x264/x265 preset (default veryfast), SVT-AV1's preset number (10), or VP9's
    ``cpu-used`` (default 8, realtime); other encoders take only ``crf``.
    ``pix_fmt=None`` follows the input: ``yuv420p`` for 8-bit input, ``yuv420p10le`` for deeper
    input (4:2:2 and 4:4:4 inputs keep their chroma), where the codec can encode it.
    ``container`` names the muxer (default: from the output's extension; ``matroska`` for ``-``).
    """

    codec: str | None = None
    crf: int = 18
    preset: str | None = None
    pix_fmt: str | None = None
    container: str | None = None
    low_latency: bool = False  # live output: no lookahead, no B-frames (x264/x265 tune zerolatency)

    def for_output(self, path: Path | str) -> EncodeOptions:
        """These options with the codec chosen for ``path``'s container when none was given
        (for an image sequence, from the frames' extension)."""
        if self.codec is not None:
            return self
        muxer = muxer_name(path, self.container)
        return dataclasses.replace(self, codec=image_codec(path) if muxer == "image2" else pick_codec(muxer))

    def encoder_options(self) -> dict[str, str]:
        """FFmpeg options for the (chosen) encoder: constant quality ``crf`` and its speed setting
        (none for image frames: PNG, TIFF and BMP are lossless, JPEG has a fixed quality)."""
        if self.codec in IMAGE_PIX_FMTS:
            return {}
        opts = {"crf": str(self.crf)}
        if self.codec in ("libx264", "libx265"):
            opts["preset"] = self.preset or "veryfast"
        if self.codec == "libx265":
            opts["x265-params"] = "log-level=error"
        if self.codec == "libsvtav1":
            opts["preset"] = self.preset or "10"
        if self.codec == "libvpx-vp9":  # constant quality (no bitrate cap), fast enough to keep up
            opts |= {"b": "0", "deadline": "realtime", "cpu-used": self.preset or "8", "row-mt": "1"}
        if self.low_latency:  # each frame's packet leaves as soon as the frame is in
            opts["bf"] = "0"
            if self.codec in ("libx264", "libx265"):
                opts["tune"] = "zerolatency"
            if self.codec == "libvpx-vp9":
                opts["lag-in-frames"] = "0"
        return opts


IMAGE_CODECS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}
"""Encoders of image-sequence output (``frames/%06d.png``), by extension."""
IMAGE_PIX_FMTS = {"png": ("rgb24", "rgb48be"), "tiff": ("rgb24", "rgb48le"), "bmp": ("bgr24", None),
                  "mjpeg": ("yuvj420p", None)}
"""(8-bit, deep) pixel formats of the image encoders; deep None: 8 bits only."""


def image_codec(path: Path | str) -> str:
    codec = IMAGE_CODECS.get(Path(path).suffix.lower())
    if codec is None:
        raise OutputError(f"cannot write {Path(path).suffix or 'extension-less'} frames: an image-sequence "
                          f"output is one of {', '.join(sorted(IMAGE_CODECS))} (e.g. frames/%06d.png)")
    return codec


AUTO_CODECS = ("libx264", "libvpx-vp9", "libsvtav1")
"""Encoders tried in this order when no codec is given: the first the container takes is used."""


def quiet_svt() -> None:
    """SVT-AV1 prints its set-up to stderr unless told otherwise: errors only (unless the user set SVT_LOG)."""
    os.environ.setdefault("SVT_LOG", "1")


def muxer_name(path: Path | str, container: str | None = None) -> str:
    """The FFmpeg muxer that writes ``path`` (``container`` if given; matroska for ``-``)."""
    if str(path) == STDIO or container:
        return container or "matroska"
    try:  # opening for writing guesses the muxer from the name; no file is made before the first packet
        out = av.open(str(path), mode="w")
    except (ValueError, av.error.FFmpegError, OSError) as e:
        raise OutputError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return out.format.name
    finally:
        out.close()


def pick_codec(muxer: str) -> str:
    """The first of :data:`AUTO_CODECS` that this FFmpeg encodes and ``muxer`` accepts.

    Asks the muxer itself by writing a header in memory (PyAV's ``supported_codecs`` leaves out
    what muxers without a codec table, such as mpegts, take, and some refuse a codec only there)."""
    quiet_svt()
    for codec in AUTO_CODECS:
        out = av.open(io.BytesIO(), mode="w", format=muxer)
        try:
            v = out.add_stream(codec, rate=30)
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
            out.start_encoding()
            return codec
        except (ValueError, av.error.FFmpegError):
            continue
        finally:
            with contextlib.suppress(Exception):
                out.close()
    raise OutputError(f"the {muxer} container holds none of H.264, VP9 and AV1 (the formats vidsr encodes "
                      "without --codec); write .mp4, .mkv or .webm, or give --codec")


def rgb_like(pix_fmt: str) -> bool:
    """RGB, palette or grey input (no YUV matrix of its own)."""
    try:
        f = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return False
    return f.is_rgb or f.has_palette or len(f.components) <= 2


def has_alpha(pix_fmt: str) -> bool:
    """Whether frames of ``pix_fmt`` carry transparency (rgba, yuva420p, ya8, gbrap, ...)."""
    try:
        return len(av.VideoFormat(pix_fmt).components) in (2, 4)
    except (ValueError, av.error.FFmpegError):
        return False


def choose_pix_fmt(options: EncodeOptions, info: VideoInfo) -> tuple[str, str | None]:
    """The encoder's pixel format for ``info``'s input, and a warning if depth or chroma is lost."""
    if options.pix_fmt:
        return options.pix_fmt, None
    if options.codec in IMAGE_PIX_FMTS:
        eight, deep = IMAGE_PIX_FMTS[options.codec]
        if info.bit_depth <= 8:
            return eight, None
        if deep is not None:
            return deep, None
        return eight, f"{options.codec} frames hold 8 bits; the input has {info.bit_depth}-bit samples"
    name = info.pix_fmt
    chroma = "420"
    if not rgb_like(name):
        chroma = "444" if "444" in name else "422" if "422" in name else "420"
    deep = info.bit_depth > 8
    want = f"yuv{chroma}p" + ("10le" if deep else "")
    try:
        formats = [f.name for f in (av.Codec(options.codec, "w").video_formats or ())]
    except (ValueError, av.error.FFmpegError):
        return want, None  # unknown codec: the writer reports it
    if not formats or want in formats:
        return want, None
    for fallback in (["yuv420p10le"] if deep else []) + ["yuv420p", formats[0]]:
        if fallback in formats:
            return fallback, (f"codec {options.codec} cannot encode {want}; writing {fallback}"
                              + (f" (the input has {info.bit_depth}-bit samples)" if deep else ""))
    return formats[0], None
