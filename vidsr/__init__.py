"""vidsr: partial super-resolution for shallow depth-of-field video."""

from __future__ import annotations

__version__ = "0.1.0"
