"""A texture-inventing network on the foreground only (issue 24, item 6), shown with ``vidsr compare``.

The network is vidsr's own GAN fine-tune of compact-x2 in Real-ESRGAN's SRVGGNetCompact shape (x2,
16 features, 4 convolutions, PReLU, nearest residual), trained here with ``vidsr train --gan-weight``
(benchmarks/results/realesr-gan-compact-x2.md says how, on what photos, under which licences) and
saved in Real-ESRGAN's published key layout (``params_ema`` / ``body.N``): it is loaded the way a
user's .pth is. ``--stand-in`` adds the earlier stand-in, the same shape with random weights whose
last convolution adds noise-like "texture" everywhere (kept because it shows the bokeh effect at a
strength the small CPU fine-tune does not reach). The shipped, L1-trained compact-x2 is measured too, as
the reference the GAN fine-tune started from.

Measured, per network, against the ground truth (the sample photo's crops): the bokeh (mask 0) PSNR
of bicubic, of partial SR and of the network on the full frame; inside the mask's core, partial SR
against the network's full-frame output (max difference); and the detail the network adds on the
subject: mean |Laplacian| inside the mask core of bicubic, the network and the ground truth (and the
same in the bokeh, where a GAN network's invented texture shows).

Run: python benchmarks/gan_foreground.py [--stand-in] [--out benchmarks/results/gan_foreground.json]
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

NOISE = 0.015  # stand-in: gain of the last convolution, sets how much "texture" it invents
RESULTS = Path(__file__).parent / "results"
TRAINED = RESULTS / "realesr-gan-compact-x2.pth"


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


def detail(imgs: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """Mean |Laplacian| of the luma over the masked pixels: how much fine detail there is."""
    import cv2

    vals = [np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F))[m]
            for img, m in zip(imgs, masks)]
    return round(float(np.concatenate(vals).mean()), 3)


def measure(weights: Path, *, label: str, sheet: Path, width: int, height: int, frames: int) -> dict:
    """One network's numbers (see the module docstring) and its ``vidsr compare`` sheet."""
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
    spec = SampleSpec(width=width, height=height, fps=10, seconds=frames / 10, audio=False)
    clip, gt_clip = write_sample(work / "lr.mp4", spec=spec), write_sample(work / "gt.mp4", spec=spec, ground_truth=True)

    # 1. vidsr compare, as a user runs it: the crop sheet's PSNR against the ground truth
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
    proc = build_processor(engine=engine, height=height, width=width, tile=32, merge_px=None)
    lr = list(sample_frames(spec))
    gt = list(sample_frames(spec, ground_truth=True))
    renders = {"bicubic": [], "full": [], "partial": []}
    bokeh, cores, core, worst_core = [], [], 0, 0
    timings = {k: 0.0 for k in ("mask", "sr", "background", "composite")}
    for img in lr:
        res = proc.process(img, timings)
        full = sr_whole(engine, img)
        renders["bicubic"].append(upscale_background(img, scale=2, method="bicubic"))
        renders["full"].append(full)
        renders["partial"].append(res.image)
        alpha = cv2.resize(res.mask.alpha, (width * 2, height * 2), interpolation=cv2.INTER_LINEAR)
        bokeh.append(alpha == 0)
        inside = alpha >= 1.0
        cores.append(inside)
        core += int(inside.sum())
        if inside.any():
            worst_core = max(worst_core, int(np.abs(res.image[inside].astype(int) - full[inside]).max()))
    psnr_bokeh = bokeh_psnr(renders, gt, bokeh)
    return dict(
        network=label, weights=weights.name, bokeh_fraction=round(float(np.mean([b.mean() for b in bokeh])), 3),
        bokeh_psnr_db=psnr_bokeh,
        partial_minus_bicubic_db=round(psnr_bokeh["partial"] - psnr_bokeh["bicubic"], 3),
        full_minus_bicubic_db=round(psnr_bokeh["full"] - psnr_bokeh["bicubic"], 3),
        subject_psnr_db=bokeh_psnr(renders, gt, cores),
        bokeh_detail_abs_laplacian={**{k: detail(v, bokeh) for k, v in renders.items()},
                                    "ground_truth": detail(gt, bokeh)},
        subject_detail_abs_laplacian={"bicubic": detail(renders["bicubic"], cores),
                                      "network": detail(renders["partial"], cores), "ground_truth": detail(gt, cores)},
        mask_core_pixels=core, mask_core_max_diff_partial_vs_full=worst_core,
        compare_command=f"vidsr compare LR --model {weights.name} --sheet {sheet.name} --gt GT --tile 32",
        compare_output=compare_line, compare_seconds=round(compare_s, 1), sheet=sheet.name,
        clip=f"{spec.source}, {width}x{height} -> x2, {len(lr)} frames; ground truth: the photo's crops",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS / "gan_foreground.json")
    ap.add_argument("--model", type=Path, default=TRAINED, help="a Real-ESRGAN-layout .pth (default: ours)")
    ap.add_argument("--stand-in", action="store_true", help="also measure the random stand-in")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--frames", type=int, default=6)
    args = ap.parse_args()

    size = dict(width=args.width, height=args.height, frames=args.frames)
    rows = [measure(args.model, label="GAN fine-tune of compact-x2 (SRVGGNetCompact x2, 16nf, 4nc)",
                    sheet=args.out.parent / "gan_foreground_sheet.png", **size)]
    from vidsr.weights import models_dir

    rows.append(measure(models_dir() / "compact-x2.pt", label="shipped compact-x2 (L1-trained; the fine-tune's start)",
                        sheet=Path(tempfile.mkdtemp(prefix="vidsr-gan-")) / "l1_sheet.png", **size))
    if args.stand_in:
        weights = Path(tempfile.mkdtemp(prefix="vidsr-gan-")) / "gan-like-x2.pth"
        torch.save({"params_ema": gan_like_state()}, weights)
        rows.append(measure(weights, label=f"random SRVGGNetCompact x2 (16nf, 4nc, last-conv gain {NOISE}), stand-in",
                            sheet=args.out.parent / "gan_foreground_stand_in_sheet.png", **size))
    report = machine_info(date=date.today().isoformat(), benchmark="gan_foreground", mask="focus (default)",
                          networks=rows)
    write_json(report, args.out)
    for r in rows:
        print(f"{r['network']}: bokeh PSNR vs ground truth {r['bokeh_psnr_db']}; partial - bicubic "
              f"{r['partial_minus_bicubic_db']} dB, full - bicubic {r['full_minus_bicubic_db']} dB; bokeh detail "
              f"{r['bokeh_detail_abs_laplacian']}; mask core "
              f"|partial - full| <= {r['mask_core_max_diff_partial_vs_full']}; subject detail "
              f"{r['subject_detail_abs_laplacian']}")
        print(r["compare_output"])


if __name__ == "__main__":
    main()
