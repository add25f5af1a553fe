"""Per-frame mask work of partial SR, before and after the bit-identical speed-ups of issue t25b.

On the clips' frames (640x272 by default), times in one process, taking turns old / new (the
order alternating) for ``--repeat`` rounds: the mask thread's work (``MaskTracker.update`` with
the focus estimator over every frame: thumbnail, focus score, Otsu, clean-up, feather), its pieces
on each anchor frame (``otsu_threshold``, ``clean_mask``, ``feather``) and ``MaskFrame.fg_fraction``
(the main thread, once per frame). The old versions are private copies below, not the package's.
Before timing, every new result is checked equal to the old one, frame by frame (alpha, binary,
score, their dtypes, anchor, cut, threshold, fg fraction, feather).

``focus_score`` is unchanged: fusing its numpy steps in place saved no measurable CPU time.

``blend_tiles`` is not here: it is unchanged. Blending only the soft edge (bands of rows, runs of
columns decided from the LR alpha; or blocks split down to 32 px) blended 17-50 % fewer pixels but
was 5-25 % slower on these clips (more, narrower ``cv2.blendLinear`` calls, each ~8 ns a pixel).

    python benchmarks/frame_overhead.py /tmp/lw/dragonfly272.mp4 /tmp/lw/vtest272.mp4

Writes ``benchmarks/results/frame-overhead.json``: per clip and piece, ms per frame (or per anchor)
of each round, old and new, the medians' ratio and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from vidsr.bench.report import machine_info, write_json
from vidsr.masks import tracker as tracker_mod
from vidsr.masks.base import MaskFrame
from vidsr.masks.focus import FocusEstimator, clean_mask, feather, otsu_threshold
from vidsr.masks.tracker import MaskTracker
from vidsr.media.reader import read_items
from vidsr.media.types import Frame

# ---- the old versions (as of the start of t25b) --------------------------------------------------


def old_otsu_threshold(score):
    u8 = np.clip(score * 255.0 + 0.5, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0


def old_clean_mask(binary, *, min_area, close_px):
    m = binary.astype(np.uint8)
    if close_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * close_px + 1, 2 * close_px + 1))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    for i in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area * m.size) + 1:
        x, y, w, h = stats[i, :4]
        box = m[y:y + h, x:x + w]
        box[labels[y:y + h, x:x + w] == i] = 0
    outside = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8)
    outside[1:-1, 1:-1] = m
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)
    return outside[1:-1, 1:-1] != 2


def old_feather(binary, *, radius_px, size):
    m = binary.astype(np.uint8)
    r = float(radius_px)
    if r > 0 and m.any() and not m.all():
        t = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        np.multiply(t, t, out=t)
        np.rint(t, out=t)
        np.sqrt(t, out=t)
        t -= 0.5
        t *= -0.5 / r
        t += 1.0
        np.clip(t, 0.0, 1.0, out=t)
        a = t * t * (3.0 - 2.0 * t)
    else:
        a = m.astype(np.float32)
    if a.shape != size:
        a = cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    a[a < 1e-3] = 0.0
    a[a > 1 - 1e-3] = 1.0
    return a


def old_fg_fraction(mask: MaskFrame) -> float:
    return float(mask.binary.mean())


@contextlib.contextmanager
def old_tracker_helpers():
    """The tracker's module-level helpers swapped for the old ones while the block runs."""
    names = {"clean_mask": old_clean_mask, "feather": old_feather, "otsu_threshold": old_otsu_threshold}
    saved = {k: getattr(tracker_mod, k) for k in names}
    try:
        for k, f in names.items():
            setattr(tracker_mod, k, f)
        yield
    finally:
        for k, f in saved.items():
            setattr(tracker_mod, k, f)


# ---- inputs ---------------------------------------------------------------------------------------


def clip_inputs(path: str) -> dict:
    """The clip's frames and their masks (new code; ``vidsr upscale``'s default tracker)."""
    frames = [it.image for it in read_items(path, copy_streams=False) if isinstance(it, Frame)]
    tracker = MaskTracker(estimator=FocusEstimator(), every=2)
    return {"frames": frames, "masks": [tracker.update(im) for im in frames]}


