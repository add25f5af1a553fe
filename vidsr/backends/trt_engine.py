"""TensorRT engine (TensorRT 10 and 11 runtime API) with device buffers owned by torch CUDA tensors.

No pycuda or cuda-python: inputs and outputs are torch tensors whose ``data_ptr()`` is
handed to ``set_tensor_address`` (TensorRT wants 256-byte aligned addresses: :func:`aligned`), and
``execute_async_v3`` runs on the current torch CUDA stream, so the engine composes with
:class:`vidsr.backends.cuda_overlap.OverlapEngine`; :meth:`TrtEngine.run` uses the engine's own
stream (never the legacy default stream, which makes TensorRT synchronize).
One thread at a time: the execution context holds the bound shapes and addresses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidsr.arch import ModelDescriptor
from vidsr.backends.base import TrtBackend
from vidsr.backends.onnx_cache import INPUT_NAME, OUTPUT_NAME
from vidsr.backends.trt_cache import (
    Profile,
    Shape,
    cached_engine,
    import_tensorrt,
    pipeline_profile,
    require_trt_gpu,
    trt_major,
)
from vidsr.checks import check_batch
from vidsr.errors import BackendUnavailable, InputError


TRT_ALIGNMENT = 256  # bytes: TensorRT's requirement for I/O tensor addresses


def aligned_empty(shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device | str,
                  alignment: int = TRT_ALIGNMENT) -> torch.Tensor:
    """An uninitialised contiguous tensor whose first element lies on an ``alignment``-byte boundary
    (a view into a slightly larger allocation; torch's CUDA allocator already aligns to 512)."""
    item = torch.empty((), dtype=dtype).element_size()
    numel = 1
    for d in shape:
        numel *= d
    buf = torch.empty(numel + alignment // item, dtype=dtype, device=device)
    skip = (-buf.data_ptr() % alignment) // item
    return buf[skip:skip + numel].view(shape)


def aligned(x: torch.Tensor, *, alignment: int = TRT_ALIGNMENT) -> torch.Tensor:
    """``x`` contiguous at an ``alignment``-byte address: itself, or a copy (a batch's chunk
    ``x[i:i + n]`` starts ``i`` windows into it, rarely on a 256-byte boundary)."""
    if x.is_contiguous() and x.data_ptr() % alignment == 0:
        return x
    out = aligned_empty(tuple(x.shape), dtype=x.dtype, device=x.device, alignment=alignment)
    out.copy_(x)
    return out


def enqueue(context, x: torch.Tensor, *, out_dtype: torch.dtype, stream: int) -> torch.Tensor:
    """Bind ``x`` and a new output to ``context`` and enqueue one inference on ``stream`` (a
    ``cudaStream_t`` handle); returns the output tensor (ready once the stream gets there).

    Raises:
        InputError: TensorRT rejected the input shape.
        BackendUnavailable: it rejected an address, or the enqueue failed.
    """
    x = aligned(x)
    if not context.set_input_shape(INPUT_NAME, tuple(x.shape)):
        raise InputError(f"TensorRT rejected input shape {tuple(x.shape)}")
    y = aligned_empty(tuple(context.get_tensor_shape(OUTPUT_NAME)), dtype=out_dtype, device=x.device)
    for name, t in ((INPUT_NAME, x), (OUTPUT_NAME, y)):
        if not context.set_tensor_address(name, t.data_ptr()):
            raise BackendUnavailable(f"TensorRT rejected the address of {name!r} ({t.data_ptr():#x}, "
                                     f"{tuple(t.shape)} {t.dtype})")
    if not context.execute_async_v3(stream):
        raise BackendUnavailable(f"TensorRT execution failed for input {tuple(x.shape)}")
    return y


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dtype not in table:
        raise BackendUnavailable(f"TensorRT engine I/O type {dtype} is not supported by vidsr")
    return table[dtype]


class TrtEngine:
    """Runs a serialized TensorRT engine on batches whose shape lies inside its one profile.

    Use :meth:`build` to get the engine for a model (built and cached on first use), or the
    constructor for an ``.engine`` file.
    """

    trims = False  # the exported graph pads every convolution: whole windows only

    def __init__(self, *, engine_path: Path, descriptor: ModelDescriptor, device: str = "cuda",
                 label: str | None = None) -> None:
        trt = import_tensorrt()
        self.device = require_trt_gpu(device)
        trt_major(trt)
        self.descriptor = descriptor
        self.path = Path(engine_path)
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self._engine is None:
                raise BackendUnavailable(f"TensorRT cannot load {self.path.name} (built for another GPU or "
                                         "TensorRT version?); rebuild it with vidsr export --trt")
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=self.device)  # run()'s, not the legacy default stream
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise BackendUnavailable(f"{self.path.name}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                                     f"got {inputs} -> {outputs}")
        self._in_dtype = _torch_dtype(trt, self._engine.get_tensor_dtype(INPUT_NAME))
        self._out_dtype = _torch_dtype(trt, self._engine.get_tensor_dtype(OUTPUT_NAME))
        lo, opt, hi = (Shape(d[0], d[2], d[3]) for d in self._engine.get_tensor_profile_shape(INPUT_NAME, 0))
        self.profile = Profile(min=lo, opt=opt, max=hi)
        self.label = label or f"trt-{self.path.stem[:40]}"

    @classmethod
    def build(cls, *, model: nn.Module, descriptor: ModelDescriptor, backend: TrtBackend) -> TrtEngine:
        """The engine for ``model`` with a profile for ``backend.tile``/``backend.batch`` (built if not cached)."""
        import_tensorrt()
        require_trt_gpu(backend.device)
        profile = pipeline_profile(tile=backend.tile, batch=backend.batch, pad=descriptor.receptive_radius)
        built = cached_engine(model, descriptor, profile=profile, precision=backend.precision,
                              device=backend.device, opset=backend.opset)
        return cls(engine_path=built.path, descriptor=descriptor, device=backend.device,
                   label=f"trt-{backend.device}-{backend.precision}")

    def _run_chunk(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if not self.profile.contains(Shape(b, h, w)):
            raise InputError(f"input {b}x{h}x{w} is outside the TensorRT profile {self.profile} of "
                             f"{self.path.name}; rebuild with vidsr export --trt --tile/--batch or --min/--max-shape")
        stream = torch.cuda.current_stream(self.device).cuda_stream
        return enqueue(self._context, x.to(self._in_dtype), out_dtype=self._out_dtype, stream=stream).float()

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) float32 CUDA tensor -> (B, 3, h*s, w*s) float32, on the current stream.

        Batches larger than the profile's max batch run in pieces.
        """
        step = self.profile.max.batch
        if x.shape[0] <= step:
            return self._run_chunk(x)
        return torch.cat([self._run_chunk(x[i:i + step]) for i in range(0, x.shape[0], step)])

    def run(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
            y = self.run_tensor(x)
            out = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
            out.copy_(y, non_blocking=True)
            done = torch.cuda.Event(blocking=True)  # waiting on it sleeps instead of spinning a core
            done.record(self._stream)
            done.synchronize()
            return out.numpy()
