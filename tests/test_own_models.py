"""Bring your own model (issue 24): community files and ONNX SR models through --model, size multiples,
output scales below the network's, the measured-radius cache, `vidsr models inspect`, and the CLI's errors."""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from media import make_video, read_video
from test_community_arch import random_state, rrdb_shapes, span_shapes, srvgg_shapes
from vidsr.arch import Compact
from vidsr.backends.base import TorchBackend, create_engine
from vidsr.backends.onnx_cache import onnx_bytes
from vidsr.checkpoint import load_model, resolve_model
from vidsr.cli import main
from vidsr.errors import ModelError
from vidsr.sr import sr_tiles, sr_whole, stitch
from vidsr.tiling import plan_tiles

H, W = 29, 43  # odd sizes: RRDB x2's windows and frame need padding to its multiple of 2


def _image(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)


def _tiled_minus_whole(model, desc, image: np.ndarray, *, tile: int = 12) -> int:
    engine = create_engine(model, desc, TorchBackend())
    whole = sr_whole(engine, image)
    plan = plan_tiles(*image.shape[:2], tile=tile, pad=desc.receptive_radius)
    tiled = stitch(sr_tiles(engine, image, list(plan.tiles), batch=4), height=image.shape[0], width=image.shape[1],
                   scale=desc.scale)
    assert whole.shape == tiled.shape == (image.shape[0] * desc.scale, image.shape[1] * desc.scale, 3)
    return int(np.abs(whole.astype(int) - tiled).max())


@pytest.mark.parametrize("name,shapes,suffix,arch,multiple", [
    ("rrdb-x2", rrdb_shapes(nf=8, nb=1, gc=4, scale=2), ".pth", "rrdb", 2),
    ("span-train-x2", span_shapes(c=8, upscale=2), ".ckpt", "span", 1),
    ("srvgg-x2", srvgg_shapes(num_feat=8, num_conv=2, upscale=2), ".safetensors", "compact", 1),
])
def test_community_files_through_model_tiled_equals_whole(tmp_path, name, shapes, suffix, arch, multiple):
    state = random_state(shapes, seed=3)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model, desc = resolve_model(str(path), scale=None)
    assert (desc.arch, desc.scale, desc.size_multiple, desc.name) == (arch, 2, multiple, name)
    if arch == "span":  # runs reparameterised
        assert model.reparameterized and desc.config["reparameterized"]
    assert _tiled_minus_whole(model, desc, _image()) <= 1


def test_scale_below_the_networks_resizes_its_output_down(tmp_path):
    path = tmp_path / "srvgg-x4.pth"
    torch.save({"params_ema": random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=4), seed=1)}, path)
    net, net_desc = resolve_model(str(path), scale=None)
    model, desc = resolve_model(str(path), scale=2)
    assert desc.scale == 2 and desc.receptive_radius > net_desc.receptive_radius
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        want = F.interpolate(net(x), size=(20, 28), mode="bicubic", antialias=True, align_corners=False)
        torch.testing.assert_close(model(x), want)
    assert _tiled_minus_whole(model, desc, _image(1)) <= 1
    with pytest.raises(ModelError, match="upscales x4, but --scale 8 was asked"):
        resolve_model(str(path), scale=8)
    x1 = tmp_path / "x1.pth"
    torch.save(random_state(rrdb_shapes(nf=8, nb=1, gc=4, scale=1)), x1)
    with pytest.raises(ModelError, match="upscales x1; vidsr upscales x2-x4"):
        resolve_model(str(x1), scale=None)


