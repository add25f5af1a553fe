"""The GPU path's CPU-checkable parts (issue 28): TensorRT 10/11 build surfaces through fake modules,
typed ONNX for strongly typed engines, fp32 without TF32, ORT CUDA providers and refusals, 256-byte
alignment of TensorRT addresses, the tiled precision report, --frame-workers on CUDA, the extras.

No GPU, TensorRT or onnxruntime-gpu is needed: those parts are replaced by fakes that record what
vidsr asks of them. About 6 s on 2 cores (mostly three small ONNX exports).
"""

from __future__ import annotations

import sys
import tomllib
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import _FakeTrt, _key

from vidsr.arch import Compact, describe
from vidsr.backends import TorchBackend, create_engine
from vidsr.backends.low_precision import LowPrecision
from vidsr.backends.onnx_cache import cached_onnx
from vidsr.backends.trt_cache import build_engine, engine_onnx, network_flags, pipeline_profile, trt_major
from vidsr.checkpoint import load_checkpoint
from vidsr.errors import BackendUnavailable, InputError

ROOT = Path(__file__).resolve().parent.parent


def _compact(seed: int = 0) -> tuple[Compact, object]:
    torch.manual_seed(seed)
    model = Compact(scale=2, num_feat=8, num_conv=2).eval()
    return model, describe(model, name="t-compact")


# ----------------------------------------------------------------------------- TensorRT 10 and 11


@pytest.mark.parametrize("version,typed_flag,bits", [("10.3.0", True, 1 << 1), ("11.4.0", True, 1 << 1),
                                                      ("11.4.0", False, 0)])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_build_is_strongly_typed_without_precision_flags_on_10_and_11(tmp_path, tiny_ckpt, monkeypatch,
                                                                       version, typed_flag, bits, precision):
    fake = _FakeTrt(version, strongly_typed_flag=typed_flag)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    model, desc = load_checkpoint(tiny_ckpt)
    onnx_path = cached_onnx(model, desc, folder=tmp_path)
    key = _key(precision=precision, trt_version=version, profile=pipeline_profile(tile=16, batch=4, pad=4))
    built = build_engine(onnx_path, key, folder=tmp_path, progress=False)
    assert built.path.read_bytes() == b"ENGINE"
    # TensorRT 11 has no BuilderFlag.FP16/BF16: none is touched on either version; TF32 is off
    assert fake.calls["flags"] == [] and fake.calls["cleared"] == ["TF32"]
    assert fake.calls["network"] == [bits]
    assert fake.calls["profiles"] == [("lr", (1, 3, 16, 16), (4, 3, 24, 24), (4, 3, 24, 24))]


def test_tensorrt_versions_and_surfaces_refused(monkeypatch):
    for version in ("8.6.1", "9.3.0", "12.0.0", "unknown"):
        with pytest.raises(BackendUnavailable, match=r"not supported.*10 or 11.*\[trt\]"):
            trt_major(_FakeTrt(version))
    assert trt_major(_FakeTrt("10.13.3.9")) == 10 and trt_major(_FakeTrt("11.4.0")) == 11
    with pytest.raises(BackendUnavailable, match="no strongly typed networks"):
        network_flags(_FakeTrt("10.0.0", strongly_typed_flag=False))


