"""The machine under vidsr: CPU features, how OpenMP threads wait, torch threads, glibc heap settings.

Nothing here imports torch at module level: the CLI calls :func:`short_waits` before torch loads.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Iterator


# -------------------------------------------------------------------------------- cpu
# What this CPU offers the engines: its name and the vector extensions that decide their speed.

# flags (as /proc/cpuinfo names them) that change which kernels oneDNN and ONNX Runtime can use
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """{"name", "family", "model", "isa"}: the model name, CPUID family/model numbers (None where the
    system does not tell) and which of :data:`ISA_FLAGS` the CPU has (Linux)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())

    def number(key: str) -> int | None:
        value = fields.get(key, "")
        return int(value) if value.isdigit() else None

    return {"name": fields.get("model name") or platform.processor() or platform.machine(),
            "family": number("cpu family"), "model": number("model"),
            "isa": [f for f in ISA_FLAGS if f in flags]}


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total): clock ticks of all CPUs so far, from ``/proc/stat`` (Linux); steal is the time
    the hypervisor ran other machines while this one had work. None where the system does not tell."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return ticks[7], sum(ticks)
    return None


def steal_share(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """Share of the machine's CPU time between two :func:`cpu_ticks` that the hypervisor took (None
    where unknown)."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere oneDNN emulates it,
    several times slower than fp32."""
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


BF16_SLOW = "this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 runs emulated, several times slower than fp32"


# -------------------------------------------------------------------------------- openmp waits
# How torch's OpenMP threads wait between operators. Environment only: call before torch loads.

SPIN_COUNT = "3000"
"""GNU OpenMP busy-wait spins before a thread sleeps: enough to bridge the gaps between the operators
of one network call, short enough to free the core for the decode, mask and encode threads."""


def short_waits() -> None:
    """Let OpenMP threads spin briefly, then sleep, unless the environment already says how they wait.

    Spinning without end (torch's default spins ~300k times) takes the cores vidsr's own threads need;
    sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) makes every operator wake the threads up, which
    made the SR stage ~20 % slower on 2 cores (benchmarks/README.md). ``KMP_BLOCKTIME=0`` keeps the
    LLVM/Intel OpenMP runtimes (other platforms' torch builds) sleeping at once."""
    if any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    os.environ.setdefault("KMP_BLOCKTIME", "0")


# -------------------------------------------------------------------------------- torch threads
# How torch's intra-op threads are shared among frames upscaled at once.


def threads_per_frame(workers: int) -> int:
    """torch threads each of ``workers`` frames upscaled at once gets: an equal share, at least 1."""
    import torch

    return max(1, torch.get_num_threads() // workers)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (all threads of the process) for the block."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def frame_threads(workers: int) -> Iterator[None]:
    """torch's and OpenCV's threads for a pipeline that upscales ``workers`` frames at once: each
    gets :func:`threads_per_frame`, for the block (both settings are process-wide).

    OpenCV's own pool (all cores) ran beside the SR workers and the mask thread, which already fill
    the cores: with two workers on two cores, OpenCV on one thread took 7-10 % less CPU per frame of
    partial SR and up to 7 % less in full-frame mode (benchmarks/README.md, "OpenCV threads"). One
    worker keeps all the cores for both."""
    import cv2

    n = threads_per_frame(workers)
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        with torch_threads(n):
            yield
    finally:
        cv2.setNumThreads(before)


# -------------------------------------------------------------------------------- thread priority
# The SR pool's threads run a few nice levels below vidsr's other threads.

SR_WORKER_NICE = 5
"""Nice levels the SR pool's threads run below the rest of the process (Linux). Decode, mask and encode
are one thread each, and whenever one of them waits for a core the frames queue up behind it; the
frame workers are the only stage that can use every core, so they take what the others leave. On the
2-core Xeon, taking turns with 0 (benchmarks/sr_priority.py, compact-x2-lite): wall time a pair
0.93 on the sample and 0.96 on a 640x272 pan where partial SR is cheap (the encoder bounds both),
0.99 on the 10-s dragonfly pan and 0.94 for its full-frame SR; CPU a frame 6 % lower in three of
the four sets. Other programs on the machine then get more of the cores than vidsr's SR pool does;
its other threads keep their priority."""


def lower_thread_priority(steps: int | None = None) -> bool:
    """Run the calling thread ``steps`` (default :data:`SR_WORKER_NICE`) nice levels lower, at most 19;
    whether it changed. Linux only (its nice values are per thread); elsewhere, or where the system
    refuses, nothing changes."""
    steps = SR_WORKER_NICE if steps is None else steps
    if steps <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if now >= 19:
            return False
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + steps))
    except OSError:
        return False
    return True


# -------------------------------------------------------------------------------- malloc
# Keep the CPU engine's large activations in the heap between network calls.
#
# glibc hands allocations above its mmap threshold (at most 32 MB, adapted at run time) to
# mmap and gives freed heap tops back to the kernel, so a network whose activations are a few
# megabytes page-faults all of them in again on every call. On this project's 2-core benchmark
# machine that doubled the time of 80x528 px and larger windows. Raising the thresholds keeps
# the pages; the extra resident memory is bounded by the largest call (see benchmarks/README.md).

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.cache
def keep_heap() -> bool:
    """Raise glibc's mmap threshold to 64 MB and its trim threshold to 512 MB, once per process;
    False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 512 << 20))
    except (OSError, AttributeError):
        return False
