"""Keep the CPU engine's large activations in the heap between network calls.

glibc hands allocations above its mmap threshold (at most 32 MB, adapted at run time) to
mmap and gives freed heap tops back to the kernel, so a network whose activations are a few
megabytes page-faults all of them in again on every call. On this project's 2-core benchmark
machine that doubled the time of 80x528 px and larger windows. Raising the thresholds keeps
the pages; the extra resident memory is bounded by the largest call (see benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

_done: list[bool] = []


def keep_heap(*, mmap_threshold: int = 64 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Set glibc's mmap and trim thresholds once per process; False where that is not glibc."""
    if _done:
        return _done[0]
    ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            ok = bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
                libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))
        except (OSError, AttributeError):
            ok = False
    _done.append(ok)
    return ok
