"""Cut a video into segments at keyframes and join upscaled segments, all by stream copy.

Planning reads the video stream's packets once (no decoding) and picks split points at
keyframes that start a *closed* GOP: every packet before it in decode order is shown
before it, every packet after it is shown at or after it. A segment is then exactly the
frames with ``start <= pts < end`` and its packets can be copied into a file of their own.

Each segment file also holds the frames just before its start (from an earlier split
point), so a worker can warm up the mask tracker on them and the mask does not jump at the
boundary. Joining copies the upscaled segments' video packets into one file, interleaved
with the original's audio and subtitle packets (copied once, from the original).
:func:`renumber_segments` gives a resumable run's segments (:mod:`vidsr.pipeline.resume`)
their joined timestamps; that run joins them through its own writer.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from vidsr.errors import InputError, OutputError
from vidsr.media.open import open_file
from vidsr.media.streams import (can_copy, carries, clean_tags, describe_stream, embed, embedded, is_side,
                                 main_video_stream, read_chapters, write_chapters)


@dataclass(frozen=True)
class Segment:
    """One piece of the input. Timestamps are in the input video stream's time base.

    Attributes:
        index: position in the plan (0-based).
        start: pts of the first frame the segment outputs (a split point).
        end: pts of the next segment's first frame (exclusive); ``None`` for the last one.
        first_frame: presentation index of the frame at ``start``.
        frames: frames the segment outputs (video packets; a packet that fails to decode is lost).
        warmup: pts of the first frame that only warms up the mask tracker (``start`` if none).
        warmup_frames: frames between ``warmup`` and ``start``.
        cut: pts of the split point the segment file starts at (``<= warmup``); frames
            between ``cut`` and ``warmup`` are decoded (they are needed) but not used.
        cut_frame: decode (and presentation) index of the packet at ``cut``.
        digest: content hash of the packets the segment file holds, and of the window.
    """

    index: int
    start: int
    end: int | None
    first_frame: int
    frames: int
    warmup: int
    warmup_frames: int
    cut: int
    cut_frame: int
    digest: str


@dataclass(frozen=True)
class SegmentPlan:
    """Where ``path`` is cut. ``frames``: video packets in the file; ``keyframes``: pts of every
    usable split point (closed-GOP keyframes), including the first frame."""

    path: str
    time_base: Fraction
    frames: int
    duration_s: float
    keyframes: tuple[int, ...]
    segments: tuple[Segment, ...]

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)


@dataclass
class _Scan:
    pts: list[int]
    key: list[bool]
    chunks: dict[int, str]  # decode index of each keyframe -> hash of the packets up to the next one
    time_base: Fraction
    last_duration: int


def _scan(path: str | Path) -> _Scan:
    """Read every video packet of ``path`` (no decoding): pts, key flag, and content hashes."""
    with contextlib.closing(open_file(path)) as c:
        v = main_video_stream(c, path)
        tb = v.time_base or Fraction(1, 90000)
        pts: list[int] = []
        key: list[bool] = []
        chunks: dict[int, str] = {}
        h, chunk_start, last_duration = hashlib.blake2b(digest_size=16), 0, 0
        try:
            for p in c.demux(v):
                if p.size == 0:
                    continue
                if p.pts is None:
                    raise InputError(f"{path}: video packet {len(pts)} has no timestamp, so the file cannot be "
                                     "cut into segments; run without --workers")
                if p.is_keyframe and pts:
                    chunks[chunk_start] = h.hexdigest()
                    h, chunk_start = hashlib.blake2b(digest_size=16), len(pts)
                h.update(bytes(p))
                h.update(f"{p.pts},{p.dts},{int(p.is_keyframe)};".encode())
                pts.append(p.pts)
                key.append(bool(p.is_keyframe))
                last_duration = p.duration or 0
        except av.error.FFmpegError as e:
            raise InputError(f"cannot read {path} after {len(pts)} packets: {e.strerror or e}") from None
    if not pts:
        raise InputError(f"no video packets in {path}")
    chunks[chunk_start] = h.hexdigest()
    if len(set(pts)) != len(pts):
        raise InputError(f"{path} has video packets with equal timestamps, so it cannot be cut into segments; "
                         "run without --workers")
    return _Scan(pts=pts, key=key, chunks=chunks, time_base=tb, last_duration=last_duration)


def split_points(pts: Sequence[int], key: Sequence[bool]) -> list[int]:
    """Decode indices where a segment may start: 0, and each keyframe starting a closed GOP.

    At such an index ``i`` exactly ``i`` packets are shown before packet ``i`` (so ``i`` is
    also its presentation index) and none of the packets after it refers back across it.
    """
    n = len(pts)
    suffix_min = [0] * n
    m = None
    for i in range(n - 1, -1, -1):
        m = pts[i] if m is None else min(m, pts[i])
        suffix_min[i] = m
    out = [0]
    prefix_max = pts[0]
    for i in range(1, n):
        if key[i] and prefix_max < pts[i] and suffix_min[i] >= pts[i]:
            out.append(i)
        prefix_max = max(prefix_max, pts[i])
    return out


def _choose(times: Sequence[float], points: Sequence[int], total: float, segment_s: float) -> list[int]:
    """Split points (indices into ``points``) about ``segment_s`` apart; the last segment is
    between half and one and a half ``segment_s`` long where keyframes allow."""
    point_times = [times[i] for i in points]
    chosen = [0]
    while True:
        t0 = point_times[chosen[-1]]
        if total - t0 < 1.5 * segment_s:
            return chosen
        target = t0 + segment_s
        k = bisect.bisect_left(point_times, target)
        options = [j for j in (k - 1, k) if chosen[-1] < j < len(points)]
        if not options:
            return chosen
        pick = min(options, key=lambda j: abs(point_times[j] - target))
        if total - point_times[pick] < 0.5 * segment_s:
            return chosen
        chosen.append(pick)


def plan_segments(path: str | Path, *, segment_s: float = 10.0, warmup_frames: int = 0,
                  align: int = 1) -> SegmentPlan:
    """Plan segments of about ``segment_s`` seconds, cut at closed-GOP keyframes.

    Args:
        path: a video file (not a pipe: it is read once here and again per segment).
        segment_s: wanted length; segments are longer where keyframes are far apart.
        warmup_frames: frames before each segment's start that warm up its mask tracker.
        align: the warm-up starts at a frame index that is a multiple of this (the mask's
            anchor period), so anchors fall on the same frames as in one long run.
    Raises:
        InputError: unreadable file, no video packets, or packets without usable timestamps.
    """
    if segment_s <= 0:
        raise InputError(f"segment length must be > 0 s, got {segment_s}")
    if warmup_frames < 0 or align < 1:
        raise InputError(f"warmup_frames must be >= 0 and align >= 1, got {warmup_frames}, {align}")
    s = _scan(path)
    n = len(s.pts)
    order = sorted(s.pts)
    tb = s.time_base
    first = order[0]
    times = [float((p - first) * tb) for p in s.pts]
    total = float((order[-1] + s.last_duration - first) * tb)
    points = split_points(s.pts, s.key)
    chosen = [points[j] for j in _choose(times, points, total, segment_s)]
    segments = []
    for k, i in enumerate(chosen):
        stop = chosen[k + 1] if k + 1 < len(chosen) else n
        w0 = 0 if i == 0 else max(0, i - warmup_frames)
        w0 -= w0 % align
        cut = points[bisect.bisect_right(points, w0) - 1]
        start = first if i == 0 else s.pts[i]
        end = s.pts[stop] if stop < n else None
        h = hashlib.blake2b(digest_size=16)
        for c in sorted(c for c in s.chunks if cut <= c < stop):
            h.update(s.chunks[c].encode())
        h.update(f"|{start},{end},{order[w0]},{tb}".encode())
        segments.append(Segment(index=k, start=start, end=end, first_frame=i, frames=stop - i,
                                warmup=order[w0] if i else start, warmup_frames=i - w0, cut=s.pts[cut], cut_frame=cut,
                                digest=h.hexdigest()))
    return SegmentPlan(path=str(path), time_base=tb, frames=n, duration_s=total,
                       keyframes=tuple(s.pts[i] if i else first for i in points), segments=tuple(segments))


def _packets_from(path: str | Path, c: av.container.InputContainer, v: av.stream.Stream,
                  cut: int, from_start: bool) -> Iterator[av.Packet]:
    """The video packets of ``c`` from the keyframe at pts ``cut`` on, in decode order."""
    if not from_start:
        try:
            c.seek(cut, stream=v, backward=True, any_frame=False)
            seeked = True
        except av.error.FFmpegError:
            seeked = False  # not seekable: read from the start
        found = False
        for p in c.demux(v) if seeked else ():
            if p.size == 0:
                continue
            if not found:
                if p.is_keyframe and p.pts == cut:
                    found = True
                elif p.is_keyframe and p.pts > cut:
                    break  # the seek went past it: read from the start instead
                else:
                    continue
            yield p
        if found:
            return
        c.seek(0, stream=v, backward=True, any_frame=True)
    found = from_start
    for p in c.demux(v):
        if p.size == 0:
            continue
        if not found and not (p.is_keyframe and p.pts == cut):
            continue
        found = True
        yield p
    if not found:
        raise InputError(f"{path}: no keyframe at pts {cut}; the file changed since it was planned")


def write_segment(source: str | Path, segment: Segment, dest: str | Path) -> tuple[Path, int]:
    """Copy ``segment``'s video packets (from ``segment.cut``, warm-up included, up to
    ``segment.end``) from ``source`` into ``dest`` without re-encoding.

    ``dest``'s extension picks the muxer; when that muxer cannot hold the codec the piece
    is written as ``.nut`` (or ``.mkv``) next to it instead. Returns (path written, packets).
    """
    dest = Path(dest)
    tried: list[str] = []
    for suffix in dict.fromkeys([dest.suffix or ".nut", ".nut", ".mkv"]):
        path = dest.with_suffix(suffix)
        try:
            return path, _copy_packets(source, segment, path)
        except (ValueError, av.error.FFmpegError) as e:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            tried.append(f"{suffix}: {getattr(e, 'strerror', None) or e}")
    raise OutputError(f"cannot write segment {segment.index} of {source} by stream copy ({'; '.join(tried)})")


def _copy_packets(source: str | Path, segment: Segment, dest: Path) -> int:
    with contextlib.closing(open_file(source)) as c:
        v = main_video_stream(c, source)
        try:
            out = av.open(str(dest), mode="w")
        except OSError as e:
            raise OutputError(f"cannot create segment file {dest}: {e.strerror or e}") from None
        n = 0
        try:
            o = out.add_stream_from_template(v)
            for p in _packets_from(source, c, v, segment.cut, from_start=segment.cut_frame == 0):
                if segment.end is not None and p.is_keyframe and p.pts == segment.end:
                    break
                p.stream = o
                out.mux(p)
                n += 1
            out.close()
        except BaseException as e:
            with contextlib.suppress(Exception):
                out.close()
            if isinstance(e, OSError):
                raise OutputError(f"writing segment file {dest} failed: {e.strerror or e}") from None
            raise
    return n


def _part_pts(c: av.container.InputContainer, v: av.stream.Stream, start: Fraction) -> tuple[list[int], int]:
    """The pts of a part's video packets (in file order) and the ticks that move its first frame
    to ``start`` seconds, undoing a muxer's shift (an mp4 edit list, rounded to 1 ms). Rewinds ``c``."""
    pts = [p.pts for p in c.demux(v) if p.pts is not None and p.size]
    c.seek(0)
    return pts, (round(start / v.time_base) - min(pts) if pts else 0)


