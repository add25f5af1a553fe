"""Optional dependencies: import one lazily, or fail with one line naming the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from vidsr.errors import BackendUnavailable


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, e.g. ``pip install 'vidsr[trt]'``."""
    return f"pip install 'vidsr[{extra}]'"


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """``import module``, or raise one line naming the extra that provides it.

    Args:
        module: dotted module name, e.g. ``tensorrt`` or ``ai_edge_litert.interpreter``.
        extra: the pip extra of vidsr that installs it (``trt``, ``ray``, ...).
        what: the start of the message, e.g. ``--workers needs Ray, which is not installed``.

    Raises:
        BackendUnavailable: ``"{what}: pip install 'vidsr[{extra}]'"`` when the import fails.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BackendUnavailable(f"{what}: {install_hint(extra)}") from None
