"""KPopStarsSR-style dataset builder: frames -> ``RGB | depth (grey) | masked RGB`` samples.

The thesis trains SR on the in-focus foreground of shallow depth-of-field frames. Its data
set stores one image per sample with three panels side by side: the frame, its depth map in
grey, and the frame with the background blacked out. This module builds that format from
videos (every k-th frame, or the first frames of shots) and photographs:

- the grey map is the weight-free focus map (:func:`vidsr.masks.focus.focus_score`, bright = sharp)
  by default, or normalised inverse depth (bright = near) from a Depth Anything model when
  one is given; the mask is the in-focus band of that map, thresholded, cleaned and feathered
  exactly as ``vidsr upscale`` does (:class:`vidsr.masks.tracker.MaskTracker`, one frame at a time);
- frames are processed by a ``multiprocessing`` pool (spawned workers) with a progress bar;
- train/test split is by *source*, so frames of one clip never land in both splits.

A dataset folder holds::

    samples/<id>.png   RGB | map | masked RGB (3W x H, lossless)
    masks/<id>.png     the soft foreground mask (grey, 0-255): exact, for samplers and the loss
    manifest.json      format, build config and one row per sample
    manifest.csv       the same rows
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import cv2
import numpy as np

from vidsr.errors import InputError, OutputError
from vidsr.masks.base import work_size
from vidsr.masks.focus import FocusEstimator, focus_score
from vidsr.masks.tracker import MaskTracker
from vidsr.train.data import IMAGE_SUFFIXES, load_rgb, resize_long_side

FORMAT = "vidsr-dataset"
VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m")
SPLITS = ("train", "test")
CSV_FIELDS = ("id", "image", "mask", "source", "kind", "frame", "width", "height", "fg_fraction", "split", "map")
Select = Literal["every", "cuts"]


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """How a dataset is built.

    Args:
        every: videos: keep every ``every``-th frame (``select="every"``), or every
            ``every``-th frame counted from each shot start (``select="cuts"``; 0 = shot
            starts only).
        select: ``every`` or ``cuts`` (scene-cut keyframes: the first frame of each shot).
        max_frames: at most this many frames per video (None = all selected).
        long_side: frames larger than this are area-shrunk so their longer side is this.
        test_fraction: share of the *sources* that go to the test split (hash of the name).
        test_sources: glob patterns on source names/paths; when given, exactly the matching
            sources are the test split (``test_fraction`` is not used).
        seed: salts the split hash.
        depth_model: depth weights folder (Depth Anything, DPT/MiDaS) or ``.onnx`` file; None = focus map.
        depth_size: long side of the depth network's input (None: the network's default).
        depth_tolerance: half-width of the in-focus depth band (normalised inverse depth).
        mask_max_side: working resolution of the map and mask.
        focus_floor: the focus map's ``floor`` (:func:`vidsr.masks.focus.focus_score`). Higher than the
            streaming default (2e-5), because on still photos the grain of smooth bokeh and sky
            otherwise scores as "sharp"; 1e-3 keeps the masks on the subjects (checked by eye on
            the lomiri/mate photos of the README's Research section).
        feather_px: mask feather radius at working resolution.
        cut_threshold: mean absolute thumbnail difference (0-255) that counts as a cut.
        workers: worker processes (1 = in this process).
    """

    every: int = 30
    select: Select = "every"
    max_frames: int | None = None
    long_side: int | None = None
    test_fraction: float = 0.2
    test_sources: tuple[str, ...] = ()
    seed: int = 0
    depth_model: Path | None = None
    depth_size: int | None = None
    depth_tolerance: float = 0.15
    mask_max_side: int = 480
    focus_floor: float = 1e-3
    feather_px: float = 4.0
    cut_threshold: float = 30.0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.select not in ("every", "cuts"):
            raise InputError(f"select must be 'every' or 'cuts', got {self.select!r}")
        if self.every < (0 if self.select == "cuts" else 1):
            raise InputError(f"every must be >= 1 (>= 0 with cuts), got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.long_side is not None and self.long_side < 16:
            raise InputError(f"long_side must be >= 16, got {self.long_side}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise InputError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.workers < 1:
            raise InputError(f"workers must be >= 1, got {self.workers}")

    @property
    def map_kind(self) -> str:
        return "focus" if self.depth_model is None else "depth"

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))


@dataclass(frozen=True)
class Source:
    """One input: a video (many frames) or a photograph (frame 0)."""

    path: Path
    kind: Literal["video", "image"]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class SampleInfo:
    """One manifest row. ``image``/``mask`` are relative to the dataset folder."""

    id: str
    image: str
    mask: str
    source: str
    kind: str
    frame: int
    width: int
    height: int
    fg_fraction: float
    split: str
    map: str


@dataclass(frozen=True)
class Dataset:
    """A dataset folder read back: its build config and rows."""

    root: Path
    config: dict
    samples: list[SampleInfo]

    def split(self, name: str) -> list[SampleInfo]:
        return [s for s in self.samples if s.split == name]


@dataclass(frozen=True)
class FrameMaps:
    """Map and mask of one frame, all at the frame's size (H, W)."""

    grey: np.ndarray  # uint8: focus score (bright = sharp) or inverse depth (bright = near)
    alpha: np.ndarray  # float32 [0, 1]: feathered mask
    binary: np.ndarray  # bool: the hard mask the masked panel uses

    @property
    def fg_fraction(self) -> float:
        return float(self.binary.mean())


# ---------------------------------------------------------------- sources, frames, split


def find_sources(paths: Sequence[Path], *, exclude: Sequence[Path] = ()) -> list[Source]:
    """Videos and photos named directly or found (recursively) in folders, sorted, no duplicates.

    Folder scans skip ``exclude`` (the output folder) and any vidsr dataset folder inside them.
    """
    found: dict[Path, Source] = {}
    skip = [Path(p).resolve() for p in exclude]

    def skipped(q: Path) -> bool:
        r = q.resolve()
        return any(r.is_relative_to(d) for d in skip) or any(is_dataset(d) for d in r.parents)

    def add(p: Path, *, explicit: bool) -> None:
        suffix = p.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            found[p.resolve()] = Source(path=p, kind="video")
        elif suffix in IMAGE_SUFFIXES:
            found[p.resolve()] = Source(path=p, kind="image")
        elif explicit:
            raise InputError(f"{p}: not a video ({', '.join(VIDEO_SUFFIXES)}) or image "
                             f"({', '.join(IMAGE_SUFFIXES)}) file")

    for p in map(Path, paths):
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file() and not skipped(q):
                    add(q, explicit=False)
        elif p.is_file():
            add(p, explicit=True)
        else:
            raise InputError(f"source not found: {p}")
    if not found:
        raise InputError("no videos or images among the sources")
    names: dict[str, Path] = {}
    for s in found.values():
        if s.name in names:
            raise InputError(f"two sources share the name {s.name!r} ({names[s.name]} and {s.path}); "
                             f"the split is by name, so rename one")
        names[s.name] = s.path
    return sorted(found.values(), key=lambda s: s.name)


def _split_key(name: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def assign_splits(names: Sequence[str], *, test_fraction: float, seed: int = 0,
                  test_patterns: Sequence[str] = (), paths: Sequence[str] | None = None) -> dict[str, str]:
    """Deterministic train/test split of source names (not of frames).

    With ``test_patterns``, exactly the sources whose name or path matches one of them are
    test. Otherwise the names are ordered by a seeded hash and the first
    ``round(test_fraction * n)`` (at least one when ``test_fraction > 0`` and n >= 2) are test.
    """
    names = list(names)
    paths = list(paths) if paths is not None else names
    if test_patterns:
        unmatched = [pat for pat in test_patterns
                     if not any(fnmatch.fnmatch(n, pat) or fnmatch.fnmatch(p, pat) for n, p in zip(names, paths))]
        if unmatched:
            raise InputError(f"--test-source {unmatched[0]!r} matches none of the {len(names)} sources")
        return {n: "test" if any(fnmatch.fnmatch(n, pat) or fnmatch.fnmatch(p, pat) for pat in test_patterns)
                else "train" for n, p in zip(names, paths)}
    n_test = round(test_fraction * len(names))
    if test_fraction > 0 and len(names) >= 2:
        n_test = min(max(1, n_test), len(names) - 1)
    order = sorted(names, key=lambda n: _split_key(n, seed))
    test = set(order[:n_test])
    return {n: "test" if n in test else "train" for n in names}


def select_frames(path: Path, *, every: int, select: Select = "every", max_frames: int | None = None,
                  cut_threshold: float = 30.0) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, (H, W, 3) uint8 RGB) of the frames of a video that go into the dataset.

    ``every``: every k-th frame; ``cuts``: the first frame of each shot (a cut is a mean
    absolute difference of tiny grey thumbnails above ``cut_threshold``), plus every k-th
    frame after it within the shot when ``every`` > 0.
    """
    from vidsr.media.reader import read_items
    from vidsr.media.types import Frame
    from vidsr.masks.tracker import thumb

    kept, prev, shot_start = 0, None, 0
    for item in read_items(path, copy_streams=False):
        if not isinstance(item, Frame):
            continue
        i, image = item.index, item.image
        if select == "every":
            take = i % every == 0
        else:
            t = thumb(image)
            if prev is None or float(np.abs(t - prev).mean()) > cut_threshold:
                shot_start = i
            prev = t
            take = i == shot_start or (every > 0 and (i - shot_start) % every == 0)
        if take:
            yield i, image
            kept += 1
            if max_frames is not None and kept >= max_frames:
                return


# ---------------------------------------------------------------- maps, masks, panels


def frame_maps(image: np.ndarray, *, depth_net=None, max_side: int = 480, feather_px: float = 4.0,
               depth_tolerance: float = 0.15, focus_floor: float = 1e-3) -> FrameMaps:
    """Grey map and foreground mask of one (H, W, 3) uint8 RGB frame.

    Without ``depth_net``: the focus map, thresholded by Otsu (as ``vidsr upscale``'s default
    mask). With one: the in-focus band of normalised inverse depth around the sharpest depth
    (as ``--mask depth+focus``), thresholded at 0.5.
    """
    h, w = image.shape[:2]
    size = work_size(h, w, max_side)
    if depth_net is None:
        grey = score = focus_score(image, max_side=max_side, floor=focus_floor)
        threshold = None
    else:
        from vidsr.masks.depth import predict
        from vidsr.masks.focal import FocalOptions, band_score, choose_focal, normalize_depth

        grey = normalize_depth(predict(depth_net, [image], out_size=size)[0])
        focal = FocalOptions(mode="focus", tolerance=depth_tolerance)
        f = choose_focal(grey, focus_score(image, max_side=max_side, floor=focus_floor), focal)
        score = band_score(grey, f, tolerance=focal.tolerance, softness=focal.softness)
        threshold = 0.5
    tracker = MaskTracker(estimator=FocusEstimator(max_side=max_side), every=1, threshold=threshold,
                          feather_px=feather_px)
    m = tracker.update(image, score=score)
    binary = cv2.resize(m.binary.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    grey8 = np.clip(cv2.resize(grey, (w, h), interpolation=cv2.INTER_LINEAR) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return FrameMaps(grey=grey8, alpha=m.alpha, binary=binary)


def compose_sample(image: np.ndarray, maps: FrameMaps) -> np.ndarray:
    """(H, 3W, 3) uint8: the frame | the grey map | the frame with the background black."""
    grey = np.repeat(maps.grey[..., None], 3, axis=2)
    masked = np.where(maps.binary[..., None], image, 0).astype(np.uint8)
    return np.concatenate([image, grey, masked], axis=1)


def split_sample(panel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`compose_sample`: (rgb, grey (H, W) uint8, masked rgb)."""
    w3 = panel.shape[1]
    if w3 % 3:
        raise InputError(f"a sample image is 3 panels wide; width {w3} is not a multiple of 3")
    w = w3 // 3
    return panel[:, :w], panel[:, w:2 * w, 0], panel[:, 2 * w:]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(name).stem).strip("-")[:40] or "src"