def renumber_segments(parts: Sequence[av.container.InputContainer],
                      starts: Sequence[Fraction]) -> Iterator[av.Packet]:
    """The video packets of segments encoded one after another (a fresh encoder each), in
    decode order, with timestamps fit for the joined stream.

    pts: as encoded, each segment moved to its known ``starts`` (seconds). dts: each
    segment's encoder starts its dts ``delay`` frames early, which would overlap the previous
    segment, so they are rebuilt: dts_i = the (i - delay)-th smallest pts, as the encoder itself
    numbers them.
    """
    pts_lists, shifts = [], []
    for c, start in zip(parts, starts):
        pts, shift = _part_pts(c, c.streams.video[0], start)
        shifts.append(shift)
        pts_lists.append([p + shift for p in pts])
    delay = 0  # the largest (decode position - presentation position); segments do not overlap in pts
    for pts in pts_lists:
        if pts:
            ranks = np.argsort(np.argsort(np.asarray(pts, dtype=np.int64), kind="stable"), kind="stable")
            delay = max(delay, int((np.arange(len(pts)) - ranks).max()))
    ordered = sorted(pts_lists[0])
    step = max(1, ordered[1] - ordered[0]) if len(ordered) > 1 else 1
    heap: list[int] = []
    i = 0
    for c, shift in zip(parts, shifts):
        for p in c.demux(c.streams.video[0]):
            if p.pts is None or not p.size:
                continue
            p.pts += shift
            heapq.heappush(heap, p.pts)
            p.dts = heapq.heappop(heap) if i >= delay else ordered[0] - (delay - i) * step
            i += 1
            yield p


