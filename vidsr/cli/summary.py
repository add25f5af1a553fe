"""The mask part of ``vidsr upscale``'s and ``vidsr mask``'s summaries: the threshold the masks used,
and a note when SR covers much more than the foreground."""

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
