"""What the runtime lends a running task beyond its inputs: the model registry, promotion
gates and deployments.

Task types never import the runtime. A task that needs the registry uses ``ctx.services``,
which the runtime fills with its implementation (``mlflowdsl.runtime.registry.services``);
a ``TaskContext`` made by hand (tests, notebooks) has none unless it is given one, and a task
that needs them then fails with a clear message.
"""

from __future__ import annotations

from typing import Any, Protocol

from mlflowdsl.errors import MlwError


class RegistryError(MlwError):
    """A registry operation that cannot be done as asked (unknown model, bad name...)."""


class GateRefused(RegistryError):
    """A promotion whose gate failed; ``checks`` lists each metric comparison."""

    def __init__(self, message: str, *, checks: list[dict[str, Any]], hint: str | None = None):
        super().__init__(message, hint=hint)
        self.checks = checks


class TaskServices(Protocol):
    """The registry-facing services a task may use (see the module doc)."""

    def open_registry(self) -> Any:
        """A registry session (``register``, ``promote``, ``resolve``, ``load``, ``aliases``,
        ``close``); the caller closes it."""

    def gate(self, *, against: str, metrics: tuple[str, ...] = (), min_delta: float = 0.0,
             min_relative: float = 0.0, baseline_metrics: dict[str, float] | None = None) -> Any:
        """A promotion gate for ``registry.promote(..., gate=...)``."""

    def compare(self, metric: str, candidate: float, baseline: float | None, *, min_delta: float = 0.0,
                min_relative: float = 0.0, against: str = "champion") -> dict[str, Any]:
        """One metric comparison as the gates make it (``passed``, ``improvement``, ``message``)."""

    def model_name(self, ref: str) -> str:
        """The model name in a ``models:/NAME@ALIAS``-style reference (RegistryError if malformed)."""

    def deploy(self, version: Any, config: dict[str, Any], *, name: str | None, registry: Any) -> dict[str, Any]:
        """Serve a registered version; returns the deployment record."""
