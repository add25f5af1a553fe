"""Frames queued in the SR pool beyond its workers (``vidsr.pipeline.stages.PIPELINE_AHEAD``): 0 and 1
taking turns in one process, the threaded ``upscale_video`` pipeline on one clip.

    python benchmarks/pipeline_ahead.py --clip /tmp/lw/dragonfly272_long.mp4 --rounds 8 \
        --json benchmarks/results/pipeline-ahead-cpu.json [--full-frame]

Per run: wall time of the pipeline (the report's seconds), CPU ms a frame and cores used (the process's
CPU time over the run's wall time, model loading included), the SR workers' busy share of the run, and
the host's steal time (``/proc/stat``: CPU the hypervisor gave to other machines). A worker that waits
for the oldest frame to leave is not busy, so the busy share measures head-of-line blocking whatever
the host's load; wall time is compared per pair of runs.
"""

from __future__ import annotations

import vidsr.pipeline.stages as stages
from turns import arguments, take_turns
from vidsr.bench.report import write_json


def main() -> None:
    args = arguments(__doc__, rounds=8, json_name="pipeline-ahead-cpu.json")
    report = take_turns(args, stages, "PIPELINE_AHEAD", {"ahead_0": 0, "ahead_1": 1})
    runs = report["runs"]
    report["busy_gain_per_pair"] = [round(b["sr_workers_busy"] - a["sr_workers_busy"], 3)
                                    for a, b in zip(runs["ahead_0"], runs["ahead_1"])]
    print("ahead 1 / ahead 0 wall per pair", report["wall_pairs"], "median", report["wall_ratio_median"])
    print("SR workers busy, ahead 1 minus ahead 0, per pair", report["busy_gain_per_pair"])
    write_json(report, args.json)


if __name__ == "__main__":
    main()
