"""The task-type API: what a task type declares and how types are found.

A task type is a subclass of :class:`TaskType` registered under the entry-point group
``mlflowdsl.tasks`` (the eight standard types in ``stdlib_tasks`` are registered the same
way, in ``pyproject.toml``), so a third-party package adds a type by declaring an entry
point. The compiler reads the declarations (``Params``, ``inputs``, ``outputs``,
``aliases``, ``version``); the runtime calls ``run``.

* ``Params`` — a pydantic model of the task's *configuration* (literal values known at
  compile time: algorithm, thresholds, paths...). Use ``extra="forbid"``.
* ``inputs`` — attributes that receive other tasks' outputs (``data = prep.output``): name ->
  :class:`InputSpec`. A left-out input is filled from the task's only dependency whose output
  kind fits.
* ``outputs`` — output name -> kind (``dataset``, ``model``, ``metrics``, ``predictions``,
  ``report``...). ``default_output`` is what ``TASK.output`` means when the type has no
  output literally called ``output``.
* ``version`` — the implementation version; part of the cache key, so bump it when ``run``
  changes what it computes.

The values tasks pass each other, :class:`Dataset` and :class:`TrainedModel`, are importable
from here (they live in :mod:`mlflowdsl.tasks.values`); ``ctx.services`` is described in
:mod:`mlflowdsl.tasks.services`, model inputs in :mod:`mlflowdsl.tasks.models`, search spaces
in :mod:`mlflowdsl.tasks.search`.

>>> class Echo(TaskType):
...     name = "echo"
...     class Params(TaskParams):
...         text: str = "hi"
...     outputs = {"output": "value"}
...     def run(self, params, inputs, ctx):
...         return TaskOutputs(outputs={"output": params.text})
>>> Echo().run(Echo.Params(), {}, None).outputs
{'output': 'hi'}
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from mlflowdsl.errors import MlwError
from mlflowdsl.tasks.values import Dataset, TrainedModel, row_transform  # noqa: F401 - the value classes, part of this API

ENTRY_POINT_GROUP = "mlflowdsl.tasks"


class TaskParams(BaseModel):
    """Base for task parameter models: unknown attributes are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class InputSpec:
    kind: str | tuple[str, ...]  # output kind(s) accepted, e.g. "dataset" or ("model", "models")
    required: bool = True
    many: bool = False  # accepts a list of references (``train[*].model``)
    accepts_uri: bool = False  # accepts a ``models:/name@alias`` string instead of a reference
    doc: str = ""

    def accepts(self, kind: str) -> bool:
        kinds = (self.kind,) if isinstance(self.kind, str) else self.kind
        return kind in kinds or "any" in kinds


@dataclass
class TaskOutputs:
    """What ``run`` returns: named outputs (any picklable objects), scalar metrics, artifact
    paths written (name -> path), and the ``outcome``: what the task decided, as a few JSON
    values for people and tools (e.g. a comparison's winner: ``{"best": "train[knn]",
    "rank_by": "accuracy", "value": 0.94}``), shown in the run table, ``--json``, ``mlw status``
    and the report."""

    outputs: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)


