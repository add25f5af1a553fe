"""ONNX export, TensorRT engine cache keys, the [trt] error path, and the CUDA/TensorRT paths (on a GPU)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import make_video, read_video

from vidsr.arch import REGISTRY, describe
from vidsr.backends import TorchBackend, TrtBackend, backend_from_name, create_engine
from vidsr.backends.onnx_cache import check_onnx, export_checked, onnx_bytes
from vidsr.backends.torch_engine import TorchEngine
from vidsr.backends.trt_cache import (
    EngineKey,
    Profile,
    Shape,
    find_engine,
    import_tensorrt,
    list_cache,
    parse_shape,
    pipeline_profile,
)
from vidsr.cli import main
from vidsr.errors import BackendUnavailable, ExportCheckFailed, InputError
from vidsr.export import compare_precision, sample_for_precision
from vidsr.checkpoint import load_checkpoint
from vidsr.tiling import plan_tiles

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

def needs_cuda(test):
    """Marked ``gpu`` (select with ``pytest -m gpu``) and skipped without a CUDA GPU."""
    return pytest.mark.gpu(pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")(test))


def needs_trt(test):
    return pytest.mark.gpu(pytest.mark.skipif(not (HAS_CUDA and HAS_TRT),
                                              reason="needs a CUDA GPU and the [trt] extra (tensorrt)")(test))


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _model(arch: str, scale: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    model = REGISTRY.build(arch, {"scale": scale}).eval()  # every architecture's default size
    return model, describe(model, name=f"t-{arch}")


# ----------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("arch,scale", [(a, 2) for a in REGISTRY.names()] + [("compact", 4)])
def test_onnx_round_trip_for_each_architecture(tmp_path, arch, scale):
    import onnx
    import onnxruntime as ort

    model, desc = _model(arch, scale)
    out = export_checked(model, desc, folder=tmp_path, opset=17, shapes=[(1, 3, 37, 53), (3, 3, 24, 16)])
    assert out.path.is_file() and out.path.parent == tmp_path
    assert out.max_abs_error < 1e-3
    proto = onnx.load(out.path)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    # another batch and size through the same file, against torch
    x = np.random.default_rng(1).random((2, 3, 19, 31), dtype=np.float32)
    y = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert y.shape == (2, 3, 19 * scale, 31 * scale)
    np.testing.assert_allclose(y, ref, atol=1e-3)


def test_onnx_check_fails_above_tolerance_and_nothing_is_cached(tmp_path, monkeypatch):
    model, desc = _model("espcn")
    other, _ = _model("espcn", seed=1)
    with pytest.raises(ExportCheckFailed, match=r"max abs error .* > tolerance 0.001"):
        check_onnx(model, onnx_bytes(other), shapes=[(1, 3, 16, 16)])
    monkeypatch.setattr("vidsr.backends.onnx_cache.onnx_bytes", lambda m, **kw: onnx_bytes(other, **kw))
    with pytest.raises(ExportCheckFailed):
        export_checked(model, desc, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_onnx_prints_error_and_fails_above_tolerance(tmp_path, tiny_ckpt, monkeypatch):
    r = _run("export", "--model", tiny_ckpt, "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert re.search(r"max abs error vs torch \d\.\d\de-\d\d on 1x3x37x53, 1x3x16x16, 8x3x\d+x\d+", r.output)
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    other, _ = _model("compact", seed=3)
    monkeypatch.setattr("vidsr.backends.onnx_cache.onnx_bytes", lambda m, **kw: onnx_bytes(other, **kw))
    r = _run("export", "--model", tiny_ckpt, "-o", tmp_path / "bad")
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [r.output.strip()] and "max abs error" in r.output
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs the [depth] extra")
def test_cli_export_depth_model(tmp_path):
    import copy

    from vidsr.masks.depth import SMALL_CONFIG, build_depth_anything

    cfg = copy.deepcopy(SMALL_CONFIG)  # Depth Anything's layout, shrunk
    cfg["backbone_config"].update(hidden_size=32, num_attention_heads=2, num_hidden_layers=4, image_size=56,
                                  out_indices=[1, 2, 3, 4], out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg.update(neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=8, head_hidden_size=8, reassemble_hidden_size=32)
    build_depth_anything(cfg).save_pretrained(tmp_path / "depth-tiny", safe_serialization=True)
    r = _run("export", "--depth-model", tmp_path / "depth-tiny", "--depth-size", "56x84", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "depth onnx:" in r.output and "56x84" in r.output and "max error vs torch" in r.output
    (path,) = (tmp_path / "out").glob("depth-depth-tiny-56x84-op17-*.onnx")
    from vidsr.masks.depth import OrtDepth

    assert OrtDepth(path=path).fixed == (56, 84)


def test_export_dpt_depth_defaults_to_its_square_training_size(tmp_path):
    pytest.importorskip("transformers")
    from test_depth import TINY_DPT_SWIN
    from vidsr.masks.depth import OrtDepth, build_dpt

    build_dpt(TINY_DPT_SWIN).save_pretrained(tmp_path / "dpt-tiny")
    r = _run("export", "--depth-model", tmp_path / "dpt-tiny", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    (path,) = (tmp_path / "out").glob("depth-dpt-tiny-64x64-op17-*.onnx")
    net = OrtDepth(path=path)
    assert net.fixed == (64, 64) and net.family.name == "dpt"
    r = _run("export", "--depth-model", tmp_path / "dpt-tiny", "--depth-size", "56x84", "-o", tmp_path / "out")
    assert r.exit_code != 0 and "multiple of 32" in r.output


# ----------------------------------------------------------------------------- shapes, profiles, cache keys


def test_parse_shape():
    assert parse_shape("8x96x96") == Shape(8, 96, 96)
    assert parse_shape("8x3x96x80") == Shape(8, 96, 80)
    for bad in ("8x96", "axbxc", "0x16x16", "8x4x16x16"):
        with pytest.raises(InputError):
            parse_shape(bad)
    with pytest.raises(InputError, match="min <= opt <= max"):
        Profile(min=Shape(1, 16, 16), opt=Shape(8, 96, 96), max=Shape(4, 96, 96))


@pytest.mark.parametrize("tile,batch", [(64, 8), (32, 3)])
def test_pipeline_profile_covers_the_pipelines_windows(tile, batch):
    _, desc = _model("compact")
    r = desc.receptive_radius
    profile = pipeline_profile(tile=tile, batch=batch, pad=r)
    big = plan_tiles(1080, 1920, tile=tile, pad=r)
    assert profile.opt == profile.max == Shape(batch, *big.window)
    for h, w in [(48, 64), (17, 200), (1080, 1920)]:
        wh, ww = plan_tiles(h, w, tile=tile, pad=r).window
        for b in (1, batch):
            assert profile.contains(Shape(b, wh, ww))
    assert not profile.contains(Shape(batch + 1, *big.window))


def _key(**changes) -> EngineKey:
    base = EngineKey(model="compact-x2", scale=2, profile=pipeline_profile(tile=64, batch=8, pad=12),
                     precision="fp16", trt_version="10.3.0", gpu="NVIDIA H100 80GB HBM3 sm90",
                     onnx_sha256="ab" * 32)
    return replace(base, **changes)


def test_engine_name_changes_with_everything_it_depends_on(tmp_path, tiny_ckpt):
    model, desc = load_checkpoint(tiny_ckpt)
    other, _ = _model("compact", seed=5)
    sha_a = export_checked(model, desc, folder=tmp_path / "a").sha256
    sha_b = export_checked(other, desc, folder=tmp_path / "b").sha256
    assert sha_a != sha_b  # different ONNX bytes -> different checksum
    variants = [
        _key(onnx_sha256=sha_a), _key(onnx_sha256=sha_b),
        _key(onnx_sha256=sha_a, precision="fp32"), _key(onnx_sha256=sha_a, precision="bf16"),
        _key(onnx_sha256=sha_a, profile=pipeline_profile(tile=32, batch=8, pad=12)),
        _key(onnx_sha256=sha_a, profile=pipeline_profile(tile=64, batch=4, pad=12)),
        _key(onnx_sha256=sha_a, profile=replace(_key().profile, min=Shape(1, 32, 32))),
        _key(onnx_sha256=sha_a, trt_version="10.4.0"), _key(onnx_sha256=sha_a, gpu="NVIDIA L4 sm89"),
        _key(onnx_sha256=sha_a, model="compact-x2-v2"),
    ]
    names = [k.filename() for k in variants]
    assert len(set(names)) == len(names)
    for n in names:
        assert re.fullmatch(r"[a-z0-9.\-_]+\.engine", n), n
    assert names[0] == _key(onnx_sha256=sha_a).filename()  # deterministic
    assert "fp16" in names[0] and "min1x16x16-opt8x88x88-max8x88x88" in names[0] and "trt10.3.0" in names[0]
    assert "nvidia-h100-80gb-hbm3-sm90" in names[0] and sha_a[:12] in names[0]
    assert EngineKey.from_json(json.loads(json.dumps(variants[4].to_json()))) == variants[4]


def _fake_engine(folder: Path, key: EngineKey) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key.filename()
    path.write_bytes(b"not really an engine")
    (folder / (path.name + ".json")).write_text(json.dumps({"key": key.to_json(), "built_seconds": 1.0}))
    return path


def test_find_engine_accepts_only_a_matching_or_larger_profile(tmp_path):
    key = _key()
    assert find_engine(key, folder=tmp_path) is None
    wide = _key(profile=Profile(min=Shape(1, 8, 8), opt=Shape(8, 88, 88), max=Shape(16, 128, 128)))
    wide_path = _fake_engine(tmp_path, wide)
    assert find_engine(key, folder=tmp_path) == wide_path
    assert find_engine(_key(precision="fp32"), folder=tmp_path) is None
    assert find_engine(_key(onnx_sha256="cd" * 32), folder=tmp_path) is None
    assert find_engine(_key(gpu="other"), folder=tmp_path) is None
    too_big = _key(profile=pipeline_profile(tile=128, batch=8, pad=12))
    assert find_engine(too_big, folder=tmp_path) is None
    exact = _fake_engine(tmp_path, key)
    assert find_engine(key, folder=tmp_path) == exact


def test_export_list_shows_onnx_and_engines(tmp_path, tiny_ckpt):
    assert "nothing cached" in _run("export", "--list", "-o", tmp_path).output
    assert _run("export", "--model", tiny_ckpt, "-o", tmp_path).exit_code == 0
    _fake_engine(tmp_path, _key())
    assert [e.kind for e in list_cache(tmp_path)] == ["engine", "onnx"]
    r = _run("export", "--list", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert "onnx" in r.output and ".onnx" in r.output
    assert _key().filename() in r.output and "fp16 NVIDIA H100 80GB HBM3 sm90 TensorRT 10.3.0" in r.output


# ----------------------------------------------------------------------------- missing TensorRT / GPU


def test_trt_without_tensorrt_is_one_line_naming_the_extra(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(BackendUnavailable, match=r"\[trt\]"):
        import_tensorrt()
    r = _run("export", "--model", tiny_ckpt, "--trt", "-o", tmp_path)
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "[trt]" in r.output and "not installed" in r.output
    assert not tmp_path.exists() or not list(tmp_path.iterdir())  # failed before doing any work
    src = make_video(tmp_path / "in.mp4", frames=2)
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", tiny_ckpt, "--backend", "trt", "-q")
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "[trt]" in r.output
    assert not (tmp_path / "out.mp4").exists()


def test_trt_without_gpu_says_so(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = _run("export", "--model", tiny_ckpt, "--trt", "-o", tmp_path)
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "NVIDIA GPU" in r.output and "[trt]" in r.output
    model, desc = load_checkpoint(tiny_ckpt)
    with pytest.raises(BackendUnavailable, match="CUDA devices only"):
        create_engine(model, desc, TrtBackend(device="cpu"))


class _FakeTrt(types.ModuleType):
    """Just enough of the tensorrt module for build_engine's control flow (no GPU, no real build).

    ``version`` "10..." has TensorRT 10's surface (FP16/BF16 builder flags, an opt-in STRONGLY_TYPED
    network flag), "11..." TensorRT 11's (no precision flags; networks always strongly typed)."""

    def __init__(self, version: str = "10.0.0-fake", *, strongly_typed_flag: bool = True) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: dict = {"flags": [], "cleared": [], "timing_in": [], "profiles": [], "network": []}
        calls = self.calls

        class Logger:
            WARNING = 2

            def __init__(self, level):
                pass

        class IProgressMonitor:
            def __init__(self):
                pass

        class TimingCache:
            def __init__(self, data):
                self.data = data

            def serialize(self):
                return self.data + b"+timing"

        class Config:
            progress_monitor = None

            def set_memory_pool_limit(self, pool, size):
                calls["workspace"] = size

            def set_flag(self, flag):
                calls["flags"].append(flag)

            def clear_flag(self, flag):
                calls["cleared"].append(flag)

            def create_timing_cache(self, data):
                calls["timing_in"].append(bytes(data))
                return TimingCache(bytes(data))

            def set_timing_cache(self, cache, ignore_mismatch):
                self.cache = cache

            def get_timing_cache(self):
                return self.cache

            def add_optimization_profile(self, profile):
                calls["profiles"].append(profile.shapes)

        class OptProfile:
            def set_shape(self, name, lo, opt, hi):
                self.shapes = (name, lo, opt, hi)

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls["network"].append(flags)
                return object()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return OptProfile()

            def build_serialized_network(self, network, config):
                m = config.progress_monitor
                m.phase_start("Building", None, 2)
                m.phase_start("Tactics", "Building", 1)
                assert m.step_complete("Tactics", 0)
                m.phase_finish("Tactics")
                m.step_complete("Building", 0)
                m.step_complete("Building", 1)
                m.phase_finish("Building")
                return b"ENGINE"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                return data.startswith(b"\x08")  # an ONNX ModelProto starts with field 1 (ir_version)

        self.Logger, self.IProgressMonitor, self.Builder, self.OnnxParser = Logger, IProgressMonitor, Builder, OnnxParser
        eleven = version.startswith("11")
        self.BuilderFlag = (types.SimpleNamespace(TF32="TF32") if eleven
                            else types.SimpleNamespace(FP16="FP16", BF16="BF16", TF32="TF32"))
        self.NetworkDefinitionCreationFlag = (types.SimpleNamespace(STRONGLY_TYPED=1) if strongly_typed_flag
                                              else types.SimpleNamespace())
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")


