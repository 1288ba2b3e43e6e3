"""The runtime's :class:`~mlflowdsl.tasks.services.TaskServices`: a running task's way to the
model registry, its promotion gates and deployments, for the run's settings."""

from __future__ import annotations

from typing import Any, Callable

from mlflowdsl.runtime.registry import deployments, gates
from mlflowdsl.runtime.registry.models import parse_ref
from mlflowdsl.runtime.registry.registry import open_registry
from mlflowdsl.tasks import TaskFailed


class RegistryServices:
    """Registry, gates and deployments as the settings of one run configure them.

    ``still_owner`` (cluster mode: the worker's ownership check) is asked before every write
    to the registry and before a deployment; one that says no fails the task instead."""

    def __init__(self, settings: Any, still_owner: Callable[[], bool] | None = None):
        self.settings = settings
        self.still_owner = still_owner

    def check_owner(self, what: str) -> None:
        if self.still_owner is not None and not self.still_owner():
            raise TaskFailed(f"{what} not made: the execution has a newer owner (this instance stalled and "
                             "another took over)", retryable=False, hint="nothing to do: the new owner runs the task")

    def open_registry(self) -> Any:
        registry = open_registry(self.settings)
        return registry if self.still_owner is None else _FencedRegistry(registry, self.check_owner)

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
        self.check_owner("the deployment")
        if isinstance(registry, _FencedRegistry):
            registry = registry.inner
        return deployments.deploy(self.settings, version, config, name=name, registry=registry)

    def __reduce__(self):  # travels to workers with its settings only
        return (type(self), (self.settings,))


class _FencedRegistry:
    """A registry session whose writes (register, promote, delete) ask ``check`` first."""

    _WRITES = {"register": "the model registration", "promote": "the alias move", "delete": "the deletion"}

    def __init__(self, inner: Any, check: Callable[[str], None]):
        self.inner = inner
        self._check = check

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        what = self._WRITES.get(name)
        if what is None or not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check(what)
            return attr(*args, **kwargs)
        return guarded