def _export_fixed(model: torch.nn.Module, path: Path, hw: tuple[int, int], *, half: bool) -> None:
    m = copy.deepcopy(model).half() if half else model
    x = torch.rand(1, 3, *hw, dtype=torch.half if half else torch.float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"])


@pytest.mark.parametrize("kind", ["dynamic", "fixed", "fixed-fp16"])
def test_onnx_models(tmp_path, kind):
    torch.manual_seed(0)
    net = Compact(scale=2, num_feat=8, num_conv=2).eval()
    path = tmp_path / f"{kind}.onnx"
    if kind == "dynamic":
        path.write_bytes(onnx_bytes(net))
    else:
        _export_fixed(net, path, (20, 24), half=kind.endswith("fp16"))
    model, desc = resolve_model(str(path), scale=None)
    assert desc.arch == "onnx" and desc.scale == 2 and desc.receptive_radius == net.receptive_radius
    assert desc.fixed_shape == (None if kind == "dynamic" else (20, 24))
    image = _image(2)
    ref = sr_whole(create_engine(net, resolve_model.__globals__["describe"](net, name="t"), TorchBackend()), image)
    got = sr_whole(create_engine(model, desc, TorchBackend()), image)
    assert np.abs(got.astype(int) - ref).max() <= (2 if kind.endswith("fp16") else 1)
    assert _tiled_minus_whole(model, desc, image) <= 1


def test_measured_radius_is_cached_by_file_contents(tmp_path, monkeypatch):
    path = tmp_path / "rrdb.pth"
    torch.save(random_state(rrdb_shapes(nf=8, nb=1, gc=4)), path)
    _, first = load_model(path)

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr("vidsr.arch.detect.measure_radius", no_measuring)
    _, again = load_model(path)
    assert again.receptive_radius == first.receptive_radius
    path.write_bytes(path.read_bytes())  # same contents under another time stamp: still cached
    assert load_model(path)[1].receptive_radius == first.receptive_radius


def test_models_inspect(tmp_path):
    path = tmp_path / "rrdb-x2.pth"
    torch.save({"params_ema": random_state(rrdb_shapes(nf=8, nb=1, gc=4, scale=2))}, path)
    r = CliRunner().invoke(main, ["models", "inspect", str(path)])
    assert r.exit_code == 0, r.output
    assert "architecture      rrdb" in r.output and "scale             x2" in r.output
    assert "measured" in r.output and "k per output pixel" in r.output and "ms per output megapixel" in r.output


def test_upscale_with_an_rrdb_x2_file(tmp_path):
    path = tmp_path / "RealESRGAN_x2-like.pth"
    torch.save({"params_ema": random_state(rrdb_shapes(nf=8, nb=1, gc=4, scale=2))}, path)
    src = make_video(tmp_path / "in.mp4", frames=3, width=62, height=46)
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(path),
                                  "--tile", "16", "-q"])
    assert r.exit_code == 0, r.output
    frames, _, _ = read_video(tmp_path / "out.mp4")
    assert len(frames) == 3 and frames[0].shape == (92, 124, 3)


def _bad_files(tmp_path: Path) -> list[tuple[str, Path, list[str], str]]:
    unknown = tmp_path / "unknown.pth"
    torch.save({"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)}, unknown)
    good = tmp_path / "x2.pth"
    torch.save(random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=2)), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    not_state = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_state)
    mismatch = tmp_path / "mismatch.pth"
    state = random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=2))
    state["body.2.weight"] = torch.zeros(8, 5, 3, 3)
    torch.save(state, mismatch)
    onnx_junk = tmp_path / "junk.onnx"
    onnx_junk.write_bytes(b"not an onnx graph")
    return [
        ("unknown", unknown, [], "unknown architecture (keys: encoder.weight, decoder.bias); supported: SRVGG"),
        ("scale", good, ["--scale", "4"], "upscales x2, but --scale 4 was asked"),
        ("truncated", truncated, [], "truncated"),
        ("not a state dict", not_state, [], "holds no state dict"),
        ("mismatch", mismatch, [], "weights do not match the detected SRVGGNetCompact"),
        ("onnx", onnx_junk, [], "cannot load ONNX model junk.onnx"),
    ]


def test_bad_model_files_give_one_line_and_no_output(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=2)
    for label, path, extra, message in _bad_files(tmp_path):
        out = tmp_path / f"{label.replace(' ', '_')}.mp4"
        r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(out), "--model", str(path), *extra])
        assert r.exit_code != 0, label
        assert message in r.output and r.output.strip().count("\n") == 0, (label, r.output)
        assert "Traceback" not in r.output
        assert not out.exists() and not list(tmp_path.glob(".*vidsr-*")), label


