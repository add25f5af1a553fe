"""What this CPU offers the engines: its name and the vector extensions that decide their speed."""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

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


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere oneDNN emulates it,
    several times slower than fp32."""
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


BF16_SLOW = "this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 runs emulated, several times slower than fp32"
