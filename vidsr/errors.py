"""Exceptions raised by vidsr. Each one subclasses a builtin so callers can catch either."""

from __future__ import annotations


class VidsrError(Exception):
    """Base class for every error vidsr raises on purpose."""


class InputError(VidsrError, ValueError):
    """The input file, stream or argument cannot be used."""


class OutputError(VidsrError, OSError):
    """The output cannot be written."""


class ModelError(VidsrError, ValueError):
    """A model name, weights file or scale does not fit."""


class BackendUnavailable(VidsrError, RuntimeError):
    """An optional backend or its extra is not installed (or has no device)."""


class ExportCheckFailed(VidsrError, RuntimeError):
    """An exported file does not reproduce the torch model within tolerance, or a build failed."""


class SegmentError(VidsrError, RuntimeError):
    """A segment kept failing after its retries."""
