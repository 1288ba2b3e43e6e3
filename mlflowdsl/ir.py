"""The IR: what the compiler produces and the runtime executes.

Frozen pydantic v2 models with ``extra="forbid"``. The canonical JSON (``Plan.canonical_json``)
has sorted keys, tasks in topological-then-id order and quantities as plain numbers, so the
same input always yields byte-identical output. The ``fingerprint`` is the sha256 of the
canonical JSON *without* source spans, so it identifies the computation: reformatting a file
or reordering its declarations does not change it.

Parameter values are JSON values. A reference to another task's output is the object
``{"$ref": "task.output"}``; ``train[*].model`` becomes a list of such objects.

>>> p = Plan(workflow=Workflow(id="w"), tasks=[Task(id="a", type="custom", uses="m:f")])
>>> p = p.with_fingerprint()
>>> len(p.fingerprint)
64
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IR_VERSION = "1"

CacheStrategy = Literal["none", "memory", "disk", "redis", "hybrid"]
Backoff = Literal["exponential", "fixed", "none"]


class IRModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSpan(IRModel):
    file: str
    line: int
    column: int
    end_line: int
    end_column: int


class Resources(IRModel):
    cpu: float = 1.0
    memory: int = 0  # bytes; 0 = no requirement
    gpu: int = 0
    storage: int = 0  # bytes
    network: int = 0  # bits per second


class CachePolicy(IRModel):
    strategy: CacheStrategy = "disk"
    ttl: float | None = None  # seconds; None = no expiry
    version: str = ""


class RetryPolicy(IRModel):
    attempts: int = Field(default=1, ge=1)  # total attempts, first included
    backoff: Backoff = "exponential"
    initial: float = Field(default=1.0, ge=0)  # seconds
    max: float = Field(default=60.0, ge=0)  # seconds
    jitter: bool = True


class Task(IRModel):
    id: str
    type: str
    uses: str | None = None  # "package.module:function" for custom tasks
    dependencies: list[str] = Field(default_factory=list)  # sorted task ids
    params: dict[str, Any] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=lambda: ["output"])
    resources: Resources = Field(default_factory=Resources)
    cache: CachePolicy = Field(default_factory=CachePolicy)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout: float | None = None  # seconds per attempt
    domain: str = "default"
    skip: bool = False  # `when` was false (or an upstream task is skipped)
    impl_version: str = "1"  # the task type's implementation version
    # sha256 over (type, impl_version, uses, params, cache.version); the runtime combines it
    # with the keys of the task's inputs (and data fingerprints) into the full cache key.
    key_part: str = ""
    span: SourceSpan | None = None


class SearchDim(IRModel):
    name: str
    kind: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


class Objective(IRModel):
    direction: Literal["maximize", "minimize"]
    metric: str


class Tuning(IRModel):
    task: str
    search: list[SearchDim]  # sorted by name
    objective: Objective
    trials: int = 20
    parallel: int = 1
    sampler: Literal["tpe", "random", "cmaes", "grid"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "none"
    seed: int | None = None
    timeout: float | None = None  # seconds for the whole study
    span: SourceSpan | None = None


class Workflow(IRModel):
    id: str
    name: str = ""
    version: str = ""
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)  # resolved values
    source: str | None = None  # the main source file, as given


class Plan(IRModel):
    ir_version: str = IR_VERSION
    workflow: Workflow
    tasks: list[Task] = Field(default_factory=list)
    tunings: list[Tuning] = Field(default_factory=list)
    fingerprint: str = ""

    # --------------------------------------------------------------------- helpers

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def tasks_by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}

    def tuning_for(self, task_id: str) -> Tuning | None:
        for t in self.tunings:
            if t.task == task_id:
                return t
        return None

    def canonical_dict(self, *, spans: bool = True) -> dict:
        data = self.model_dump(mode="json")
        if not spans:
            data.pop("fingerprint", None)
            data["workflow"].pop("source", None)
            for t in data["tasks"]:
                t.pop("span", None)
            for t in data["tunings"]:
                t.pop("span", None)
        return data

    def canonical_json(self, *, indent: int | None = 2) -> str:
        """The plan as canonical JSON (sorted keys, spans included)."""
        return canonical_dumps(self.canonical_dict(), indent=indent)

    def compute_fingerprint(self) -> str:
        body = canonical_dumps(self.canonical_dict(spans=False), indent=None)
        return hashlib.sha256(body.encode()).hexdigest()

    def with_fingerprint(self) -> "Plan":
        return self.model_copy(update={"fingerprint": self.compute_fingerprint()})

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.model_validate_json(text)


def canonical_dumps(data: Any, *, indent: int | None = 2) -> str:
    """JSON with sorted keys and no platform-dependent spacing.

    >>> canonical_dumps({"b": [1, 2.5], "a": "é"}, indent=None)
    '{"a":"é","b":[1,2.5]}'
    """
    if indent is None:
        return _COMPACT.encode(data)
    return json.dumps(data, sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False)


# What json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
# allow_nan=False) builds on every call; made once because the compiler encodes every task's
# cache-key body with it (the same bytes: json.dumps is this encoder's encode()).
_COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def key_part(task_type: str, impl_version: str, uses: str | None, params: dict, cache_version: str) -> str:
    """The static part of a task's cache key (see LANGUAGE.md §5)."""
    body = canonical_dumps(
        {"type": task_type, "impl": impl_version, "uses": uses, "params": params, "cache_version": cache_version},
        indent=None,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def plan_json_schema() -> dict:
    return Plan.model_json_schema()
