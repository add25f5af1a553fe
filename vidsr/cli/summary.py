"""The mask part of ``vidsr upscale``'s and ``vidsr mask``'s summaries: the threshold the masks used,
a note when SR covers much more than the foreground, and one when ``--full-frame`` would be as fast."""

from __future__ import annotations

# SR beyond the foreground (share of the frame) worth a note. The default mask on the sample adds
# about 8 points (20 % foreground, 28 % SR: the feathered edge and the windows' rectangles); at
# --fg-threshold 0.045, 15 points (30 % -> 45 %), mostly specks of bokeh.
SPILL_NOTE = 0.12


def mask_threshold(stats, estimator, fg_threshold: float | None) -> str:
    """``, threshold 0.098 by Otsu`` for the summary; empty when no frame was thresholded."""
    from vidsr.masks.base import threshold_source

    text = stats.describe(threshold_source(estimator, fg_threshold))
    return f", {text}" if text else ""


def sr_spill_note(sr_fraction: float, fg_fraction: float, *, threshold: float | None, feather: float) -> str:
    """A note with the fix when SR ran on much more of the frame than the foreground; else empty."""
    if sr_fraction - fg_fraction < SPILL_NOTE or sr_fraction < 1.3 * fg_fraction:
        return ""
    raise_it = f"raise --fg-threshold above {threshold:.3f} " if threshold is not None else "tighten the mask "
    return (f"note: SR ran on {sr_fraction:.1%} of pixels for a {fg_fraction:.1%} foreground (the feathered "
            f"edge, the SR windows' rectangles and any specks of bokeh in the mask); {raise_it}if "
            f"`vidsr mask` shows specks, or lower --feather (now {feather:g}) for a narrower edge")


# frames a run needs before its stage times say which mode is faster (the first frames meet new shapes)
FULL_FRAME_NOTE_FRAMES = 10


def full_frame_note(report) -> str:
    """A note when ``--full-frame`` would likely have taken no longer than this partial-SR run; else empty.

    Partial SR pays the mask, the background, the blend and its windows' SR; full frame pays SR on
    the whole frame, estimated as this run's SR time scaled from the pixels the network ran on (cores
    and context) to the frame's. The estimate errs high (a few large calls cost less a pixel than many
    windows), so the note keeps quiet where partial SR pays: on vtest 640x272 (the network on 86 % of
    the pixels) 76-78 ms a frame of SR on whole frames against 62-68 measured with --full-frame, and
    80-84 of partial work (the note comes; --full-frame took 0.84-0.88x the time); on the dragonfly pan
    (41 %) 88-98 against 63-65, and 48-54 of partial work (no note). Decoding and encoding cost the
    same in both modes and are left out."""
    st = report.stages
    if report.frames < FULL_FRAME_NOTE_FRAMES or report.pixels_window <= 0 or "mask" not in st:
        return ""
    partial = st.get("sr", 0.0) + st["mask"] + st.get("background", 0.0) + st.get("composite", 0.0)
    whole = st.get("sr", 0.0) * report.pixels_total / report.pixels_window
    if whole > partial:
        return ""
    return (f"note: SR ran on {report.sr_fraction:.0%} of the frame (little of this footage is out of focus): "
            f"--full-frame would likely take no longer here (~{whole:.1f} s of SR on whole frames against "
            f"{partial:.1f} s of mask, SR, background and blend), and it super-resolves the background too")
