"""The SR pool's threads at their nice offset (``vidsr.platform.SR_WORKER_NICE``) against the process's
own priority (0), taking turns in one process: the threaded ``upscale_video`` pipeline on one clip.

    python benchmarks/sr_priority.py --clip /tmp/lw/dragonfly272_long.mp4 --rounds 4 \
        --json benchmarks/results/sr-priority-longpan-cpu.json [--full-frame]

Per run (``turns.one_run``): wall time, CPU ms a frame, cores used, the SR workers' busy share and idle
seconds, the SR loop's seconds blocked on the encoder, the encoder's busy share and the host's steal.
"""

from __future__ import annotations

import vidsr.platform as platform
from turns import arguments, take_turns
from vidsr.bench.report import write_json


def main() -> None:
    args = arguments(__doc__, rounds=4, json_name="sr-priority-cpu.json")
    shipped = platform.SR_WORKER_NICE
    report = take_turns(args, platform, "SR_WORKER_NICE", {"nice_0": 0, f"nice_{shipped}": shipped})
    print(f"nice {shipped} / nice 0 wall per pair", report["wall_pairs"], "median", report["wall_ratio_median"])
    write_json(report, args.json)


if __name__ == "__main__":
    main()