def sample_id(source_name: str, frame: int) -> str:
    """Readable, collision-free file stem of one sample."""
    return f"{_slug(source_name)}-{hashlib.sha1(source_name.encode()).hexdigest()[:6]}-{frame:06d}"


def _write_png(path: Path, rgb_or_grey: np.ndarray) -> None:
    img = rgb_or_grey[..., ::-1] if rgb_or_grey.ndim == 3 else rgb_or_grey
    if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
        raise OutputError(f"cannot write {path}")


# ---------------------------------------------------------------- workers


@dataclass(frozen=True)
class _Job:
    source: str
    kind: str
    frame: int
    split: str
    image: np.ndarray | None  # None: load ``source`` (a photo) in the worker


_WORKER: dict = {}


def _init_worker(root: str, config: dict) -> None:
    cv2.setNumThreads(1)
    _WORKER.clear()
    _WORKER["root"] = Path(root)
    _WORKER["config"] = config
    _WORKER["net"] = None
    if config["depth_model"] not in (None, "None"):
        from vidsr.masks.depth import load_depth_net

        _WORKER["net"] = load_depth_net(config["depth_model"], long_side=config["depth_size"], batch=1)


def _work(job: _Job) -> SampleInfo:
    cfg, root = _WORKER["config"], _WORKER["root"]
    image = job.image if job.image is not None else load_rgb(Path(job.source))
    if cfg["long_side"] is not None:
        image = resize_long_side(image, int(cfg["long_side"]))
    maps = frame_maps(image, depth_net=_WORKER["net"], max_side=int(cfg["mask_max_side"]),
                      feather_px=float(cfg["feather_px"]), depth_tolerance=float(cfg["depth_tolerance"]),
                      focus_floor=float(cfg["focus_floor"]))
    name = Path(job.source).name
    sid = sample_id(name, job.frame)
    image_rel, mask_rel = f"samples/{sid}.png", f"masks/{sid}.png"
    _write_png(root / image_rel, compose_sample(image, maps))
    _write_png(root / mask_rel, np.clip(maps.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))
    h, w = image.shape[:2]
    return SampleInfo(id=sid, image=image_rel, mask=mask_rel, source=name, kind=job.kind, frame=job.frame,
                      width=w, height=h, fg_fraction=round(maps.fg_fraction, 5), split=job.split,
                      map="focus" if _WORKER["net"] is None else "depth")


