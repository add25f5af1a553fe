"""Latency that ``vidsr upscale --live`` adds to a real-time stream, against the same harness without vidsr.

A sender paces an MPEG-TS stream (a pan across the bundled real photo, ``vidsr sample``: a sharp
dandelion over real bokeh; lomiri-wallpapers-16.04, CC0) over 127.0.0.1 TCP at its frame rate; a
receiver decodes what arrives and notes when each frame comes (:mod:`vidsr.bench.live_harness`).
Baseline: sender -> receiver. vidsr: sender -> ``vidsr upscale tcp://127.0.0.1:P?listen -o - --format
mpegts`` -> receiver (vidsr listens once its model is loaded, so start-up is not counted). Reported per
case: first output frame after the first input frame, per-frame latency p50/p95/max, frames out and
in order, how long after the last input frame the output ended, vidsr's own summary (SR coverage kept,
frames late and dropped) and its per-stage milliseconds; "added" is vidsr's latency minus the baseline's.

Overload cases: x4 (the 4x output costs more to resize, convert and encode, and the x4 model more per
tile), and a heavy x2 network: a random-weight SRVGGNetCompact saved in the Real-ESRGAN key layout,
its width chosen (before the run, on this machine) so that SR of the tiles the mask selects takes about
twice the frame period ("2x overload"; the factor measured is in the JSON).

    python benchmarks/live_latency.py                      # every case, 10 s streams
    python benchmarks/live_latency.py --cases 0 --seconds 4
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from vidsr.bench.live_harness import free_port, latency_stats, receive, tcp_sender, ts_chunks
from vidsr.bench.report import machine_info, write_json


@dataclass(frozen=True)
class Case:
    name: str
    width: int
    height: int
    fps: int
    scale: int
    heavy: bool = False  # the heavy x2 network (2x overload) instead of the default model
    drop_late: bool = False


CASES = [
    Case("640x272@25 x2", 640, 272, 25, 2),
    Case("640x360@25 x2", 640, 360, 25, 2),
    Case("960x540@30 x2", 960, 540, 30, 2),
    Case("640x272@25 x2 heavy net (2x overload)", 640, 272, 25, 2, heavy=True),
    Case("640x360@25 x2 heavy net (2x overload)", 640, 360, 25, 2, heavy=True),
    Case("960x540@30 x2 heavy net (2x overload)", 960, 540, 30, 2, heavy=True),
    Case("640x272@25 x4 (overload)", 640, 272, 25, 4),
    Case("640x360@25 x4 (overload)", 640, 360, 25, 4),
    Case("640x272@25 x2 heavy net --drop-late", 640, 272, 25, 2, heavy=True, drop_late=True),
    Case("640x272@25 x4 --drop-late", 640, 272, 25, 4, drop_late=True),
]
VIDSR = [sys.executable, "-c", "from vidsr.cli import main; main()"]
HEAVY_SIZES = [(8, 1), (8, 2), (16, 2), (16, 4), (24, 4), (32, 4), (32, 8), (48, 8), (64, 8), (64, 16)]
"""(num_feat, num_conv) of the heavy network candidates, cheapest first (16x2 is the size of the default
x2 model, compact-x2-lite: when it already takes more than twice the frame period, the closest is picked
and the factor measured says how heavy the case is)."""
HEAVY_OVERLOAD = 2.0


def sample(tmp: Path, case: Case, seconds: float) -> Path:
    clip = tmp / f"{case.width}x{case.height}-{case.fps}.mp4"
    if not clip.exists():
        subprocess.run([*VIDSR, "sample", str(clip), "--size", f"{case.width}x{case.height}", "--fps", str(case.fps),
                        "--seconds", str(seconds)], check=True, capture_output=True)
    return clip


def sr_seconds(model: Path, clip: Path, frames: int = 8) -> float:
    """Seconds per frame that SR of the mask's tiles takes with ``model`` (no cap), frames 4.. of ``clip``."""
    from collections import defaultdict

    from vidsr.media.reader import probe, read_items
    from vidsr.media.types import Frame
    from vidsr.pipeline.config import UpscaleConfig
    from vidsr.pipeline.run import processor_for

    config = UpscaleConfig(model=str(model))
    images = [f.image for f in read_items(clip, copy_streams=False) if isinstance(f, Frame)][:frames]
    proc = processor_for(probe(clip), config)
    timings: dict[str, float] = defaultdict(float)
    for i, image in enumerate(images):
        if i == 4:
            timings.clear()
        proc.process(image, timings)
    return timings["sr"] / (len(images) - 4)


def heavy_model(tmp: Path, clip: Path, fps: int) -> tuple[Path, dict]:
    """The candidate whose SR of the mask's tiles takes closest to :data:`HEAVY_OVERLOAD` frame periods."""
    import torch

    from vidsr.arch.srvgg import SRVGGNetCompact

    best: tuple[float, Path, dict] | None = None
    for feat, conv in HEAVY_SIZES:
        torch.manual_seed(0)
        path = tmp / f"srvgg-x2-{feat}x{conv}.pth"
        net = SRVGGNetCompact(num_feat=feat, num_conv=conv, upscale=2)
        torch.save({"params": net.state_dict()}, path)  # the Real-ESRGAN layout
        factor = sr_seconds(path, clip) * fps
        info = {"num_feat": feat, "num_conv": conv, "sr_periods_per_frame": round(factor, 2)}
        print(f"  heavy candidate {feat}x{conv}: full-coverage SR = {factor:.2f} frame periods", flush=True)
        if best is None or abs(factor - HEAVY_OVERLOAD) < abs(best[0] - HEAVY_OVERLOAD):
            best = (factor, path, info)
        if factor > HEAVY_OVERLOAD:
            break
    assert best is not None
    return best[1], best[2]


