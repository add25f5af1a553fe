from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from media import make_video
from vidsr.bench.config import STAGES, BenchConfig
from vidsr.bench.run import run_bench
from vidsr.masks.synthetic import DiscEstimator
from vidsr.metrics import psnr, ssim
from vidsr.cli import main
from vidsr.platform import ISA_FLAGS


def test_bench_cli_reports_every_stage_and_config(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=4, width=192, height=128)
    gt = make_video(tmp_path / "gt.mp4", frames=4, width=384, height=256)
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", str(src), "--gt", str(gt), "--tile", "16", "--frames", "3", "--warmup", "1", "--repeat", "2", "--model",
                                  str(tiny_ckpt), "--backend", "torch", "--backend", "ort", "--backend", "trt",
                                  "--json", str(out), "--md", str(tmp_path / "b.md"), "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    names = [x["name"] for x in report["results"]]
    assert names == ["bicubic", "partial/torch", "full/torch", "partial/ort", "full/ort", "partial/trt", "full/trt"]
    for x in report["results"]:
        if x["name"].endswith("trt"):
            assert x["status"] == "unavailable" and x["reason"]
            continue
        assert set(x["stages_median_ms"]) == set(STAGES)
        assert abs(x["stage_sum_ms_per_frame"] - x["wall_ms_per_frame"]) <= 0.1 * x["wall_ms_per_frame"], x
        assert x["fps"] > 0 and x["peak_rss_mb"] > 0
    part = next(x for x in report["results"] if x["name"] == "partial/torch")
    full = next(x for x in report["results"] if x["name"] == "full/torch")
    assert 0 < part["sr_pixel_fraction"] < 1 and full["sr_pixel_fraction"] == 1.0
    assert part["mask_passes"] == 2  # 3 frames, --mask-every 2
    # with a ground truth: quality per config, FG and BG split
    q = {x["name"]: x["quality"] for x in report["results"] if "quality" in x}
    # partial SR is full SR in the subject and the plain upscale in the bokeh (but for the feathered
    # ramp: measured 0.05 dB); ORT computes what torch does
    assert q["partial/torch"]["psnr_fg"] == pytest.approx(q["full/torch"]["psnr_fg"], abs=0.01)
    assert q["partial/torch"]["psnr_bg"] == pytest.approx(q["bicubic"]["psnr_bg"], abs=0.2)
    assert q["full/torch"]["psnr_bg"] < q["partial/torch"]["psnr_bg"] - 0.3  # the random net is no SR
    for key in ("psnr_full", "psnr_fg", "psnr_bg", "ssim_fg"):
        assert q["partial/ort"][key] == pytest.approx(q["partial/torch"][key], abs=0.01), key
    assert report["comparisons"]["torch"]["ideal_speedup"] > 1
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch"]
    assert set(report["machine"]["isa"]) <= set(ISA_FLAGS) and report["machine"]["cpu"]
    md = (tmp_path / "b.md").read_text()
    assert "unavailable: " in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    for header, rule in zip(rows, rows[1:]):
        if set(rule) <= set("|-"):  # every table's rule row has as many cells as its header
            assert rule.count("|") == header.count("|"), (header, rule)
    for line in rows:
        if "unavailable: " in line:
            assert line.count("|") == rows[0].count("|"), line


def test_bench_refuses_bad_options_before_it_runs(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=2, width=64, height=48)
    small = make_video(tmp_path / "gt.mp4", frames=2, width=64, height=48)
    for args, error in ((["--backend", "bogus"], "Invalid value for --backend: 'bogus'"),
                        (["--plot", str(tmp_path / "p.txt")], "write a .png, .svg, .pdf or .jpg"),
                        (["--gt", str(small)], "--gt is 64x48, but the upscaled input is 128x96")):
        r = CliRunner().invoke(main, ["bench", str(src), "--model", str(tiny_ckpt), "--frames", "1", "--repeat", "1",
                                      "-q", *args])
        assert r.exit_code != 0 and error in r.output, r.output


