"""ONNX Runtime on CPU keeps the network in its blocked (NCHWc) layout."""

from __future__ import annotations

import pytest
import torch

from vidsr.arch import REGISTRY, describe
from vidsr.backends.onnx_cache import cached_onnx, split_prelu


@pytest.mark.parametrize("slopes", [1, 8])
def test_cpu_export_stays_in_the_blocked_layout(tmp_path, slopes):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    # 16 features: a whole block on AVX2 and AVX-512 (narrower layers stay unblocked)
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 16, "num_conv": 3}).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.PReLU) and slopes == 1:
            m.weight.data = m.weight.data[:1].clone()  # PReLU's default: one slope for every channel
    x = torch.rand(1, 3, 20, 24)
    with torch.inference_mode():
        torch.testing.assert_close(split_prelu(model)(x), model(x), atol=1e-6, rtol=1e-5)
    path = cached_onnx(model, describe(model, name="t"), folder=tmp_path, split=True)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), model(x).detach(), atol=1e-4, rtol=1e-4)
    import onnx

    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    if "ReorderInput" not in ops and "ReorderOutput" not in ops:
        pytest.skip("this ONNX Runtime build has no NCHWc transformer")
    # one conversion out of the blocked layout, after the body's last conv; none between the layers
    assert ops.count("ReorderOutput") + ops.count("ReorderInput") == 1, ops
    assert "PRelu" not in ops and "Neg" not in ops
