from __future__ import annotations

import pytest
import torch

from vidsr.arch import REGISTRY, describe
from vidsr.arch.base import trim_px
from vidsr.errors import ModelError
from vidsr.checkpoint import load_checkpoint, resolve_model, save_checkpoint

CONFIGS = {
    "compact": [{"scale": 2, "num_feat": 8, "num_conv": 2}, {"scale": 4, "num_feat": 8, "num_conv": 3}],
    "espcn": [{"scale": 2, "feat1": 8, "feat2": 4}, {"scale": 4, "feat1": 8, "feat2": 8, "residual": "nearest"}],
}


@pytest.mark.parametrize("arch", REGISTRY.names())
@pytest.mark.parametrize("i", [0, 1])
def test_state_dict_round_trip_and_shapes(tmp_path, arch, i):
    torch.manual_seed(i)
    cfg = CONFIGS[arch][i]
    model = REGISTRY.build(arch, cfg).eval()
    x = torch.rand(2, 3, 13, 17)
    y = model(x)
    assert y.shape == (2, 3, 13 * cfg["scale"], 17 * cfg["scale"])
    save_checkpoint(model, tmp_path / "m.pt")
    loaded, desc = load_checkpoint(tmp_path / "m.pt")
    assert desc.arch == arch and desc.scale == cfg["scale"]
    assert desc.receptive_radius == describe(model, name="m").receptive_radius
    torch.testing.assert_close(loaded(x), y)


@pytest.mark.parametrize("arch", REGISTRY.names())
@pytest.mark.parametrize("i", [0, 1])
def test_receptive_radius_is_exact_and_tight(arch, i):
    """A window with ``receptive_radius`` px of context gives the whole image's output on its core;
    one px less does not (so windows carry no more context than they need)."""
    torch.manual_seed(i)
    cfg = CONFIGS[arch][i]
    model = REGISTRY.build(arch, cfg).eval()
    s, r = cfg["scale"], model.receptive_radius
    x = torch.rand(1, 3, 40, 44)
    y0, x0, y1, x1 = 15, 17, 25, 27
    with torch.no_grad():
        whole = model(x)[..., y0 * s:y1 * s, x0 * s:x1 * s]
        for ctx, exact in ((r, True), (r - 1, False)):
            win = model(x[..., y0 - ctx:y1 + ctx, x0 - ctx:x1 + ctx])
            core = win[..., ctx * s:(ctx + y1 - y0) * s, ctx * s:(ctx + x1 - x0) * s]
            assert ((core - whole).abs().max() < 1e-5) == exact


@pytest.mark.parametrize("arch", REGISTRY.names())
@pytest.mark.parametrize("i", [0, 1])
def test_trimmed_forward_equals_forward_without_the_context(arch, i):
    torch.manual_seed(i)
    cfg = CONFIGS[arch][i]
    model = REGISTRY.build(arch, cfg).eval()
    s = cfg["scale"]
    rs = model.receptive_radius * s
    x = torch.rand(2, 3, 23, 29)
    with torch.no_grad():
        full = model(x)
        for trim in [(True, True), (True, False), (False, True), (False, False)]:
            y = model.forward_trimmed(x, trim)
            assert y.shape[-2:] == (23 * s - 2 * rs * trim[0], 29 * s - 2 * rs * trim[1])
            torch.testing.assert_close(y, trim_px(full, trim, rs), atol=1e-5, rtol=0)


def test_registry_lists_both_architectures():
    assert {"compact", "espcn"} <= set(REGISTRY.names())
    with pytest.raises(ModelError, match="unknown architecture 'nope'"):
        REGISTRY.get("nope")
    with pytest.raises(ModelError, match="bad config"):
        REGISTRY.build("compact", {"num_layers": 3})


