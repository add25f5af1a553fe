"""SR networks given as ONNX files (OpenModelDB, vs-mlrt, chaiNNer exports), run by ONNX Runtime on the CPU.

Assumed, as those exports are: one NCHW input, RGB in [0, 1]; one output, the same channels at an
integer scale. The scale is found by a probe run, and for free input sizes the size multiple the
graph needs (an exported RealESRGAN_x2plus pixel-unshuffles its input: even sizes only) by probes at
sizes 1, 2, 4 and 8 pixels past a multiple of 8. Inputs fixed to one height and width are cut into
windows of that shape that overlap by the receptive radius (padded by replication where the image is
smaller). fp16 models get fp16 input; their output is returned as float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidsr.errors import ModelError

PROBE = 32  # LR side of the scale probe for inputs of free size


def _session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("ONNX SR models need onnxruntime: pip install 'vidsr[ort]' (or [gpu])") from None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # threads that spin after a call take the cores the decode, mask and encode threads need
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 4  # failures raise; the size probes' expected failures need no log lines
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for bad files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load ONNX model {path.name}: {first}") from None


class OnnxNet(nn.Module):
    """An ONNX SR file as a module: (B, C, H, W) float32 in [0, 1] -> (B, C, H*scale, W*scale) float32.

    The session holds no state between calls and ONNX Runtime runs it from several threads, so copies
    (``copy.deepcopy``, as engines make) share it. :attr:`context` is set once the receptive radius is
    known (:func:`vidsr.checkpoint.load_model`); until then fixed-shape windows carry none.

    Args:
        path: the .onnx file.
    """

    arch_name = "onnx"

    def __init__(self, *, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{self.path.name}: expected one NCHW image input, got "
                             f"{[(i.name, i.shape) for i in inputs]}")
        inp = inputs[0]
        self.input_name = inp.name
        self.half = inp.type == "tensor(float16)"
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"{self.path.name}: input type {inp.type} (need float or float16)")
        n, c, h, w = inp.shape
        self.in_channels = c if isinstance(c, int) else 3
        self.fixed_batch = n if isinstance(n, int) else None
        self.fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.context = 0
        self.scale = self._probe_scale()
        self.size_multiple = 1 if self.fixed else self._probe_multiple()

    def __deepcopy__(self, memo: dict) -> OnnxNet:
        return self

    def config(self) -> dict:
        return {"file": self.path.name, "fixed_shape": self.fixed, "fp16": self.half}

    def _probe_scale(self) -> int:
        h, w = self.fixed or (PROBE, PROBE)
        try:
            y = self._run(np.zeros((1, self.in_channels, h, w), np.float32))
        except Exception as e:  # a graph that cannot run on an image of its own input shape
            raise ModelError(f"{self.path.name}: probe run failed ({type(e).__name__}: "
                             f"{str(e).strip()[:160]})") from None
        if y.ndim != 4 or y.shape[1] != self.in_channels or y.shape[2] % h or y.shape[2] // h != y.shape[3] / w:
            raise ModelError(f"{self.path.name}: output {tuple(y.shape)} for input {(1, self.in_channels, h, w)} "
                             "is not an integer upscale of the same channels")
        return y.shape[2] // h

    def _probe_multiple(self) -> int:
        for m in (1, 2, 4, 8):
            try:
                self._run(np.zeros((1, self.in_channels, PROBE + m, PROBE + m), np.float32))
                return m
            except Exception:  # onnxruntime's own error types: a reshape that does not divide
                continue
        raise ModelError(f"{self.path.name}: runs at {PROBE}x{PROBE} but at no size 1-8 pixels larger")

    def _run(self, x: np.ndarray) -> np.ndarray:
        """One session call per ``fixed_batch`` images: (B, C, h, w) float32 -> float32."""
        x = np.ascontiguousarray(x, np.float16 if self.half else np.float32)
        step = self.fixed_batch or len(x)
        outs = [self.session.run(None, {self.input_name: x[i:i + step]})[0] for i in range(0, len(x), step)]
        return np.concatenate(outs).astype(np.float32, copy=False)

    def run_numpy(self, x: np.ndarray) -> np.ndarray:
        """(B, C, h, w) float32 -> (B, C, h*s, w*s) float32; fixed-shape inputs in windows of that shape."""
        if self.fixed is None or x.shape[-2:] == self.fixed:
            return self._run(x)
        s = self.scale
        b, c, h, w = x.shape
        out = np.empty((b, c, h * s, w * s), np.float32)
        for (y0, y1, wy), (x0, x1, wx) in ((r, q) for r in _spans(h, self.fixed[0], self.context)
                                           for q in _spans(w, self.fixed[1], self.context)):
            win = x[..., wy:wy + self.fixed[0], wx:wx + self.fixed[1]]
            short = (self.fixed[0] - win.shape[-2], self.fixed[1] - win.shape[-1])
            if any(short):
                win = np.pad(win, ((0, 0), (0, 0), (0, short[0]), (0, short[1])), mode="edge")
            y = self._run(win)
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = y[..., (y0 - wy) * s:(y1 - wy) * s, (x0 - wx) * s:(x1 - wx) * s]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.run_numpy(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(y).to(x.device)


def _spans(length: int, win: int, context: int) -> list[tuple[int, int, int]]:
    """(core start, core end, window start) along one axis: cores of ``win - 2 * context`` pixels,
    windows of ``win`` (shifted to stay inside ``length``; one window at 0 when ``length <= win``)."""
    if length <= win:
        return [(0, length, 0)]
    core = max(1, win - 2 * context)
    out = []
    for c0 in range(0, length, core):
        c1 = min(length, c0 + core)
        out.append((c0, c1, min(max(0, c0 - context), length - win)))
    return out


def _counted_tensors(graph) -> list[str]:
    """Names whose shapes :func:`onnx_macs` needs."""
    names = []
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            names += [node.input[0], node.input[1], node.output[0]]
    return names


def _run_shapes(proto, names: list[str], types: dict[str, int], x: np.ndarray) -> dict[str, list[int]]:
    """Shapes of ``names`` from one ONNX Runtime run of ``x`` (they become extra graph outputs)."""
    import onnx
    import onnxruntime as ort

    from onnx import helper

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    have = {o.name for o in proto.graph.output}
    proto.graph.output.extend(helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None)
                              for n in dict.fromkeys(names) if n not in have)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    return {o.name: list(v.shape) for o, v in zip(sess.get_outputs(), outs)}


def onnx_macs(path: Path, *, height: int, width: int) -> int:
    """Multiply-adds of one run of the ONNX file at input (1, C, height, width): Conv, ConvTranspose,
    MatMul and Gemm. Shapes come from ONNX shape inference with the input fixed to that size; where it
    cannot tell (reshapes of computed sizes), from one ONNX Runtime run. Other ops (activations,
    resizes, adds) are not counted, as for torch layers."""
    import onnx
    from onnx import shape_inference

    try:
        proto = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and others for a bad file
        raise ModelError(f"cannot read ONNX model {Path(path).name}: {type(e).__name__}") from None
    inits = {t.name for t in proto.graph.initializer}
    graph_in = [i for i in proto.graph.input if i.name not in inits][0]
    dims = graph_in.type.tensor_type.shape.dim
    channels = dims[1].dim_value if dims[1].HasField("dim_value") else 3
    for dim, value in zip(dims, (1, channels, height, width)):
        dim.Clear()
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(proto, data_prop=True)
    shapes: dict[str, list[int]] = {t.name: list(t.dims) for t in inferred.graph.initializer}
    types: dict[str, int] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        types[vi.name] = vi.type.tensor_type.elem_type
        d = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(x.HasField("dim_value") for x in d):
            shapes[vi.name] = [x.dim_value for x in d]
    missing = [n for n in _counted_tensors(inferred.graph) if n not in shapes]
    if missing:
        dtype = np.float16 if graph_in.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else np.float32
        shapes.update(_run_shapes(proto, missing, types, np.zeros((1, channels, height, width), dtype)))

    def numel(name: str) -> int:
        return int(np.prod(shapes[name]))

    total = 0
    for node in inferred.graph.node:
        op = node.op_type
        if op == "Conv":  # weight (M, C/group, kh, kw): each output value reads C/group * kh * kw inputs
            total += numel(node.output[0]) * int(np.prod(shapes[node.input[1]][1:]))
        elif op == "ConvTranspose":  # weight (C, M/group, kh, kw): each input value feeds M/group * kh * kw
            total += numel(node.input[0]) * int(np.prod(shapes[node.input[1]][1:]))
        elif op == "MatMul":
            total += numel(node.output[0]) * shapes[node.input[0]][-1]
        elif op == "Gemm":
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            total += numel(node.output[0]) * shapes[node.input[0]][0 if trans_a else -1]
    return total
