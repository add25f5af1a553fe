"""A texture-hallucinating network on the foreground only (issue 24, item 6), shown with ``vidsr compare``.

No GAN weights can be downloaded here, so the network is a stand-in: a Real-ESRGAN SRVGGNetCompact
(x2, 16 features, 4 convolutions, PReLU) with random weights, saved in Real-ESRGAN's published key
layout (``params_ema`` / ``body.N``) and loaded the way a user's .pth is. Like a GAN generator it adds
high-frequency detail that is not in the input, everywhere it runs: on a sharp subject that reads as
texture, on smooth bokeh as noise. What is measured is what partial SR does about it: against the
ground truth (the sample photo's crops), the bokeh of partial SR stays within 0.3 dB of plain bicubic
while the network on the full frame loses several dB there; and inside the mask's core partial SR
equals the network's full-frame output.

Run: python benchmarks/gan_foreground.py [--out benchmarks/results/gan_foreground.json]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from vidsr.bench.report import machine_info, write_json

NOISE = 0.015  # gain of the last convolution: sets how much "texture" the stand-in invents


def gan_like_state(*, num_feat: int = 16, num_conv: int = 4, scale: int = 2, seed: int = 0) -> dict:
    """Real-ESRGAN SRVGGNetCompact keys (``body.N.weight/bias``, PReLU slopes) with random weights."""
    g = torch.Generator().manual_seed(seed)
    state, i, c_in = {}, 0, 3
    for _ in range(num_conv + 1):
        state[f"body.{i}.weight"] = torch.randn(num_feat, c_in, 3, 3, generator=g) * math.sqrt(2 / (9 * c_in))
        state[f"body.{i}.bias"] = torch.zeros(num_feat)
        state[f"body.{i + 1}.weight"] = torch.full((num_feat,), 0.1)
        i, c_in = i + 2, num_feat
    out = 3 * scale * scale
    state[f"body.{i}.weight"] = torch.randn(out, num_feat, 3, 3, generator=g) * NOISE / math.sqrt(9 * num_feat)
    state[f"body.{i}.bias"] = torch.zeros(out)
    return state


def bokeh_psnr(frames: dict[str, list[np.ndarray]], gt: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    """PSNR (RGB) over the pixels every frame's mask leaves at 0, per method."""
    from vidsr.metrics import psnr

    out = {}
    for method, imgs in frames.items():
        sel = np.concatenate([img[m] for img, m in zip(imgs, masks)])
        ref = np.concatenate([g[m] for g, m in zip(gt, masks)])
        out[method] = round(float(psnr(sel, ref)), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gan_foreground.json")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--frames", type=int, default=6)
    args = ap.parse_args()

    import cv2
    from click.testing import CliRunner

    from vidsr.backends.base import TorchBackend, create_engine
    from vidsr.checkpoint import resolve_model
    from vidsr.cli import main as cli
    from vidsr.composite import upscale_background
    from vidsr.frame import build_processor
    from vidsr.media.sample import SampleSpec, sample_frames, write_sample
    from vidsr.sr import sr_whole

    work = Path(tempfile.mkdtemp(prefix="vidsr-gan-"))
    spec = SampleSpec(width=args.width, height=args.height, fps=10, seconds=args.frames / 10, audio=False)
    clip, gt_clip = write_sample(work / "lr.mp4", spec=spec), write_sample(work / "gt.mp4", spec=spec, ground_truth=True)
    weights = work / "gan-like-x2.pth"
    torch.save({"params_ema": gan_like_state()}, weights)

    # 1. vidsr compare, as a user runs it: the crop sheet's PSNR against the ground truth
    sheet = Path(__file__).parent / "results" / "gan_foreground_sheet.png"
    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["compare", str(clip), "--model", str(weights), "--sheet", str(sheet),
                                   "--gt", str(gt_clip), "--tile", "32"])
    if res.exit_code:
        raise SystemExit(res.output)
    compare_line = res.output.strip().splitlines()[-1]
    compare_s = time.perf_counter() - t0

    # 2. every frame: bokeh PSNR over the whole unmasked area, and partial == full inside the mask's core
    model, desc = resolve_model(str(weights), scale=2)
    engine = create_engine(model, desc, TorchBackend())
    proc = build_processor(engine=engine, height=args.height, width=args.width, tile=32, merge_px=None)
    lr = list(sample_frames(spec))
    gt = list(sample_frames(spec, ground_truth=True))
    renders = {"bicubic": [], "full": [], "partial": []}
    bokeh, core, worst_core = [], 0, 0
    timings = {k: 0.0 for k in ("mask", "sr", "background", "composite")}
    for img in lr:
        res = proc.process(img, timings)
        full = sr_whole(engine, img)
        renders["bicubic"].append(upscale_background(img, scale=2, method="bicubic"))
        renders["full"].append(full)
        renders["partial"].append(res.image)
        alpha = cv2.resize(res.mask.alpha, (args.width * 2, args.height * 2), interpolation=cv2.INTER_LINEAR)
        bokeh.append(alpha == 0)
        inside = alpha >= 1.0
        core += int(inside.sum())
        if inside.any():
            worst_core = max(worst_core, int(np.abs(res.image[inside].astype(int) - full[inside]).max()))
    psnr_bokeh = bokeh_psnr(renders, gt, bokeh)
    report = machine_info(
        date=date.today().isoformat(), benchmark="gan_foreground", model=f"random SRVGGNetCompact x2 "
        f"(16nf, 4nc, last-conv gain {NOISE}), Real-ESRGAN key layout, as a GAN stand-in",
        clip=f"{spec.source}, {args.width}x{args.height} -> x2, {len(lr)} frames; ground truth: the photo's crops",
        mask="focus (default)", bokeh_fraction=round(float(np.mean([b.mean() for b in bokeh])), 3),
        bokeh_psnr_db=psnr_bokeh,
        partial_minus_bicubic_db=round(psnr_bokeh["partial"] - psnr_bokeh["bicubic"], 3),
        full_minus_bicubic_db=round(psnr_bokeh["full"] - psnr_bokeh["bicubic"], 3),
        mask_core_pixels=core, mask_core_max_diff_partial_vs_full=worst_core,
        compare_command="vidsr compare LR --model gan-like-x2.pth --sheet SHEET --gt GT --tile 32",
        compare_output=compare_line, compare_seconds=round(compare_s, 1), sheet=sheet.name,
    )
    write_json(report, args.out)
    print(f"bokeh PSNR vs ground truth: {psnr_bokeh}; partial - bicubic {report['partial_minus_bicubic_db']} dB, "
          f"full - bicubic {report['full_minus_bicubic_db']} dB; mask core |partial - full| <= {worst_core}")
    print(compare_line)


if __name__ == "__main__":
    main()