def test_typed_onnx_carries_the_precision_and_an_fp32_residual(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    model, desc = _compact()
    fp32 = engine_onnx(model, desc, precision="fp32", folder=tmp_path)
    fp16 = engine_onnx(model, desc, precision="fp16", folder=tmp_path)
    bf16 = engine_onnx(model, desc, precision="bf16", folder=tmp_path)
    assert len({fp32, fp16, bf16}) == 3 and fp16.name.endswith("-fp16.onnx") and "-op22-" in bf16.name
    assert engine_onnx(model, desc, precision="fp16", folder=tmp_path) == fp16  # cached
    for path, low in ((fp16, TensorProto.FLOAT16), (bf16, TensorProto.BFLOAT16)):
        proto = onnx.load(path)
        io = [v.type.tensor_type.elem_type for v in (*proto.graph.input, *proto.graph.output)]
        assert io == [TensorProto.FLOAT, TensorProto.FLOAT]  # fp32 in and out
        types_ = {init.name: init.data_type for init in proto.graph.initializer}
        assert {t for n, t in types_.items() if n.startswith("net.body")} == {low}
        consts = {tuple(a.t.dims): a.t.data_type for n in proto.graph.node if n.op_type == "Constant"
                  for a in n.attribute if a.type == onnx.AttributeProto.TENSOR}
        assert consts[(12, 1, 5, 5)] == TensorProto.FLOAT  # the residual upscale's kernel stays fp32
    x = np.random.default_rng(0).random((2, 3, 20, 28), dtype=np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    y = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]
    assert y.dtype == np.float32 and np.abs(y - ref).max() < 1e-2


def test_low_precision_does_not_round_the_residual():
    model, _ = _compact()
    with torch.no_grad():
        model.body[-1].weight.zero_()
        model.body[-1].bias.zero_()  # the body adds nothing: the output is the residual upscale alone
    x = torch.rand(1, 3, 16, 16) * 0.9 + 0.05
    with torch.inference_mode():
        want = model(x)
        got = LowPrecision(model, dtype=torch.bfloat16)(x)
        rounded = model(x.to(torch.bfloat16).float())  # what casting the input first gives
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
    assert (rounded - want).abs().max() > 1e-4
    assert model.body[0].weight.dtype == torch.float32  # the caller's module is left alone


def test_strict_fp32_turns_tf32_off():
    from vidsr.backends.torch_engine import strict_fp32

    before = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    try:
        strict_fp32()
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cudnn.rnn.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = before


# ----------------------------------------------------------------------------- TensorRT addresses


class _FakeContext:
    """An IExecutionContext that records the addresses bound to it."""

    def __init__(self, *, accept_shape=True, accept_address=True, run_ok=True, scale=2):
        self.accept_shape, self.accept_address, self.run_ok, self.scale = accept_shape, accept_address, run_ok, scale
        self.addresses: dict[str, int] = {}
        self.streams: list[int] = []
        self.shape = None

    def set_input_shape(self, name, shape):
        self.shape = shape
        return self.accept_shape

    def get_tensor_shape(self, name):
        b, c, h, w = self.shape
        return (b, c, h * self.scale, w * self.scale)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return self.accept_address

    def execute_async_v3(self, stream):
        self.streams.append(stream)
        return self.run_ok


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8])
def test_aligned_buffers_and_copies(dtype):
    from vidsr.backends.trt_engine import TRT_ALIGNMENT, aligned, aligned_empty

    for shape in [(1,), (3, 5, 7), (4, 3, 22, 22)]:
        assert aligned_empty(shape, dtype=dtype, device="cpu").data_ptr() % TRT_ALIGNMENT == 0
    x = aligned(torch.arange(9 * 3 * 22 * 22).reshape(9, 3, 22, 22).to(dtype))
    assert aligned(x) is x  # already aligned: no copy
    chunk = x[1:5]  # 3*22*22 elements in: not on a 256-byte boundary for any of these dtypes
    assert chunk.data_ptr() % TRT_ALIGNMENT != 0
    fixed = aligned(chunk)
    assert fixed.data_ptr() % TRT_ALIGNMENT == 0 and torch.equal(fixed, chunk) and fixed.is_contiguous()


def test_enqueue_binds_aligned_addresses_and_checks_every_answer():
    from vidsr.backends.trt_engine import TRT_ALIGNMENT, enqueue

    x = torch.rand(9, 3, 22, 22)
    ctx = _FakeContext()
    y = enqueue(ctx, x[1:5], out_dtype=torch.float32, stream=1234)
    assert y.shape == (4, 3, 44, 44) and ctx.streams == [1234] and ctx.shape == (4, 3, 22, 22)
    assert set(ctx.addresses) == {"lr", "sr"} and all(a % TRT_ALIGNMENT == 0 for a in ctx.addresses.values())
    assert ctx.addresses["sr"] == y.data_ptr()
    with pytest.raises(BackendUnavailable, match="rejected the address"):
        enqueue(_FakeContext(accept_address=False), x, out_dtype=torch.float32, stream=0)
    with pytest.raises(InputError, match="rejected input shape"):
        enqueue(_FakeContext(accept_shape=False), x, out_dtype=torch.float32, stream=0)
    with pytest.raises(BackendUnavailable, match="execution failed"):
        enqueue(_FakeContext(run_ok=False), x, out_dtype=torch.float32, stream=0)


# ----------------------------------------------------------------------------- the precision report