def test_fg_sweep_on_the_sample_clip(tiny_ckpt):
    # one 960x540 frame: the 1920x1080 quality metrics of each configuration are most of the cost
    cfg = BenchConfig(model=str(tiny_ckpt), backends=("torch",), frames=1, warmup=0, repeat=1,
                      sweep_fg=(0.1, 1.0))
    report = run_bench(None, config=cfg)
    fr = [s["sr_pixel_fraction"] for s in report["sweep"]]
    assert fr[0] < 0.5 and fr[1] == 1.0
    assert report["input"] == "sample" and report["input_size"] == [960, 540]
    bicubic = report["results"][0]
    assert bicubic["quality"]["psnr_full"] > 25  # sample clip's own 2x ground truth


def test_repetitions_after_the_first_take_turns(tmp_path, tiny_ckpt, monkeypatch):
    from vidsr.bench import run as bench

    calls = []
    real = bench.ConfigRun.repetition

    def spy(self, rep):
        calls.append((self.res.name, rep))
        real(self, rep)

    monkeypatch.setattr(bench.ConfigRun, "repetition", spy)
    src = make_video(tmp_path / "in.mp4", frames=3, width=96, height=64)
    cfg = BenchConfig(model=str(tiny_ckpt), backends=("torch",), frames=2, warmup=1, repeat=3, tile=16)
    report = run_bench(src, config=cfg)
    names = ["bicubic", "partial/torch", "full/torch"]
    first = [(n, r) for n in names for r in (0, 1)]
    assert calls == first + [(n, r) for r in (2, 3) for n in names]
    assert all(x["status"] == "ok" and x["fps"] > 0 for x in report["results"])


def test_disc_estimator_fraction():
    img = np.zeros((90, 160, 3), np.uint8)
    for f in (0.1, 0.3, 0.7):
        assert abs(DiscEstimator(f).estimate(img).mean() - f) < 0.02


def test_psnr_ssim_basics():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 250, (32, 32, 3), dtype=np.uint8)
    b = a + 2  # every sample off by 2: MSE 4
    assert psnr(a, a) == float("inf") and psnr(a, b) == pytest.approx(20 * np.log10(255 / 2))
    m = np.zeros((32, 32), bool)
    m[:8] = True
    c = b.copy()
    c[8:] = a[8:] + 5  # only the rows outside the mask get worse
    assert psnr(a, c, m) == pytest.approx(20 * np.log10(255 / 2)) and psnr(a, c, ~m) == pytest.approx(20 * np.log10(51))
    assert np.isnan(psnr(a, c, np.zeros_like(m)))
    assert psnr(a / 255, b / 255, data_range=1.0) == pytest.approx(psnr(a, b))
    y = a[..., 0]
    assert ssim(y, y) == pytest.approx(1.0)
    assert ssim(y, y + 2) > 0.99  # SSIM hardly moves for a small offset of the mean
    assert ssim(y, 249 - y) < 0  # an inverted image is anti-correlated
    assert ssim(y, c[..., 0], m) > ssim(y, c[..., 0], ~m)


@pytest.mark.parametrize("native", [True, False])
def test_bench_times_bf16_by_default_only_where_the_cpu_has_it(tmp_path, tiny_ckpt, monkeypatch, native):
    monkeypatch.setattr("vidsr.platform.native_bf16", lambda: native)
    src = make_video(tmp_path / "in.mp4", frames=2, width=64, height=48)
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", str(src), "--tile", "16", "--frames", "1", "--warmup", "0",
                                  "--repeat", "1", "--model", str(tiny_ckpt), "--json", str(out)])
    assert r.exit_code == 0, r.output
    names = [x["name"] for x in json.loads(out.read_text())["results"]]
    assert ("partial/torch-bf16" in names) == native and "partial/ort" in names and "full/torch" in names
    assert ("torch-bf16 left out" in r.output) != native
