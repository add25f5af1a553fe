"""Community checkpoints: read a weights file into a state dict, recognise its architecture and
hyperparameters from key names and tensor shapes (never the file name), measure receptive radii."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidsr.arch.registry import ModelDescriptor
from vidsr.arch.rrdb import RRDBNet, from_old_esrgan, rrdb_config
from vidsr.arch.span import SPAN, span_config
from vidsr.arch.srvgg import Act, build_srvgg, srvgg_config
from vidsr.errors import ModelError

SUPPORTED = ("SRVGGNetCompact (Real-ESRGAN Compact)", "RRDBNet (ESRGAN, Real-ESRGAN; old and new keys)",
             "SPAN (training or reparameterised)")
WRAPPERS = ("params_ema", "params", "state_dict", "model")  # in the order they are looked for
SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
THRESHOLD = 0.5 / 255  # an input change that moves the output less than this is out of reach


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a ``.pth``/``.pt``/``.ckpt``/``.safetensors`` file, on the CPU.

    Pickled files are read with ``torch.load(weights_only=True)`` (no code is unpickled). The dict may
    be bare or wrapped in ``params_ema``/``params``/``state_dict``/``model``; a ``module.`` prefix
    (DataParallel) is dropped.

    Raises:
        ModelError: missing, truncated or unreadable file; no state dict in it; a vidsr checkpoint
            (those carry their architecture: :func:`vidsr.checkpoint.load_checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch and safetensors raise many types for bad files
        raise ModelError(f"cannot read weights from {path.name}: truncated or not a PyTorch/safetensors "
                         f"file ({type(e).__name__})") from None
    if isinstance(obj, dict) and "format" in obj and "arch" in obj and "config" in obj:
        raise ModelError(f"{path.name} is a vidsr checkpoint, not a community state dict")
    return unwrap_state_dict(obj, source=path.name)


def unwrap_state_dict(obj: object, *, source: str = "weights") -> dict[str, torch.Tensor]:
    """The tensors of a bare or wrapped state dict, without a ``module.`` prefix."""
    for _ in range(2):  # Lightning-style {"state_dict": {"model": ...}} nests at most twice in practice
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not _is_state_dict(obj):
                obj = inner
    if not _is_state_dict(obj):
        raise ModelError(f"{source} holds no state dict (expected a dict of tensors, bare or under "
                         f"{'/'.join(WRAPPERS)})")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_state_dict(obj: object) -> bool:
    return (isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj)
            and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= len(obj) / 2)


def architecture_of(state: dict[str, torch.Tensor]) -> str:
    """``srvgg``, ``rrdb``, ``rrdb-old`` or ``span`` from the keys alone.

    Raises:
        ModelError: none fits (names a few keys seen and the supported architectures).
    """
    if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state:
        return "rrdb"
    if "model.0.weight" in state and "model.1.sub.0.RDB1.conv1.0.weight" in state:
        return "rrdb-old"
    if "upsampler.0.weight" in state and "conv_cat.weight" in state and (
            "conv_1.sk.weight" in state or "conv_1.eval_conv.weight" in state):
        return "span"
    if "body.0.weight" in state and all(k.startswith("body.") for k in state):
        return "srvgg"
    seen = ", ".join(list(state)[:4]) + (", ..." if len(state) > 4 else "")
    raise ModelError(f"unknown architecture (keys: {seen}); supported: {'; '.join(SUPPORTED)}")


def detect(state_dict: dict[str, torch.Tensor], *, name: str | None = None, srvgg_act: Act | None = None,
           radius: int | None = None) -> tuple[nn.Module, ModelDescriptor]:
    """Build the network a community state dict belongs to and load it (strict), in eval mode.

    Args:
        state_dict: from :func:`load_state_dict_file` (published key layout).
        name: the descriptor's name (default: the architecture and its size).
        srvgg_act: ReLU or LeakyReLU for SRVGG bodies without PReLU weights (the keys cannot tell).
        radius: a receptive radius measured before (cached by the caller), instead of measuring it.

    Returns:
        The module and its descriptor. SRVGG with PReLU on RGB at x2-x4 comes back as vidsr's
        :class:`~vidsr.arch.compact.Compact` (``residual="nearest"``: the same network). The radius is
        exact for SRVGG and SPAN and measured (:func:`measure_radius`) for RRDBNet.

    Raises:
        ModelError: unknown architecture, hyperparameters it cannot build, shapes that do not match.
    """
    kind = architecture_of(state_dict)
    state = from_old_esrgan(state_dict) if kind == "rrdb-old" else dict(state_dict)
    try:
        if kind == "srvgg":
            config = srvgg_config(state, act_type=srvgg_act)
            model, label = build_srvgg(config), f"SRVGGNetCompact {config['num_feat']}nf {config['num_conv']}nc"
        elif kind == "span":
            config = span_config(state)
            model = SPAN(**config)
            label = f"SPAN{'' if config['reparameterized'] else ' (training form)'} {config['feature_channels']}nf"
            if not config["reparameterized"]:  # the cached fusion is not read; fill it if absent
                state = {**_eval_convs(model, state), **state}
        else:
            config = rrdb_config(state)
            model = RRDBNet(**config)
            old = " (old ESRGAN keys)" if kind == "rrdb-old" else ""
            label = f"RRDBNet{old} {config['num_feat']}nf {config['num_block']}nb"
    except KeyError as e:
        raise ModelError(f"{kind}: missing key {e.args[0]!r}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e).splitlines()[0])
        raise ModelError(f"weights do not match the detected {label}: {first}") from None
    model.eval()
    scale = model.scale
    multiple = getattr(model, "size_multiple", 1)
    if radius is None:
        radius = (measure_radius(model, scale, size_multiple=multiple, limit=model.theoretical_radius)
                  if isinstance(model, RRDBNet) else model.receptive_radius)
    arch = model.arch_name
    config = model.config()
    return model, ModelDescriptor(name=name or f"{label} x{scale}", arch=arch, scale=scale,
                                  in_channels=config.get("num_in_ch", 3), size_multiple=multiple,
                                  receptive_radius=radius, config=config)


def _eval_convs(model: SPAN, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Placeholder ``eval_conv`` entries for a training-form state dict saved without them."""
    return {k: v for k, v in model.state_dict().items() if ".eval_conv." in k and k not in state}


