"""The model lifecycle: a registry of versioned models with aliases and lineage, promotion
gates, and deployments that serve predictions over HTTP (docs/models.md)."""

from mlflowdsl.runtime.registry.gates import Gate
from mlflowdsl.runtime.registry.models import (
    AliasMove,
    GateRefused,
    ModelRef,
    ModelVersion,
    RegistryError,
    check_name,
    parse_ref,
)
from mlflowdsl.runtime.registry.registry import Registry, open_registry

__all__ = ["AliasMove", "Gate", "GateRefused", "ModelRef", "ModelVersion", "Registry", "RegistryError",
           "check_name", "open_registry", "parse_ref"]
