"""Training package: degradations, patch cache, loop (loss, checkpoint, resume), evaluation, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidsr.arch import Compact
from vidsr.errors import InputError, ModelError
from vidsr.checkpoint import load_checkpoint
from vidsr.cli.train import eval_sr_command, train_command
from vidsr.train.data import PatchConfig, augment, build_patch_cache, list_images, sample_hr
from vidsr.train.degrade import (
    CLEAN,
    DegradeConfig,
    degrade_batch,
    downscale,
    downscale_area,
    downscale_bicubic_aa,
    h264_roundtrip,
    jpeg_roundtrip,
)
from vidsr.metrics import SSIM_RADIUS, psnr, ssim
from vidsr.train.evaluate import EvalImage, evaluate, score, summarize, upscale_bicubic
from vidsr.train.gan import GanConfig
from vidsr.train.loop import CompactSpec, TrainConfig, learning_rate, train


def _photo_like(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth colour field plus sharp-edged shapes and fine texture: (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(40, 215, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    img = base + rng.normal(0, 6, (h, w, 3))
    for _ in range(12):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        x1, y1 = x0 + rng.integers(4, 40), y0 + rng.integers(4, 40)
        img[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[:h, :w]
    img += 30 * np.sin(xx * 0.9 + yy * 0.4)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for i in range(3):
        cv2.imwrite(str(d / f"p{i}.png"), _photo_like(96, 128, i)[..., ::-1])
    (d / "notes.txt").write_text("not an image")
    return d


def _cfg(photo_dir: Path, run_dir: Path, **kw) -> TrainConfig:
    base = dict(data=photo_dir, run_dir=run_dir, scale=2, model=CompactSpec(num_feat=8, num_conv=2), steps=40,
                batch_size=8, patches=PatchConfig(patch_size=32, patches_per_image=16, long_side=(96, 128)),
                lr=3e-3, warmup_steps=5, log_every=10, ckpt_every=10, val_size=16, threads=1)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------- degradations

@pytest.mark.parametrize("kind", ["bicubic_aa", "area"])
@pytest.mark.parametrize("scale", [2, 4])
def test_downscale_shape_dtype_and_constant_preserved(kind: str, scale: int) -> None:
    hr = np.full((2, 32, 48, 3), 77, np.uint8)
    lr = downscale(hr, scale, kind)
    assert lr.shape == (2, 32 // scale, 48 // scale, 3) and lr.dtype == np.uint8
    assert np.all(lr == 77)  # a flat image stays flat (kernels sum to one, no ringing)
    assert downscale(hr[0], scale, kind).shape == (32 // scale, 48 // scale, 3)


def test_downscales_agree_on_smooth_content_and_reject_bad_sizes() -> None:
    hr = _photo_like(64, 64, 0)
    hr = cv2.GaussianBlur(hr, (0, 0), 3)
    a, b = downscale_bicubic_aa(hr, 2).astype(int), downscale_area(hr, 2).astype(int)
    assert np.abs(a - b).mean() < 1.5
    with pytest.raises(ValueError, match="not a multiple of scale"):
        downscale_area(np.zeros((33, 32, 3), np.uint8), 2)


def test_antialiased_bicubic_suppresses_aliasing() -> None:
    # A 1-pixel stripe pattern must average out, not alias into a strong pattern.
    hr = np.zeros((32, 32, 3), np.uint8)
    hr[:, ::2] = 255
    lr = downscale_bicubic_aa(hr, 2).astype(int)[:, 2:-2]  # away from the clamped borders
    assert np.all(np.abs(lr - 127.5) <= 1)


def test_jpeg_and_h264_round_trips_are_close_but_lossy() -> None:
    img = _photo_like(64, 64, 1)
    j95, j60 = jpeg_roundtrip(img, 95), jpeg_roundtrip(img, 60)
    assert j95.shape == img.shape and j95.dtype == np.uint8
    err95, err60 = np.abs(j95.astype(int) - img).mean(), np.abs(j60.astype(int) - img).mean()
    assert 0 < err95 < err60 < 20
    frames = np.stack([_photo_like(32, 48, s) for s in range(3)])
    out = h264_roundtrip(frames, 20)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert 0 < np.abs(out.astype(int) - frames).mean() < 15
    with pytest.raises(ValueError, match="even"):
        h264_roundtrip(np.zeros((1, 31, 32, 3), np.uint8), 20)


def test_degrade_batch_clean_area_is_exact_and_mix_is_seeded() -> None:
    hr = np.stack([_photo_like(32, 32, s) for s in range(4)])
    rng = np.random.default_rng(0)
    only_area = DegradeConfig(p_area=1.0, p_blur=0.0, p_jpeg=0.0, p_h264=0.0)
    assert np.array_equal(degrade_batch(hr, scale=2, cfg=only_area, rng=rng), downscale_area(hr, 2))
    heavy = DegradeConfig(p_blur=1.0, p_jpeg=1.0, p_h264=1.0)
    a = degrade_batch(hr, scale=2, cfg=heavy, rng=np.random.default_rng(5))
    b = degrade_batch(hr, scale=2, cfg=heavy, rng=np.random.default_rng(5))
    assert a.shape == (4, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    clean = degrade_batch(hr, scale=2, cfg=CLEAN, rng=np.random.default_rng(5))
    assert not np.array_equal(a, clean)
    with pytest.raises(ValueError, match="p_jpeg"):
        DegradeConfig(p_jpeg=1.5)


# ---------------------------------------------------------------- data

def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data folder not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path)


def test_patch_cache_shape_determinism_and_augment(photo_dir: Path) -> None:
    paths = list_images(photo_dir)
    assert [p.name for p in paths] == ["p0.png", "p1.png", "p2.png"]
    cfg = PatchConfig(patch_size=32, patches_per_image=10, rescales_per_image=2, long_side=(96, 128))
    a = build_patch_cache(paths, cfg=cfg, rng=np.random.default_rng(1))
    b = build_patch_cache(paths, cfg=cfg, rng=np.random.default_rng(1))
    assert a.shape == (30, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    aug = augment(a, np.random.default_rng(0))
    # Dihedral transforms only move pixels around.
    assert all(np.array_equal(np.sort(x, axis=None), np.sort(y, axis=None)) for x, y in zip(a, aug))
    assert sample_hr(a, batch_size=5, rng=np.random.default_rng(0)).shape == (5, 32, 32, 3)


# ---------------------------------------------------------------- loop

def test_learning_rate_schedules(tmp_path: Path) -> None:
    cos = _cfg(tmp_path, tmp_path / "r", steps=100, warmup_steps=10, lr=1e-3, lr_min=1e-5)
    assert learning_rate(0, cos) == pytest.approx(1e-4)
    assert learning_rate(10, cos) == pytest.approx(1e-3, rel=0.01)
    assert learning_rate(100, cos) == pytest.approx(1e-5)
    step = _cfg(tmp_path, tmp_path / "r", steps=100, warmup_steps=0, schedule="step", lr=1e-3)
    assert [learning_rate(s, step) for s in (0, 50, 75, 95)] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])


def test_training_reduces_loss_and_writes_run_folder(photo_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(photo_dir, tmp_path / "run", steps=60)
    result = train(cfg)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [0, 10, 20, 30, 40, 50, 60]
    assert lines[-1]["val_l1"] < lines[0]["val_l1"]
    assert lines[-1]["val_l1"] < lines[-1]["val_bicubic_l1"]  # learned something bicubic cannot
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["steps"] == 60 and summary["data"]["count"] == 3
    model, desc = load_checkpoint(result.model_path)
    assert desc.arch == "compact" and desc.scale == 2
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x))
    meta = torch.load(result.model_path, weights_only=True)["meta"]
    assert meta["steps"] == 60 and meta["data"]["files"] == ["p0.png", "p1.png", "p2.png"]


def test_interrupted_then_resumed_run_matches_uninterrupted(photo_dir: Path, tmp_path: Path) -> None:
    straight = train(_cfg(photo_dir, tmp_path / "a", steps=30))

    def stop_at_15(step: int, loss: float) -> None:
        if step == 15:
            raise KeyboardInterrupt

    cfg_b = _cfg(photo_dir, tmp_path / "b", steps=30)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b, on_step=stop_at_15)
    assert torch.load(tmp_path / "b" / "state.pt", weights_only=True)["step"] == 15
    with pytest.raises(InputError, match="already holds a training state"):
        train(cfg_b)
    with pytest.raises(InputError, match="config differs in lr"):
        train(_cfg(photo_dir, tmp_path / "b", steps=30, lr=1e-2), resume=True)
    resumed = train(replace(cfg_b, threads=2), resume=True)  # thread count may change on resume
    assert resumed.steps == 30
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    with pytest.raises(InputError, match="nothing to resume"):
        train(_cfg(photo_dir, tmp_path / "c"), resume=True)


# ---------------------------------------------------------------- evaluation

def test_metrics_match_references() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((40, 50, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert psnr(a, a, data_range=1.0) == float("inf")
    assert psnr(a, b, data_range=1.0) == pytest.approx(-10 * np.log10(np.mean((a - b) ** 2)))
    assert ssim(a, a, data_range=1.0, border=SSIM_RADIUS) == pytest.approx(1.0)
    metrics = pytest.importorskip("skimage.metrics")
    ref = metrics.structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False)
    assert ssim(a, b, data_range=1.0, border=SSIM_RADIUS) == pytest.approx(ref, abs=1e-6)


def test_evaluate_bicubic_equivalent_model_scores_like_bicubic() -> None:
    model = Compact(scale=2, num_feat=4, num_conv=1, residual="bicubic")
    for p in model.parameters():
        torch.nn.init.zeros_(p)  # net output 0 -> pure bicubic residual path
    images = [EvalImage(name=f"im{i}", source="synthetic", hr=_photo_like(41, 50, i)) for i in range(2)]
    records = evaluate(model, images, scale=2)
    assert [(r.degradation, r.image) for r in records] == [
        ("bicubic_aa", "im0"), ("bicubic_aa", "im1"), ("area", "im0"), ("area", "im1")]
    for r in records:
        assert r.model == r.bicubic
        assert 15 < r.bicubic.psnr_y < 50 and 0 < r.bicubic.ssim_rgb < 1
    mean = summarize(records)["mean"]
    assert mean["bicubic_aa"]["gain_psnr_y"] == 0 and mean["area"]["images"] == 2
    hr = images[0].hr[:40]
    assert score(upscale_bicubic(downscale_area(hr, 2), 2), hr, shave=2).psnr_y > 15


# ---------------------------------------------------------------- CLI

def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(train_command, ["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"Error: data folder not found: {tmp_path / 'nope'}"]
    res = runner.invoke(eval_sr_command, ["--model", str(tmp_path / "missing.pt"), "--no-skimage"])
    assert res.exit_code == 1 and "weights file not found" in res.output


def test_cli_train_then_eval(photo_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = CliRunner().invoke(train_command, [
        "--data", str(photo_dir), "--out", str(run), "--steps", "5", "--batch-size", "4", "--patch", "16",
        "--patches-per-image", "4", "--long-side", "96", "128", "--num-feat", "4", "--num-conv", "1",
        "--threads", "1", "--no-eval-skimage", "--eval-folder", str(photo_dir), "--eval-long-side", "64"])
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "metrics.json").read_text())
    assert set(summary["eval"]["mean"]) == {"bicubic_aa", "area"}
    res = CliRunner().invoke(eval_sr_command, ["--model", str(run / "model.pt"), "--no-skimage",
                                               "--folder", str(photo_dir), "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    assert "| area | p2 |" in res.output
    assert len(json.loads((tmp_path / "e.json").read_text())["per_image"]) == 6


# ---------------------------------------------------------------- adversarial training

def test_patch_discriminator_shapes_and_spectral_norm() -> None:
    from vidsr.train.gan import PatchDiscriminator

    for spectral in (True, False):
        d = PatchDiscriminator(num_feat=8, num_down=3, spectral=spectral)
        assert d(torch.rand(2, 3, 48, 64)).shape == (2, 1, 6, 8)  # one logit per 8x8 patch
        keys = list(d.state_dict())
        assert any("parametrizations.weight.original" in k for k in keys) == spectral
    with pytest.raises(InputError, match="GAN weight"):
        GanConfig(weight=-1.0)


def test_gan_training_logs_the_discriminator_and_resumes_exactly(photo_dir: Path, tmp_path: Path) -> None:
    gan = GanConfig(weight=0.5, num_feat=8, num_down=2, lr=1e-3)
    plain = train(_cfg(photo_dir, tmp_path / "plain", steps=20))
    straight = train(_cfg(photo_dir, tmp_path / "a", steps=20, gan=gan))
    lines = [json.loads(s) for s in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 < ln["d_loss"] < 2.0 for ln in lines[1:])
    assert straight.summary["gan_weight"] == 0.5
    # the adversarial term changed what was learned (same seed, same batches)
    assert any(not torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(),
                                                     straight.model.state_dict().values()))

    def stop_at_10(step: int, loss: float) -> None:
        if step == 10:
            raise KeyboardInterrupt

    cfg_b = _cfg(photo_dir, tmp_path / "b", steps=20, gan=gan)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b, on_step=stop_at_10)
    assert "discriminator" in torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    resumed = train(cfg_b, resume=True)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_realesrgan_layout_round_trip(tmp_path: Path) -> None:
    from vidsr.checkpoint import resolve_model, save_realesrgan

    torch.manual_seed(0)
    net = Compact(scale=2, num_feat=8, num_conv=2, residual="nearest").eval()
    save_realesrgan(net, tmp_path / "net.pth")
    payload = torch.load(tmp_path / "net.pth", weights_only=True)
    assert list(payload) == ["params_ema"] and "body.6.weight" in payload["params_ema"]
    model, desc = resolve_model(str(tmp_path / "net.pth"), scale=None)
    assert desc.arch == "compact" and desc.scale == 2 and desc.config["residual"] == "nearest"
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
    with pytest.raises(ModelError, match="nearest residual"):
        save_realesrgan(Compact(scale=2, num_feat=8, num_conv=2), tmp_path / "bicubic.pth")
    res = CliRunner().invoke(train_command, ["--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                             "--realesrgan-out", str(tmp_path / "x.pth")])
    assert res.exit_code == 1 and "needs --arch compact --residual nearest" in res.output


def _sharp_and_blurred_patches(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` detailed patches of the bundled sample photo (its in-focus subject) and their copies
    shrunk x0.5 (antialiased bicubic) and enlarged x2 again: (n, 3, size, size) each."""
    import torch.nn.functional as F

    from vidsr.media.sample import sample_photo

    photo = sample_photo()
    photo = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, photo.shape[0] - size, 40 * n)
    xs = rng.integers(0, photo.shape[1] - size, 40 * n)
    score = np.array([detail[y:y + size, x:x + size].mean() for y, x in zip(ys, xs)])
    pick = np.argsort(score)[-n:]  # the bokeh is as blurry as the copies: keep the subject
    sharp = np.stack([photo[ys[i]:ys[i] + size, xs[i]:xs[i] + size] for i in pick])
    sharp_t = torch.from_numpy(sharp.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    small = F.interpolate(sharp_t, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    return sharp_t, F.interpolate(small, scale_factor=2.0, mode="bicubic", align_corners=False).clamp(0, 1)


def test_discriminator_learns_sharp_photos_from_their_bicubic_copies() -> None:
    # The detail input is what lets a discriminator learn this within a CPU budget (ln 2 = 0.693
    # is chance); held-out patches must then be told apart, not just the training ones.
    from vidsr.train.gan import Adversary

    torch.manual_seed(0)
    sharp, blurred = _sharp_and_blurred_patches(48, 32, seed=1)
    adv = Adversary(GanConfig(weight=1.0, num_feat=8, num_down=2, lr=1e-3))
    losses = []
    for step in range(20):
        i = torch.arange(8) + 8 * (step % 4)  # patches 0..31 train, 32..47 are held out
        losses.append(adv.step(blurred[i], sharp[i]))
    assert np.mean(losses[:5]) > 0.6 and np.mean(losses[-5:]) < 0.45
    with torch.no_grad():
        real, fake = adv.net(sharp[32:]).mean((1, 2, 3)), adv.net(blurred[32:]).mean((1, 2, 3))
    assert (real > fake).float().mean() == 1.0
    assert (real > 0).float().mean() >= 0.8 and (fake < 0).float().mean() >= 0.8
