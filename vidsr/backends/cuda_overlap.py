"""CUDA execution helpers: CUDA-graph replay per input shape, and H2D / SR / D2H overlap.

:class:`OverlapEngine` wraps any :class:`DeviceEngine` (the torch and TensorRT engines)
and runs each batch as three stages on three CUDA streams joined by events:

    pinned host in --H2D stream--> device in --compute stream--> device out --D2H stream--> pinned host out

Two slots (double buffering) of pinned host and device buffers let the copy of one
micro-batch overlap the network on the previous one. ``run_many`` keeps two batches in
flight across calls; ``run`` (the Engine protocol) splits one batch into micro-batches
and pipelines those. Nothing here is used on CPU.

Neither class is thread-safe (the graphs' static inputs, the slots): one thread at a time
(:func:`vidsr.pipeline.config.frame_workers` refuses ``--frame-workers`` above 1 on CUDA).
Host waits go through blocking events, which sleep instead of spinning a core.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np
import torch

from vidsr.arch import ModelDescriptor
from vidsr.checks import check_batch


class DeviceEngine(Protocol):
    """An engine that also runs on device tensors, on the current CUDA stream.

    ``run_tensor``: (B, 3, h, w) float32 CUDA tensor -> new (B, 3, h*s, w*s) float32 CUDA tensor.
    """

    descriptor: ModelDescriptor
    label: str
    device: torch.device

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor: ...


class CudaGraphRunner:
    """Replays ``fn`` from a CUDA graph captured once per input shape (static shapes).

    The pipeline's tile windows have one size, so a run sees at most ``batch`` shapes
    (full groups plus each frame's last, smaller group). Beyond ``max_graphs`` shapes it
    runs ``fn`` eagerly.

    All graphs share one memory pool, so their memory is that of the largest, not the sum:
    safe because replays run on one stream, one at a time, and each output is copied out
    (enqueued) before the next replay may reuse the pool.

    Args:
        fn: pure function of one CUDA tensor (no host syncs, no data-dependent shapes).
        max_graphs: shapes to capture at most.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], *, max_graphs: int = 16,
                 warmup: int = 2) -> None:
        self.fn = fn
        self.max_graphs = max_graphs
        self.warmup = warmup
        self._pool = None  # torch.cuda.graph_pool_handle(), made with the first capture
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    def _capture(self, x: torch.Tensor):
        with torch.cuda.device(x.device):  # capture on the input's GPU, whichever is current
            static_in = x.clone()
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):  # warm-up outside the graph (cuDNN picks its kernels here)
                for _ in range(self.warmup):
                    self.fn(static_in)
            torch.cuda.current_stream(x.device).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                static_out = self.fn(static_in)
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``fn(x)`` as a new tensor (the graph's own output buffer is reused by the next replay)."""
        key = (tuple(x.shape), tuple(x.stride()), x.dtype, x.device)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                return self.fn(x)
            entry = self._graphs[key] = self._capture(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()  # before any other replay can write the shared pool


@dataclass
class _Slot:
    """One of the double buffers: pinned host in/out, device in, and the events that guard them."""

    host_in: torch.Tensor | None = None
    host_out: torch.Tensor | None = None
    dev_in: torch.Tensor | None = None
    dev_out: torch.Tensor | None = None
    h2d_done: torch.cuda.Event | None = None
    compute_done: torch.cuda.Event | None = None
    d2h_done: torch.cuda.Event | None = None


@dataclass(frozen=True)
class _Ticket:
    slot: _Slot
    batch: int
    out_shape: tuple[int, ...]


def _grow(buf: torch.Tensor | None, numel: int, *, device: torch.device | str, pinned: bool) -> torch.Tensor:
    if buf is not None and buf.numel() >= numel:
        return buf
    if device == "cpu":
        return torch.empty(numel, dtype=torch.float32, pin_memory=pinned)
    return torch.empty(numel, dtype=torch.float32, device=device)


class OverlapEngine:
    """Runs a :class:`DeviceEngine` with H2D, compute and D2H on separate CUDA streams.

    Args:
        inner: the engine whose ``run_tensor`` does the SR on the compute stream.
        micro_batch: ``run`` splits a batch into pieces of this many windows (default: half
            the batch, at least 1) so that copies of one piece overlap compute on another.
    """

    trims = False  # per-shape CUDA graphs and buffers: whole windows only

    def __init__(self, inner: DeviceEngine, *, micro_batch: int | None = None) -> None:
        if inner.device.type != "cuda":
            raise ValueError("OverlapEngine needs a CUDA engine")
        self.inner = inner
        self.descriptor = inner.descriptor
        self.device = inner.device
        self.label = f"{inner.label}+overlap"
        self.micro_batch = micro_batch
        self.h2d = torch.cuda.Stream(device=self.device)
        self.compute = torch.cuda.Stream(device=self.device)
        self.d2h = torch.cuda.Stream(device=self.device)
        self._slots = [self._new_slot() for _ in range(2)]
        self._next = 0

    def _new_slot(self) -> _Slot:
        slot = _Slot(h2d_done=torch.cuda.Event(blocking=True), compute_done=torch.cuda.Event(blocking=True),
                     d2h_done=torch.cuda.Event(blocking=True))
        for e in (slot.h2d_done, slot.compute_done, slot.d2h_done):  # recorded once, so waits never block
            e.record(torch.cuda.current_stream(self.device))
        return slot

    def submit(self, batch: np.ndarray) -> _Ticket:
        """Queue H2D, SR and D2H of ``batch`` and return at once; :meth:`collect` gives the result.

        At most two submissions may be outstanding (the two slots).
        """
        check_batch(batch)
        slot = self._slots[self._next]
        self._next ^= 1
        s = self.descriptor.scale
        b, c, h, w = batch.shape
        out_shape = (b, c, h * s, w * s)
        # the host may overwrite slot.host_in once the previous H2D from it has finished
        slot.h2d_done.synchronize()
        if slot.host_in is None or slot.host_in.numel() < batch.size:
            slot.host_in = _grow(slot.host_in, batch.size, device="cpu", pinned=True)
        if slot.host_out is None or slot.host_out.numel() < int(np.prod(out_shape)):
            slot.d2h_done.synchronize()
            slot.host_out = _grow(slot.host_out, int(np.prod(out_shape)), device="cpu", pinned=True)
        host_in = slot.host_in[:batch.size].view(batch.shape)
        host_in.numpy()[...] = batch
        with torch.cuda.stream(self.h2d):
            self.h2d.wait_event(slot.compute_done)  # the device input is free once SR k-2 has read it
            if slot.dev_in is None or slot.dev_in.numel() < batch.size:
                slot.dev_in = _grow(slot.dev_in, batch.size, device=self.device, pinned=False)
                # made on the H2D stream, read on the compute stream: not reused before that read
                slot.dev_in.record_stream(self.compute)
            dev_in = slot.dev_in[:batch.size].view(batch.shape)
            dev_in.copy_(host_in, non_blocking=True)
            slot.h2d_done.record(self.h2d)
        with torch.cuda.stream(self.compute):
            self.compute.wait_event(slot.h2d_done)
            y = self.inner.run_tensor(dev_in)
            slot.compute_done.record(self.compute)
        with torch.cuda.stream(self.d2h):
            self.d2h.wait_event(slot.compute_done)
            host_out = slot.host_out[:y.numel()].view(out_shape)
            host_out.copy_(y, non_blocking=True)
            y.record_stream(self.d2h)  # made on the compute stream, read here
            slot.d2h_done.record(self.d2h)
        slot.dev_out = y
        return _Ticket(slot=slot, batch=b, out_shape=out_shape)

    def collect(self, ticket: _Ticket) -> np.ndarray:
        """Wait for a submission's D2H copy and return its (B, 3, H*s, W*s) float32 output."""
        slot = ticket.slot
        slot.d2h_done.synchronize()
        slot.dev_out = None
        n = int(np.prod(ticket.out_shape))
        return slot.host_out[:n].view(ticket.out_shape).numpy().copy()

    def run_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Outputs of ``batches`` in order, with the next batch's copies overlapping this one's SR."""
        pending: deque[_Ticket] = deque()
        for b in batches:
            pending.append(self.submit(b))
            if len(pending) == 2:
                yield self.collect(pending.popleft())
        while pending:
            yield self.collect(pending.popleft())

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Engine protocol: one batch, pipelined as micro-batches."""
        check_batch(batch)
        step = self.micro_batch or max(1, (len(batch) + 1) // 2)
        if step >= len(batch):
            return next(self.run_many([batch]))
        return np.concatenate(list(self.run_many(batch[i:i + step] for i in range(0, len(batch), step))))

    def synchronize(self) -> None:
        for s in (self.h2d, self.compute, self.d2h):
            s.synchronize()