class TaskFailed(MlwError):
    """Raised by a task to fail with a clear message (e.g. a validation gate that is not met).

    ``retryable = False`` tells the runtime not to retry it (retrying would not help)."""

    def __init__(self, message: str, *, retryable: bool = False, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retryable = retryable


class TaskPruned(TaskFailed):
    """Raised by a task that stopped early because ``ctx.report`` asked it to (a tuning trial
    judged hopeless by the pruner). ``step`` is the last step reported. Never retried."""

    def __init__(self, message: str, *, step: int = 0):
        super().__init__(message, retryable=False)
        self.step = step

    def __reduce__(self):  # keep ``step`` (and the hint) across processes
        return (type(self), (self.message,), dict(self.__dict__))


class TaskContext:
    """What the runtime hands to ``run``: where to write artifacts, the execution it belongs
    to, a ``report`` hook for intermediate values (used by tuning's pruning), and ``services``
    (:class:`mlflowdsl.tasks.services.TaskServices`: the model registry, gates, deployments)."""

    def __init__(
        self,
        *,
        task_id: str = "task",
        execution_id: str = "local",
        artifact_dir: str = ".mlw/artifacts",
        attempt: int = 1,
        report: Callable[[int, float], bool] | None = None,
        base_dir: str = ".",
        extra: dict[str, Any] | None = None,
        services: Any = None,
        still_owner: Callable[[], bool] | None = None,
    ):
        self.task_id = task_id
        self._still_owner = still_owner
        self.execution_id = execution_id
        self.artifact_dir = artifact_dir
        self.attempt = attempt
        self._report = report
        self.base_dir = base_dir
        self.extra = extra or {}
        self._services = services

    @property
    def services(self) -> Any:
        """The runtime's services; a clear failure for a context made without them."""
        if self._services is None:
            raise TaskFailed("this task needs the model registry, which only a run provides",
                             hint="run it with `mlw run`, or pass TaskContext(services=RegistryServices(settings)) "
                                  "from mlflowdsl.runtime.registry.services")
        return self._services

    def resolve_path(self, path: str) -> str:
        """Relative paths in a workflow are relative to the workflow file's directory
        (like imports); absolute paths and ``scheme:...`` sources are returned unchanged."""
        if os.path.isabs(path) or (":" in path.split("/")[0] and not path.startswith(".")):
            return path
        return os.path.normpath(os.path.join(self.base_dir, path))

    def still_owner(self) -> bool:
        """Whether this task's execution still belongs to the instance that started it (cluster
        mode: an instance that stalled may have been replaced). Call it right before an effect
        in the world that must not happen twice; outside cluster mode it is always True."""
        return bool(self._still_owner()) if self._still_owner else True

    def check_owner(self, what: str = "its side effect") -> None:
        """Raise :class:`TaskFailed` (not retried) unless :meth:`still_owner`."""
        if not self.still_owner():
            raise TaskFailed(f"task {self.task_id!r} did not make {what}: execution {self.execution_id} has a newer "
                             "owner (this instance stalled and another took over)", retryable=False,
                             hint="nothing to do: the new owner runs the task")

    def report(self, step: int, value: float) -> bool:
        """Report an intermediate objective value; returns True when the task should stop
        early (a pruned tuning trial). Outside tuning it never asks to stop."""
        return bool(self._report(step, value)) if self._report else False


@dataclass(frozen=True)
class DataProblem:
    """What :meth:`TaskType.check_data` found wrong with the data a task's params name:
    ``attribute`` is the param it is about (the compiler points there), ``warning`` makes it
    a warning (the data may still work, or may differ where the task runs)."""

    attribute: str
    message: str
    hint: str | None = None
    warning: bool = False
    kind: str = "column"  # "file" (the file is missing) or "column" (its content does not fit)


class TaskType:
    name: ClassVar[str] = ""
    Params: ClassVar[type[TaskParams]] = TaskParams
    inputs: ClassVar[dict[str, InputSpec]] = {}
    outputs: ClassVar[dict[str, str]] = {"output": "any"}
    default_output: ClassVar[str] = "output"
    aliases: ClassVar[dict[str, str]] = {}  # other accepted names (``dataset_path``...) -> attribute names
    version: ClassVar[str] = "1"
    # Sink types produce final results (deployment, evaluation, inference): a sink that
    # nothing depends on is not a lint warning.
    sink: ClassVar[bool] = False
    # Expensive types warn when their cache is disabled (MLW403).
    expensive: ClassVar[bool] = False
    # Names of params that are input file paths: the runtime fingerprints those files into
    # the cache key, so editing the data invalidates the cached result.
    reads: ClassVar[tuple[str, ...]] = ()
    # The result is an effect in the world (a deployment, a written file), so the task is not
    # served from the cache unless its own `cache` block asks for it (`defaults` do not).
    side_effects: ClassVar[bool] = False
    # At least one input of each group must be given; a group left out is filled from the
    # dependencies like a required input, through the group's first member.
    input_groups: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # Outputs used only where a reference names them (`compare.best_model`): a left-out input
    # is never filled from them, so adding one leaves existing workflows' filling as it was.
    named_only_outputs: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""

    def tunable_hyperparameters(self, params: dict[str, Any]) -> set[str] | None:
        """Hyperparameter names a ``tune`` block may search for a task with these (literal)
        params; an empty set means nothing is tunable; ``None`` means unknown (unchecked)."""
        return set()

    @classmethod
    def has_side_effects(cls, params: dict[str, Any]) -> bool:
        """Whether a task with these (compile-time) params must not be served from the cache by
        default: ``side_effects``, or a result that depends on state outside its cache key."""
        return cls.side_effects

    @classmethod
    def check_data(cls, params: dict[str, Any], base_dir: str) -> list[DataProblem]:
        """Cheap checks of the data files ``params`` (validated, canonical names) name, run by
        ``mlw lint``/``compile``: a missing file, a column the params name that the file lacks.
        Read headers and at most a bounded sample of rows, never a URL, never run user code;
        relative paths are relative to ``base_dir`` (the workflow file's directory)."""
        return []

    def run(self, params: TaskParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        raise NotImplementedError

    @classmethod
    def output_kind(cls, output: str) -> str | None:
        if output == "output" and "output" not in cls.outputs:
            return cls.outputs.get(cls.default_output)
        return cls.outputs.get(output)


class UnknownTaskType(MlwError):
    pass


_registry: dict[str, type[TaskType]] | None = None
_lock = threading.Lock()


def registry() -> dict[str, type[TaskType]]:
    """All registered task types by name (loaded once from the entry-point group)."""
    global _registry
    with _lock:
        if _registry is None:
            found: dict[str, type[TaskType]] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    cls = ep.load()
                except Exception as exc:  # whatever a plug-in's import raises: say which plug-in it was
                    raise MlwError(
                        f"task type plug-in {ep.name!r} ({ep.value}) failed to load: {exc}",
                        subject=f"entry point {ENTRY_POINT_GROUP}",
                        hint="reinstall or remove the package that provides it",
                    ) from exc
                found[ep.name] = cls
            _registry = found
        return _registry


def register(cls: type[TaskType]) -> type[TaskType]:
    """Register a task type in this process (tests, notebooks); packages use entry points."""
    registry()[cls.name] = cls
    return cls


def get_task_type(name: str) -> type[TaskType]:
    try:
        return registry()[name]
    except KeyError:
        raise UnknownTaskType(f"unknown task type {name!r}") from None


def load_function(uses: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (the ``uses`` of a custom task)."""
    module_name, sep, attr = uses.partition(":")
    if not sep or not module_name or not attr:
        raise MlwError(f"{uses!r} is not of the form 'package.module:function'")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise MlwError(f"{uses!r} is not callable")
    return obj


def signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn, eval_str=True)
