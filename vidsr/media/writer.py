"""Writing the output: RGB frames encoded at the input's timestamps, side streams copied or converted.

The output follows the input: pts and durations, colour tags, bit depth, rotation, container
metadata, and audio/subtitle streams with their languages and dispositions (copied, or
converted with a warning naming the stream).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import sys
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

from vidsr.errors import OutputError
from vidsr.media.codecs import EncodeOptions, choose_pix_fmt, has_alpha, quiet_svt, rgb_like
from vidsr.media.streams import (TEXT_SUBTITLES, can_copy, clean_tags, describe_stream, embed, embedded, is_side,
                                 main_video_stream, write_chapters)
from vidsr.media.types import STDIO, Passthrough, VideoInfo

# AVColorSpace (the tag) -> swscale's SWS_CS_* (the YUV<->RGB matrix it applies)
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: quality scale -> lambda


def _known_layout(layout: av.AudioLayout) -> str:
    """The layout's name, or the usual layout for its channel count when the file did not say
    which channel is which (AVI's "2 channels"): mp4 and most encoders refuse an unknown order."""
    if not layout.name.endswith("channels"):
        return layout.name
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}.get(
        layout.nb_channels, layout.name)


# FFmpeg's own default header for text subtitles converted from a format that has none (SubRip...)
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\nScaledBorderAndShadow: yes\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    b"BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
    b"Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,"
    b"&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, "
    b"MarginL, MarginR, MarginV, Effect, Text\n"
)


