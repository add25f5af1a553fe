"""Training loop: L1 / depth semantic loss (plus an optional adversarial loss, :mod:`vidsr.train.gan`),
Adam, cosine or step LR schedule, optional EMA of
the weights, seeded, checkpoint and resume.

Data is a folder of photographs (patches cut as in :mod:`vidsr.train.data`) or a dataset
folder from ``vidsr dataset build`` (patches chosen by a sampler of :mod:`vidsr.train.samplers`
over each frame's foreground mask; the mask also weights the depth semantic loss).

A run folder holds:
  config.json    the TrainConfig (resume refuses a different one)
  metrics.jsonl  one line per log interval (train loss, fixed-batch validation L1, lr, time)
  state.pt       everything needed to resume (weights, Adam state, RNG states, step, discriminator)
  model.pt       the final network as a vidsr checkpoint (vidsr.checkpoint.save_checkpoint)
  metrics.json   summary written at the end (and extended by evaluation)
"""

from __future__ import annotations

import copy
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidsr.arch import REGISTRY
from vidsr.arch.base import Residual
from vidsr.errors import InputError
from vidsr.fs import atomic_write
from vidsr.platform import torch_threads
from vidsr.checkpoint import save_checkpoint
from vidsr.train.data import PatchConfig, build_patch_cache, list_images, sample_hr
from vidsr.train.dataset import is_dataset, read_dataset
from vidsr.train.degrade import DegradeConfig, degrade_batch
from vidsr.train.gan import Adversary, GanConfig
from vidsr.train.losses import DepthSemanticLoss, LossConfig
from vidsr.train.samplers import MaskedPatchSource, SamplerName, check_sampler

STATE_FORMAT = "vidsr-train-state"
RESUME_MAY_CHANGE = ("threads",)  # settings that do not change what is trained
# Settings added after the first runs: a config.json without them had these values.
RESUME_DEFAULTS = {"sampler": "full", "min_coverage": 0.5, "ema": 0.0, "init": None,
                   "loss": {"pixel": "l1", "w_fg": 1.0, "w_bg": 1.0, "eps": 1e-3},
                   "gan": {"weight": 0.0, "num_feat": 32, "num_down": 3, "lr": 1e-4, "spectral": True,
                           "highpass": False}}


class _ArchConfig:
    """Builds the network through :data:`vidsr.arch.REGISTRY`: every field but ``arch`` is a
    keyword argument of the architecture."""

    def build(self, scale: int) -> nn.Module:
        config = asdict(self)
        arch = config.pop("arch")
        return REGISTRY.build(arch, {"scale": scale, **config})


@dataclass(frozen=True, kw_only=True)
class CompactSpec(_ArchConfig):
    """Config of a :class:`vidsr.arch.Compact` to train (smaller than its defaults)."""

    num_feat: int = 16
    num_conv: int = 4
    residual: Residual = "bicubic"
    arch: Literal["compact"] = "compact"


@dataclass(frozen=True, kw_only=True)
class ESPCNSpec(_ArchConfig):
    """Config of a :class:`vidsr.arch.ESPCN` to train."""

    feat1: int = 16
    feat2: int = 16
    residual: Residual = "bicubic"
    arch: Literal["espcn"] = "espcn"


