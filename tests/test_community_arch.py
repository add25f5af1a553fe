"""Community architectures (SRVGGNetCompact, RRDBNet, SPAN): random weights written in each published
key layout are recognised by vidsr.arch.detect from keys and shapes, and load back exactly."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from vidsr.arch.compact import Compact
from vidsr.arch.detect import detect, load_state_dict_file, measure_radius, unwrap_state_dict
from vidsr.arch.rrdb import RRDBNet
from vidsr.arch.span import SPAN, Conv3XC
from vidsr.arch.srvgg import SRVGGNetCompact
from vidsr.errors import ModelError

# ---- the published key layouts, written from the authors' repositories (shapes only) ----


def conv(name: str, cin: int, cout: int, k: int = 3) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (cout, cin, k, k), f"{name}.bias": (cout,)}


def srvgg_shapes(*, num_in_ch=3, num_feat=64, num_conv=16, upscale=4, prelu=True):
    """Real-ESRGAN SRVGGNetCompact: body = conv, act, num_conv x (conv, act), conv (ModuleList)."""
    out = conv("body.0", num_in_ch, num_feat)
    i = 1
    for _ in range(num_conv):
        if prelu:
            out[f"body.{i}.weight"] = (num_feat,)
        out.update(conv(f"body.{i + 1}", num_feat, num_feat))
        i += 2
    if prelu:
        out[f"body.{i}.weight"] = (num_feat,)
    out.update(conv(f"body.{i + 1}", num_feat, num_in_ch * upscale ** 2))
    return out


def rrdb_shapes(*, num_ch=3, scale=4, nf=64, nb=23, gc=32):
    """Real-ESRGAN / BasicSR RRDBNet (x2/x1 read a 4x/16x space-to-depth input)."""
    unshuffle = {4: 1, 2: 2, 1: 4}[scale]
    out = conv("conv_first", num_ch * unshuffle ** 2, nf)
    for b in range(nb):
        for r in (1, 2, 3):
            for m in range(1, 6):
                out.update(conv(f"body.{b}.rdb{r}.conv{m}", nf + (m - 1) * gc, nf if m == 5 else gc))
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        out.update(conv(name, nf, nf))
    out.update(conv("conv_last", nf, num_ch))
    return out


def rrdb_old_shapes(*, nf=64, nb=23, gc=32):
    """The original ESRGAN x4 layout (RRDB_ESRGAN_x4.pth)."""
    out = conv("model.0", 3, nf)
    for b in range(nb):
        for r in (1, 2, 3):
            for m in range(1, 6):
                out.update(conv(f"model.1.sub.{b}.RDB{r}.conv{m}.0", nf + (m - 1) * gc, nf if m == 5 else gc))
    out.update(conv(f"model.1.sub.{nb}", nf, nf))
    for i in (3, 6, 8):
        out.update(conv(f"model.{i}", nf, nf))
    out.update(conv("model.10", nf, 3))
    return out


def span_shapes(*, c=48, upscale=4, training=True, no_norm=False):
    """hongyuanyu/SPAN: Conv3XC = sk (1x1), conv (1x1 -> 3x3 -> 1x1, gain 2), eval_conv (3x3)."""
    def conv3xc(name, cin, cout):
        d = conv(f"{name}.eval_conv", cin, cout)
        if training:
            d.update(conv(f"{name}.sk", cin, cout, 1))
            d.update(conv(f"{name}.conv.0", cin, 2 * cin, 1))
            d.update(conv(f"{name}.conv.1", 2 * cin, 2 * cout, 3))
            d.update(conv(f"{name}.conv.2", 2 * cout, cout, 1))
        return d
    out = conv3xc("conv_1", 3, c)
    for b in range(1, 7):
        for i in (1, 2, 3):
            out.update(conv3xc(f"block_{b}.c{i}_r", c, c))
    out.update(conv("conv_cat", 4 * c, c, 1))
    out.update(conv3xc("conv_2", c, c))
    out.update(conv("upsampler.0", c, 3 * upscale ** 2))
    if no_norm:
        out["no_norm"] = (1,)
    return out


def count(shapes) -> int:
    return sum(math.prod(s) for k, s in shapes.items() if k != "no_norm")


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in shapes.items():
        if k == "no_norm":
            out[k] = torch.zeros(1)
            continue
        fan_in = math.prod(s[1:]) if len(s) > 1 else 1
        out[k] = torch.randn(s, generator=g) * (1.5 / math.sqrt(fan_in) if len(s) > 1 else 0.1)
    return out


def test_layouts_match_published_parameter_counts():
    # RealESRGAN_x4plus.pth: 16,697,987 parameters; SPAN (challenge width 28, x4): 0.151M, as published
    assert count(rrdb_shapes()) == 16_697_987
    assert count(rrdb_old_shapes()) == 16_697_987
    assert round(count(span_shapes(c=28, training=False)) / 1e3) == 151
    # our modules at full size, by arithmetic on the same layouts
    assert sum(p.numel() for p in SRVGGNetCompact(num_feat=64, num_conv=32).parameters()) == count(
        srvgg_shapes(num_conv=32))
    assert sum(p.numel() for p in SPAN().parameters()) == count(span_shapes())


# (id, shapes, expected arch, scale, class, srvgg_act)
VARIANTS = [
    ("srvgg-prelu-x2", srvgg_shapes(num_feat=8, num_conv=3, upscale=2), "compact", 2, Compact, None),
    ("srvgg-prelu-x4", srvgg_shapes(num_feat=8, num_conv=2, upscale=4), "compact", 4, Compact, None),
    ("srvgg-relu-x1", srvgg_shapes(num_feat=8, num_conv=2, upscale=1, prelu=False), "srvgg", 1, SRVGGNetCompact,
     None),
    ("srvgg-lrelu-x3", srvgg_shapes(num_feat=8, num_conv=2, upscale=3, prelu=False), "srvgg", 3, SRVGGNetCompact,
     "leakyrelu"),
    ("rrdb-x4", rrdb_shapes(nf=8, nb=2, gc=4), "rrdb", 4, RRDBNet, None),
    ("rrdb-x2", rrdb_shapes(nf=8, nb=1, gc=4, scale=2), "rrdb", 2, RRDBNet, None),
    ("rrdb-x1", rrdb_shapes(nf=8, nb=1, gc=4, scale=1), "rrdb", 1, RRDBNet, None),
    ("esrgan-old-x4", rrdb_old_shapes(nf=8, nb=2, gc=4), "rrdb", 4, RRDBNet, None),
    ("span-train-x4", span_shapes(c=8), "span", 4, SPAN, None),
    ("span-rep-x2", span_shapes(c=8, upscale=2, training=False), "span", 2, SPAN, None),
    ("span-nonorm-x2", span_shapes(c=8, upscale=2, no_norm=True), "span", 2, SPAN, None),
]
WRAPS = ["bare.pth", "params_ema.pth", "module.pt", "safetensors", "state_dict.ckpt"]


def save(state, tmp_path, wrap):
    if wrap == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path
    kind, suffix = wrap.split(".")
    path = tmp_path / f"w.{suffix}"
    if kind == "module":
        obj = {f"module.{k}": v for k, v in state.items()}
    elif kind == "bare":
        obj = state
    else:
        obj = {kind: state, "iter": 1000}
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("i", range(len(VARIANTS)), ids=[v[0] for v in VARIANTS])
def test_detect_published_layouts(tmp_path, i):
    _, shapes, arch, scale, cls, act = VARIANTS[i]
    state = random_state(shapes, seed=i)
    path = save(state, tmp_path, WRAPS[i % len(WRAPS)])
    loaded = load_state_dict_file(path)
    assert set(loaded) == set(state)
    model, desc = detect(loaded, srvgg_act=act)
    assert type(model) is cls and desc.arch == arch and desc.scale == scale == model.scale
    assert sum(p.numel() for p in model.parameters()) == count(shapes)
    assert desc.receptive_radius > 0 and not model.training
    x = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 8 * scale, 12 * scale) and torch.isfinite(y).all()
    # round trip: the module's own state dict is recognised as the same network, same outputs
    again, desc2 = detect(model.state_dict(), srvgg_act=act, radius=desc.receptive_radius)
    assert dataclasses.replace(desc2, name=desc.name) == desc
    with torch.no_grad():
        assert torch.equal(again(x), y)


def test_every_wrapper(tmp_path):
    state = random_state(srvgg_shapes(num_feat=4, num_conv=1, upscale=2))
    for wrap in WRAPS:
        d = tmp_path / wrap.replace(".", "_")
        d.mkdir()
        loaded = load_state_dict_file(save(state, d, wrap))
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    nested = {"state_dict": {"params_ema": state}}
    assert unwrap_state_dict(nested).keys() == state.keys()


def test_compact_is_srvgg_with_prelu():
    state = random_state(srvgg_shapes(num_feat=8, num_conv=3, upscale=3))
    ref = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=3, act_type="prelu")
    ref.load_state_dict(state)
    model, desc = detect(state)
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-6, rtol=0)
    assert desc.receptive_radius == 3 + 2 and desc.config["residual"] == "nearest"


def test_old_esrgan_keys_map_onto_rrdbnet():
    old = random_state(rrdb_old_shapes(nf=8, nb=2, gc=4))
    new_shapes = rrdb_shapes(nf=8, nb=2, gc=4)
    new = dict(zip(new_shapes, old.values()))  # the two layouts list the same tensors in the same order
    a, _ = detect(old, radius=1)
    b, _ = detect(new, radius=1)
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_span_fusion_equals_branches():
    torch.manual_seed(0)
    layer = Conv3XC(c_in=4, c_out=6)
    x = torch.randn(1, 4, 10, 10)
    with torch.no_grad():
        # the training form's branches (the 3x3 reads a zero-padded input); inside the border they are exact
        branches = layer.sk(x) + layer.conv(F.pad(x, (1, 1, 1, 1)))
        torch.testing.assert_close(layer(x)[..., 1:-1, 1:-1], branches[..., 1:-1, 1:-1], atol=1e-5, rtol=1e-5)
    net, _ = detect(random_state(span_shapes(c=8, upscale=2)))
    rep = net.reparameterize()
    assert not any(".sk." in k or ".conv." in k for k in rep.state_dict())
    again, desc = detect(rep.state_dict())
    assert again.reparameterized and desc.scale == 2
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        ref = net(x)  # random weights on a x255 input: large values, compared relatively
        assert (again(x) - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_measured_radius_is_enough_context():
    model, desc = detect(random_state(rrdb_shapes(nf=8, nb=3, gc=4)))
    r = desc.receptive_radius
    assert 0 < r <= model.theoretical_radius
    y0 = x0 = r + 4
    n = 8  # a core, and its window with r pixels of context
    x = torch.rand(1, 3, 2 * y0 + n, 2 * x0 + n, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(x)[..., y0 * 4:(y0 + n) * 4, x0 * 4:(x0 + n) * 4]
        win = model(x[..., y0 - r:y0 + n + r, x0 - r:x0 + n + r])[..., r * 4:(r + n) * 4, r * 4:(r + n) * 4]
    assert (whole - win).abs().max() < 1 / 255  # tiled == whole frame within 1 LSB
    # an exact radius is an upper bound of the measured one
    compact, d = detect(random_state(srvgg_shapes(num_feat=8, num_conv=3, upscale=2)))
    assert measure_radius(compact, 2) <= d.receptive_radius == 5


def test_errors(tmp_path):
    with pytest.raises(ModelError, match=r"unknown architecture \(keys: encoder\.weight.*supported: SRVGG"):
        detect({"encoder.weight": torch.zeros(3, 3, 3, 3), "decoder.weight": torch.zeros(3)})
    bad = random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=2))
    bad["body.2.weight"] = torch.zeros(8, 4, 3, 3)
    with pytest.raises(ModelError, match="do not match the detected SRVGGNetCompact.*body.2.weight"):
        detect(bad)
    bad = random_state(rrdb_shapes(nf=8, nb=1, gc=4))
    del bad["conv_hr.bias"]
    with pytest.raises(ModelError, match="do not match the detected RRDBNet.*conv_hr.bias"):
        detect(bad)
    good = save(random_state(rrdb_shapes(nf=8, nb=1, gc=4)), tmp_path, "bare.pth")
    truncated = tmp_path / "t.pth"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ModelError, match="cannot read weights from t.pth: truncated"):
        load_state_dict_file(truncated)
    junk = tmp_path / "j.safetensors"
    junk.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot read weights from j.safetensors"):
        load_state_dict_file(junk)
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "n.pt")
    with pytest.raises(ModelError, match="holds no state dict"):
        load_state_dict_file(tmp_path / "n.pt")
    torch.save({"format": "vidsr", "arch": "compact", "config": {}, "state_dict": {}}, tmp_path / "v.pt")
    with pytest.raises(ModelError, match="is a vidsr checkpoint"):
        load_state_dict_file(tmp_path / "v.pt")
    with pytest.raises(ModelError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pth")