def test_build_engine_control_flow_with_a_fake_tensorrt(tmp_path, tiny_ckpt, monkeypatch):
    """Runs here without TensorRT: profile, flags, timing cache, progress monitor, sidecar, cache hit."""
    from vidsr.backends.onnx_cache import cached_onnx
    from vidsr.backends.trt_cache import build_engine

    fake = _FakeTrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    model, desc = load_checkpoint(tiny_ckpt)
    onnx_path = cached_onnx(model, desc, folder=tmp_path)
    profile = pipeline_profile(tile=64, batch=8, pad=desc.receptive_radius)
    key = _key(onnx_sha256="ef" * 32, profile=profile, trt_version=fake.__version__)
    first = build_engine(onnx_path, key, folder=tmp_path, progress=True)
    assert not first.cached and first.path == tmp_path / key.filename() and first.path.read_bytes() == b"ENGINE"
    # strongly typed (the precision is in the ONNX graph), no precision flags, TF32 off
    assert fake.calls["flags"] == [] and fake.calls["cleared"] == ["TF32"] and fake.calls["network"] == [1 << 1]
    win = 64 + 2 * desc.receptive_radius
    assert fake.calls["profiles"] == [("lr", (1, 3, 16, 16), (8, 3, win, win), (8, 3, win, win))]
    (timing,) = tmp_path.glob("timing_trt10.0.0-fake_*.cache")
    assert fake.calls["timing_in"] == [b""] and timing.read_bytes() == b"+timing"
    meta = json.loads((tmp_path / (key.filename() + ".json")).read_text())
    assert EngineKey.from_json(meta["key"]) == key and meta["onnx"] == onnx_path.name
    assert build_engine(onnx_path, key, folder=tmp_path).cached  # found, not rebuilt
    fp32 = build_engine(onnx_path, replace(key, precision="fp32"), folder=tmp_path, progress=False)
    assert fp32.path != first.path and fake.calls["cleared"] == ["TF32", "TF32"]
    assert fake.calls["timing_in"][-1] == b"+timing"  # the cache on disk was reused
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(ExportCheckFailed, match="cannot parse bad.onnx"):
        build_engine(bad, replace(key, precision="bf16"), folder=tmp_path)


