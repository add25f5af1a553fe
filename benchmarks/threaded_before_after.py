"""Threaded end to end, the code at two commits taking turns: ``vidsr bench --threaded --backend torch``
run alternately by an older commit (``git archive`` of it on PYTHONPATH) and the working tree, on one
clip; reports partial over full-frame wall time per repetition, CPU per frame and cores used.

    python benchmarks/threaded_before_after.py --base 91ab793 --clip /tmp/lw/dragonfly272.mp4 --rounds 4 \
        --clip /tmp/lw/sample540.mp4 --json benchmarks/results/threaded-before-after-cpu.json

Each round runs both sides once (``--repeat 2`` each: two partial and two full runs after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidsr.bench.report import machine_info, write_json

ROOT = Path(__file__).resolve().parents[1]


def bench(clip: Path, out: Path, pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    code = ("import sys; from vidsr.cli import main; sys.argv = ['vidsr', 'bench', sys.argv[1], '--threaded', "
            "'--backend', 'torch', '--repeat', '2', '--json', sys.argv[2], '-q']; main()")
    subprocess.run([sys.executable, "-c", code, str(clip), str(out)], env=env, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.read_text())


def summary(runs: list[dict]) -> dict:
    ratios = [r for d in runs for r in d["comparisons"]["torch"]["per_run"]]
    out = {"partial_over_full_per_run": [round(x, 3) for x in ratios], "median": round(statistics.median(ratios), 3)}
    for mode in ("partial", "full"):
        ms = [d["results"][f"{mode}/torch"]["median"] for d in runs]
        out[f"{mode}_seconds"] = [round(s, 3) for d in runs for s in d["results"][f"{mode}/torch"]["seconds_runs"]]
        out[f"{mode}_cpu_ms_per_frame"] = round(statistics.median(m["cores_used"] * m["seconds"] * 1000 / m["frames"]
                                                                  for m in ms), 1)
        out[f"{mode}_cores_used"] = round(statistics.median(m["cores_used"] for m in ms), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the older commit")
    ap.add_argument("--clip", action="append", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "threaded-before-after-cpu.json")
    args = ap.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = {"base": args.base, "new": f"working tree at {head}", "load_average_start": os.getloadavg(), "clips": {}}
    with tempfile.TemporaryDirectory(prefix="vidsr-ab-") as tmp:
        base_tree = Path(tmp) / "base"
        base_tree.mkdir()
        archive = subprocess.run(["git", "archive", args.base], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive, check=True)
        for clip in args.clip:
            sides: dict[str, list[dict]] = {"base": [], "new": []}
            for i in range(args.rounds):
                sides["base"].append(bench(clip, Path(tmp) / f"base{i}.json", str(base_tree)))
                sides["new"].append(bench(clip, Path(tmp) / f"new{i}.json", None))
            report["clips"][clip.name] = {k: summary(v) for k, v in sides.items()}
            print(clip.name, {k: v["median"] for k, v in report["clips"][clip.name].items()}, flush=True)
    report |= {"load_average_end": os.getloadavg(), "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(report, args.json)


if __name__ == "__main__":
    main()