class _ProfileEngine:
    """A CPU engine that, like a TensorRT engine, refuses windows larger than its profile."""

    def __init__(self, inner, max_side: int, max_batch: int) -> None:
        self.inner, self.max_side, self.max_batch = inner, max_side, max_batch
        self.descriptor, self.label, self.trims = inner.descriptor, "profiled", False
        self.seen: set[tuple[int, ...]] = set()

    def run(self, batch: np.ndarray) -> np.ndarray:
        b, _, h, w = batch.shape
        if b > self.max_batch or max(h, w) > self.max_side:
            raise InputError(f"input {b}x{h}x{w} is outside the TensorRT profile")
        self.seen.add(batch.shape)
        return self.inner.run(np.ascontiguousarray(batch))


def test_precision_report_runs_tile_windows_that_fit_the_profile(tiny_ckpt):
    from vidsr.export import compare_precision, sample_for_precision

    model, desc = load_checkpoint(tiny_ckpt)
    lr, gt = sample_for_precision(2, frames=1, width=96, height=64)
    ref = create_engine(model, desc, TorchBackend())
    win = 16 + 2 * desc.receptive_radius
    profiled = _ProfileEngine(create_engine(model, desc, TorchBackend()), max_side=win, max_batch=4)
    with pytest.raises(InputError, match="outside the TensorRT profile"):
        compare_precision({"trt": profiled}, ref, lr, gt)  # whole frames: what --precision-report did
    results = compare_precision({"trt": profiled}, ref, lr, gt, tile=16, batch=4)
    assert profiled.seen and all(s[0] <= 4 and s[2] <= win and s[3] <= win for s in profiled.seen)
    assert results[1].psnr_vs_fp32 == float("inf")  # the same fp32 network, tiled with enough context


# ----------------------------------------------------------------------------- --frame-workers


def test_frame_workers_above_one_refused_for_cuda_engines():
    from vidsr.pipeline.config import UpscaleConfig, frame_workers

    for backend, device in (("torch", "cuda"), ("torch", "cuda:1"), ("trt", "cuda")):
        with pytest.raises(InputError, match="--frame-workers 2 is not available.*use 1"):
            frame_workers(UpscaleConfig(backend=backend, device=device, frame_workers=2))
        assert frame_workers(UpscaleConfig(backend=backend, device=device, frame_workers=1)) == 1
        assert frame_workers(UpscaleConfig(backend=backend, device=device)) == 1
    assert frame_workers(UpscaleConfig(backend="torch", device="cpu", frame_workers=3)) == 3
    assert frame_workers(UpscaleConfig(backend="ort", device="cuda", frame_workers=2)) == 2  # ORT sessions are


# ----------------------------------------------------------------------------- ONNX Runtime on CUDA


def _fake_ort(providers: list[str], *, session_providers: list[str] | None = None) -> types.ModuleType:
    ort = types.ModuleType("onnxruntime")
    ort.calls = {"preload": 0, "sessions": []}

    def preload_dlls():
        ort.calls["preload"] += 1

    class Session:
        def __init__(self, path, options=None, providers=None):
            ort.calls["sessions"].append(providers)
            if session_providers is None:
                raise RuntimeError("fake session: stop here")

        def get_providers(self):
            return session_providers

    ort.preload_dlls, ort.InferenceSession = preload_dlls, Session
    ort.get_available_providers = lambda: providers
    ort.SessionOptions = lambda: types.SimpleNamespace()
    return ort


