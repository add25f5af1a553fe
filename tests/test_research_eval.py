"""Research workflow: region scores, `vidsr eval` on a dataset, training on a dataset folder
(samplers, depth semantic loss, EMA, resume)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import textured_frame

from vidsr.arch import Compact
from vidsr.errors import InputError
from vidsr.checkpoint import load_checkpoint, save_checkpoint
from vidsr.cli.research import eval_command
from vidsr.cli.train import train_command
from vidsr.train.data import PatchConfig
from vidsr.train.dataset import FrameMaps, SampleInfo, compose_sample, sample_id, write_manifest
from vidsr.train.evaluate import score
from vidsr.train.loop import CompactSpec, TrainConfig, train
from vidsr.train.losses import LossConfig
from vidsr.train.research_eval import NamedModel, evaluate_dataset, region_scores, to_markdown
from vidsr.train.samplers import THESIS_DEGRADE


def _write_dataset(root: Path, masks: dict[str, np.ndarray], *, size: tuple[int, int] = (64, 96)) -> Path:
    """A dataset folder written directly: one frame per name, with the given soft mask."""
    (root / "samples").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for k, (name, alpha) in enumerate(masks.items()):
        rgb = textured_frame(k, width=size[1], height=size[0], seed=k)
        maps = FrameMaps(grey=np.zeros(size, np.uint8), alpha=alpha.astype(np.float32), binary=alpha >= 0.5)
        sid = sample_id(name, 0)
        cv2.imwrite(str(root / f"samples/{sid}.png"), compose_sample(rgb, maps)[..., ::-1])
        cv2.imwrite(str(root / f"masks/{sid}.png"), np.round(alpha * 255).astype(np.uint8))
        rows.append(SampleInfo(id=sid, image=f"samples/{sid}.png", mask=f"masks/{sid}.png", source=name,
                               kind="image", frame=0, width=size[1], height=size[0],
                               fg_fraction=float((alpha >= 0.5).mean()), split="test" if k == 0 else "train",
                               map="focus"))
    write_manifest(root, config={}, samples=rows, sources={r.source: r.split for r in rows})
    return root


def _ellipse(size: tuple[int, int] = (64, 96)) -> np.ndarray:
    yy, xx = np.mgrid[:size[0], :size[1]]
    return (((xx - size[1] / 2) / (size[1] / 4)) ** 2 + ((yy - size[0] / 2) / (size[0] / 3)) ** 2 < 1).astype(
        np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = _ellipse()
    return _write_dataset(tmp_path_factory.mktemp("d") / "ds", {f"p{i}.png": m for i in range(4)})


def _named(path: Path, label: str) -> NamedModel:
    m, d = load_checkpoint(path)
    return NamedModel(label=label, model=m, descriptor=d)


def test_region_scores_full_matches_score_and_regions_split_the_error() -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    out = hr.copy()
    fg = np.zeros((40, 48), bool)
    fg[10:30, 12:36] = True
    out[fg] = np.clip(out[fg].astype(int) + rng.integers(-20, 21, out[fg].shape), 0, 255).astype(np.uint8)
    r = region_scores(out, hr, fg, shave=2)
    ref = score(out, hr, shave=2)
    assert r["full"]["psnr_y"] == pytest.approx(ref.psnr_y) and r["full"]["ssim_rgb"] == pytest.approx(ref.ssim_rgb)
    assert r["bg"]["psnr_y"] == float("inf") and r["bg"]["psnr_rgb"] == float("inf")
    assert r["fg"]["psnr_rgb"] < r["full"]["psnr_rgb"]  # the error is all in the foreground
    assert r["fg"]["ssim_y"] < r["bg"]["ssim_y"] <= 1.0
    r = region_scores(hr, hr, np.zeros((40, 48), bool), shave=2)
    assert np.isnan(r["fg"]["psnr_y"]) and r["bg"]["ssim_y"] == pytest.approx(1.0)


def test_partial_sr_with_empty_or_full_dataset_mask_is_bicubic_or_full_sr(tiny_ckpt: Path, tmp_path: Path) -> None:
    ds = _write_dataset(tmp_path / "ds", {"empty.png": np.zeros((64, 96)), "full.png": np.ones((64, 96))})
    nm = _named(tiny_ckpt, "tiny")
    rep = evaluate_dataset(ds, [nm], split="all", partial_mask="dataset")
    rows = {(r["sample"][:5], r["method"]): r for r in rep["per_frame"]}
    assert rows[("empty", "partial:tiny")]["scores"]["full"] == rows[("empty", "bicubic")]["scores"]["full"]
    assert rows[("empty", "partial:tiny")]["sr_share"] == 0.0
    assert rows[("full-", "partial:tiny")]["scores"]["full"] == rows[("full-", "full:tiny")]["scores"]["full"]
    assert rows[("full-", "partial:tiny")]["sr_share"] == 1.0
    assert set(rep["methods"]) == {"bicubic", "full:tiny", "partial:tiny"}
    assert rep["methods"]["bicubic"]["mean"]["fg"]["frames"] == 1  # the empty-mask frame has no FG
    md = to_markdown(rep)
    assert md.count("\n| ") == 4 and "| partial:tiny |" in md and "PSNR-Y FG" in md


def test_eval_errors(dataset: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least one model"):
        evaluate_dataset(dataset, [])
    torch.manual_seed(0)
    save_checkpoint(Compact(scale=4, num_feat=4, num_conv=1), tmp_path / "x4.pt")
    with pytest.raises(InputError, match="different scales"):
        evaluate_dataset(dataset, [_named(tiny_ckpt, "a"), _named(tmp_path / "x4.pt", "b")])
    empty = _write_dataset(tmp_path / "e", {"a.png": _ellipse()})
    with pytest.raises(InputError, match="no 'train' samples"):
        evaluate_dataset(empty, [_named(tiny_ckpt, "a")], split="train")


def _cfg(dataset: Path, run: Path, **kw) -> TrainConfig:
    base = dict(data=dataset, run_dir=run, scale=2, model=CompactSpec(num_feat=8, num_conv=2), steps=12,
                batch_size=4, patches=PatchConfig(patch_size=16), degrade=THESIS_DEGRADE, warmup_steps=2,
                log_every=4, ckpt_every=4, val_size=4, threads=1, sampler="jitter",
                loss=LossConfig(w_fg=1.0, w_bg=0.1), ema=0.9)
    base.update(kw)
    return TrainConfig(**base)


def test_train_on_dataset_with_sampler_semantic_loss_ema_and_resume(dataset: Path, tmp_path: Path) -> None:
    straight = train(_cfg(dataset, tmp_path / "a"))
    summary = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert summary["sampler"] == "jitter" and summary["loss"] == "semantic-l1(fg 1, bg 0.1)" and summary["ema"] == 0.9
    assert summary["data"]["dataset"] and summary["data"]["count"] == 3  # the train split only
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert "val_l1_ema" in lines[-1]
    assert summary["val_l1"] == pytest.approx(lines[-1]["val_l1_ema"])  # the saved model is the average

    class Stop(Exception):
        pass

    def stop_at_6(step: int, _loss: float) -> None:
        if step == 6:
            raise Stop

    with pytest.raises(Stop):
        train(_cfg(dataset, tmp_path / "b"), on_step=stop_at_6)
    resumed = train(_cfg(dataset, tmp_path / "b"), resume=True)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="config differs in sampler"):
        train(_cfg(dataset, tmp_path / "b", sampler="unique"), resume=True)


def test_train_init_seed_and_mask_rules(dataset: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    a = train(_cfg(dataset, tmp_path / "a", steps=4, ema=0.0, sampler="unique", seed=3))
    b = train(_cfg(dataset, tmp_path / "b", steps=4, ema=0.0, sampler="unique", seed=3))
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    # fine-tuning starts from the checkpoint: with lr tiny, the weights barely move
    ft = train(_cfg(dataset, tmp_path / "ft", steps=2, ema=0.0, lr=1e-9, lr_min=1e-9, init=tiny_ckpt))
    ref, _ = load_checkpoint(tiny_ckpt)
    for p, q in zip(ft.model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="architecture differs"):
        train(_cfg(dataset, tmp_path / "bad", steps=2, model=CompactSpec(num_feat=4, num_conv=2), init=tiny_ckpt))
    photos = tmp_path / "photos"
    photos.mkdir()
    with pytest.raises(InputError, match="needs foreground masks"):
        train(_cfg(photos, tmp_path / "c", sampler="full"))
    with pytest.raises(InputError, match="unknown sampler"):
        _cfg(dataset, tmp_path / "d", sampler="grid")


def test_cli_train_on_dataset_then_eval(dataset: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = CliRunner().invoke(train_command, [
        "--data", str(dataset), "--out", str(run), "--steps", "6", "--batch-size", "4", "--patch", "8",
        "--num-feat", "8", "--num-conv", "2", "--warmup", "1", "--threads", "1", "--no-eval-skimage",
        "--sampler", "random", "--loss", "semantic", "--w-bg", "0.2", "--ema", "0.5", "--thesis-lr"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["sampler"] == "random" and cfg["loss"]["w_bg"] == 0.2 and cfg["degrade"]["p_area"] == 0.0
    out_json, out_md = tmp_path / "e.json", tmp_path / "e.md"
    r = CliRunner().invoke(eval_command, [str(dataset), "--model", str(run / "model.pt"),
                                          "--model", f"tiny={tiny_ckpt}", "--json", str(out_json),
                                          "--md", str(out_md), "--partial-mask", "dataset"])
    assert r.exit_code == 0, r.output
    rep = json.loads(out_json.read_text())
    assert rep["frames"] == 1 and rep["split"] == "test"
    assert list(rep["methods"]) == ["bicubic", "full:run", "partial:run", "full:tiny", "partial:tiny"]
    y = {k: {region: m["mean"][region]["psnr_y"] for region in ("fg", "bg")} for k, m in rep["methods"].items()}
    for net in ("run", "tiny"):  # partial SR is full SR in the subject and keeps the bokeh bicubic's
        assert abs(y[f"partial:{net}"]["fg"] - y[f"full:{net}"]["fg"]) < 0.05, y
        assert y[f"partial:{net}"]["bg"] > y["bicubic"]["bg"] - 1.0, y  # measured 0.01 and 0.59 dB below
    assert y["full:tiny"]["bg"] < y["bicubic"]["bg"] - 10, y  # where a random net on every pixel is ruin
    assert "| partial:tiny |" in out_md.read_text()
    r = CliRunner().invoke(eval_command, [str(tmp_path), "--model", str(tiny_ckpt)])
    assert r.exit_code == 1 and "not a vidsr dataset" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(train_command, ["--data", str(dataset), "--out", str(tmp_path / "x"), "--sampler", "full",
                                           "--loss", "semantic", "--steps", "1", "--patch", "8", "--w-fg", "-1"])
    assert r.exit_code == 1 and "w_fg, w_bg >= 0" in r.output

