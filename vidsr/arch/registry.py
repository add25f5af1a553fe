"""The explicit registry that maps architecture names to their classes, and the descriptor of a built network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from vidsr.arch.compact import Compact
from vidsr.arch.espcn import ESPCN
from vidsr.errors import ModelError


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its name and the class that builds it from keyword arguments."""

    name: str
    build: Callable[..., nn.Module]
    description: str


@dataclass(frozen=True)
class ModelDescriptor:
    """What the pipeline needs to know about a built network."""

    name: str
    arch: str
    scale: int
    in_channels: int
    size_multiple: int
    receptive_radius: int
    config: dict
    fixed_shape: tuple[int, int] | None = None  # (h, w) the network only takes (an ONNX file's fixed input)


class ArchRegistry:
    """Explicit name -> ArchSpec map."""

    def __init__(self, specs: list[ArchSpec]) -> None:
        self._specs = {s.name: s for s in specs}

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> ArchSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ModelError(f"unknown architecture {name!r} (known: {', '.join(self.names())})") from None

    def build(self, name: str, config: dict) -> nn.Module:
        spec = self.get(name)
        try:
            return spec.build(**config)
        except TypeError as e:
            raise ModelError(f"bad config for architecture {name!r}: {e}") from None


REGISTRY = ArchRegistry([
    ArchSpec("compact", Compact, "SRVGG-style Compact (Real-ESRGAN video shape)"),
    ArchSpec("espcn", ESPCN, "ESPCN/FSRCNN-class tiny network"),
])


def describe(module: nn.Module, *, name: str) -> ModelDescriptor:
    """Descriptor of a registered architecture instance."""
    return ModelDescriptor(
        name=name,
        arch=module.arch_name,
        scale=module.scale,
        in_channels=3,
        size_multiple=1,
        receptive_radius=module.receptive_radius,
        config=module.config(),
    )

