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
import heapq
from typing import Any, Collection, Iterable, Literal, Mapping, get_args

from pydantic import BaseModel, ConfigDict, Field

from mlflowdsl import canonical_json

IR_VERSION = "1"

# Where a task's result is cached. ``none`` is off; ``memory`` lives in the worker process that
# ran the task; ``disk``, ``redis`` and ``hybrid`` are shared: their entries outlive the worker
# that wrote them, so the client can look them up before submitting.
CacheStrategy = Literal["none", "memory", "disk", "redis", "hybrid"]
CACHE_STRATEGIES: tuple[CacheStrategy, ...] = get_args(CacheStrategy)
SHARED_CACHE_STRATEGIES: frozenset[CacheStrategy] = frozenset({"disk", "redis", "hybrid"})
CACHE_OFF: CacheStrategy = "none"
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

    @property
    def shared(self) -> bool:
        """Whether entries outlive the worker that wrote them (see ``CacheStrategy``)."""
        return self.strategy in SHARED_CACHE_STRATEGIES

    @property
    def off(self) -> bool:
        return self.strategy == CACHE_OFF


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

    def topological_tasks(self) -> list[Task]:
        """The tasks in :func:`topological_order` (the order the compiler lists them in)."""
        by_id = self.tasks_by_id()
        return [by_id[tid] for tid in topological_order({t.id: t.dependencies for t in self.tasks})]

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


class UnknownDependency(ValueError):
    """A task depends on ids that are not in the graph."""

    def __init__(self, task: str, unknown: list[str]):
        self.task, self.unknown = task, unknown
        super().__init__(f"task {task!r} depends on unknown task(s) {', '.join(unknown)}")


class DependencyCycle(ValueError):
    """The dependencies form a cycle; ``blocked`` are the ids that never became ready."""

    def __init__(self, blocked: list[str]):
        self.blocked = blocked
        super().__init__("the dependencies form a cycle")


def topological_order(dependencies: Mapping[str, Collection[str]],
                      dependents: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """The ids of ``dependencies`` (id -> the ids it depends on), dependencies first, ties
    broken by the smallest id: the order the IR lists tasks in, and the order
    ``networkx.lexicographical_topological_sort`` gives for the same graph.

    ``dependents`` (id -> the ids that depend on it) is the inverse mapping, for a caller that
    has it already (a networkx graph: ``topological_order(g.pred, g.succ)``); without it the
    dependencies are checked and inverted here.

    >>> topological_order({"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": [], "e": []})
    ['a', 'b', 'c', 'd', 'e']
    >>> topological_order({"b": [], "a": ["c"], "c": []})
    ['b', 'c', 'a']
    """
    if dependents is None:
        dependents = inverse = {tid: [] for tid in dependencies}
        waiting: dict[str, int] = {}
        for tid, deps in dependencies.items():
            count = 0  # a repeated dependency counts (and is released) once per mention
            for d in deps:
                if d not in inverse:
                    raise UnknownDependency(tid, [x for x in deps if x not in inverse])
                inverse[d].append(tid)
                count += 1
            waiting[tid] = count
    else:
        waiting = {tid: len(deps) for tid, deps in dependencies.items()}
    ready = [tid for tid, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        tid = heapq.heappop(ready)
        order.append(tid)
        for dep in dependents[tid]:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                heapq.heappush(ready, dep)
    if len(order) != len(waiting):
        done = set(order)
        raise DependencyCycle(sorted(tid for tid in waiting if tid not in done))
    return order


# The one canonical JSON encoder (sorted keys, compact or indented by two): see
# mlflowdsl/canonical_json.py. Kept under this name for the plan's readers and the runtime.
canonical_dumps = canonical_json.dumps


def key_part(task_type: str, impl_version: str, uses: str | None, params: dict, cache_version: str) -> str:
    """The static part of a task's cache key: what the task is, before its inputs are known
    (the runtime adds the keys of its inputs and the fingerprints of files it reads)."""
    body = canonical_json.compact(
        {"type": task_type, "impl": impl_version, "uses": uses, "params": params, "cache_version": cache_version})
    return hashlib.sha256(body.encode()).hexdigest()


def plan_json_schema() -> dict:
    return Plan.model_json_schema()