class VideoWriter:
    """Encode RGB frames at given pts into ``path`` and copy (or convert) side streams.

    Frames must arrive in presentation order with the input's pts; ``close()`` flushes.
    The video stream gets the input's colour tags, rotation and (by default) bit depth;
    audio/subtitle streams are copied with their metadata and dispositions when the
    container can hold them, else audio is re-encoded and text subtitles converted, each
    with a warning naming the stream; anything else is dropped with a warning.

    Args:
        path: output file, or ``"-"`` for stdout.
        sources: the input's audio/subtitle streams (:attr:`Reader.side_streams`); default:
            reopen ``info.path`` to find them (not possible for a pipe).
        name: how errors name the output (the final name, when ``path`` is a temp file).
        template: an already encoded video stream whose packets will be given to
            :meth:`mux_video` (joining resumable segments) instead of frames to encode.
        bitexact: no random ids or version strings in the container (same input, same bytes).
        container_options: muxer options besides those (live output: ``flush_packets``, ``muxdelay``).
    """

    def __init__(self, *, path: Path | str, info: VideoInfo, width: int, height: int,
                 options: EncodeOptions, copy_streams: bool = True,
                 sources: Sequence[av.stream.Stream] | None = None, name: str | None = None,
                 template: av.stream.Stream | None = None, bitexact: bool = False,
                 container_options: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.name = name or str(path)
        self.closed = False
        self.warnings: list[str] = []
        self._lead: dict[int, int] = {}  # side stream -> ticks its packets are moved by (_from_zero)
        flags = ({"fflags": "+bitexact"} if bitexact else {}) | (container_options or {})
        try:
            if str(path) == STDIO:
                fmt = options.container or "matroska"
                if fmt in ("mp4", "mov", "ipod", "ismv"):  # a pipe cannot seek back to write the index
                    flags["movflags"] = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
                self.container = av.open(sys.stdout.buffer, mode="w", format=fmt, container_options=flags)
            else:
                # each packet goes to the file as it is muxed (same bytes): a full disk fails the next
                # mux, not close() after 256 KiB of AVIO buffer (Matroska still holds a cluster, <= 5 s)
                self.container = av.open(str(path), mode="w", format=options.container,
                                         container_options={"flush_packets": "1"} | flags)
        except (ValueError, av.error.FFmpegError, OSError) as e:
            raise OutputError(f"cannot create output {self.name}: {getattr(e, 'strerror', None) or e}") from None
        self._index_times = self.container.format.name == "avi"  # one frame per tick, no reordered times
        try:
            if template is not None:
                self._setup_copied_video(info, template)
            else:
                self._setup(info, width, height, options)
            if copy_streams:
                self._setup_side_streams(info, sources)
            write_chapters(self.container, info.chapters)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, info: VideoInfo, width: int, height: int, options: EncodeOptions) -> None:
        self.width = width + (width % 2)
        self.height = height + (height % 2)
        rate = info.average_rate or Fraction(30)
        if options.codec is None:
            options = options.for_output(self.path)
        if options.codec == "libsvtav1":
            quiet_svt()
        try:
            v = self.container.add_stream(options.codec, rate=rate)
        except (ValueError, av.error.FFmpegError) as e:
            known = options.codec in av.codecs_available
            raise OutputError(f"cannot write {options.codec} video to {self.name}: {e}" if known else
                              f"unknown or unavailable video codec {options.codec!r}") from None
        pix_fmt, warning = choose_pix_fmt(options, info)
        if warning:
            self.warnings.append(warning)
        if has_alpha(info.pix_fmt):
            self.warnings.append(f"the input's alpha channel ({info.pix_fmt}) is not kept: the output is opaque")
        v.width, v.height = self.width, self.height
        try:
            v.pix_fmt = pix_fmt
        except (ValueError, av.error.FFmpegError) as e:
            raise OutputError(f"unknown pixel format {pix_fmt!r}: {e}") from None
        tb, opts = info.time_base, options.encoder_options()
        if self._index_times:  # AVI plays one frame per tick and keeps no reordered times
            tb = 1 / Fraction(info.average_rate or 30)
            opts["bf"] = "0"  # no B-frames
            if options.codec == "libx264":
                opts["x264-params"] = "bframes=0"
        v.time_base = tb
        v.codec_context.time_base = tb
        v.options = opts
        self.colour = info.colour.for_yuv(rgb_source=rgb_like(info.pix_fmt))
        cc = v.codec_context
        if options.codec == "mjpeg":  # JPEG's own full-range BT.601 YUV
            self.colour = dataclasses.replace(self.colour, matrix=5, range=ColorRange.JPEG)
            # every frame at quality 2 (FFmpeg's -q:v 2), not a bitrate that starves later frames
            cc.qscale = True
            cc.global_quality = 2 * _QP2LAMBDA
        elif av.VideoFormat(v.pix_fmt).is_rgb:  # RGB out (PNG frames, --pix-fmt gbrp): no YUV matrix
            self.colour = dataclasses.replace(self.colour, matrix=0, range=ColorRange.JPEG)
        cc.color_primaries, cc.color_trc = self.colour.primaries, self.colour.trc
        cc.colorspace, cc.color_range = self.colour.matrix, self.colour.range
        self._sws_matrix = _SWS_MATRIX.get(self.colour.matrix)
        self._reformatter = VideoReformatter()
        if info.rotation:
            v.set_display_rotation(info.rotation)
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        v.metadata.update(dict(info.video_metadata))
        self.container.metadata.update(dict(info.metadata))
        try:  # open the encoder now: a bad --codec/--crf/--preset fails before the run, with its reason
            cc.open()
        except (ValueError, av.error.FFmpegError) as e:
            settings = ", ".join(f"{k} {val}" for k, val in v.options.items())
            raise OutputError(f"cannot start the {options.codec} encoder ({settings}): "
                              f"{getattr(e, 'strerror', None) or e}") from None
        self.video = v
        self.side: dict[int, tuple[str, av.stream.Stream]] = {}
        self._copied_video = False

    def _setup_copied_video(self, info: VideoInfo, template: av.stream.Stream) -> None:
        self.width, self.height = template.codec_context.width, template.codec_context.height
        self.video = self.container.add_stream_from_template(template)
        self.video.time_base = info.time_base
        if info.rotation:
            self.video.set_display_rotation(info.rotation)
        self.video.metadata.update(dict(info.video_metadata))
        self.container.metadata.update(dict(info.metadata))
        self.side: dict[int, tuple[str, av.stream.Stream]] = {}
        self._copied_video = True

    def mux_video(self, packet: av.Packet) -> None:
        """Mux an already encoded video packet (the writer was made with ``template``)."""
        packet.stream = self.video
        self._mux([packet])

    def _setup_side_streams(self, info: VideoInfo, sources: Sequence[av.stream.Stream] | None) -> None:
        if sources is not None:
            for s in sources:
                self._add_side_stream(s, info)
            return
        if info.source != "file":
            return
        with contextlib.closing(av.open(info.path)) as src:
            video = main_video_stream(src, info.path)
            for s in src.streams:
                if is_side(s) and s.index != video.index:
                    self._add_side_stream(s, info)

    def _add_side_stream(self, s: av.stream.Stream, info: VideoInfo) -> None:
        name = s.codec_context.name if s.codec_context else "unknown"
        what = describe_stream(s)
        fmt = self.container.format.name
        where = f"{self.path.suffix or fmt}" if str(self.path) != STDIO else fmt
        if embedded(s, fmt):
            warning = embed(self.container, s, where=where, path=info.path if info.source == "file" else None)
            if warning is not None:
                self.warnings.append(warning)
            return
        if can_copy(fmt, s):
            out = self.container.add_stream_from_template(s)
            if s.type == "audio" and s.codec_context.layout:
                out.codec_context.layout = _known_layout(s.codec_context.layout)
            self.side[s.index] = ("copy", out)
        elif s.type == "audio" and (codec := self._audio_codec()) is not None:
            ctx = s.codec_context
            rates = av.Codec(codec, "w").audio_rates
            rate = ctx.sample_rate if ctx.sample_rate and (not rates or ctx.sample_rate in rates) else 48000
            out = self.container.add_stream(codec, rate=rate)
            if ctx.layout:
                out.layout = _known_layout(ctx.layout)
            self.side[s.index] = ("encode", out)
            self.warnings.append(f"{what} re-encoded to {out.codec_context.name}: {where} cannot hold {name}")
        elif s.type == "subtitle" and name in TEXT_SUBTITLES and (codec := self._text_subtitle_codec()):
            out = self.container.add_stream(codec)
            out.codec_context.time_base = Fraction(1, 1000)
            header = s.codec_context.extradata if name in ("ass", "ssa") else None
            out.codec_context.subtitle_header = header or _ASS_HEADER
            self.side[s.index] = ("subtitle", out)
            self.warnings.append(f"{what} converted to {codec}: {where} cannot hold {name}")
        else:
            self.warnings.append(f"{what} dropped: {where} cannot hold {name}")
            return
        out.metadata.update(clean_tags(s.metadata))
        out.disposition = s.disposition

    def _audio_codec(self) -> str | None:
        supported = self.container.supported_codecs
        for codec_name, encoder in (("aac", "aac"), ("opus", "libopus"), ("flac", "flac")):
            if codec_name in supported:
                return encoder
        default = self.container.default_audio_codec
        return None if default in (None, "none") else default

    def _text_subtitle_codec(self) -> str | None:
        supported = self.container.supported_codecs
        for codec_name, encoder in (("mov_text", "mov_text"), ("webvtt", "webvtt"), ("subrip", "srt"),
                                    ("ass", "ass")):
            if codec_name in supported:
                return encoder
        return None

    def write(self, image: np.ndarray, *, pts: int, time_base: Fraction, duration: int | None,
              fmt: str = "rgb24") -> None:
        """Encode one frame at ``pts``: (H, W, 3) uint8 or uint16 RGB, or (H, W) uint8 with ``fmt="gray"``.

        RGB is converted here with the output's matrix and range (and tagged with them).
        """
        h, w = image.shape[:2]
        if (h, w) != (self.height, self.width):
            extra = ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, ((0, self.height - h), (0, self.width - w), *extra), mode="edge")
        if image.dtype == np.uint16 and fmt == "rgb24":
            fmt = "rgb48le"
        # wraps the array (from_ndarray's copy cost 14 ms per 1080p frame); the encoder copies what it keeps
        frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(image), format=fmt)
        if fmt != "gray":
            frame = self._reformatter.reformat(frame, format=self.video.codec_context.pix_fmt,
                                               dst_colorspace=self._sws_matrix,
                                               dst_color_range=self.colour.range or None)
        c = self.colour
        frame.color_primaries, frame.color_trc, frame.colorspace = c.primaries, c.trc, c.matrix
        frame.color_range = c.range
        frame.pts = pts
        frame.time_base = time_base
        if duration:
            frame.duration = duration
        self._mux(self.video.encode(frame))

    def copy(self, item: Passthrough) -> None:
        """Mux (or convert) a side-stream packet."""
        entry = self.side.get(item.stream_index)
        if entry is None:
            return
        mode, out = entry
        packet = item.packet
        if mode == "copy":
            packet.stream = out
            self._mux([packet])
        elif mode == "encode":
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                return  # a corrupt audio packet: its samples are lost, the rest stays in sync
            for frame in frames:
                self._mux(out.encode(frame))
        else:
            for rect in packet.decode():
                text = getattr(rect, "ass", None)
                if not text or packet.pts is None:
                    continue
                sub = av.subtitles.subtitle.SubtitleSet.create(text=text, start=0, end=packet.duration or 0,
                                                              pts=packet.pts)
                converted = out.codec_context.encode_subtitle(sub)
                converted.stream = out
                converted.time_base = packet.time_base
                self._mux([converted])

    def _from_zero(self, packets: list[av.Packet]) -> list[av.Packet]:
        """In AVI, side-stream packets moved to start at 0 at the earliest. AVI keeps no edit list
        for an audio encoder's delay (AAC's 1024 priming samples before 0): the muxer would shift
        every stream by it, and the video, which ticks once per frame, gained a gap at its second
        frame and a frame of length. The audio then starts with its priming, as AVI players play it."""
        for p in packets:
            if p.dts is None or p.stream.index == self.video.index:
                continue
            lead = self._lead.setdefault(p.stream.index, max(0, -p.dts, -(p.pts or 0)))
            if lead:
                p.dts += lead
                if p.pts is not None:
                    p.pts += lead
        return packets

    def _fail(self, e: BaseException) -> OutputError:
        reason = getattr(e, "strerror", None) or str(e)
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            reason += " (the disk is full or a file-size limit was reached)"
        return OutputError(f"writing {self.name} failed: {reason}")

    def _mux(self, packets) -> None:
        if self._index_times:  # every side-stream packet: copied, re-encoded or flushed at the end
            packets = self._from_zero(list(packets))
        try:
            self.container.mux(packets)
        except (OSError, av.error.FFmpegError) as e:
            raise self._fail(e) from None

    def close(self) -> None:
        """Flush every encoder and finish the file."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self._copied_video:
                self._mux(self.video.encode(None))
            for mode, out in self.side.values():
                if mode == "encode":
                    self._mux(out.encode(None))
        finally:
            try:
                self.container.close()
            except (OSError, av.error.FFmpegError) as e:
                raise self._fail(e) from None

    def abort(self) -> None:
        """Close without flushing (the file is discarded by the caller)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.container.close()