@pytest.mark.parametrize("net", ["trained", "stand-in"])
def test_gan_network_on_the_foreground_only(tmp_path, net):
    # benchmarks/gan_foreground.py's networks (our GAN fine-tune, and the random stand-in; both SRVGG in
    # Real-ESRGAN's keys) on a frame of the sample photo: the bokeh stays bicubic's, the full frame loses
    # there, the subject is the network's, with more detail than bicubic
    spec_path = Path(__file__).resolve().parent.parent / "benchmarks" / "gan_foreground.py"
    spec = importlib.util.spec_from_file_location("gan_foreground", spec_path)
    gan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gan)
    import cv2

    from vidsr.composite import upscale_background
    from vidsr.frame import build_processor
    from vidsr.media.sample import SampleSpec, sample_frames

    path = gan.TRAINED
    if net == "stand-in":
        path = tmp_path / "gan-like.pth"
        torch.save({"params_ema": gan.gan_like_state()}, path)
    model, desc = resolve_model(str(path), scale=2)
    engine = create_engine(model, desc, TorchBackend())
    sample = SampleSpec(width=320, height=180, fps=10, seconds=0.1, audio=False)
    lr, gt = next(sample_frames(sample)), next(sample_frames(sample, ground_truth=True))
    proc = build_processor(engine=engine, height=180, width=320, tile=32, merge_px=None)
    res = proc.process(lr, {k: 0.0 for k in ("mask", "sr", "background", "composite")})
    full = sr_whole(engine, lr)
    alpha = cv2.resize(res.mask.alpha, (640, 360), interpolation=cv2.INTER_LINEAR)
    bokeh, core = alpha == 0, alpha >= 1.0  # alpha: float in [0, 1]
    assert 0.2 < bokeh.mean() < 0.9 and core.mean() > 0.05
    db = gan.bokeh_psnr({"bicubic": [upscale_background(lr, scale=2, method="bicubic")], "full": [full],
                         "partial": [res.image]}, [gt], [bokeh])
    assert abs(db["partial"] - db["bicubic"]) <= 0.3
    bicubic = upscale_background(lr, scale=2, method="bicubic")
    if net == "stand-in":
        assert db["full"] < db["bicubic"] - 3
    else:  # the fine-tune's invented detail is weak (benchmarks/results/realesr-gan-compact-x2.md), but it
        # changes the bokeh where partial SR does not
        assert np.abs(full[bokeh].astype(int) - bicubic[bokeh]).max() >= 8
        assert np.abs(res.image[bokeh].astype(int) - bicubic[bokeh]).max() == 0
    assert np.abs(res.image[core].astype(int) - full[core]).max() <= 1
    assert gan.detail([res.image], [core]) > 1.5 * gan.detail([bicubic], [core])


@pytest.mark.parametrize("net_scale,scale", [(4, 2), (4, 3), (3, 2), (2, 1)])
def test_outscale_resize_is_torchs_antialiased_bicubic(net_scale, scale):
    from fractions import Fraction

    from vidsr.arch.outscale import resize_down

    for h, w in ((5, 7), (1, 2), (12, 9)):
        y = torch.rand(2, 3, h * net_scale, w * net_scale)
        want = F.interpolate(y, size=(h * scale, w * scale), mode="bicubic", antialias=True, align_corners=False)
        torch.testing.assert_close(resize_down(y, Fraction(net_scale, scale)), want, atol=1e-5, rtol=0)


def test_ort_backend_matches_torch_for_outscale_and_rrdb(tmp_path, monkeypatch):
    """--backend ort through the pipeline (lossless PNG frames) with an x4 network at --scale 2 and an
    RRDB x2 (pixel-unshuffle input): the same pixels as torch but for rounding."""
    monkeypatch.setenv("VIDSR_EXPORT_DIR", str(tmp_path / "export"))
    x4 = tmp_path / "srvgg-x4.pth"
    torch.save({"params_ema": random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=4), seed=1)}, x4)
    rrdb = tmp_path / "rrdb-x2.pth"
    torch.save({"params_ema": random_state(rrdb_shapes(nf=16, nb=2, gc=8, scale=2), seed=2)}, rrdb)
    src = make_video(tmp_path / "in.mp4", frames=2, width=46, height=30)
    for path, extra in ((x4, ["--scale", "2"]), (rrdb, [])):
        frames = {}
        for backend in ("ort", "torch"):
            out = tmp_path / f"{path.stem}-{backend}"
            out.mkdir()
            r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(out / "%03d.png"), "--model", str(path),
                                          *extra, "--tile", "16", "--backend", backend, "-q"])
            assert r.exit_code == 0, r.output
            frames[backend] = [cv2_read(p) for p in sorted(out.glob("*.png"))]
        assert len(frames["ort"]) == len(frames["torch"]) == 2
        for a, b in zip(frames["ort"], frames["torch"]):
            assert a.shape == (60, 92, 3) and np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01, path.name


