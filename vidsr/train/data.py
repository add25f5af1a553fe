"""Photos -> in-memory HR patch cache, and random augmented batches drawn from it.

Each photo is decoded once, shrunk with an antialiased (area) resize to a random "video
scale" size a few times, and a fixed number of patches is cut from each size. Training then
only indexes into one (N, P, P, 3) uint8 array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from vidsr.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted for reproducibility."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"data folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return paths


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB (alpha dropped, gray expanded)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot decode image: {path}")
    return np.ascontiguousarray(img[..., ::-1])


def resize_long_side(img: np.ndarray, long_side: int) -> np.ndarray:
    """Antialiased (area) shrink of (H, W, 3) so its longer side is ``long_side``; never enlarges."""
    h, w = img.shape[:2]
    f = long_side / max(h, w)
    if f >= 1.0:
        return img
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True, kw_only=True)
class PatchConfig:
    """How HR patches are cut from photos.

    Args:
        patch_size: HR patch side in pixels (a multiple of the SR scale).
        patches_per_image: patches cut from each photo (split over its rescaled copies).
        rescales_per_image: how many random sizes each photo is shrunk to.
        long_side: range of the shrunk photo's longer side, in pixels.
        min_std: patches whose luma standard deviation is below this count as flat.
        p_keep_flat: chance a flat patch is kept (flat sky teaches little).
    """

    patch_size: int = 128
    patches_per_image: int = 96
    rescales_per_image: int = 2
    long_side: tuple[int, int] = (1280, 2560)
    min_std: float = 6.0
    p_keep_flat: float = 0.2

    def __post_init__(self) -> None:
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be >= 8, got {self.patch_size}")
        if self.patches_per_image < 1 or self.rescales_per_image < 1:
            raise ValueError("patches_per_image and rescales_per_image must be >= 1")
        if not 0 < self.long_side[0] <= self.long_side[1]:
            raise ValueError(f"long_side must be 0 < lo <= hi, got {self.long_side}")


def cut_patches(img: np.ndarray, *, count: int, cfg: PatchConfig, rng: np.random.Generator) -> np.ndarray:
    """Random patches from one image, mostly textured ones.

    Args:
        img: (H, W, 3) uint8, at least ``cfg.patch_size`` on each side.
        count: patches to return.
        cfg: patch size and flatness rule.
        rng: randomness.

    Returns:
        (count, P, P, 3) uint8.
    """
    p = cfg.patch_size
    h, w = img.shape[:2]
    if h < p or w < p:
        raise InputError(f"image {w}x{h} is smaller than the patch size {p}")
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    out = np.empty((count, p, p, 3), np.uint8)
    for i in range(count):
        for _ in range(20):  # a few tries to find texture, then take what we have
            y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
            if gray[y:y + p, x:x + p].std() >= cfg.min_std or rng.random() < cfg.p_keep_flat:
                break
        out[i] = img[y:y + p, x:x + p]
    return out


def build_patch_cache(paths: Iterable[Path], *, cfg: PatchConfig, rng: np.random.Generator,
                      on_image: Callable[[Path], None] | None = None) -> np.ndarray:
    """Load each photo once and cut ``cfg.patches_per_image`` HR patches from rescaled copies.

    Args:
        paths: image files.
        cfg: patch rules.
        rng: randomness (sizes and positions).
        on_image: called after each photo (progress reporting).

    Returns:
        (N, P, P, 3) uint8 with N = len(paths) * patches_per_image.
    """
    chunks = []
    for path in paths:
        img = load_rgb(path)
        per = np.diff(np.linspace(0, cfg.patches_per_image, cfg.rescales_per_image + 1).round().astype(int))
        for count in per:
            side = int(rng.integers(cfg.long_side[0], cfg.long_side[1] + 1))
            small = resize_long_side(img, side)
            if min(small.shape[:2]) < cfg.patch_size:
                small = img
            chunks.append(cut_patches(small, count=int(count), cfg=cfg, rng=rng))
        if on_image is not None:
            on_image(path)
    if not chunks:
        raise InputError("no images to cut patches from")
    return np.concatenate(chunks)


def augment(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips and transposes (the 8 dihedral symmetries) of (B, P, P, 3) patches."""
    out = patches.copy()
    ops = rng.integers(0, 2, size=(len(out), 3))
    for i, (fh, fv, tr) in enumerate(ops):
        a = out[i]
        if fh:
            a = a[:, ::-1]
        if fv:
            a = a[::-1]
        if tr:
            a = a.transpose(1, 0, 2)
        out[i] = a
    return out


def sample_hr(cache: np.ndarray, *, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A random augmented batch (B, P, P, 3) uint8 drawn from the patch cache."""
    idx = rng.integers(0, len(cache), size=batch_size)
    return augment(cache[idx], rng)