@dataclass(frozen=True)
class JoinReport:
    frames: int
    warnings: tuple[str, ...] = ()


def join_segments(parts: Sequence[str | Path], output: str | Path, *, source: str | Path | None = None,
                  container: str | None = None, starts: Sequence[Fraction] | None = None) -> JoinReport:
    """Join upscaled segment files into ``output`` by stream copy.

    The video comes from ``parts`` in order (they must share codec, size and codec headers,
    as pieces encoded with the same settings do); audio and subtitle streams, with their
    metadata and dispositions, come from ``source`` (the original input) when given.
    Container and video-stream metadata come from the first part (which carries the
    original's). Packets are interleaved by time, so memory does not grow with length.

    Decode times are the parts' own (a part's first one is moved up one tick where its
    encoder delay overlaps the previous part's tail); resumable runs, whose NUT segments keep
    none, rebuild them instead (:func:`renumber_segments`).

    Args:
        container: muxer name (default: from ``output``'s extension).
        starts: each part's start in seconds; a part a muxer moved (an mp4 edit list) goes back to it.
    Raises:
        OutputError: parts that do not fit together, or the output cannot be written.
    """
    if not parts:
        raise OutputError("nothing to join: no segments")
    warnings: list[str] = []
    with contextlib.ExitStack() as stack:
        ins = [stack.enter_context(contextlib.closing(open_file(p))) for p in parts]
        vids = [main_video_stream(c, p) for c, p in zip(ins, parts)]
        ref = vids[0]

        def sig(s: av.stream.Stream) -> tuple:
            cc = s.codec_context
            return (cc.name, cc.width, cc.height, cc.format.name if cc.format else None, bytes(cc.extradata or b""),
                    s.time_base)

        for p, s in zip(parts, vids):
            if sig(s) != sig(ref):
                raise OutputError(f"segment {p} was encoded differently from {parts[0]} "
                                  "(codec, size, pixel format or headers); it cannot be joined by stream copy")
        try:
            out = av.open(str(output), mode="w", format=container)
        except (ValueError, av.error.FFmpegError, OSError) as e:
            raise OutputError(f"cannot create output {output}: {getattr(e, 'strerror', None) or e}") from None
        stack.callback(out.close)
        ov = out.add_stream_from_template(ref)
        if ref.average_rate:  # else Matroska declares one frame per time-base tick (DefaultDuration)
            ov.codec_context.framerate = ref.average_rate
        ov.metadata.update(clean_tags(ref.metadata))
        # a part's flags are what its own muxer set (mp4 marks its video default): kept only within one format
        ov.disposition = ref.disposition if ins[0].format.name == out.format.name else 0
        out.metadata.update(clean_tags(ins[0].metadata))
        side: dict[int, av.stream.Stream] = {}
        src = None
        if source is not None:
            src = stack.enter_context(contextlib.closing(open_file(source)))
            fmt = out.format.name
            video = main_video_stream(src, source)
            for s in src.streams:
                if embedded(s, fmt):
                    if (warning := embed(out, s, where=Path(output).suffix or fmt, path=source)) is not None:
                        warnings.append(warning)
                    continue
                if not is_side(s) or s.index == video.index:
                    continue
                if not can_copy(fmt, s):
                    warnings.append(f"{describe_stream(s)} dropped: {Path(output).suffix or fmt} cannot hold it as is "
                                    "(with --workers side streams are copied, not converted; try .mkv)")
                    continue
                o = out.add_stream_from_template(s)
                o.metadata.update(clean_tags(s.metadata))
                o.disposition = s.disposition
                side[s.index] = o
        write_chapters(out, read_chapters(src if src is not None else ins[0]))

        shifts = [0] * len(parts)
        if starts is not None:
            shifts = [_part_pts(c, s, start)[1] for c, s, start in zip(ins, vids, starts)]

        def video_packets() -> Iterator[tuple[Fraction, int, av.Packet]]:
            last: int | None = None
            for s, c, shift in zip(vids, ins, shifts):
                for p in c.demux(s):
                    if shift and p.size:
                        p.pts = p.pts + shift if p.pts is not None else None
                        p.dts = p.dts + shift if p.dts is not None else None
                    if p.size == 0 or (p.dts is None and p.pts is None):
                        continue
                    if p.dts is not None and last is not None and p.dts <= last:
                        p.dts = last + 1  # a piece's encoder delay can overlap the previous piece's tail
                        if p.pts is not None and p.pts < p.dts:
                            raise OutputError(f"cannot join segments: decode times overlap at pts {p.pts} "
                                              f"(time base {s.time_base})")
                    last = p.dts if p.dts is not None else last
                    t = p.dts if p.dts is not None else p.pts
                    yield Fraction(t) * s.time_base, 0, p

        def side_packets() -> Iterator[tuple[Fraction, int, av.Packet]]:
            if src is None or not side:
                return
            for p in src.demux(*[src.streams[i] for i in side]):
                if not carries(p):
                    continue
                t = p.dts if p.dts is not None else p.pts
                yield (Fraction(t) * p.stream.time_base if t is not None else Fraction(-1)), 1, p  # a cover: first

        frames = 0
        try:
            for _, kind, p in heapq.merge(video_packets(), side_packets(), key=lambda x: (x[0], x[1])):
                if kind == 0:
                    p.stream = ov
                    frames += 1
                else:
                    p.stream = side[p.stream.index]
                out.mux(p)
        except OutputError:
            raise
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"joining segments into {output} failed: {getattr(e, 'strerror', None) or e}") \
                from None
    return JoinReport(frames=frames, warnings=tuple(warnings))
