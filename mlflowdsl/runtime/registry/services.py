"""The runtime's :class:`~mlflowdsl.tasks.services.TaskServices`: a running task's way to the
model registry, its promotion gates and deployments, for the run's settings."""

from __future__ import annotations

from typing import Any

from mlflowdsl.runtime.registry import deployments, gates
from mlflowdsl.runtime.registry.models import parse_ref
from mlflowdsl.runtime.registry.registry import open_registry


class RegistryServices:
    """Registry, gates and deployments as the settings of one run configure them."""

    def __init__(self, settings: Any):
        self.settings = settings

    def open_registry(self) -> Any:
        return open_registry(self.settings)

    def gate(self, *, against: str, metrics: tuple[str, ...] = (), min_delta: float = 0.0,
             min_relative: float = 0.0, baseline_metrics: dict[str, float] | None = None) -> gates.Gate:
        return gates.Gate(against=against, metrics=tuple(metrics), min_delta=min_delta, min_relative=min_relative,
                          baseline_metrics=baseline_metrics)

    def compare(self, metric: str, candidate: float, baseline: float | None, *, min_delta: float = 0.0,
                min_relative: float = 0.0, against: str = "champion") -> dict[str, Any]:
        return gates.compare(metric, candidate, baseline, min_delta=min_delta, min_relative=min_relative,
                             against=against)

    def model_name(self, ref: str) -> str:
        return parse_ref(ref).name

    def deploy(self, version: Any, config: dict[str, Any], *, name: str | None, registry: Any) -> dict[str, Any]:
        return deployments.deploy(self.settings, version, config, name=name, registry=registry)

    def __reduce__(self):  # travels to workers with its settings only
        return (type(self), (self.settings,))
