"""The bench report as Markdown tables, a plot and JSON; ``machine_info`` and ``write_json`` are what
every benchmark (``vidsr bench`` and ``benchmarks/*.py``) writes its JSON with."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from vidsr.bench.config import STAGES
from vidsr.extras import require
from vidsr.platform import cpu_info


def machine_info(**extra: object) -> dict:
    """CPU, cores, GPU and library versions for a JSON report, then ``extra`` (a script's own fields)."""
    import av
    import cv2
    import onnxruntime
    import torch

    cpu = cpu_info()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu["name"], "cpu_family_model": [cpu["family"], cpu["model"]], "isa": cpu["isa"],
        "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
        "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "av": av.__version__, "opencv": cv2.__version__, "numpy": np.__version__, "platform": platform.platform(),
    } | extra


def write_json(report: dict, path: Path) -> Path:
    """Write ``report`` as indented JSON (numpy numbers as floats), making its folder; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return path


def to_markdown(report: dict) -> str:
    """Human-readable tables of a report."""
    w, h = report["input_size"]
    lines = [f"# vidsr bench: {report['input']} {w}x{h} -> {w * report['scale']}x{h * report['scale']}, "
             f"{report['frames']} frames", "",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
             f"GPU: {report['machine']['gpu'] or 'none'}, torch {report['machine']['torch']}", "",
             "| config | fps | wall ms/frame | " + " | ".join(f"{s} ms" for s in STAGES)
             + " | SR px | FG | mask passes | peak RSS MB |",
             "|---" * (7 + len(STAGES)) + "|"]
    for r in report["results"]:
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | unavailable: {r['reason']} |" + " |" * (5 + len(STAGES)))
            continue
        st = " | ".join(f"{r['stages_median_ms'][s]:.1f}" for s in STAGES)
        lines.append(f"| {r['name']} | {r['fps']:.2f} | {r['wall_ms_per_frame']:.1f} | {st} | "
                     f"{r['sr_pixel_fraction']:.0%} | {r['fg_fraction']:.0%} | {r['mask_passes']} | "
                     f"{r['peak_rss_mb']:.0f} |")
    if report["comparisons"]:
        lines += ["", "| backend | SR speedup partial vs full | end-to-end speedup | ideal 1/fg | FG |",
                  "|---|---|---|---|---|"]
        for b, c in report["comparisons"].items():
            if b == "backend_vs_torch":
                continue
            lines.append(f"| {b} | {c['sr_speedup']:.2f}x | {c['end_to_end_speedup']:.2f}x | "
                         f"{c['ideal_speedup']:.2f}x | {c['fg_fraction']:.0%} |")
        for b, ratio in report["comparisons"].get("backend_vs_torch", {}).items():
            lines.append(f"\nSR stage, {b} vs torch fp32 (full frame): {ratio:.2f}x")
    q = [r for r in report["results"] if r.get("quality")]
    if q:
        lines += ["", "| config | PSNR full | PSNR fg | PSNR bg | SSIM full | SSIM fg | SSIM bg | mask flicker |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in q:
            qq = r["quality"]
            lines.append(f"| {r['name']} | {qq.get('psnr_full', float('nan')):.2f} | "
                         f"{qq.get('psnr_fg', float('nan')):.2f} | {qq.get('psnr_bg', float('nan')):.2f} | "
                         f"{qq.get('ssim_full', float('nan')):.4f} | {qq.get('ssim_fg', float('nan')):.4f} | "
                         f"{qq.get('ssim_bg', float('nan')):.4f} | "
                         f"{r['mask_flicker'] if r['mask_flicker'] is not None else float('nan'):.4f} |")
    if report["sweep"]:
        lines += ["", "| target FG | SR px | fps | wall ms/frame | SR ms |", "|---|---|---|---|---|"]
        for s in report["sweep"]:
            lines.append(f"| {s['target_fg']:.0%} | {s['sr_pixel_fraction']:.0%} | {s['fps']:.2f} | "
                         f"{s['wall_ms_per_frame']:.1f} | {s['sr_ms']:.1f} |")
        cross = report["crossover_fg"]
        lines.append("")
        lines.append(f"Partial SR stops paying off at FG ≈ {cross:.0%}." if cross is not None
                     else "Partial SR stayed faster than full-frame SR at every swept FG fraction.")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path:
    """Stacked stage times per configuration, and fps vs FG fraction (needs matplotlib)."""
    matplotlib = require("matplotlib", extra="bench", what="--plot needs matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in report["results"] if r["status"] == "ok"]
    fig, axes = plt.subplots(1, 2 if report["sweep"] else 1, figsize=(13 if report["sweep"] else 8, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    bottom = np.zeros(len(ok))
    for st in STAGES:
        vals = np.array([r["stages_median_ms"][st] for r in ok])
        ax.bar([r["name"] for r in ok], vals, bottom=bottom, label=st)
        bottom += vals
    ax.set_ylabel("ms / frame (median)")
    ax.set_title("stage times")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    if report["sweep"]:
        ax2 = axes[0][1]
        xs = [s["sr_pixel_fraction"] for s in report["sweep"]]
        ax2.plot(xs, [s["fps"] for s in report["sweep"]], "o-", label="partial SR")
        full = next((r for r in ok if r["mode"] == "full"), None)
        if full:
            ax2.axhline(full["fps"], color="r", ls="--", label="full-frame SR")
        ax2.set_xlabel("fraction of pixels through SR")
        ax2.set_ylabel("fps")
        ax2.set_title("fps vs foreground")
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["machine_info", "plot", "to_markdown", "write_json"]