def cv2_read(path: Path) -> np.ndarray:
    import cv2

    return cv2.imread(str(path)).astype(int)


@pytest.mark.parametrize("scale", [2, 4])
def test_rrdb_export_runs_on_onnx_runtime_like_torch(tmp_path, scale):
    """`vidsr export` of a Real-ESRGAN RRDBNet file (x2: pixel-unshuffle input), then the .onnx back
    through --model: ONNX Runtime gives torch's output."""
    import onnxruntime as ort

    path = tmp_path / f"rrdb-x{scale}.pth"
    torch.save({"params_ema": random_state(rrdb_shapes(nf=16, nb=2, gc=8, scale=scale), seed=scale)}, path)
    r = CliRunner().invoke(main, ["export", "--model", str(path), "-o", str(tmp_path / "export"),
                                  "--tile", "16", "--batch", "1"])  # small check shapes
    assert r.exit_code == 0, r.output
    (onnx_path,) = (tmp_path / "export").glob("*.onnx")
    model, desc = resolve_model(str(path), scale=None)
    x = np.random.default_rng(0).random((1, 3, 18, 26), dtype=np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        np.testing.assert_allclose(sess.run(None, {"lr": x})[0], model(torch.from_numpy(x)).numpy(), atol=1e-4)
    if scale == 4:
        return
    # x2 pixel-unshuffles its input: the ONNX file's size multiple is probed (odd sizes fail in ORT)
    onnx_model, onnx_desc = resolve_model(str(onnx_path), scale=None)
    assert (onnx_desc.arch, onnx_desc.scale, onnx_desc.size_multiple) == ("onnx", 2, 2)
    image = _image(3)[:18, :26]
    ref = sr_whole(create_engine(model, desc, TorchBackend()), image)
    assert np.abs(sr_whole(create_engine(onnx_model, onnx_desc, TorchBackend()), image).astype(int) - ref).max() <= 1


def test_models_inspect_counts_onnx_flops_from_the_graph(tmp_path):
    import json

    from vidsr.backends.onnx_model import onnx_macs
    from vidsr.bench.model_info import conv_flops

    pth = tmp_path / "rrdb-x2.pth"
    torch.save({"params_ema": random_state(rrdb_shapes(nf=8, nb=1, gc=4, scale=2))}, pth)
    model, _ = resolve_model(str(pth), scale=None)
    onnx_path = tmp_path / "rrdb-x2.onnx"
    onnx_path.write_bytes(onnx_bytes(model))
    assert 2 * onnx_macs(onnx_path, height=20, width=24) == conv_flops(model, torch.rand(1, 3, 20, 24))
    # an x4 network at x2: the resize's reshapes defeat shape inference; counted through one ORT run
    x4 = tmp_path / "srvgg-x4.pth"
    torch.save(random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=4)), x4)
    outscaled, _ = resolve_model(str(x4), scale=2)
    (tmp_path / "x4-at-2.onnx").write_bytes(onnx_bytes(outscaled))
    assert onnx_macs(tmp_path / "x4-at-2.onnx", height=20, width=24) > onnx_macs(onnx_path, height=20, width=24) / 100
    r = CliRunner().invoke(main, ["models", "inspect", str(onnx_path), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    h, w = info["probe"]
    assert info["flops_per_px"] == pytest.approx(2 * onnx_macs(onnx_path, height=h, width=w) / (h * w * 4))
