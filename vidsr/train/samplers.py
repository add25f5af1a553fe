"""Patch samplers over a foreground mask, and a patch source that trains from a dataset folder.

Four ways to choose HR training patches of side ``P`` from a frame and its mask (the thesis'
three plus a baseline). Positions are top-left corners ``(y, x)`` of ``P x P`` boxes that
always lie inside the frame; "in the mask" means soft mask >= 0.5.

- ``full``: uniform over the frame, mask ignored (the usual SR recipe; the baseline).
- ``unique``: a grid of ``P x P`` cells laid over the mask's bounding box; cells whose mask
  coverage is at least ``coverage`` are kept. The patches pack the foreground and never
  overlap; the set is fixed, so training draws from it with replacement.
- ``random``: a random mask pixel is the patch centre (centres are drawn only where the whole
  patch fits, so the centre stays on the mask).
- ``jitter``: one patch per ``unique`` cell, moved by a random offset in ``[-P/2, P/2)`` on each
  axis, so its centre stays inside its cell; a new offset every draw.

The LR input is made from each HR patch by :func:`vidsr.train.degrade.degrade_batch`: with
``DegradeConfig`` "thesis" (:data:`THESIS_DEGRADE`) that is a plain antialiased bicubic
shrink by the scale, as in the thesis; the project's realistic mix is the other choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from vidsr.errors import InputError
from vidsr.train.data import augment
from vidsr.train.degrade import DegradeConfig

SamplerName = Literal["full", "unique", "random", "jitter"]
SAMPLERS: tuple[SamplerName, ...] = ("full", "unique", "random", "jitter")

# The thesis' LR: antialiased bicubic only (Matlab imresize), no blur or compression.
THESIS_DEGRADE = DegradeConfig(p_area=0.0, p_blur=0.0, p_jpeg=0.0, p_h264=0.0)


def check_sampler(name: str) -> SamplerName:
    if name not in SAMPLERS:
        raise InputError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")
    return name  # type: ignore[return-value]


def _fg(mask: np.ndarray) -> np.ndarray:
    if mask.ndim != 2:
        raise InputError(f"mask must be (H, W), got {mask.shape}")
    return mask >= 0.5 if mask.dtype != bool else mask


def _check_patch(shape: tuple[int, ...], patch: int) -> None:
    if patch < 1 or shape[0] < patch or shape[1] < patch:
        raise InputError(f"patch {patch} does not fit a {shape[1]}x{shape[0]} frame")


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, x0, y1, x1), end-exclusive, of the mask's pixels; None for an empty mask."""
    fg = _fg(mask)
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _grid_axis(lo: int, hi: int, length: int, patch: int) -> np.ndarray:
    """Cell origins along one axis: enough cells to cover [lo, hi), centred on it, inside [0, length)."""
    n = min(-(-(hi - lo) // patch), length // patch)
    start = lo - (n * patch - (hi - lo)) // 2
    start = int(np.clip(start, 0, length - n * patch))
    return start + patch * np.arange(n)


def coverage(mask: np.ndarray, boxes: np.ndarray, patch: int) -> np.ndarray:
    """Share of each box's pixels that are in the mask. boxes: (N, 2) top-left (y, x)."""
    fg = _fg(mask).astype(np.int64)
    ii = np.pad(fg.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image
    y, x = boxes[:, 0], boxes[:, 1]
    s = ii[y + patch, x + patch] - ii[y, x + patch] - ii[y + patch, x] + ii[y, x]
    return s / float(patch * patch)


def unique_boxes(mask: np.ndarray, *, patch: int, min_coverage: float = 0.5) -> np.ndarray:
    """Non-overlapping grid cells over the mask's bounding box with coverage >= ``min_coverage``.

    Args:
        mask: (H, W) soft mask in [0, 1] or bool.
        patch: cell side in pixels.
        min_coverage: least share of a cell's pixels that must be in the mask.

    Returns:
        (N, 2) int64 top-left corners (y, x); N = 0 for an empty mask.
    """
    _check_patch(mask.shape, patch)
    box = mask_bbox(mask)
    if box is None:
        return np.zeros((0, 2), np.int64)
    y0, x0, y1, x1 = box
    ys = _grid_axis(y0, y1, mask.shape[0], patch)
    xs = _grid_axis(x0, x1, mask.shape[1], patch)
    cells = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2).astype(np.int64)
    return cells[coverage(mask, cells, patch) >= min_coverage]


def jitter_boxes(cells: np.ndarray, *, patch: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Each cell's patch moved by a random offset in [-P/2, P/2) per axis, kept inside the frame.

    The patch centre stays inside its cell (clamping at the frame border only moves it
    towards the cell). cells: (N, 2) from :func:`unique_boxes`; shape: (H, W).
    """
    half = patch // 2
    off = rng.integers(-half, patch - half, size=cells.shape)
    out = cells + off
    out[:, 0] = np.clip(out[:, 0], 0, shape[0] - patch)
    out[:, 1] = np.clip(out[:, 1], 0, shape[1] - patch)
    return out


def centre_candidates(mask: np.ndarray, *, patch: int) -> np.ndarray:
    """Flat indices of mask pixels that can be a patch centre without the patch leaving the frame.

    The centre of the box with top-left (y, x) is (y + P//2, x + P//2).
    """
    _check_patch(mask.shape, patch)
    fg = _fg(mask).copy()
    h, w = fg.shape
    half = patch // 2
    fg[:half] = False
    fg[h - patch + half + 1:] = False
    fg[:, :half] = False
    fg[:, w - patch + half + 1:] = False
    return np.flatnonzero(fg).astype(np.int64)


def random_boxes(mask: np.ndarray, *, patch: int, count: int, rng: np.random.Generator,
                 candidates: np.ndarray | None = None) -> np.ndarray:
    """``count`` boxes whose centre pixel is a random mask pixel. Returns (N, 2), N = 0 if none fits."""
    cand = candidates if candidates is not None else centre_candidates(mask, patch=patch)
    if cand.size == 0:
        return np.zeros((0, 2), np.int64)
    c = cand[rng.integers(0, cand.size, size=count)]
    w = mask.shape[1]
    return np.stack([c // w - patch // 2, c % w - patch // 2], axis=1).astype(np.int64)


def full_boxes(shape: tuple[int, int], *, patch: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` boxes uniform over an (H, W) frame."""
    _check_patch(shape, patch)
    return np.stack([rng.integers(0, shape[0] - patch + 1, size=count),
                     rng.integers(0, shape[1] - patch + 1, size=count)], axis=1).astype(np.int64)


def sample_boxes(name: SamplerName, mask: np.ndarray, *, patch: int, rng: np.random.Generator, count: int = 16,
                 min_coverage: float = 0.5) -> np.ndarray:
    """The boxes one sampler picks in one frame (``unique``/``jitter``: one per cell, ``count`` ignored)."""
    name = check_sampler(name)
    if name == "full":
        return full_boxes(mask.shape, patch=patch, count=count, rng=rng)
    if name == "random":
        return random_boxes(mask, patch=patch, count=count, rng=rng)
    cells = unique_boxes(mask, patch=patch, min_coverage=min_coverage)
    return cells if name == "unique" else jitter_boxes(cells, patch=patch, shape=mask.shape, rng=rng)


@dataclass(frozen=True)
class _Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8, soft mask x 255
    cells: np.ndarray  # unique cells (N, 2)
    centres: np.ndarray  # random-sampler centre candidates


class MaskedPatchSource:
    """HR patches with their soft-mask patches, drawn from frames by one sampler.

    Frames stay in memory; every draw picks fresh positions (so ``random``/``jitter`` see new
    patches each step, ``unique`` draws from its fixed cells). Which frame a patch comes from:
    ``full`` uniform over all frame pixels, ``unique``/``jitter`` uniform over all cells,
    ``random`` uniform over all foreground centre pixels.

    Args:
        frames: (H, W, 3) uint8 RGB frames (sizes may differ).
        masks: matching (H, W) float soft masks in [0, 1].
        sampler: sampler name.
        patch: HR patch side.
        min_coverage: cell coverage threshold of ``unique``/``jitter``.
    """

    def __init__(self, frames: list[np.ndarray], masks: list[np.ndarray], *, sampler: SamplerName, patch: int,
                 min_coverage: float = 0.5) -> None:
        self.sampler = check_sampler(sampler)
        self.patch = patch
        if len(frames) != len(masks) or not frames:
            raise InputError(f"need matching, non-empty frames and masks (got {len(frames)} and {len(masks)})")
        self.frames: list[_Frame] = []
        for rgb, m in zip(frames, masks):
            if rgb.shape[:2] != m.shape:
                raise InputError(f"mask {m.shape} does not match frame {rgb.shape[:2]}")
            if min(rgb.shape[:2]) < patch:
                continue  # too small for this patch size
            fg = sampler in ("unique", "jitter")
            self.frames.append(_Frame(
                rgb=rgb, mask=np.clip(m * 255.0 + 0.5, 0, 255).astype(np.uint8),
                cells=unique_boxes(m, patch=patch, min_coverage=min_coverage) if fg else np.zeros((0, 2), np.int64),
                centres=centre_candidates(m, patch=patch) if sampler == "random" else np.zeros(0, np.int64)))
        if not self.frames:
            raise InputError(f"no frame is at least {patch} px on each side")
        if sampler == "full":
            weight = np.array([(f.rgb.shape[0] - patch + 1) * (f.rgb.shape[1] - patch + 1) for f in self.frames])
        elif sampler == "random":
            weight = np.array([f.centres.size for f in self.frames])
        else:
            weight = np.array([len(f.cells) for f in self.frames])
        if weight.sum() == 0:
            raise InputError(f"sampler {sampler!r} finds no foreground patch of {patch} px in any frame "
                             f"(empty masks, or a coverage threshold of {min_coverage} is too high)")
        self._p = weight / weight.sum()

    def with_sampler(self, sampler: SamplerName, *, min_coverage: float = 0.5) -> MaskedPatchSource:
        """The same frames and masks under another sampler."""
        return MaskedPatchSource([f.rgb for f in self.frames], [f.mask.astype(np.float32) / 255.0 for f in self.frames],
                                 sampler=sampler, patch=self.patch, min_coverage=min_coverage)

    @property
    def distinct(self) -> int | None:
        """How many different patches the sampler can give (``unique`` only; others: None)."""
        return sum(len(f.cells) for f in self.frames) if self.sampler == "unique" else None

    def draw(self, n: int, rng: np.random.Generator, *, augment_patches: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: ((n, P, P, 3) uint8 HR, (n, P, P) float32 soft mask), randomly flipped/transposed."""
        p = self.patch
        which = rng.choice(len(self.frames), size=n, p=self._p)
        out = np.empty((n, p, p, 4), np.uint8)
        for i, k in enumerate(which):
            f = self.frames[k]
            if self.sampler == "full":
                y, x = full_boxes(f.rgb.shape[:2], patch=p, count=1, rng=rng)[0]
            elif self.sampler == "random":
                y, x = random_boxes(f.mask, patch=p, count=1, rng=rng, candidates=f.centres)[0]
            else:
                cell = f.cells[rng.integers(0, len(f.cells))][None]
                y, x = cell[0] if self.sampler == "unique" else jitter_boxes(
                    cell, patch=p, shape=f.rgb.shape[:2], rng=rng)[0]
            out[i, ..., :3] = f.rgb[y:y + p, x:x + p]
            out[i, ..., 3] = f.mask[y:y + p, x:x + p]
        if augment_patches:
            out = augment(out, rng)
        return out[..., :3].copy(), out[..., 3].astype(np.float32) / 255.0

    @classmethod
    def from_dataset(cls, root: Path, *, split: str = "train", sampler: SamplerName, patch: int,
                     min_coverage: float = 0.5, on_image: Callable[[Path], None] | None = None) -> MaskedPatchSource:
        """All frames of one split of a dataset folder (``vidsr dataset build``)."""
        from vidsr.train.dataset import load_sample, read_dataset

        ds = read_dataset(root)
        rows = ds.split(split)
        if not rows:
            raise InputError(f"dataset {root} has no {split!r} samples")
        frames, masks = [], []
        for r in rows:
            rgb, _, m = load_sample(ds.root, r)
            frames.append(rgb)
            masks.append(m)
            if on_image is not None:
                on_image(ds.root / r.image)
        return cls(frames, masks, sampler=sampler, patch=patch, min_coverage=min_coverage)