def check_equal(data: dict) -> int:
    """Frames checked: every new result equals the old one bit for bit (raises otherwise)."""
    old_tr = MaskTracker(estimator=FocusEstimator(), every=2)
    new_tr = MaskTracker(estimator=FocusEstimator(), every=2)
    for im in data["frames"]:
        with old_tracker_helpers():
            a = old_tr.update(im)
        b = new_tr.update(im)
        for f in ("alpha", "binary", "score"):
            x, y = getattr(a, f), getattr(b, f)
            if x.dtype != y.dtype or not np.array_equal(x, y):
                raise AssertionError(f"{f} differs")
        if (a.anchor, a.cut, a.threshold, old_fg_fraction(a)) != (b.anchor, b.cut, b.threshold, b.fg_fraction):
            raise AssertionError("anchor, cut, threshold or fg fraction differs")
        x, y = (f(b.binary, radius_px=4.0, size=im.shape[:2]) for f in (old_feather, feather))
        if x.dtype != y.dtype or not np.array_equal(x, y):
            raise AssertionError("feather differs")
    return len(data["frames"])


# ---- timing ---------------------------------------------------------------------------------------


def pieces(data: dict) -> dict[str, tuple]:
    """name -> (old, new): callables that run the piece over the clip and return how many units."""
    frames, masks = data["frames"], data["masks"]
    anchors = [(im, m) for im, m in zip(frames, masks) if m.anchor]
    scores = [m.score for _, m in anchors]
    raw = [m.score > m.threshold for _, m in anchors]
    bins = [m.binary for _, m in anchors]

    def tracker(old: bool):
        def run():
            tr = MaskTracker(estimator=FocusEstimator(), every=2)
            with old_tracker_helpers() if old else contextlib.nullcontext():
                for im in frames:
                    tr.update(im)
            return len(frames)
        return run

    def each(fn, items):
        def run():
            for it in items:
                fn(it)
            return len(items)
        return run

    def fg(old: bool):
        def run():
            for im, m in zip(frames, masks):  # a fresh MaskFrame per frame, as the tracker makes them
                f = MaskFrame(alpha=m.alpha, binary=m.binary, score=m.score, anchor=m.anchor, cut=m.cut)
                old_fg_fraction(f) if old else f.fg_fraction
            return len(frames)
        return run

    size = frames[0].shape[:2]
    return {
        "mask_thread_per_frame": (tracker(True), tracker(False)),
        "otsu_per_anchor": (each(old_otsu_threshold, scores), each(otsu_threshold, scores)),
        "clean_mask_per_anchor": (each(lambda b: old_clean_mask(b, min_area=0.003, close_px=3), raw),
                                  each(lambda b: clean_mask(b, min_area=0.003, close_px=3), raw)),
        "feather_per_anchor": (each(lambda b: old_feather(b, radius_px=4.0, size=size), bins),
                               each(lambda b: feather(b, radius_px=4.0, size=size), bins)),
        "fg_fraction_per_frame": (fg(True), fg(False)),
    }


def time_pieces(data: dict, repeat: int) -> dict:
    out = {}
    runs = pieces(data)
    for name, (old, new) in runs.items():
        rounds = {"old": [], "new": []}
        for r in range(repeat):
            order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
            for which, fn in order:
                t0 = time.perf_counter()
                n = fn()
                rounds[which].append((time.perf_counter() - t0) / max(1, n) * 1e3)
        o, n = statistics.median(rounds["old"]), statistics.median(rounds["new"])
        out[name] = {"old_ms": round(o, 4), "new_ms": round(n, 4), "speedup": round(o / n, 3),
                     "old_rounds": [round(x, 4) for x in rounds["old"]],
                     "new_rounds": [round(x, 4) for x in rounds["new"]], "load1": os.getloadavg()[0]}
        print(f"  {name:26s} old {o:8.3f} ms  new {n:8.3f} ms  x{o / n:5.2f}  (load {os.getloadavg()[0]:.2f})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "frame-overhead.json")
    args = ap.parse_args()
    report = {"machine": machine_info(), "repeat": args.repeat, "load_start": os.getloadavg(), "clips": {}}
    for path in args.clips:
        data = clip_inputs(path)
        n = check_equal(data)
        h, w = data["frames"][0].shape[:2]
        print(f"{path}: {n} frames {w}x{h}, new == old bit for bit; "
              f"{sum(m.anchor for m in data['masks'])} anchors")
        report["clips"][Path(path).name] = {"frames": n, "size": [w, h], "checked_equal": True,
                                            "anchors": sum(m.anchor for m in data["masks"]),
                                            "pieces": time_pieces(data, args.repeat)}
    report["load_end"] = os.getloadavg()
    print(write_json(report, args.out))


if __name__ == "__main__":
    main()
