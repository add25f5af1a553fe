"""Full-frame ncnn (the runtime of realesrgan-ncnn-vulkan and Video2X) vs vidsr's partial SR, same network.

The network is Real-ESRGAN's SRVGGNetCompact in one of two published shapes (``--net``):
realesr-animevideov3 (64 features, 16 convolutions, PReLU; run at x2) or realesr-general-x4v3
(64 features, 32 convolutions, PReLU, x4), with random weights (no third-party weights are downloaded), saved as
a Real-ESRGAN .pth for vidsr and written as an ncnn .param/.bin (the layer list realesrgan-ncnn-vulkan's
converted models use: Convolution, PReLU, PixelShuffle, nearest Interp, BinaryOp add). The two
runtimes' outputs are checked against each other first. Times, in one run, on the sample clip:
ncnn's SR alone per frame (no decode or encode: a lower bound for a full ncnn run) and vidsr
``upscale_video`` end to end (decode, focus mask, partial SR, composite, encode) per frame.

Run: python benchmarks/ncnn_vs_partial.py [--net animevideov3|general-x4v3] [--out FILE.json]
(default out: benchmarks/results/ncnn_vs_partial.json for animevideov3, ncnn_vs_partial-general-x4v3.json
for general-x4v3). ``--frames 1 --reps 1 --width 160 --height 90`` is a quick check that it runs.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from vidsr.bench.report import machine_info, write_json

NETS = {"animevideov3": (64, 16, 2), "general-x4v3": (64, 32, 4)}  # (features, convolutions, scale)


def srvgg_state(*, num_feat: int, num_conv: int, scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random SRVGGNetCompact weights in Real-ESRGAN's key layout."""
    from vidsr.arch.srvgg import SRVGGNetCompact

    torch.manual_seed(seed)
    net = SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=scale)
    with torch.no_grad():
        net.body[-1].weight.mul_(0.1)
    return net.state_dict()


def write_ncnn(state: dict[str, torch.Tensor], scale: int, param: Path, bin_: Path) -> None:
    """The SRVGG network as ncnn .param/.bin: conv/PReLU body, PixelShuffle, nearest Interp of the input, add."""
    convs = sorted(int(k.split(".")[1]) for k, v in state.items() if k.endswith(".weight") and v.ndim == 4)
    layers, data = [], bytearray()
    layers.append("Input data 0 1 data")
    layers.append("Split split0 1 2 data data0 data1")
    prev = "data0"
    for i in convs:
        w, b = state[f"body.{i}.weight"], state[f"body.{i}.bias"]
        top = f"c{i}"
        layers.append(f"Convolution conv{i} 1 1 {prev} {top} 0={w.shape[0]} 1=3 4=1 5=1 6={w.numel()}")
        data += struct.pack("<I", 0) + w.float().numpy().tobytes() + b.float().numpy().tobytes()
        prev = top
        if f"body.{i + 1}.weight" in state:
            a = state[f"body.{i + 1}.weight"]
            layers.append(f"PReLU prelu{i + 1} 1 1 {prev} p{i + 1} 0={a.numel()}")
            data += a.float().numpy().tobytes()
            prev = f"p{i + 1}"
    layers.append(f"PixelShuffle shuffle 1 1 {prev} ps 0={scale}")
    layers.append(f"Interp up 1 1 data1 up 0=1 1={float(scale)} 2={float(scale)}")
    layers.append("BinaryOp add 2 1 ps up output 0=0")
    blobs = len({t for ln in layers for t in ln.split()[4:] if "=" not in t})
    param.write_text("7767517\n" + f"{len(layers)} {blobs}\n" + "\n".join(layers) + "\n")
    bin_.write_bytes(bytes(data))


def ncnn_run(net, image: np.ndarray, threads: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H*s, W*s, 3) float in [0, 1] through the ncnn net."""
    import ncnn

    x = np.ascontiguousarray(image.transpose(2, 0, 1).astype(np.float32) / 255.0)
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(x))
    _, out = ex.extract("output")
    return np.array(out).transpose(1, 2, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=sorted(NETS), default="animevideov3")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--reps", type=int, default=2, help="alternating repeats of the three timings")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = Path(__file__).parent / "results"
    out = args.out or results / ("ncnn_vs_partial.json" if args.net == "animevideov3"
                                 else f"ncnn_vs_partial-{args.net}.json")
    import ncnn

    from vidsr.backends.base import TorchBackend, create_engine
    from vidsr.checkpoint import resolve_model
    from vidsr.media.sample import SampleSpec, sample_frames, write_sample
    from vidsr.pipeline.config import UpscaleConfig
    from vidsr.pipeline.run import upscale_video
    from vidsr.sr import sr_whole

    work = Path(tempfile.mkdtemp(prefix="vidsr-ncnn-"))
    nf, nc, scale = NETS[args.net]
    state = srvgg_state(num_feat=nf, num_conv=nc, scale=scale)
    pth = work / f"{args.net}-shape-x{scale}.pth"
    torch.save({"params": state}, pth)
    write_ncnn(state, scale, work / "net.param", work / "net.bin")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = args.threads
    if net.load_param(str(work / "net.param")) or net.load_model(str(work / "net.bin")):
        raise SystemExit("ncnn could not load the .param/.bin")
    spec = SampleSpec(width=args.width, height=args.height, fps=10, seconds=args.frames / 10, audio=False)
    lr = list(sample_frames(spec))
    model, desc = resolve_model(str(pth), scale=None)
    ref = sr_whole(create_engine(model, desc, TorchBackend()), lr[0])
    got = np.clip(ncnn_run(net, lr[0], args.threads) * 255 + 0.5, 0, 255).astype(np.uint8)
    diff = int(np.abs(got.astype(int) - ref).max())
    if diff > 2:
        raise SystemExit(f"ncnn and vidsr disagree by {diff} levels: the .param/.bin is not the same network")
    clip = write_sample(work / "lr.mp4", spec=spec)
    rows = []
    for rep in range(args.reps):  # alternate, so load changes hit all three
        t0 = time.perf_counter()
        for img in lr:
            ncnn_run(net, img, args.threads)
        ncnn_s = (time.perf_counter() - t0) / len(lr)
        t0 = time.perf_counter()
        upscale_video(clip, work / f"partial{rep}.mp4", config=UpscaleConfig(scale=scale, model=str(pth)))
        partial_s = (time.perf_counter() - t0) / len(lr)
        t0 = time.perf_counter()
        upscale_video(clip, work / f"full{rep}.mp4", config=UpscaleConfig(scale=scale, model=str(pth), full_frame=True))
        full_s = (time.perf_counter() - t0) / len(lr)
        rows.append({"ncnn_full_frame_sr_only_s": round(ncnn_s, 3), "vidsr_partial_end_to_end_s": round(partial_s, 3),
                     "vidsr_full_frame_end_to_end_s": round(full_s, 3),
                     "partial_over_ncnn": round(partial_s / ncnn_s, 3), "load_average": os.getloadavg()[0]})
        print(rows[-1])
    report = machine_info(
        date=date.today().isoformat(), benchmark="ncnn_vs_partial", ncnn=ncnn.__version__,
        model=f"SRVGGNetCompact {nf}nf {nc}nc x{scale} (realesr-{args.net} shape), random weights",
        clip=f"{spec.source}, {args.width}x{args.height}, {len(lr)} frames", threads=args.threads,
        ncnn_vs_vidsr_max_diff_levels=diff, seconds_per_frame=rows,
    )
    write_json(report, out)


if __name__ == "__main__":
    main()
