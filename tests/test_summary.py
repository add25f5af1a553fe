"""The summaries say which threshold the masks used, and note SR far beyond the foreground. ~3 s."""

from __future__ import annotations

import re

from click.testing import CliRunner
from media import make_video

from vidsr.cli import main
from vidsr.cli.summary import sr_spill_note
from vidsr.masks.base import ThresholdStats, threshold_source
from vidsr.masks.focus import FocusEstimator


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


def test_mask_and_upscale_print_the_threshold_they_used(tmp_path, tiny_ckpt):
    clip = make_video(tmp_path / "in.mp4", frames=4, width=96, height=64)
    r = CliRunner().invoke(main, ["mask", str(clip), "-o", str(tmp_path / "m.mp4"), "--fg-threshold", "0.2"])
    assert r.exit_code == 0, r.output
    assert "threshold 0.200 from --fg-threshold" in r.output
    r = CliRunner().invoke(main, ["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_ckpt)])
    assert r.exit_code == 0, r.output
    assert re.search(r"foreground \d+\.\d%, threshold 0\.\d{3} by Otsu", r.output), r.output