def test_backend_names_and_cpu_path_is_unwrapped(tiny_ckpt):
    b = backend_from_name("trt", precision="fp16", tile=32, batch=4)
    assert b == TrtBackend(device="cuda", precision="fp16", tile=32, batch=4)
    assert backend_from_name("torch") == TorchBackend(device="cpu")
    model, desc = load_checkpoint(tiny_ckpt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = create_engine(model, desc, TorchBackend(precision="bf16"))
    assert type(engine) is TorchEngine and engine.label == "torch-cpu-bf16"
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())


def test_bf16_psnr_against_fp32_on_the_sample_clip(tiny_ckpt):
    model, desc = load_checkpoint(tiny_ckpt)
    lr, gt = sample_for_precision(2, frames=2, width=96, height=64)
    ref = create_engine(model, desc, TorchBackend())
    low = create_engine(model, desc, TorchBackend(precision="bf16"))
    results = compare_precision({"bf16": low}, ref, lr, gt)
    assert [r.label for r in results] == ["torch-cpu-fp32", "bf16"]
    assert results[1].psnr_vs_fp32 > 40 and abs(results[1].delta_vs_fp32_db) < 0.5
    assert lr[0].shape == (64, 96, 3) and gt[0].shape == (128, 192, 3)


# ----------------------------------------------------------------------------- on a GPU


