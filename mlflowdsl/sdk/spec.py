"""Workflow specs as Python objects (the JSON workflow form, typed), and turning any accepted
form into a plan.

>>> spec = WorkflowSpec(workflow_id="w", tasks=[MLTaskSpec(task_id="a", task_type="data_preprocessing",
...                                                        parameters={"source": "x.csv"})])
>>> spec.to_spec()["tasks"][0]["task_id"]
'a'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlflowdsl.compiler.api import compile_text, load_plan
from mlflowdsl.ir import Plan

__all__ = ["MLTaskSpec", "WorkflowSpec", "to_plan"]


class MLTaskSpec(BaseModel):
    """One task of the JSON workflow form; the form's other keys (``resources``, ``cache``,
    ``retry``, ``timeout``, ``domain``, ``when``, ``uses``, ``foreach``) pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)
    task_id: str
    task_type: str
    dependencies: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)


class WorkflowSpec(BaseModel):
    """A workflow in the JSON workflow form; ``to_spec()`` is the dict the compiler reads."""

    model_config = ConfigDict(extra="allow", frozen=True)
    workflow_id: str
    name: str | None = None
    description: str | None = None
    global_parameters: dict[str, Any] = Field(default_factory=dict)
    tasks: list[MLTaskSpec] = Field(default_factory=list)

    def to_spec(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=False)

    def compile(self) -> Plan:
        """The plan; ``CompileError`` with diagnostics when the spec is wrong."""
        return load_plan(self.to_spec())


def to_plan(spec: Any) -> Plan:
    """A ``Plan`` from a workflow dict, a ``WorkflowSpec``, a ``.mlw``/``.json``/``.yaml`` path,
    ``.mlw`` source text, or a compiled ``Plan``."""
    if isinstance(spec, WorkflowSpec):
        return spec.compile()
    if isinstance(spec, (Plan, dict)):
        return load_plan(spec)
    text = str(spec)
    if "\n" in text or text.lstrip().startswith(("workflow", "mlw ")):
        return compile_text(text, "<text>").raise_for_errors()
    return load_plan(text)
