"""The summaries say which threshold the masks used, and note SR far beyond the foreground. ~3 s."""

from __future__ import annotations

import re

from click.testing import CliRunner
from media import make_video

from vidsr.cli import main
from vidsr.cli.summary import full_frame_note, sr_spill_note
from vidsr.masks.base import ThresholdStats, threshold_source
from vidsr.masks.focus import FocusEstimator
from vidsr.pipeline.config import UpscaleReport


def test_threshold_stats_describe_mean_and_spread():
    stats = ThresholdStats()
    assert stats.describe("by Otsu") == ""
    for t in (0.08, 0.1, None, 0.12):
        stats.add(t)
    assert stats.frames == 3
    assert stats.describe("by Otsu") == "threshold 0.100 by Otsu (0.080-0.120 over the frames)"
    assert threshold_source(FocusEstimator(), None) == "by Otsu"
    assert threshold_source(FocusEstimator(), 0.2) == "from --fg-threshold"


def test_spill_note_only_when_sr_covers_much_more_than_the_foreground():
    assert sr_spill_note(0.283, 0.200, threshold=0.098, feather=4) == ""  # the sample's default mask
    assert sr_spill_note(1.0, 1.0, threshold=None, feather=4) == ""  # full frame
    note = sr_spill_note(0.45, 0.303, threshold=0.045, feather=4)
    assert "--fg-threshold above 0.045" in note and "--feather (now 4)" in note


def _report(*, frames: int = 90, window: float, stages: dict[str, float]) -> UpscaleReport:
    """A partial-SR run's report of ``frames`` 640x272 frames whose network ran on ``window`` of the pixels."""
    total = frames * 640 * 272
    report = UpscaleReport(input="in.mp4", output="out.mp4", frames=frames, pixels_total=total,
                           pixels_sr=round(0.8 * window * total), pixels_window=round(window * total))
    report.stages.update(stages)
    return report


def test_full_frame_note_only_when_whole_frames_would_cost_no_more_than_partial_sr():
    # a clip like vtest 640x272 (seconds): the network on 85 % of the pixels, the mask and blend on top
    vtest = {"decode": 2.0, "mask": 15.0, "sr": 95.0, "background": 3.0, "composite": 10.0, "encode": 25.0}
    note = full_frame_note(_report(window=0.85, stages=vtest))
    assert note.startswith("note: SR ran on 68% of the frame") and "--full-frame would likely take no longer" in note
    assert "~111.8 s of SR on whole frames against 123.0 s" in note  # 95 / 0.85, and 95 + 15 + 3 + 10
    # the dragonfly pan: the network on 45 % of the pixels; whole frames would cost ~1.5x partial SR's work
    pan = {"decode": 2.0, "mask": 7.0, "sr": 35.0, "background": 1.3, "composite": 2.4, "encode": 14.0}
    assert full_frame_note(_report(window=0.45, stages=pan)) == ""
    assert full_frame_note(_report(frames=5, window=0.85, stages=vtest)) == ""  # too few frames to tell
    assert full_frame_note(_report(window=0.0, stages={"mask": 9.0, "background": 3.0})) == ""  # nothing in focus
    full = {"decode": 2.0, "sr": 100.0, "composite": 1.0, "encode": 25.0}  # --full-frame: no mask stage
    assert full_frame_note(_report(window=1.0, stages=full)) == ""


def test_mask_and_upscale_print_the_threshold_they_used(tmp_path, tiny_ckpt):
    clip = make_video(tmp_path / "in.mp4", frames=4, width=96, height=64)
    r = CliRunner().invoke(main, ["mask", str(clip), "-o", str(tmp_path / "m.mp4"), "--fg-threshold", "0.2"])
    assert r.exit_code == 0, r.output
    assert "threshold 0.200 from --fg-threshold" in r.output
    r = CliRunner().invoke(main, ["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_ckpt)])
    assert r.exit_code == 0, r.output
    assert re.search(r"foreground \d+\.\d%, threshold 0\.\d{3} by Otsu", r.output), r.output
