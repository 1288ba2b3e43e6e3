"""Models from Python: ``register_ml_model(model_info) -> model id`` and
``deploy_ml_model(model_id, deployment_config) -> deployment id``, as plain functions (the
``DistributedOrchestrator`` wraps them as async methods).

``model_info`` is a dict, e.g. ``{"name": "fraud_detection_model", "version":
"v1.2.0", "model_type": "classification", "framework": "sklearn"}``. The model itself comes from,
in this order: ``model`` (an object), ``artifact_path`` (a ``.joblib`` file), ``model_uri`` (a
registered version, e.g. ``models:/fraud/3``), ``execution_id`` + ``task_id`` (the model a
training or tuned task of that execution produced, read from the cache), else -- through a
``DistributedOrchestrator`` -- the model of that orchestrator's most recent successful training
or tuning (it says which on standard error, with its metrics), else the latest registered
version of ``name`` (registered again under the given ``version`` label). ``version`` is kept
as a label: numbers are allocated by the registry. Registering the same bytes again under the
same name returns the existing id.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from mlflowdsl.errors import MlwError
from mlflowdsl.ir import Plan
from mlflowdsl.runtime.cache import open_cache
from mlflowdsl.runtime.registry.deployments import deploy
from mlflowdsl.runtime.registry.models import check_name
from mlflowdsl.runtime.registry.registry import open_registry
from mlflowdsl.runtime.state import open_state
from mlflowdsl.settings import load_settings
from mlflowdsl.tasks.values import TrainedModel

MODEL_INFO_KEYS = {"name", "version", "model_type", "framework", "metrics", "params", "signature", "lineage",
                   "model", "artifact_path", "model_uri", "description", "execution_id", "task_id"}
# Task types whose `model` output is a trained model (a tuned task's is its best trial's).
TRAINING_TYPES = ("model_training", "hyperparameter_tuning")


@dataclass(frozen=True)
class TaskModel:
    """The model a task of an execution produced, and where it came from."""

    model: TrainedModel
    execution_id: str
    task_id: str
    lineage: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(self.model.metrics.items())
                            if not k.startswith("train_") and k != "fit_seconds")
        return f"the model of task {self.task_id} in execution {self.execution_id} ({metrics or 'no metrics'})"


def model_of_task(settings: Any, execution_id: str, task_id: str, *, cluster: bool = False) -> TaskModel:
    """The trained model task ``task_id`` of execution ``execution_id`` produced, read from the
    cache the task wrote (a tuned task: its best trial's entry)."""
    state = open_state(settings, cluster=cluster)
    try:
        execution = state.get_execution(execution_id)
    finally:
        state.close()
    result = execution.tasks.get(task_id)
    if result is None:
        raise MlwError(f"execution {execution.id} has no task {task_id!r}",
                       hint=f"its tasks: {', '.join(execution.tasks)}")
    if result.status not in ("succeeded", "cached"):
        raise MlwError(f"task {task_id} of execution {execution.id} is {result.status}: it has no model",
                       hint=result.error or "register the model of a task that succeeded")
    plan = Plan.from_json(execution.plan_json)
    task = plan.task(task_id)
    key = (result.study or {}).get("best_cache_key") or result.cache_key
    hit, value = (False, None) if not key else open_cache(task.cache.strategy, settings).get(key)
    model = value.outputs.get("model") if hit and hasattr(value, "outputs") else None
    if not isinstance(model, TrainedModel):
        raise MlwError(f"task {task_id} of execution {execution.id} left no trained model in the cache "
                       f"(cache strategy {task.cache.strategy})",
                       hint="give the task `cache { strategy = disk }` (the default), or pass 'model' or 'model_uri'")
    return TaskModel(model, execution.id, task_id, {
        "execution_id": execution.id, "task_id": task_id, "workflow_id": execution.workflow_id,
        "plan_fingerprint": execution.plan_fingerprint, "dataset_fingerprint": model.dataset_fingerprint,
        "trained_by": model.name, "model_key": key})


def training_tasks(execution: Any) -> list[str]:
    """The tasks of an execution that trained a model and succeeded, in the plan's order."""
    plan = Plan.from_json(execution.plan_json) if execution.plan_json else None
    if plan is None:
        return []
    tuned = {t.task for t in plan.tunings}
    return [t.id for t in plan.tasks if (t.type in TRAINING_TYPES or t.id in tuned)
            and execution.tasks.get(t.id) is not None and execution.tasks[t.id].status in ("succeeded", "cached")]


def register_ml_model(model_info: dict[str, Any], *, settings: Any = None,
                      recent: Callable[[], TaskModel | None] | None = None) -> str:
    """Register a model; returns its id ``name/version``.

    ``recent`` (given by the orchestrator): the model to register when ``model_info`` names
    none -- its most recent successful training."""
    if not isinstance(model_info, dict) or not model_info.get("name"):
        raise MlwError("model_info needs a 'name'", hint='e.g. {"name": "fraud_model", "version": "v1.2.0"}')
    unknown = sorted(set(model_info) - MODEL_INFO_KEYS)
    if unknown:
        raise MlwError(f"unknown model_info key(s): {', '.join(unknown)}",
                       hint=f"known keys: {', '.join(sorted(MODEL_INFO_KEYS))}")
    if settings is None:
        settings = load_settings()
    name = model_info["name"]
    check_name(name)
    source: Any = model_info.get("model")
    if source is None:
        source = model_info.get("artifact_path")
    origin = model_info.get("model_uri")
    from_task: TaskModel | None = None
    if source is None and origin is None:
        execution_id, task_id = model_info.get("execution_id"), model_info.get("task_id")
        if execution_id or task_id:
            if not (execution_id and task_id):
                raise MlwError("model_info: 'execution_id' and 'task_id' go together",
                               hint='e.g. {"name": "fraud", "execution_id": "3f2a9c", "task_id": "train_model"}')
            from_task = model_of_task(settings, str(execution_id), str(task_id), cluster=bool(settings.redis_url))
        elif recent is not None:
            from_task = recent()
    if from_task is not None:
        source = from_task.model
    registry = open_registry(settings)
    try:
        inherited: dict[str, Any] = {"lineage": from_task.lineage} if from_task is not None else {}
        if source is None:
            if origin is None:
                existing = registry.versions(name)
                if not existing:
                    raise MlwError(
                        f"nothing to register for {name!r}: no model was given and no version of it is registered",
                        hint="pass 'model' (a trained model), 'artifact_path' (a .joblib file) or 'model_uri' "
                             "(models:/NAME/VERSION)")
                origin = existing[-1].uri
            base = registry.resolve(origin)
            label = model_info.get("version")
            if label is not None and (found := registry.find_label(name, str(label))) is not None \
                    and found.sha256 == base.sha256:
                return found.id
            source = base.artifact_path
            registry.load(base)  # verifies the checksum before copying the bytes
            inherited = {"model_type": base.model_type, "framework": base.framework, "metrics": base.metrics,
                         "params": base.params, "signature": base.signature,
                         "lineage": {**base.lineage, "registered_from": base.id}}
        label = model_info.get("version")
        mv = registry.register(
            name, source, label=None if label is None else str(label),
            model_type=model_info.get("model_type") or inherited.get("model_type", ""),
            framework=model_info.get("framework") or inherited.get("framework", ""),
            metrics=model_info.get("metrics", inherited.get("metrics")),
            params=model_info.get("params", inherited.get("params")),
            signature=model_info.get("signature", inherited.get("signature")),
            lineage=model_info.get("lineage", inherited.get("lineage")))
        if from_task is not None:
            print(f"register_ml_model: {mv.id} is {from_task.describe()}", file=sys.stderr)
        return mv.id
    finally:
        registry.close()


def deploy_ml_model(model_id: str, deployment_config: dict[str, Any] | None = None, *, settings: Any = None) -> str:
    """Serve a registered model (``name/3``, ``models:/name@champion``...); returns the
    deployment id (its name). ``deployment_config``: ``target`` (``local``), ``scaling_config``
    (``min_replicas``/``max_replicas``), optional ``name``, ``port``."""
    if settings is None:
        settings = load_settings()
    registry = open_registry(settings)
    try:
        mv = registry.resolve(model_id)
        record = deploy(settings, mv, dict(deployment_config or {}), registry=registry)
        return record["name"]
    finally:
        registry.close()
