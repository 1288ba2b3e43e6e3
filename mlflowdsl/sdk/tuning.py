"""Tuning requests of the Python API: ``optimize_hyperparameters({"workflow_spec": ...,
"hyperparameter_config": {...}})`` runs the workflow with its training task tuned.

The request becomes a plan with a ``Tuning`` on that task (the same as a ``tune`` block in a
``.mlw`` file), so the study runs in the runtime like any other.
"""

from __future__ import annotations

import logging
from typing import Any

from mlflowdsl.ir import Objective, Task, Tuning
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.runtime.tuning import check_objective
from mlflowdsl.sdk.spec import to_plan
from mlflowdsl.tasks import UnknownTaskType, get_task_type
from mlflowdsl.tasks.search import TuningError, dims_from_dict, direction_of

log = logging.getLogger(__name__)


def tuning_from_config(config: dict[str, Any], task_id: str, default_metric: str) -> Tuning:
    """A ``hyperparameter_config`` (the request's search space and budget) as a ``Tuning``."""
    if not isinstance(config, dict):
        raise TuningError("hyperparameter_config must be an object")
    unknown = set(config) - {"search_space", "max_trials", "trials", "objective_metric", "metric", "direction",
                             "parallel", "sampler", "pruner", "seed", "timeout", "task_id"}
    if unknown:
        raise TuningError(f"hyperparameter_config: unknown key(s) {', '.join(sorted(unknown))}",
                          hint="keys: search_space, max_trials, objective_metric, direction, parallel, sampler, "
                               "pruner, seed, timeout, task_id")
    metric = str(config.get("objective_metric") or config.get("metric") or default_metric)
    direction = config.get("direction") or direction_of(metric)
    try:
        return Tuning(task=task_id, search=dims_from_dict(config.get("search_space")),
                      objective=Objective(direction=direction, metric=metric),
                      trials=int(config.get("max_trials", config.get("trials", 20))),
                      parallel=int(config.get("parallel", 1)), sampler=config.get("sampler", "tpe"),
                      pruner=config.get("pruner", "none"), seed=config.get("seed"), timeout=config.get("timeout"))
    except TuningError:
        raise
    except Exception as exc:  # pydantic's message names the field
        raise TuningError(f"hyperparameter_config: {exc}") from exc


def _tuned_task(plan: Any, config: dict[str, Any]) -> Task:
    wanted = config.get("task_id")
    if wanted:
        try:
            return plan.task(wanted)
        except KeyError:
            raise TuningError(f"hyperparameter_config.task_id: no task {wanted!r} in the workflow",
                              hint=f"tasks: {', '.join(t.id for t in plan.tasks)}") from None
    training = [t for t in plan.tasks if t.type == "model_training"]
    if len(training) != 1:
        raise TuningError(f"the workflow has {len(training)} model_training tasks; say which to tune",
                          hint='set hyperparameter_config["task_id"]')
    return training[0]


def plan_with_tuning(spec: Any, config: dict[str, Any]) -> Any:
    """Compile ``spec`` and add the tuning of its training task (names checked against the
    algorithm's hyperparameters)."""
    plan = to_plan(spec)
    task = _tuned_task(plan, config)
    tuning = tuning_from_config(config, task.id, "accuracy" if task.type == "model_training" else "score")
    check_objective(tuning.objective)
    try:
        tunable = get_task_type(task.type)().tunable_hyperparameters(task.params)
    except UnknownTaskType:  # the compiler has reported it; nothing to check against
        tunable = None
    except Exception as exc:  # noqa: BLE001 - a plug-in that cannot tell: the names go unchecked
        log.debug("task type %s cannot list its tunable hyperparameters: %s", task.type, exc)
        tunable = None
    unknown = [d.name for d in tuning.search if tunable is not None and d.name not in tunable]
    if unknown:
        raise TuningError(f"search_space: {', '.join(unknown)} not hyperparameter(s) of task {task.id!r}",
                          hint=f"tunable: {', '.join(sorted(tunable or ()))}")
    others = [t for t in plan.tunings if t.task != task.id]
    return plan.model_copy(update={"tunings": [*others, tuning]}).with_fingerprint(), task.id


def optimize_hyperparameters(request: dict[str, Any], settings: Any, **run_kwargs: Any) -> dict[str, Any]:
    """Run the workflow with its training task tuned (``DistributedOrchestrator.optimize_hyperparameters``
    without the orchestrator).

    ``request = {"workflow_spec": ..., "hyperparameter_config": {"search_space": {...},
    "max_trials": 50, "objective_metric": "accuracy"}}`` -> ``{"best_params", "best_value",
    "trials", "execution_id", "status", "study"}``."""
    plan, task_id = plan_for_request(request)
    execution = run_plan(plan, settings, **run_kwargs)
    return result_of(execution, task_id)


def plan_for_request(request: dict[str, Any]) -> tuple[Any, str]:
    if not isinstance(request, dict) or "workflow_spec" not in request or "hyperparameter_config" not in request:
        raise TuningError("the request needs 'workflow_spec' and 'hyperparameter_config'")
    return plan_with_tuning(request["workflow_spec"], request["hyperparameter_config"] or {})


def result_of(execution: Any, task_id: str) -> dict[str, Any]:
    """The request's answer; ``error`` is the first failure's own message (a missing data file,
    not "the study was cancelled" of the tuned task downstream of it)."""
    result = execution.tasks.get(task_id)
    study = (result.study if result is not None else None) or {}
    ok = result is not None and result.status in ("succeeded", "cached")
    return {"execution_id": execution.id, "status": execution.status, "best_params": study.get("best_params", {}),
            "best_value": study.get("best_value"), "trials": study.get("trials", []),
            "error": None if ok else _first_error(execution, task_id), "study": study,
            "model_ref": {"execution_id": execution.id, "task_id": task_id} if ok else None}


def _first_error(execution: Any, task_id: str) -> str | None:
    """The error of the task that failed first (the cause), else the tuned task's or the run's."""
    failed = sorted((r for r in execution.tasks.values() if r.status == "failed" and r.error),
                    key=lambda r: r.ended or float("inf"))
    if failed:
        first = failed[0]
        return first.error if first.task_id == task_id else f"task {first.task_id} failed: {first.error}"
    result = execution.tasks.get(task_id)
    return (result.error if result is not None else None) or execution.error


