"""Depth networks: Depth Anything built from a tiny config with random weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("transformers")

from vidsr.masks.depth import (
    OrtDepth,
    TorchDepth,
    build_depth_anything,
    depth_input_size,
    export_depth_onnx,
    load_depth_net,
    predict,
    preprocess,
)
from vidsr.errors import InputError, ModelError
from vidsr.checkpoint import resolve_model

# Depth Anything V2's layout (DINOv2 backbone + DPT head) with tiny widths, so tests are fast.
TINY = {
    "model_type": "depth_anything",
    "backbone_config": {"model_type": "dinov2", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 4,
                        "mlp_ratio": 2, "image_size": 56, "patch_size": 14, "out_indices": [1, 2, 3, 4],
                        "reshape_hidden_states": False},
    "neck_hidden_sizes": [8, 16, 32, 32], "fusion_hidden_size": 16, "head_hidden_size": 8,
    "reassemble_hidden_size": 32, "reassemble_factors": [4, 2, 1, 0.5], "patch_size": 14,
}
SIZE = (56, 98)  # network input for the 90x160 test frames at long_side=98


@pytest.fixture(scope="module")
def tiny_model():
    return build_depth_anything(TINY, seed=0)


@pytest.fixture(scope="module")
def tiny_folder(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("depth") / "tiny-depth-anything"
    tiny_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model, tmp_path_factory):
    return export_depth_onnx(tiny_model, tmp_path_factory.mktemp("depth-onnx") / "tiny.onnx", input_size=SIZE)


def _frames(n: int, h: int = 90, w: int = 160) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("hw,long_side,expected", [((540, 960), 448, (252, 448)), ((1080, 1920), 518, (294, 518)),
                                                    ((960, 540), 448, (448, 252)), ((100, 100), 20, (14, 14))])
def test_depth_input_size_is_reduced_and_a_multiple_of_14(hw, long_side, expected):
    size = depth_input_size(*hw, long_side=long_side)
    assert size == expected and size[0] % 14 == 0 and size[1] % 14 == 0


def test_preprocess_normalises_and_checks_size():
    x = preprocess(_frames(2), (28, 42))
    assert x.shape == (2, 3, 28, 42) and x.dtype == np.float32
    assert -2.2 < x.min() and x.max() < 2.7  # ImageNet-normalised
    with pytest.raises(InputError, match="multiple of 14"):
        preprocess(_frames(1), (30, 42))


def test_torch_depth_shapes_batching_and_dtype(tiny_model):
    frames = _frames(5)
    one = TorchDepth(model=tiny_model, long_side=98, batch=1)
    many = TorchDepth(model=tiny_model, long_side=98, batch=3)
    assert one.input_size(90, 160) == SIZE
    d1 = predict(one, frames)
    d3 = predict(many, frames, out_size=(45, 80))
    assert d1.shape == (5, 90, 160) and d1.dtype == np.float32
    assert d3.shape == (5, 45, 80) and d3.dtype == np.float32
    assert np.ptp(d1[0]) > 0  # not a constant map
    # batching does not change results: batch of 3 + 2 == five singles
    np.testing.assert_allclose(predict(many, frames, out_size=(90, 160)), d1, rtol=1e-4, atol=1e-5 * np.abs(d1).max())
    raw = many.run(preprocess(frames[:3], SIZE))
    assert raw.shape == (3, *SIZE)


def test_bf16_is_close_to_fp32(tiny_model):
    frames = _frames(2)
    fp32 = predict(TorchDepth(model=tiny_model, long_side=98), frames)
    bf16 = predict(TorchDepth(model=tiny_model, long_side=98, precision="bf16"), frames)
    assert bf16.dtype == np.float32
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.98


def test_folder_round_trip(tiny_model, tiny_folder):
    net = load_depth_net(tiny_folder, long_side=98, batch=2)
    assert isinstance(net, TorchDepth)
    frames = _frames(3)
    np.testing.assert_allclose(predict(net, frames), predict(TorchDepth(model=tiny_model, long_side=98), frames),
                               rtol=1e-5, atol=1e-7)


def test_onnx_matches_torch(tiny_model, tiny_onnx):
    net = load_depth_net(tiny_onnx, batch=3)
    assert isinstance(net, OrtDepth)
    assert net.input_size(90, 160) == SIZE  # read from the file
    frames = _frames(4)
    ref = predict(TorchDepth(model=tiny_model, long_side=98), frames)
    got = predict(net, frames)
    assert got.shape == ref.shape == (4, 90, 160)
    np.testing.assert_allclose(got, ref, atol=1e-3 * np.abs(ref).max())


def test_missing_weights_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="need --depth-model"):
        load_depth_net(None)
    with pytest.raises(ModelError, match="depth model not found.*official release"):
        load_depth_net(tmp_path / "nothing-here")
    with pytest.raises(ModelError, match="no config.json"):
        load_depth_net(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="expected a .onnx file or a folder"):
        load_depth_net(tmp_path / "weights.pt")


def test_config_without_safetensors(tiny_folder, tmp_path):
    shutil.copy(tiny_folder / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelError, match="no \\*.safetensors"):
        load_depth_net(tmp_path)


def test_folder_of_another_model_is_refused(tiny_folder, tmp_path):
    for f in tiny_folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "bert"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="holds a bert model, not a depth network"):
        load_depth_net(tmp_path)
    cfg["model_type"] = "dpt"  # a supported family, but these are Depth Anything's tensors
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="cannot load depth weights|do not fit"):
        load_depth_net(tmp_path)


def test_weights_that_do_not_fit_the_config(tiny_folder, tmp_path, capfd):
    for f in tiny_folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["fusion_hidden_size"] = 24  # e.g. a Base config beside Small weights
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="cannot load|do not fit"):
        load_depth_net(tmp_path)
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and not err.strip()  # the error is the one line; no table before it


def test_an_sr_onnx_is_not_a_depth_network(tmp_path):
    from vidsr.backends.onnx_cache import export_onnx

    model, _ = resolve_model("compact-x2", scale=None)
    export_onnx(model, tmp_path / "sr.onnx")
    with pytest.raises(ModelError, match="is not a depth network: its output has 3 channels"):
        load_depth_net(tmp_path / "sr.onnx")


def test_onnx_with_wrong_input_rank(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 56, 98])
    y = helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, ["batch", 56, 98])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["pixel_values"], ["predicted_depth"])],
                                                "rank3", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "rank3.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match="rank 3.*expected rank 4"):
        load_depth_net(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load depth ONNX"):
        load_depth_net(tmp_path / "junk.onnx")


# DPT / MiDaS v3.1 layouts with tiny widths: a ViT backbone (DPT-Large's shape) and a
# Swin V2 backbone (dpt-swinv2-tiny-256's shape, the small MiDaS).
TINY_DPT_VIT = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
                "image_size": 64, "patch_size": 16, "backbone_out_indices": [0, 1, 2, 3],
                "neck_hidden_sizes": [8, 16, 32, 32], "fusion_hidden_size": 16}
TINY_DPT_SWIN = {"backbone_config": {"model_type": "swinv2", "image_size": 64, "embed_dim": 12, "depths": [1, 1, 1, 1],
                                     "num_heads": [1, 1, 1, 1], "window_size": 4,
                                     "out_features": ["stage1", "stage2", "stage3", "stage4"]},
                 "neck_hidden_sizes": [12, 24, 48, 96], "fusion_hidden_size": 16, "reassemble_factors": [1, 1, 1, 1],
                 "is_hybrid": False}


@pytest.mark.parametrize("config,multiple", [(TINY_DPT_VIT, 16), (TINY_DPT_SWIN, 32)], ids=["vit", "swinv2"])
def test_dpt_midas_folder_loads_and_runs_at_its_square_training_size(config, multiple, tmp_path):
    from vidsr.masks.depth import build_dpt

    model = build_dpt(config, seed=0)
    folder = tmp_path / "tiny-dpt"
    model.save_pretrained(folder)
    net = load_depth_net(folder, batch=2)
    assert isinstance(net, TorchDepth) and net.family.name == "dpt" and net.family.multiple == multiple
    assert net.input_size(90, 160) == (64, 64)  # the config's training size, square, as the release
    assert load_depth_net(folder, long_side=100).input_size(90, 160) == (96, 96)  # --depth-size, snapped
    frames = _frames(3)
    one = predict(TorchDepth(model=model, batch=1), frames)
    many = predict(net, frames)
    assert many.shape == (3, 90, 160) and many.dtype == np.float32 and np.ptp(many) > 0
    np.testing.assert_allclose(many, one, rtol=1e-4, atol=1e-5 * np.abs(one).max())
    # MiDaS normalisation (0.5 / 0.5), not ImageNet's: mid grey maps to about 0
    grey = np.full((90, 160, 3), 128, np.uint8)
    x = preprocess([grey], (64, 64), family=net.family)
    assert np.abs(x - (128 / 255 - 0.5) / 0.5).max() < 1e-6

    # ONNX: the file remembers its family, so ORT preprocesses the same way
    path = export_depth_onnx(model, tmp_path / "dpt.onnx", input_size=(64, 64))
    ort_net = load_depth_net(path, batch=3)
    assert isinstance(ort_net, OrtDepth) and ort_net.family.name == "dpt" and ort_net.input_size(90, 160) == (64, 64)
    np.testing.assert_allclose(predict(ort_net, frames), many, atol=1e-3 * np.abs(many).max())


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_depth_runs_on_its_own_stream_and_matches_cpu(tiny_model):
    import threading

    import torch

    net = TorchDepth(model=build_depth_anything(TINY, seed=0), long_side=98, device="cuda")
    assert net._stream is not None and net._stream != torch.cuda.default_stream()
    frames = _frames(3)
    ref = predict(TorchDepth(model=tiny_model, long_side=98), frames)
    # depth in a thread (as the mask stage) while this thread keeps the default stream busy
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("d", predict(net, frames)))
    a = torch.rand(2048, 2048, device="cuda")
    worker.start()
    for _ in range(20):
        a = a @ a / 2048
    worker.join()
    torch.cuda.synchronize()
    np.testing.assert_allclose(out["d"], ref, atol=2e-3 * np.abs(ref).max())