ModelSpec = CompactSpec | ESPCNSpec


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run.

    Args:
        data: folder of photographs (searched recursively), or a dataset folder
            (``vidsr dataset build``; its ``train`` split is used).
        run_dir: output folder (config, metrics, state, model).
        scale: SR factor.
        model: architecture and its size.
        steps: optimiser steps.
        batch_size: patches per step.
        patches: how HR patches are cut; ``patch_size`` must be a multiple of ``scale``.
        degrade: LR degradation mix.
        lr: peak learning rate (Adam).
        lr_min: final learning rate of the cosine schedule.
        schedule: ``cosine`` (to ``lr_min``) or ``step`` (x0.5 at 50%, 75%, 90% of steps).
        warmup_steps: linear learning-rate ramp at the start.
        seed: seeds patch cutting, batches, degradations and init.
        log_every: steps between metrics lines.
        ckpt_every: steps between resumable states.
        val_size: patches in the fixed validation batch.
        threads: torch CPU threads.
        sampler: how patches are chosen in dataset frames: ``full`` (uniform; the only choice
            for a photo folder), ``unique``, ``random`` or ``jitter`` (foreground; see samplers).
        min_coverage: mask coverage a ``unique``/``jitter`` cell needs.
        loss: pixel loss and foreground/background weights (different weights = the depth
            semantic loss; needs a dataset folder).
        ema: decay of an exponential moving average of the weights (0 = off, e.g. 0.999);
            the average is what gets saved and evaluated.
        init: start from the weights of this vidsr checkpoint (same architecture) instead of
            a fresh initialisation (fine-tuning).
        gan: adversarial loss and discriminator (``gan.weight`` 0 = none).
    """

    data: Path
    run_dir: Path
    scale: int = 2
    model: ModelSpec = field(default_factory=CompactSpec)
    steps: int = 10_000
    batch_size: int = 16
    patches: PatchConfig = field(default_factory=PatchConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    lr: float = 1e-3
    lr_min: float = 1e-5
    schedule: Literal["cosine", "step"] = "cosine"
    warmup_steps: int = 200
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 1000
    val_size: int = 32
    threads: int = 2
    sampler: SamplerName = "full"
    min_coverage: float = 0.5
    loss: LossConfig = field(default_factory=LossConfig)
    ema: float = 0.0
    init: Path | None = None
    gan: GanConfig = field(default_factory=GanConfig)

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise InputError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.patches.patch_size % self.scale:
            raise InputError(f"HR patch size {self.patches.patch_size} is not a multiple of scale {self.scale}")
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1 or self.ckpt_every < 1:
            raise InputError("steps, batch_size, log_every and ckpt_every must be >= 1")
        if self.warmup_steps < 0:
            raise InputError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 < self.lr_min <= self.lr:
            raise InputError(f"need 0 < lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if self.schedule not in ("cosine", "step"):
            raise InputError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        check_sampler(self.sampler)
        if not 0.0 < self.min_coverage <= 1.0:
            raise InputError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if not 0.0 <= self.ema < 1.0:
            raise InputError(f"ema must be in [0, 1), got {self.ema}")

    def to_json(self) -> dict:
        """Plain JSON-able dict (paths as strings, tuples as lists)."""
        return json.loads(json.dumps(asdict(self), default=str))


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced."""

    model: nn.Module
    run_dir: Path
    model_path: Path
    steps: int
    elapsed_s: float
    summary: dict


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based ``step`` under ``cfg.schedule``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1), 1.0)
    if cfg.schedule == "cosine":
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * t))
    drops = sum(t >= m for m in (0.5, 0.75, 0.9))
    return max(cfg.lr * 0.5 ** drops, cfg.lr_min)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(0, 3, 1, 2).float().div_(255.0)


def shrink_output_init(model: nn.Module, *, factor: float = 0.1) -> None:
    """Scale the last convolution's weights down and zero its bias, so a residual network
    starts close to its cheap upscale (exactly zero would stall the first steps)."""
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.zero_()


def _data_summary(cfg: TrainConfig, paths: list[Path]) -> dict:
    return {"folder": str(cfg.data), "count": len(paths),
            "files": [str(p.relative_to(cfg.data)) for p in paths]}


def _dataset_summary(cfg: TrainConfig, source: MaskedPatchSource | None) -> dict:
    ds = read_dataset(cfg.data)
    rows = ds.split("train")
    return {"folder": str(cfg.data), "dataset": True, "split": "train", "count": len(rows),
            "sources": sorted({r.source for r in rows}),
            "distinct_patches": None if source is None else source.distinct}


def load_init(model: nn.Module, path: Path) -> None:
    """Copy the weights of the vidsr checkpoint at ``path`` into ``model`` (same architecture)."""
    from vidsr.checkpoint import load_checkpoint

    other, _ = load_checkpoint(path)
    try:
        model.load_state_dict(other.state_dict())
    except RuntimeError as e:
        raise InputError(f"cannot start from {path}: its architecture differs from the configured one "
                         f"({str(e).splitlines()[0]})") from None


