"""Keep the CPU engine's large activations in the heap between network calls.

glibc hands allocations above its mmap threshold (at most 32 MB, adapted at run time) to
mmap and gives freed heap tops back to the kernel, so a network whose activations are a few
megabytes page-faults all of them in again on every call. On this project's 2-core benchmark
machine that doubled the time of 80x528 px and larger windows. Raising the thresholds keeps
the pages; the extra resident memory is bounded by the largest call (see benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import functools
import sys

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