def test_ort_cuda_providers_device_index_and_refusals(monkeypatch):
    from vidsr.backends import ort_session
    from vidsr.backends.ort_session import check_providers, providers_for

    monkeypatch.setattr(ort_session, "_preloaded", False)
    monkeypatch.setattr(ort_session, "installed_ort_distributions", lambda: ["onnxruntime-gpu"])
    ort = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert providers_for(ort, "cpu") == ["CPUExecutionProvider"] and ort.calls["preload"] == 0
    assert providers_for(ort, "cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert providers_for(ort, "cuda")[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert ort.calls["preload"] == 1  # once per process
    with pytest.raises(BackendUnavailable, match=r"needs onnxruntime-gpu.*\[gpu\]"):
        providers_for(_fake_ort(["CPUExecutionProvider"]), "cuda")
    fell_back = types.SimpleNamespace(get_providers=lambda: ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailable, match="could not load CUDA/cuDNN"):
        check_providers(fell_back, "cuda")
    check_providers(fell_back, "cpu")
    monkeypatch.setattr(ort_session, "installed_ort_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with pytest.raises(BackendUnavailable, match="both installed"):
        providers_for(ort, "cuda")


def test_ort_distributions_are_read_from_pip_metadata(monkeypatch):
    import importlib.metadata

    from vidsr.backends.ort_session import installed_ort_distributions

    def distribution(name):
        if name == "onnxruntime-gpu":
            raise importlib.metadata.PackageNotFoundError(name)
        return object()

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert installed_ort_distributions() == ["onnxruntime"]


def test_ort_depth_runs_on_the_gpu_it_is_given(tmp_path, monkeypatch):
    from vidsr.backends import ort_session
    from vidsr.errors import ModelError
    from vidsr.masks.depth import OrtDepth

    monkeypatch.setattr(ort_session, "installed_ort_distributions", lambda: ["onnxruntime-gpu"])
    ort = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    with pytest.raises(ModelError, match="stop here"):
        OrtDepth(path=tmp_path / "depth.onnx", device="cuda:1")
    assert ort.calls["sessions"] == [[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]]
    fell_back = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"], session_providers=["CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", fell_back)
    with pytest.raises(BackendUnavailable, match="depth ONNX on cuda.*could not load CUDA"):
        OrtDepth(path=tmp_path / "depth.onnx", device="cuda")


# ----------------------------------------------------------------------------- extras


def _closure(extras: dict[str, list[str]], base: list[str], chosen: list[str]) -> set[str]:
    """Distribution names ``pip install vidsr[chosen]`` asks for (vidsr[...] self-references followed)."""
    from packaging.requirements import Requirement

    names, todo, seen = {Requirement(r).name for r in base}, list(chosen), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, extras[extra]):
            if r.name == "vidsr":
                todo.extend(r.extras)
            else:
                names.add(r.name)
    return names


def test_extras_never_install_both_onnxruntime_wheels_and_pin_tensorrt():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras, base = project["optional-dependencies"], project["dependencies"]
    for extra in extras:
        got = _closure(extras, base, [extra])
        assert not {"onnxruntime", "onnxruntime-gpu"} <= got, extra
    assert "onnxruntime" in _closure(extras, base, ["dev"]) and "onnxruntime" in _closure(extras, base, ["ort"])
    assert {"onnxruntime-gpu", "tensorrt"} <= _closure(extras, base, ["dev-gpu"])
    assert "onnxruntime-gpu" in _closure(extras, base, ["gpu"])
    (trt,) = [Requirement(r) for r in extras["trt"]]
    assert trt.name == "tensorrt"
    assert [trt.specifier.contains(v) for v in ("9.3.0", "10.3.0", "11.4.0", "12.0.0")] == [False, True, True, False]


def test_missing_onnxruntime_is_one_line_naming_the_extras(monkeypatch):
    from vidsr.backends.ort_session import import_ort

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailable, match=r"\[ort\].*|\[gpu\]"):
        import_ort()


# ----------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_engine_keeps_the_residual_in_fp32(tiny_ckpt):
    model, desc = load_checkpoint(tiny_ckpt)
    with torch.no_grad():
        model.body[-1].weight.zero_()
        model.body[-1].bias.zero_()
    x = np.random.default_rng(0).random((3, 3, 24, 24), dtype=np.float32)
    want = create_engine(model, desc, TorchBackend()).run(x)
    for cuda_graphs in (False, True):
        engine = create_engine(model, desc, TorchBackend(device="cuda", precision="fp16", cuda_graphs=cuda_graphs))
        np.testing.assert_allclose(engine.run(x), want, atol=1e-5)  # fp32 residual, no TF32


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_cuda_graphs_capture_on_the_requested_device(tiny_ckpt):
    model, desc = load_checkpoint(tiny_ckpt)
    x = np.random.default_rng(0).random((2, 3, 24, 24), dtype=np.float32)
    want = create_engine(model, desc, TorchBackend()).run(x)
    engine = create_engine(model, desc, replace(TorchBackend(device="cuda:1"), overlap=False))
    assert torch.cuda.current_device() == 0
    np.testing.assert_allclose(engine.run(x), want, atol=1e-4)
