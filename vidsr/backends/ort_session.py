"""ONNX Runtime sessions on the device asked for, or one line saying why not.

``onnxruntime`` (the ``[ort]`` extra, CPU) and ``onnxruntime-gpu`` (the ``[gpu]`` extra, CUDA and CPU)
install the same ``onnxruntime`` package directory, so at most one of them may be installed. ORT with
the CUDA provider falls back to the CPU without an error when CUDA or cuDNN fail to load: a session
asked for CUDA is checked with ``get_providers()`` and refused if it did not get it.
"""

from __future__ import annotations

import importlib.metadata
import re
from types import ModuleType

from vidsr.errors import BackendUnavailable
from vidsr.extras import install_hint, require

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")

_preloaded = False


def import_ort() -> ModuleType:
    """``import onnxruntime``, or one line naming the extras."""
    return require("onnxruntime", extra="ort",
                   what="ONNX Runtime is not installed (or, for CUDA, pip install 'vidsr[gpu]')")


def installed_ort_distributions() -> list[str]:
    """Which of ``onnxruntime`` and ``onnxruntime-gpu`` pip has installed."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def device_index(device: str) -> int:
    """``cuda`` -> 0, ``cuda:N`` -> N (a device string the CLI already checked)."""
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if m is None:
        raise BackendUnavailable(f"unknown device {device!r} (cpu, cuda or cuda:N)")
    return int(m.group(1) or 0)


def providers_for(ort: ModuleType, device: str, *, what: str = "ort") -> list:
    """The ``providers`` argument of ``InferenceSession`` for ``device`` (cpu, cuda, cuda:N).

    CUDA: refused when both ORT wheels are installed or the CUDA provider is missing; calls
    ``onnxruntime.preload_dlls()`` (ORT >= 1.21) once, so CUDA/cuDNN load from the pip
    ``nvidia-*`` wheels torch uses. The CPU provider stays listed for the few nodes CUDA lacks.
    """
    global _preloaded
    if device == "cpu":
        return [CPU_EP]
    index = device_index(device)
    both = installed_ort_distributions()
    if len(both) > 1:
        raise BackendUnavailable(f"{what} on {device}: onnxruntime and onnxruntime-gpu are both installed and "
                                 "overwrite each other; pip uninstall -y onnxruntime onnxruntime-gpu, then "
                                 f"{install_hint('gpu')}")
    if not _preloaded and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
        _preloaded = True
    if CUDA_EP not in ort.get_available_providers():
        raise BackendUnavailable(f"{what} on {device} needs onnxruntime-gpu: {install_hint('gpu')}")
    return [(CUDA_EP, {"device_id": index}), CPU_EP]


def check_providers(session, device: str, *, what: str = "ort") -> None:
    """Refuse a session asked for CUDA that ORT quietly put on the CPU (CUDA or cuDNN failed to load)."""
    if device != "cpu" and CUDA_EP not in session.get_providers():
        raise BackendUnavailable(f"{what} on {device}: ONNX Runtime could not load CUDA/cuDNN and would run on "
                                 f"the CPU (providers {session.get_providers()}); check the CUDA 12 and cuDNN 9 "
                                 "libraries (onnxruntime.print_debug_info() lists what it found)")

