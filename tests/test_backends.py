from __future__ import annotations

import ctypes
import platform

import numpy as np
import pytest
import torch

from vidsr.arch import REGISTRY, describe
from vidsr.backends import OrtBackend, TorchBackend, backend_from_name, create_engine
from vidsr.errors import BackendUnavailable
from vidsr.backends.onnx_cache import export_dir

CASES = [("compact", {"scale": 2, "num_feat": 8, "num_conv": 2}),
         ("compact", {"scale": 4, "num_feat": 8, "num_conv": 2}),
         ("espcn", {"scale": 2, "feat1": 8, "feat2": 8})]


@pytest.mark.parametrize("arch,cfg", CASES)
def test_ort_matches_torch(arch, cfg):
    torch.manual_seed(0)
    model = REGISTRY.build(arch, cfg).eval()
    desc = describe(model, name=f"t-{arch}")
    x = np.random.default_rng(0).random((3, 3, 24, 40), dtype=np.float32)
    ref = create_engine(model, desc, TorchBackend()).run(x)
    ort_engine = create_engine(model, desc, OrtBackend())
    out = ort_engine.run(x)
    assert out.shape == ref.shape == (3, 3, 24 * cfg["scale"], 40 * cfg["scale"])
    np.testing.assert_allclose(out, ref, atol=1e-3)
    # dynamic axes: another batch and size through the same cached file
    assert ort_engine.run(x[:1, :, :11, :13]).shape == (1, 3, 11 * cfg["scale"], 13 * cfg["scale"])
    assert ort_engine.path.parent == export_dir() and ort_engine.path.is_file()


def test_onnx_cache_is_reused_and_keyed_by_weights():
    torch.manual_seed(0)
    model = REGISTRY.build("compact", CASES[0][1]).eval()
    desc = describe(model, name="cache")
    p1 = create_engine(model, desc, OrtBackend()).path
    mtime = p1.stat().st_mtime_ns
    assert create_engine(model, desc, OrtBackend()).path == p1 and p1.stat().st_mtime_ns == mtime
    with torch.no_grad():
        model.body[0].bias.add_(0.1)
    assert create_engine(model, desc, OrtBackend()).path != p1


def test_cpu_ort_graph_has_prelu_split_into_relus(tmp_path):
    import onnx

    from vidsr.backends.onnx_cache import cached_onnx, split_prelu

    torch.manual_seed(0)
    model = REGISTRY.build("espcn", CASES[2][1]).eval()
    with torch.no_grad():  # slopes beyond [0, 1] too: the split form holds for any slope
        for m in model.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(-1.5, 1.5)
    desc = describe(model, name="split")
    x = torch.rand(2, 3, 9, 11) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(split_prelu(model)(x), model(x))
    plain, split = cached_onnx(model, desc, folder=tmp_path), cached_onnx(model, desc, folder=tmp_path, split=True)
    ops = {p: {n.op_type for n in onnx.load(str(p)).graph.node} for p in (plain, split)}
    assert plain != split and "PRelu" in ops[plain] and "PRelu" not in ops[split] and "Relu" in ops[split]
    engine = create_engine(model, desc, OrtBackend())
    assert engine.path.name.endswith("-sp.onnx")
    # its threads sleep between calls instead of spinning on the cores other stages need
    opts = engine.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    ref = create_engine(model, desc, TorchBackend()).run(x.numpy())
    np.testing.assert_allclose(engine.run(x.numpy()), ref, atol=1e-4)


def test_bf16_autocast_on_cpu_is_close_to_fp32():
    torch.manual_seed(0)
    model = REGISTRY.build("compact", CASES[0][1]).eval()
    desc = describe(model, name="bf16")
    x = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    ref = create_engine(model, desc, TorchBackend()).run(x)
    out = create_engine(model, desc, TorchBackend(precision="bf16")).run(x)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 0.05


def test_unavailable_backends_say_why():
    model = REGISTRY.build("compact", CASES[0][1]).eval()
    desc = describe(model, name="x")
    with pytest.raises(BackendUnavailable, match="fp16 needs a CUDA device"):
        create_engine(model, desc, TorchBackend(precision="fp16"))
    with pytest.raises(BackendUnavailable, match="unknown backend 'trt2'"):
        backend_from_name("trt2")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
            create_engine(model, desc, TorchBackend(device="cuda"))
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendUnavailable, match=r"\[gpu\]"):
            create_engine(model, desc, OrtBackend(device="cuda"))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


@pytest.mark.skipif("glibc" not in " ".join(platform.libc_ver()), reason="glibc's malloc only")
def test_cpu_engine_keeps_large_activations_in_the_heap():
    """After keep_heap(), a 40 MB block (above glibc's default 32 MB largest mmap threshold) comes from
    the heap, not from mmap, and stays there once freed."""
    from vidsr.platform import keep_heap

    assert keep_heap() is True
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2()
    block = libc.malloc(40 << 20)
    during = libc.mallinfo2()
    libc.free(block)
    after = libc.mallinfo2()
    assert block and during.hblkhd == before.hblkhd  # not an mmap of its own
    assert during.uordblks - before.uordblks >= 40 << 20  # heap bytes in use
    assert after.arena >= during.arena - (1 << 20)  # freeing gave nothing back to the kernel


@pytest.mark.parametrize("arch,cfg", CASES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cpu_run_images_equals_rounding_the_float_output(arch, cfg, dtype):
    """torch on the CPU rounds before the pixel shuffle (run_images); the images are those of
    to_images(run(x)), for whole and trimmed windows, with values that round both ways."""
    from vidsr.backends.images import to_images
    from vidsr.sr import run_images

    torch.manual_seed(1)
    model = REGISTRY.build(arch, cfg).eval()
    desc = describe(model, name="images")
    engine = create_engine(model, desc, TorchBackend())
    x = np.random.default_rng(2).random((2, 3, 30, 34), dtype=np.float32)
    for trim in [(False, False), (True, False), (False, True), (True, True)]:
        want = to_images(engine.run(x, trim=trim), dtype)
        got = run_images(engine, x, dtype, trim=trim)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    top = np.iinfo(dtype).max
    assert ((want > 0) & (want < top)).mean() > 0.5  # mostly rounded, not clipped
