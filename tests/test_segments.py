from __future__ import annotations

import contextlib
from pathlib import Path

import av
import numpy as np
import pytest
from media import make_clip, make_video, read_video

from vidsr.errors import InputError, OutputError
from vidsr.media.segments import join_segments, plan_segments, split_points, write_segment


def make_gop_video(path: Path, *, frames: int = 60, fps: int = 24, gop: int = 12, bframes: int = 2,
                   width: int = 64, height: int = 48, audio: bool = False,
                   chapters: tuple[tuple[int, int, str], ...] = ()) -> Path:
    """A clip with a keyframe exactly every ``gop`` frames (closed GOPs, B-frames on)."""
    return make_video(path, frames=frames, fps=fps, width=width, height=height, audio=audio, chapters=chapters,
                      x264_params=f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}")


def _key_pts(path: Path) -> list[int]:
    with contextlib.closing(av.open(str(path))) as c:
        return sorted(f.pts for f in c.decode(c.streams.video[0]) if f.key_frame)


def test_split_points_need_a_closed_gop():
    # decode order; pts 5 is a keyframe but packet pts 4 comes after it (open GOP): not a split point
    pts = [0, 2, 1, 3, 5, 4, 6, 8, 7]
    key = [True, False, False, False, True, False, True, False, False]
    assert split_points(pts, key) == [0, 6]


def test_plan_cuts_at_keyframes_and_covers_every_frame_once(tmp_path):
    src = make_gop_video(tmp_path / "in.mp4", frames=60, gop=12)
    plan = plan_segments(src, segment_s=1.0)
    keys = _key_pts(src)
    tb = plan.time_base
    starts = [s.start for s in plan.segments]
    assert [round(float(p * tb) * 24) for p in starts] == [0, 24, 48]  # 1 s apart, on keyframes
    assert set(starts) <= set(keys) and len(plan.keyframes) == len(keys) == 5
    assert [(s.first_frame, s.frames) for s in plan.segments] == [(0, 24), (24, 24), (48, 12)]
    assert sum(s.frames for s in plan.segments) == plan.frames == 60
    assert [s.end for s in plan.segments] == starts[1:] + [None]
    assert len({s.digest for s in plan.segments}) == 3


def test_short_last_segment_joins_the_one_before(tmp_path):
    src = make_gop_video(tmp_path / "in.mp4", frames=54, gop=12)  # 2.25 s: a 0.25 s tail is too short
    plan = plan_segments(src, segment_s=1.0)
    assert [(s.first_frame, s.frames) for s in plan.segments] == [(0, 24), (24, 30)]


def test_split_and_join_by_stream_copy_lose_and_duplicate_nothing(tmp_path):
    src = make_gop_video(tmp_path / "in.mp4", frames=60, gop=12, audio=True,
                         chapters=((0, 1000, "A"), (1000, 2500, "B")))
    plan = plan_segments(src, segment_s=1.0)
    parts = []
    for s in plan.segments:
        path, n = write_segment(src, s, tmp_path / f"part{s.index}.mp4")
        assert n == s.frames
        frames, pts, _ = read_video(path)
        assert len(frames) == s.frames and pts[0] == s.start
        parts.append(path)
    joined = join_segments(parts, tmp_path / "joined.mp4", source=src)
    assert joined.frames == 60 and not joined.warnings
    a, pa, fa = read_video(src)
    b, pb, fb = read_video(tmp_path / "joined.mp4")
    assert pa == pb and len(b) == 60
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # stream copy: the very same pictures
    assert fb["streams"] == fa["streams"] == ["video", "audio", "data"]  # data: the mp4's chapter track
    assert fb["audio"] == fa["audio"]
    assert fb["duration"] == fa["duration"]
    with contextlib.closing(av.open(str(tmp_path / "joined.mp4"))) as c:
        assert [(ch["start"] * ch["time_base"], ch["metadata"]["title"]) for ch in c.chapters()] == [(0, "A"), (1, "B")]


def test_segment_files_hold_aligned_warmup_frames(tmp_path):
    src = make_gop_video(tmp_path / "in.mp4", frames=60, gop=12)
    plan = plan_segments(src, segment_s=1.0, warmup_frames=5, align=4)
    s = plan.segments[1]
    assert s.first_frame == 24 and s.warmup_frames == 24 - 16 and s.cut_frame == 12  # 19 -> 16 (x4)
    step = s.start // 24  # pts per frame
    assert s.warmup == 16 * step and s.cut == 12 * step
    path, n = write_segment(src, s, tmp_path / "piece.mp4")
    _, pts, _ = read_video(path)
    assert n == len(pts) == 36 and pts[0] == s.cut and pts[-1] < s.end
    assert plan.segments[0].warmup_frames == 0


def test_join_refuses_pieces_that_do_not_fit(tmp_path):
    a = make_video(tmp_path / "a.mp4", frames=4, width=64, height=48)
    b = make_video(tmp_path / "b.mp4", frames=4, width=32, height=32)
    with pytest.raises(OutputError, match="encoded differently"):
        join_segments([a, b], tmp_path / "out.mp4")
    with pytest.raises(OutputError, match="no segments"):
        join_segments([], tmp_path / "out.mp4")


def test_plan_rejects_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        plan_segments(tmp_path / "missing.mp4")
    src = make_gop_video(tmp_path / "in.mp4", frames=12)
    with pytest.raises(InputError, match="> 0"):
        plan_segments(src, segment_s=0)


def test_join_keeps_the_sources_attachments(tmp_path):
    font = ("Display.ttf", "font/ttf", b"\x00\x01\x00\x00" * 64)
    src = make_clip(tmp_path / "in.mkv", frames=48, keyint=12, attachments=(font,))
    plan = plan_segments(src, segment_s=1.0)
    parts = [write_segment(src, s, tmp_path / f"part{s.index}.mkv")[0] for s in plan.segments]
    assert len(parts) == 2
    joined = join_segments(parts, tmp_path / "joined.mkv", source=src)
    assert joined.frames == 48 and not joined.warnings
    with contextlib.closing(av.open(str(tmp_path / "joined.mkv"))) as c:
        assert [(a.name, a.mimetype, bytes(a.data)) for a in c.streams.attachments] == [font]
    dropped = join_segments(parts, tmp_path / "joined.mp4", source=src)
    assert dropped.warnings == ("attachment #1 (Display.ttf) dropped: .mp4 cannot hold attachments (.mkv can)",)


def test_join_keeps_the_sources_cover_art(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=48, keyint=12, cover=True)
    plan = plan_segments(src, segment_s=1.0)
    parts = [write_segment(src, s, tmp_path / f"part{s.index}.mp4")[0] for s in plan.segments]
    with contextlib.closing(av.open(str(src))) as c:
        cover = next(bytes(p) for p in c.demux(c.streams.video[1]) if p.size)
    for name in ("joined.mp4", "joined.mkv"):  # mkv: as a cover.jpg attachment
        joined = join_segments(parts, tmp_path / name, source=src)
        assert joined.frames == 48 and not joined.warnings
        with contextlib.closing(av.open(str(tmp_path / name))) as c:
            pics = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
            assert len(pics) == 1 and next(bytes(p) for p in c.demux(pics[0]) if p.size) == cover