def _jobs(sources: list[Source], splits: dict[str, str], cfg: BuildConfig) -> Iterator[_Job]:
    for s in sources:
        if s.kind == "image":
            yield _Job(source=str(s.path), kind="image", frame=0, split=splits[s.name], image=None)
            continue
        for i, image in select_frames(s.path, every=cfg.every, select=cfg.select, max_frames=cfg.max_frames,
                                      cut_threshold=cfg.cut_threshold):
            if cfg.long_side is not None:  # shrink before pickling it to a worker
                image = resize_long_side(image, cfg.long_side)
            yield _Job(source=str(s.path), kind="video", frame=i, split=splits[s.name], image=image)


def _bounded(pool, jobs: Iterator[_Job], *, window: int) -> Iterator[SampleInfo]:
    """Results of ``jobs`` run on ``pool`` in order, with at most ``window`` jobs (decoded
    frames) in flight. A worker that dies raises ``BrokenProcessPool`` here (no hang)."""
    pending: list = []
    for job in jobs:
        pending.append(pool.submit(_work, job))
        while len(pending) >= window:
            yield pending.pop(0).result()
    for r in pending:
        yield r.result()


def build_dataset(sources: Sequence[Path], out: Path, *, config: BuildConfig = BuildConfig(),
                  overwrite: bool = False, on_sample: Callable[[SampleInfo], None] | None = None) -> Dataset:
    """Build a dataset folder from videos and photos.

    Args:
        sources: video/image files or folders of them.
        out: dataset folder (created).
        config: frame selection, split, map and mask settings.
        overwrite: replace an existing dataset in ``out``.
        on_sample: called after each sample is written (progress bars).

    Returns:
        The dataset as written (rows sorted by source and frame).
    """
    out = Path(out)
    found = find_sources(sources, exclude=[out])
    if (out / "manifest.json").exists() and not overwrite:
        raise InputError(f"{out} already holds a dataset (manifest.json); pass --overwrite or choose another folder")
    splits = assign_splits([s.name for s in found], test_fraction=config.test_fraction, seed=config.seed,
                           test_patterns=config.test_sources, paths=[str(s.path) for s in found])
    for sub in ("samples", "masks"):
        d = out / sub
        d.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for f in d.glob("*.png"):
                f.unlink()
    cfg_json = config.to_json()
    rows: list[SampleInfo] = []
    jobs = _jobs(found, splits, config)
    if config.depth_model is not None and not Path(config.depth_model).exists():
        from vidsr.masks.depth import load_depth_net

        load_depth_net(config.depth_model)  # raises the clear "not found" error here, not in a worker
    if config.workers == 1:
        _init_worker(str(out), cfg_json)
        results: Iterator[SampleInfo] = map(_work, jobs)
        pool = None
    else:  # spawned workers: safe beside torch's thread pools, and a dead worker raises instead of hanging
        pool = ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(str(out), cfg_json))
        results = _bounded(pool, jobs, window=2 * config.workers)
    try:
        for row in results:
            rows.append(row)
            if on_sample is not None:
                on_sample(row)
    except BrokenProcessPool as e:
        raise InputError(f"a dataset worker process died ({e}); run with --workers 1 to see its error") from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not rows:
        raise InputError("no frames were selected from the sources")
    rows.sort(key=lambda r: (r.source, r.frame))
    write_manifest(out, config=cfg_json, samples=rows, sources={s.name: splits[s.name] for s in found})
    return Dataset(root=out, config=cfg_json, samples=rows)