def baseline(chunks: list[bytes], fps: int, decode: bool) -> dict:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        sent: list[float] = []
        tx = threading.Thread(target=tcp_sender, args=(server.getsockname()[1], chunks, sent), kwargs={"fps": fps},
                              daemon=True)
        tx.start()
        conn, _ = server.accept()
        got: list[tuple[float, float]] = []
        with conn, conn.makefile("rb", buffering=0) as f:
            receive(f, got, decode=decode)
        tx.join()
    return latency_stats(sent, got, fps=fps)


def with_vidsr(chunks: list[bytes], fps: int, case: Case, model: Path | None, decode: bool) -> dict:
    port = free_port()
    cmd = [*VIDSR, "upscale", f"tcp://127.0.0.1:{port}?listen", "-o", "-", "--format", "mpegts",
           "--scale", str(case.scale)]
    cmd += ["--model", str(model)] if model is not None else []
    cmd += ["--drop-late"] if case.drop_late else []
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent: list[float] = []
    got: list[tuple[float, float]] = []
    tx = threading.Thread(target=tcp_sender, args=(port, chunks, sent), kwargs={"fps": fps, "timeout": 120},
                          daemon=True)
    tx.start()
    out = open(p.stdout.fileno(), "rb", buffering=0, closefd=False)  # what has arrived, as it arrives
    receive(out, got, decode=decode)
    p.wait(timeout=300)
    tx.join()
    err = p.stderr.read().decode()
    summary = [line for line in err.splitlines() if line.startswith("live") or " frames " in line]
    return latency_stats(sent, got, fps=fps) | {"vidsr_summary": summary[-3:], "returncode": p.returncode}


def _field(summary: list[str], prefix: str, key: str) -> str:
    for line in summary:
        if line.startswith(prefix) and key in line:
            return line.split(key, 1)[1].split(";")[0].split(",")[0].strip()
    return "?"


def table(results: list[dict]) -> str:
    head = ("| case | load | first frame added | p50 added | p95 added | max added | end after input | "
            "SR coverage kept | late | dropped | frames out, in order |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        v, a, s = r["vidsr"], r["added_s"], r["vidsr"]["vidsr_summary"]
        live = next((line for line in s if line.startswith("live:")), "")
        late = live.split(";")[-1].strip() if live else "?"
        name = r["case"] + (f" (SR of the mask's tiles: {r['sr_periods_per_frame']}x the frame period)"
                            if "sr_periods_per_frame" in r else "")
        rows.append(f"| {name} | {r['load_before'][0]:.1f} | {a['first_frame_s']:.2f} s | {a['p50_s']:.2f} s | "
                    f"{a['p95_s']:.2f} s | {a['max_s']:.2f} s | {v.get('end_after_input_s', 0):.2f} s | "
                    f"{_field(s, 'live:', 'SR coverage kept')} | {late.split(',')[0]} | "
                    f"{late.split(',')[-1].strip() if ',' in late else '?'} | "
                    f"{v['frames_out']}/{v['frames_in']}{', in order' if v['in_order'] else ', OUT OF ORDER'} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each stream")
    ap.add_argument("--cases", default=None, help="comma-separated case indices (default: all): "
                    + "; ".join(f"{i} {c.name}" for i, c in enumerate(CASES)))
    ap.add_argument("--receiver", choices=("decode", "demux"), default="decode",
                    help="decode: the receiver decodes each frame (as a player would, on the same CPU); "
                         "demux: it notes each frame's packet as it arrives")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "live-latency.json")
    args = ap.parse_args()
    cases = [CASES[int(i)] for i in args.cases.split(",")] if args.cases else CASES
    results = []
    heavy: dict[tuple[int, int, int], tuple[Path, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            clip = sample(Path(tmp), case, args.seconds)
            model, model_info = None, {"model": "default"}
            if case.heavy:
                key = (case.width, case.height, case.fps)
                if key not in heavy:
                    heavy[key] = heavy_model(Path(tmp), clip, case.fps)
                model, model_info = heavy[key][0], {"model": "heavy srvgg x2 (random weights)", **heavy[key][1]}
            chunks = ts_chunks(clip)
            load = os.getloadavg()
            decode = args.receiver == "decode"
            base = baseline(chunks, case.fps, decode)
            live = with_vidsr(chunks, case.fps, case, model, decode)
            added = {k: live[k] - base[k] for k in ("first_frame_s", "p50_s", "p95_s", "max_s")
                     if live.get(k) is not None}
            row = {"case": case.name, "load_before": load, "load_after": os.getloadavg(), **model_info,
                   "baseline": base, "vidsr": live, "added_s": added}
            print(case.name, {k: round(v, 3) for k, v in added.items()}, live["frames_out"], "/",
                  live["frames_in"], *live["vidsr_summary"], sep="\n  ", flush=True)
            results.append(row)
    report = {"benchmark": "live_latency", "date": date.today().isoformat(), "host": socket.gethostname(),
              "model": "default (compact-x2-lite for x2, compact-x4 for x4) unless the case says heavy",
              "seconds": args.seconds, "receiver": args.receiver,
              "source": "vidsr sample (pan across the bundled lomiri-wallpapers-16.04 photo, CC0)",
              "machine": machine_info(), "results": results}
    write_json(report, args.out)
    print(table(results))
    print(args.out)


if __name__ == "__main__":
    main()
