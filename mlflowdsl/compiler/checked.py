"""Data handed between compiler passes after ``typecheck``: each task's type, its validated
params (inputs as ``{"$ref": "task.output"}``), its dependencies and its merged directives —
what the graph, lint and lower passes read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlflowdsl import tasks as task_api
from mlflowdsl.compiler.directives import Directives
from mlflowdsl.grammar.diagnostics import Span


@dataclass(frozen=True)
class TypeInfo:
    """What the compiler needs to know about a task's type (custom tasks get theirs from
    the function)."""

    name: str
    cls: type
    params_model: type
    inputs: dict[str, task_api.InputSpec]
    outputs: dict[str, str]
    default_output: str
    aliases: dict[str, str]
    version: str

    def output_name(self, written: str) -> str | None:
        """The real output name ``TASK.written`` means, or None when there is none."""
        if written in self.outputs:
            return written
        if written == "output" and self.default_output in self.outputs:
            return self.default_output
        return None


@dataclass(frozen=True)
class CheckedTask:
    """A task that passed typecheck."""

    id: str
    type: TypeInfo
    span: Span
    id_span: Span
    uses: str | None
    params: dict[str, Any]  # canonical names; inputs as {"$ref": "task.output"}
    config: dict[str, Any]  # the literal configuration (for tunable_hyperparameters)
    deps: dict[str, Span]  # dependency id -> span of what created the edge
    after: tuple[tuple[str, Span], ...]
    directives: Directives  # merged with the defaults
    when: bool
    when_span: Span | None
    when_constant: bool
