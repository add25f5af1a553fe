"""How torch's OpenMP threads wait between operators. Environment only: call before torch loads."""

from __future__ import annotations

import os

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