# ---------------------------------------------------------------- manifest


def write_manifest(root: Path, *, config: dict, samples: list[SampleInfo], sources: dict[str, str]) -> None:
    """``manifest.json`` (format, config, source -> split, rows) and ``manifest.csv`` (rows)."""
    doc = {"format": FORMAT, "version": VERSION, "config": config, "sources": sources,
           "samples": [asdict(s) for s in samples]}
    (root / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for s in samples:
            w.writerow(asdict(s))


def is_dataset(folder: Path) -> bool:
    """True if ``folder`` holds a manifest written by :func:`build_dataset`."""
    p = Path(folder) / "manifest.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def read_dataset(root: Path) -> Dataset:
    """Read a dataset folder's manifest."""
    root = Path(root)
    p = root / "manifest.json"
    if not p.is_file():
        raise InputError(f"{root} is not a vidsr dataset (no manifest.json); build one with `vidsr dataset build`")
    try:
        doc = json.loads(p.read_text())
    except ValueError as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if doc.get("format") != FORMAT:
        raise InputError(f"{p}: not a vidsr dataset manifest")
    return Dataset(root=root, config=doc.get("config", {}), samples=[SampleInfo(**r) for r in doc["samples"]])


def load_sample(root: Path, sample: SampleInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) uint8, grey map (H, W) uint8, soft mask (H, W) float32 in [0, 1])."""
    panel = load_rgb(Path(root) / sample.image)
    rgb, grey, _ = split_sample(panel)
    m = cv2.imread(str(Path(root) / sample.mask), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise InputError(f"cannot read mask {Path(root) / sample.mask}")
    if m.shape != rgb.shape[:2]:
        raise InputError(f"{sample.mask}: mask {m.shape} does not match frame {rgb.shape[:2]}")
    return np.ascontiguousarray(rgb), np.ascontiguousarray(grey), m.astype(np.float32) / 255.0


def summarize_dataset(ds: Dataset) -> dict:
    """Counts and foreground statistics per split (what ``vidsr dataset show`` prints)."""
    out: dict = {"root": str(ds.root), "samples": len(ds.samples), "maps": sorted({s.map for s in ds.samples}),
                 "splits": {}}
    for split in SPLITS:
        rows = ds.split(split)
        fg = np.array([r.fg_fraction for r in rows], np.float64)
        sizes = sorted({f"{r.width}x{r.height}" for r in rows})
        out["splits"][split] = {
            "samples": len(rows),
            "sources": sorted({r.source for r in rows}),
            "videos": len({r.source for r in rows if r.kind == "video"}),
            "images": len({r.source for r in rows if r.kind == "image"}),
            "sizes": sizes,
            "fg_mean": float(fg.mean()) if len(fg) else None,
            "fg_median": float(np.median(fg)) if len(fg) else None,
            "fg_min": float(fg.min()) if len(fg) else None,
            "fg_max": float(fg.max()) if len(fg) else None,
            "empty_masks": int((fg == 0).sum()),
            "fg_histogram": np.histogram(fg, bins=5, range=(0, 1))[0].tolist() if len(fg) else [],
        }
    leaked = set(out["splits"]["train"]["sources"]) & set(out["splits"]["test"]["sources"])
    out["leaked_sources"] = sorted(leaked)
    return out


def format_summary(summary: dict) -> str:
    """Human-readable lines for ``vidsr dataset show``."""
    lines = [f"{summary['root']}: {summary['samples']} samples"]
    for split, s in summary["splits"].items():
        if not s["samples"]:
            lines.append(f"  {split}: 0 samples")
            continue
        lines.append(f"  {split}: {s['samples']} samples from {len(s['sources'])} sources "
                     f"({s['videos']} videos, {s['images']} images); sizes {', '.join(s['sizes'])}")
        lines.append(f"    FG fraction mean {s['fg_mean']:.3f}, median {s['fg_median']:.3f}, "
                     f"min {s['fg_min']:.3f}, max {s['fg_max']:.3f}; empty masks {s['empty_masks']}")
        lines.append("    FG histogram [0-.2, .2-.4, .4-.6, .6-.8, .8-1]: " + " ".join(map(str, s["fg_histogram"])))
        lines.append("    sources: " + ", ".join(s["sources"]))
    if summary["leaked_sources"]:
        lines.append("  WARNING: sources in both splits: " + ", ".join(summary["leaked_sources"]))
    return "\n".join(lines)


__all__ = ["BuildConfig", "Dataset", "FrameMaps", "SampleInfo", "Source", "assign_splits", "build_dataset",
           "compose_sample", "find_sources", "format_summary", "frame_maps", "is_dataset", "load_sample",
           "read_dataset", "sample_id", "select_frames", "split_sample", "summarize_dataset"]