def ema_update(ema: nn.Module, model: nn.Module, *, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for every parameter and float buffer."""
    with torch.no_grad():
        for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.lerp_(p, 1.0 - decay)
            else:
                e.copy_(p)


def _save_state(path: Path, *, model: nn.Module, opt: torch.optim.Optimizer, step: int,
                rng: np.random.Generator, elapsed_s: float, ema: nn.Module | None = None,
                adversary: Adversary | None = None) -> None:
    state = {
        "format": STATE_FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "elapsed_s": elapsed_s,
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    if adversary is not None:
        state["discriminator"] = adversary.state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue(), what="training state")


def _check_resume_config(run_dir: Path, cfg: TrainConfig) -> None:
    old = json.loads((run_dir / "config.json").read_text())
    for k, v in old.items():  # settings added inside a section after the first runs
        if isinstance(v, dict) and isinstance(RESUME_DEFAULTS.get(k), dict):
            old[k] = {**RESUME_DEFAULTS[k], **v}
    new = cfg.to_json()
    diff = sorted(k for k in set(old) | set(new)
                  if old.get(k, RESUME_DEFAULTS.get(k)) != new.get(k) and k not in RESUME_MAY_CHANGE)
    if diff:
        raise InputError(f"cannot resume {run_dir}: config differs in {', '.join(diff)}")


def train(cfg: TrainConfig, *, resume: bool = False,
          on_step: Callable[[int, float], None] | None = None,
          on_image: Callable[[Path], None] | None = None) -> TrainResult:
    """Train ``cfg.model`` on patches of the photos in ``cfg.data``, on ``cfg.threads`` torch threads
    (the caller's thread count is restored afterwards).

    Args:
        cfg: the run.
        resume: continue from ``cfg.run_dir/state.pt`` (the config must be identical).
        on_step: called with (step done, loss) after each step (progress bars).
        on_image: called after each photo is cut into patches.

    Returns:
        The trained model (eval mode), where it was saved, and a summary.
    """
    with torch_threads(cfg.threads):
        return _train(cfg, resume=resume, on_step=on_step, on_image=on_image)


def _train(cfg: TrainConfig, *, resume: bool, on_step: Callable[[int, float], None] | None,
           on_image: Callable[[Path], None] | None) -> TrainResult:
    run_dir = Path(cfg.run_dir)
    state_path = run_dir / "state.pt"
    if resume and not state_path.is_file():
        raise InputError(f"nothing to resume: {state_path} does not exist")
    if not resume and state_path.exists():
        raise InputError(f"{run_dir} already holds a training state; resume it or choose another run folder")
    dataset_mode = is_dataset(cfg.data)
    if not dataset_mode and (cfg.sampler != "full" or cfg.loss.semantic):
        what = "the depth semantic loss" if cfg.loss.semantic else f"sampler {cfg.sampler!r}"
        raise InputError(f"{what} needs foreground masks: pass a dataset folder (vidsr dataset build) as "
                         "data, not a photo folder")
    paths = [] if dataset_mode else list_images(cfg.data)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        _check_resume_config(run_dir, cfg)
    else:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
        (run_dir / "metrics.jsonl").write_text("")

    val_rng = np.random.default_rng([cfg.seed, 1])
    source: MaskedPatchSource | None = None
    if dataset_mode:
        source = MaskedPatchSource.from_dataset(cfg.data, sampler=cfg.sampler, patch=cfg.patches.patch_size,
                                                min_coverage=cfg.min_coverage, on_image=on_image)
        # validation patches are uniform over the frames whatever the sampler, so runs compare
        val_hr, _ = source.with_sampler("full").draw(cfg.val_size, val_rng)

        def draw(n: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
            return source.draw(n, r)
    else:
        cache = build_patch_cache(paths, cfg=cfg.patches, rng=np.random.default_rng([cfg.seed, 0]),
                                  on_image=on_image)
        val_hr = sample_hr(cache, batch_size=cfg.val_size, rng=val_rng)

        def draw(n: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
            return sample_hr(cache, batch_size=n, rng=r), None
    val_x = to_tensor(degrade_batch(val_hr, scale=cfg.scale, cfg=cfg.degrade, rng=val_rng))
    val_y = to_tensor(val_hr)
    val_bicubic = F.l1_loss(F.interpolate(val_x, scale_factor=cfg.scale, mode="bicubic", align_corners=False),
                            val_y).item()

    torch.manual_seed(cfg.seed)
    model = cfg.model.build(cfg.scale)
    if cfg.init is not None:
        load_init(model, Path(cfg.init))
    else:
        shrink_output_init(model)
    ema = copy.deepcopy(model) if cfg.ema > 0 else None
    criterion = DepthSemanticLoss(cfg.loss)
    adversary = Adversary(cfg.gan) if cfg.gan.enabled else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng([cfg.seed, 2])
    step, elapsed = 0, 0.0
    if resume:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise InputError(f"{state_path} is not a vidsr training state")
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if adversary is not None:
            adversary.load_state_dict(state["discriminator"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step, elapsed = int(state["step"]), float(state["elapsed_s"])
    else:
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 0, "val_l1": validate_eval(model, val_x, val_y),
                                "val_bicubic_l1": val_bicubic, "elapsed_s": 0.0}) + "\n")
    model.train()
    losses: list[float] = []
    d_losses: list[float] = []
    t0 = time.perf_counter() - elapsed
    try:
        while step < cfg.steps:
            hr, mask = draw(cfg.batch_size, rng)
            x = to_tensor(degrade_batch(hr, scale=cfg.scale, cfg=cfg.degrade, rng=rng))
            y = to_tensor(hr)
            lr_now = learning_rate(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr_now
            sr = model(x)
            loss = criterion(sr, y, None if mask is None else torch.from_numpy(mask))
            if adversary is not None:
                loss = loss + cfg.gan.weight * adversary.generator_loss(sr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if adversary is not None:
                d_losses.append(adversary.step(sr, y))
            if ema is not None:
                ema_update(ema, model, decay=cfg.ema)
            step += 1
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
            if step % cfg.log_every == 0 or step == cfg.steps:
                line = {"step": step, "loss": float(np.mean(losses)), "lr": lr_now,
                        "val_l1": validate_eval(model, val_x, val_y), "val_bicubic_l1": val_bicubic,
                        "elapsed_s": round(time.perf_counter() - t0, 2)}
                if ema is not None:
                    line["val_l1_ema"] = validate_eval(ema, val_x, val_y)
                if d_losses:
                    line["d_loss"] = float(np.mean(d_losses))
                    d_losses.clear()
                with open(run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
                losses.clear()
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                _save_state(state_path, model=model, opt=opt, step=step, rng=rng,
                            elapsed_s=time.perf_counter() - t0, ema=ema, adversary=adversary)
    except KeyboardInterrupt:  # keep the progress; a stop inside a step resumes close to, not bit-exactly on, a run
        _save_state(state_path, model=model, opt=opt, step=step, rng=rng, elapsed_s=time.perf_counter() - t0,
                    ema=ema, adversary=adversary)
        raise

    elapsed = time.perf_counter() - t0
    if ema is not None:
        model = ema  # the average is the result
    model.eval()
    summary = {
        "steps": step,
        "elapsed_s": round(elapsed, 1),
        "batch_size": cfg.batch_size,
        "lr_patch": cfg.patches.patch_size // cfg.scale,
        "val_l1": validate_eval(model, val_x, val_y),
        "val_bicubic_l1": val_bicubic,
        "data": _data_summary(cfg, paths) if not dataset_mode else _dataset_summary(cfg, source),
        "sampler": cfg.sampler,
        "loss": cfg.loss.label,
        "ema": cfg.ema,
        "gan_weight": cfg.gan.weight,
        "config": cfg.to_json(),
        "torch": str(torch.__version__),
        "threads": cfg.threads,
    }
    model_path = write_final(run_dir, model, summary)
    return TrainResult(model=model, run_dir=run_dir, model_path=model_path, steps=step,
                       elapsed_s=elapsed, summary=summary)


def validate_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """L1 of ``model(x)`` against ``y`` without gradients. x: (B, 3, h, w), y: (B, 3, H, W)."""
    with torch.no_grad():
        return F.l1_loss(model(x), y).item()


def write_final(run_dir: Path, model: nn.Module, summary: dict) -> Path:
    """Save ``run_dir/model.pt`` (meta = summary) and ``run_dir/metrics.json``; return the model path."""
    path = Path(run_dir) / "model.pt"
    summary = json.loads(json.dumps(summary))  # plain types only, so weights_only loading works
    save_checkpoint(model, path, meta=summary)
    (Path(run_dir) / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return path
