"""SR architectures (:mod:`~vidsr.arch.base`, one module each) and their explicit registry."""

from vidsr.arch.compact import Compact
from vidsr.arch.espcn import ESPCN
from vidsr.arch.registry import REGISTRY, ArchRegistry, ArchSpec, ModelDescriptor, describe

__all__ = ["REGISTRY", "ArchRegistry", "ArchSpec", "ModelDescriptor", "Compact", "ESPCN", "describe"]