@needs_cuda
@pytest.mark.parametrize("precision,atol", [("fp32", 1e-4), ("fp16", 3e-2), ("bf16", 1e-1)])
def test_cuda_graphs_and_overlap_match_eager(tiny_ckpt, precision, atol):
    from vidsr.backends.cuda_overlap import OverlapEngine

    model, desc = load_checkpoint(tiny_ckpt)
    ref = create_engine(model, desc, TorchBackend())  # CPU fp32
    eager = create_engine(model, desc, TorchBackend(device="cuda", precision=precision, cuda_graphs=False,
                                                    overlap=False))
    fast = create_engine(model, desc, TorchBackend(device="cuda", precision=precision))
    assert isinstance(fast, OverlapEngine) and fast.inner._graphs is not None
    rng = np.random.default_rng(0)
    batches = [rng.random((b, 3, 40, 40), dtype=np.float32) for b in (8, 8, 3, 8, 1, 5)]
    for x in batches:
        want = ref.run(x)
        np.testing.assert_allclose(eager.run(x), want, atol=atol)
        np.testing.assert_allclose(fast.run(x), want, atol=atol)
    for x, y in zip(batches, fast.run_many(batches)):
        np.testing.assert_allclose(y, ref.run(x), atol=atol)
    assert 1 <= len(fast.inner._graphs) <= 6