def test_weights_that_do_not_match_the_architecture(tmp_path):
    model = REGISTRY.build("compact", {"scale": 2, "num_feat": 8, "num_conv": 2})
    save_checkpoint(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["config"]["num_feat"] = 16
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="do not match architecture 'compact'"):
        load_checkpoint(tmp_path / "bad.pt")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(ModelError, match="not a vidsr checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "y.pt")
    with pytest.raises(ModelError, match="missing 'format'"):
        load_checkpoint(tmp_path / "y.pt")


def test_resolve_model_errors(tiny_ckpt):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        resolve_model("nope", scale=2)
    with pytest.raises(ModelError, match="upscales x2, but --scale 4"):
        resolve_model(str(tiny_ckpt), scale=4)
    with pytest.raises(ModelError, match="weights file not found"):
        resolve_model("/nonexistent/m.pt", scale=2)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_subpixel_residual_equals_interpolation(scale, mode):
    # the networks add the cheap upscale at LR resolution; it must be the very same upscale
    from vidsr.arch.base import residual_kernel, subpixel_residual, upsample_residual

    x = torch.rand(2, 3, 13, 17, dtype=torch.float64)
    via_conv = torch.nn.functional.pixel_shuffle(subpixel_residual(x, residual_kernel(scale, mode).double()), scale)
    assert torch.allclose(via_conv, upsample_residual(x, scale, mode), atol=1e-6)
    # unpadded axes: the same values without 2 pixels at both of their ends
    k = residual_kernel(scale, mode).double()
    padded = subpixel_residual(x, k)
    torch.testing.assert_close(subpixel_residual(x, k, unpadded=(True, False)), padded[..., 2:-2, :], atol=1e-12, rtol=0)
    torch.testing.assert_close(subpixel_residual(x, k, unpadded=(True, True)), padded[..., 2:-2, 2:-2], atol=1e-12, rtol=0)


def test_resolve_model_scale_from_the_model(tiny_ckpt, tmp_path, monkeypatch):
    from vidsr.checkpoint import model_scale

    # no --scale: the model's own; neither: the default x2 model
    assert resolve_model("compact-x4", scale=None)[1].scale == 4
    assert resolve_model(None, scale=None)[1].name == "compact-x2-lite"
    assert model_scale("compact-x4", None) == 4 and model_scale("compact-x4", 2) == 2
    # an existing file is a checkpoint path whatever its suffix
    odd = tmp_path / "weights.bin"
    odd.write_bytes(tiny_ckpt.read_bytes())
    monkeypatch.chdir(tmp_path)
    model, desc = resolve_model("weights.bin", scale=None)
    assert desc.scale == 2 and desc.name == "weights"
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ModelError, match="not a vidsr checkpoint"):
        resolve_model("notes.txt", scale=None)


@pytest.mark.parametrize("arch", REGISTRY.names())
@pytest.mark.parametrize("i", [0, 1])
@pytest.mark.parametrize("pad_to", [1, 8, 16])
def test_phase_major_reorders_the_subpixels_only(arch, i, pad_to):
    """The phase-major copy gives the same sub-pixel values, channel (dy, dx, c) for (c, dy, dx),
    for whole and trimmed windows, whatever its last layers are padded to; the original model is
    left as it was."""
    torch.manual_seed(i)
    cfg = CONFIGS[arch][i]
    model = REGISTRY.build(arch, cfg).eval()
    s = cfg["scale"]
    x = torch.rand(2, 3, 23, 29)
    with torch.no_grad():
        before = model(x)
        phases = model.phase_major(pad_to=pad_to)
        assert phases.body[-1].out_channels % pad_to == 0
        for trim in [(False, False), (True, False), (True, True)]:
            ref = model.subpixels(x, trim)
            got = phases.subpixels(x, trim)
            b, _, h, w = ref.shape
            # (c, dy, dx) -> (dy, dx, c)
            want = ref.reshape(b, 3, s, s, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, 3 * s * s, h, w)
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        torch.testing.assert_close(model(x), before, atol=0, rtol=0)
