"""vidsr: partial super-resolution for shallow depth-of-field video.

The public API, imported on first use (``import vidsr`` loads neither torch nor PyAV)::

    import vidsr

    config = vidsr.UpscaleConfig(scale=2)
    report = vidsr.upscale_video("in.mp4", "out.mp4", config=config)

See README's "Using vidsr from Python" for the rest.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "upscale_video": "vidsr.pipeline.run",
    "UpscaleConfig": "vidsr.pipeline.config",
    "UpscaleReport": "vidsr.pipeline.config",
    "FrameWindow": "vidsr.pipeline.config",
    "resolve_model": "vidsr.checkpoint",
    "load_checkpoint": "vidsr.checkpoint",
    "save_checkpoint": "vidsr.checkpoint",
    "read_manifest": "vidsr.weights",
    "DEFAULT_MODELS": "vidsr.weights",
    "Engine": "vidsr.backends",
    "TorchBackend": "vidsr.backends",
    "OrtBackend": "vidsr.backends",
    "TrtBackend": "vidsr.backends",
    "create_engine": "vidsr.backends",
    "backend_from_name": "vidsr.backends",
    "MaskSpec": "vidsr.masks.factory",
    "build_estimator": "vidsr.masks.factory",
    "probe": "vidsr.media.reader",
    "VidsrError": "vidsr.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidsr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
