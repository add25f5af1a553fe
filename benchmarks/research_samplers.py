"""The thesis' experiment at small scale: patch sampler x loss, equal budget, scored on FG/BG.

Method (see README, "Research"):
1. A dataset folder from ``vidsr dataset build`` (its ``train`` split trains, its ``test``
   split is scored; sources never cross splits).
2. One run per (sampler, loss) in the grid, all with the same architecture, steps, batch,
   patch size, learning rate schedule, seed and LR degradation (``--thesis-lr``: plain
   antialiased bicubic, as the thesis), optionally fine-tuned from one checkpoint.
3. ``vidsr eval`` on the test split: bicubic, and full-frame and partial SR for the starting
   checkpoint (if any) and every run; PSNR/SSIM on Y and RGB over full frame, FG and BG.

Writes ``OUT/<run>/`` (run folders), ``OUT/eval.json``, ``OUT/eval.md`` and, with ``--results``,
a compact JSON (settings, per-run time, the eval means) for ``benchmarks/results/``.

Run from the repository root, e.g.::

    python benchmarks/research_samplers.py --dataset ds --out runs/research --steps 1000 \\
        --init vidsr/models/compact-x2.pt --results benchmarks/results/research-samplers-finetune.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from vidsr.bench.report import machine_info, write_json
from vidsr.checkpoint import load_checkpoint
from vidsr.train.data import PatchConfig
from vidsr.train.loop import CompactSpec, TrainConfig, train
from vidsr.train.losses import LossConfig
from vidsr.train.research_eval import NamedModel, evaluate_dataset, to_markdown
from vidsr.train.samplers import SAMPLERS, THESIS_DEGRADE

LOSSES = {"l1": LossConfig(), "semantic": LossConfig(w_fg=1.0, w_bg=0.1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    ap.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr-patch", type=int, default=32, help="LR patch side (HR = x scale)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--num-feat", type=int, default=16)
    ap.add_argument("--num-conv", type=int, default=4)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--init", type=Path, default=None, help="fine-tune from this checkpoint")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-frames", type=int, default=None, help="score at most this many test frames")
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    runs = {}
    for seed in args.seeds:
        for loss_name in args.losses:
            for sampler in args.samplers:
                name = f"{sampler}-{loss_name}" + (f"-s{seed}" if seed else "")
                run_dir = args.out / name
                if (run_dir / "model.pt").is_file():  # finished before: reuse
                    meta = json.loads((run_dir / "metrics.json").read_text())
                    runs[name] = {"dir": run_dir, "elapsed_s": meta["elapsed_s"], "summary": meta}
                    continue
                cfg = TrainConfig(
                    data=args.dataset, run_dir=run_dir, scale=args.scale,
                    model=CompactSpec(num_feat=args.num_feat, num_conv=args.num_conv), steps=args.steps,
                    batch_size=args.batch_size, patches=PatchConfig(patch_size=args.lr_patch * args.scale),
                    degrade=THESIS_DEGRADE, lr=args.lr, lr_min=args.lr * 0.01, warmup_steps=args.warmup,
                    seed=seed, log_every=max(1, args.steps // 10), ckpt_every=args.steps, threads=args.threads,
                    sampler=sampler, loss=LOSSES[loss_name], init=args.init,
                )
                resume = (run_dir / "state.pt").is_file()
                t0 = time.perf_counter()
                res = train(cfg, resume=resume)
                print(f"{name}: {res.steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
                runs[name] = {"dir": run_dir, "elapsed_s": res.elapsed_s, "summary": res.summary}

    models = []
    if args.init is not None:
        m, d = load_checkpoint(args.init)
        models.append(NamedModel(label=f"start:{args.init.stem}", model=m, descriptor=d))
    for name, r in runs.items():
        m, d = load_checkpoint(Path(r["dir"]) / "model.pt")
        models.append(NamedModel(label=name, model=m, descriptor=d))
    reports = {}
    for mask in ("estimated", "dataset"):
        reports[mask] = evaluate_dataset(args.dataset, models, split="test", partial_mask=mask,
                                         max_frames=args.max_frames)
    (args.out / "eval.json").write_text(json.dumps(reports, indent=1) + "\n")
    md = "\n\n".join(to_markdown(r, title=f"partial-SR mask: {k}") for k, r in reports.items())
    (args.out / "eval.md").write_text(md + "\n")
    print(md)
    if args.results is not None:
        compact = {
            "method": "benchmarks/research_samplers.py; see README 'Research'",
            "machine": machine_info(processor=platform.processor() or platform.machine(), threads=args.threads),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "runs": {n: {"train_s": r["elapsed_s"], "sampler": r["summary"].get("sampler"),
                         "loss": r["summary"].get("loss"), "val_l1": r["summary"].get("val_l1"),
                         "val_bicubic_l1": r["summary"].get("val_bicubic_l1"),
                         "distinct_patches": r["summary"].get("data", {}).get("distinct_patches")}
                     for n, r in runs.items()},
            "eval": {k: {"frames": r["frames"], "split": r["split"], "scale": r["scale"],
                         "degradation": r["degradation"], "partial_mask": r["partial_mask"],
                         "methods": r["methods"]} for k, r in reports.items()},
        }
        write_json(compact, args.results)


if __name__ == "__main__":
    main()