@needs_cuda
def test_upscale_on_cuda_matches_cpu(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=3)
    for dev in ("cpu", "cuda"):
        r = _run("upscale", src, "-o", tmp_path / f"{dev}.mp4", "--model", tiny_ckpt, "--tile", "16",
                 "--device", dev, "-q")
        assert r.exit_code == 0, r.output
    a, b = read_video(tmp_path / "cpu.mp4")[0], read_video(tmp_path / "cuda.mp4")[0]
    assert len(a) == len(b) == 3
    assert max(np.abs(x.astype(int) - y.astype(int)).max() for x, y in zip(a, b)) <= 2


@needs_trt
@pytest.mark.parametrize("precision,atol", [("fp16", 3e-2), ("fp32", 1e-3)])
def test_trt_engine_build_cache_and_run(tmp_path, tiny_ckpt, precision, atol):
    from vidsr.backends.trt_engine import TrtEngine
    from vidsr.export import export_model

    model, desc = load_checkpoint(tiny_ckpt)
    profile = pipeline_profile(tile=16, batch=4, pad=desc.receptive_radius)
    first = export_model(model, desc, trt=True, precision=precision, profile=profile, folder=tmp_path,
                         progress=False)
    assert first.engine is not None and not first.engine.cached and first.engine_max_abs_error < atol
    assert first.engine.path.name == first.engine.key.filename()
    assert any(p.name.startswith("timing_trt") for p in tmp_path.iterdir())
    again = export_model(model, desc, trt=True, precision=precision, profile=profile, folder=tmp_path,
                         progress=False)
    assert again.engine.cached and again.engine.path == first.engine.path
    engine = TrtEngine(engine_path=first.engine.path, descriptor=desc)
    assert engine.profile == profile
    win = profile.max.height  # 16 + 2 * 4 = 24
    # 9 > max batch 4: runs in pieces; 22x22 windows make the pieces start off 256-byte boundaries
    for side in (win, win - 2):
        x = np.random.default_rng(side).random((9, 3, side, side), dtype=np.float32)
        ref = create_engine(model, desc, TorchBackend()).run(x)
        np.testing.assert_allclose(engine.run(x), ref, atol=atol)
    with pytest.raises(InputError, match="outside the TensorRT profile"):
        engine.run(np.zeros((1, 3, win + 1, win), np.float32))