def measure_radius(model: nn.Module, scale: int, *, size_multiple: int = 1, start: int = 24,
                   limit: int | None = None, threshold: float = THRESHOLD, seed: int = 0) -> int:
    """Effective receptive radius in input pixels: the farthest distance (Chebyshev, in LR pixels) at
    which switching one input pixel from black to white still moves an output value by ``threshold``.

    One probe per size: the image and its copy with the centre pixel flipped go through the network
    as a batch of two. The probe image starts ``2 * start + 1`` pixels wide and doubles while the
    reach comes within 4 pixels of its border (the zero padding there would hide it), up to ``limit``.

    Args:
        model: (B, C, H, W) -> (B, C', H*scale, W*scale), in eval mode.
        scale: the model's upscale factor.
        size_multiple: input sizes the model accepts are multiples of this.
        limit: the theoretical radius, if known (the answer never exceeds it).
        threshold: smallest output change that counts (default 0.5/255).
        seed: of the probe image (a smoothed random image in [0, 1]).
    """
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    # a module without convolutions (an ONNX file's) names its input channels itself
    in_ch = conv.in_channels // size_multiple ** 2 if conv is not None else getattr(model, "in_channels", 3)
    r = start if limit is None else min(start, limit)
    gen = torch.Generator().manual_seed(seed)
    param = next(model.parameters(), torch.zeros(()))
    while True:
        n = -(-(2 * r + 1) // size_multiple) * size_multiple
        c = n // 2
        noise = torch.rand(1, in_ch, n + 4, n + 4, generator=gen)
        base = nn.functional.avg_pool2d(noise, 5, stride=1)  # (1, C, n, n), smooth but not flat
        x = base.repeat(2, 1, 1, 1)
        x[0, :, c, c], x[1, :, c, c] = 0.0, 1.0
        with torch.inference_mode():
            y = model(x.to(param.device, param.dtype)).float()
        moved = (y[1] - y[0]).abs().amax(0) >= threshold  # (n*s, n*s)
        rows, cols = torch.nonzero(moved, as_tuple=True)
        reach = 0 if rows.numel() == 0 else int(torch.maximum((rows // scale - c).abs(),
                                                              (cols // scale - c).abs()).max())
        if reach < c - 4 or (limit is not None and r >= limit):
            return reach if limit is None else min(reach, limit)
        r = 2 * r if limit is None else min(2 * r, limit)