@needs_trt
def test_upscale_with_trt_backend(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=3, audio=True)
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", tiny_ckpt, "--tile", "16",
             "--backend", "trt", "--batch", "4")
    assert r.exit_code == 0, r.output
    assert "engine trt-cuda-fp16+overlap" in r.output
    frames, _, facts = read_video(tmp_path / "out.mp4")
    assert len(frames) == 3 and frames[0].shape == (96, 128, 3) and facts["streams"] == ["video", "audio"]
    assert any(e.kind == "engine" for e in list_cache())
    # the same pixels as torch fp32 on the CPU, up to fp16 rounding and the encoder
    r = _run("upscale", src, "-o", tmp_path / "cpu.mp4", "--model", tiny_ckpt, "--tile", "16", "--batch", "4", "-q")
    assert r.exit_code == 0, r.output
    ref = read_video(tmp_path / "cpu.mp4")[0]
    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(frames, ref)]
    assert max(d.max() for d in diffs) <= 8 and max(d.mean() for d in diffs) < 0.5


def test_digest_tells_graphs_apart():
    # same parameters, different residual upscale: different graphs must not share a cached export
    from vidsr.backends.onnx_cache import weights_digest

    a = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 2, "residual": "bicubic"})
    b = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 2, "residual": "bilinear"})
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) != weights_digest(b)
    c = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 2, "residual": "bicubic"})
    c.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(c)
