"""What an execution record becomes in MLflow: names, values, tags and statuses (pure functions).

MLflow accepts param and metric names of letters, digits, ``_ - . / :`` and spaces (at most
250 characters) and param values of at most 6,000 characters. Task params are flattened with
dots (``hyperparameters.n_estimators``); a reference to an upstream output is written as that
output (``prepare.output``, which starts with the upstream task's id); lists and other values
as compact JSON.

>>> flatten({"data": {"$ref": "prepare.output"}, "hyperparameters": {"n_estimators": 40}})
{'data': 'prepare.output', 'hyperparameters.n_estimators': '40'}
>>> valid_name("train[rf] auc")
'train_rf_ auc'
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlflowdsl.ir import Plan, Task
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution

MAX_NAME = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 5000
_INVALID = re.compile(r"[^\w\-./: ]")

# MLflow's RunStatus names
EXECUTION_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED", "running": "RUNNING",
                    "pending": "SCHEDULED"}
TASK_STATUS = {"succeeded": "FINISHED", "cached": "FINISHED", "failed": "FAILED", "skipped": "KILLED",
               "running": "RUNNING", "pending": "SCHEDULED"}

PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"


def valid_name(name: str) -> str:
    """``name`` with the characters MLflow refuses in param/metric keys replaced by ``_``."""
    return _INVALID.sub("_", str(name))[:MAX_NAME] or "_"


def _text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"$ref"}:
        return str(value["$ref"])
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return json.dumps([_text(v) if isinstance(v, dict) and set(v) == {"$ref"} else v for v in value],
                          separators=(",", ":"), default=str)
    return json.dumps(value, separators=(",", ":"), default=str)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Params as MLflow params: nested dicts flattened with dots, values as text."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and set(value) != {"$ref"}:
            out.update(flatten(value, f"{name}."))
        else:
            out[valid_name(name)] = _text(value)[:MAX_PARAM_VALUE]
    return out


def metrics_of(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric metrics with valid names (others are left out)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[valid_name(key)] = float(value)
    return out


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def parent_tags(execution: WorkflowExecution) -> dict[str, str]:
    tags = {"mlw.execution_id": execution.id, "mlw.workflow_id": execution.workflow_id,
            "mlw.plan_fingerprint": execution.plan_fingerprint, "mlw.status": execution.status,
            RUN_NAME_TAG: f"{execution.workflow_id}-{execution.id}"}
    if execution.workflow_name:
        tags["mlw.workflow_name"] = execution.workflow_name
    if execution.source:
        tags["mlflow.source.name"] = execution.source
    return tags


def task_tags(result: TaskResult, task: Task | None, *, execution_id: str, parent_run_id: str) -> dict[str, str]:
    tags = {PARENT_TAG: parent_run_id, RUN_NAME_TAG: result.task_id, "mlw.task_id": result.task_id,
            "mlw.execution_id": execution_id, "mlw.status": result.status,
            "mlw.cache": "hit" if result.status == "cached" else "miss", "mlw.attempts": str(result.attempts)}
    if task is not None:
        tags["mlw.task_type"] = task.type
        if task.uses:
            tags["mlw.uses"] = task.uses
    if result.cache_key:
        tags["mlw.cache_key"] = result.cache_key
    if result.worker:
        tags["mlw.worker"] = result.worker
    if result.error:
        tags["mlw.error"] = result.error[:MAX_TAG_VALUE]
    return tags


def task_params(task: Task | None) -> dict[str, str]:
    return flatten(task.params) if task is not None else {}


def times(record: TaskResult | WorkflowExecution) -> tuple[int | None, int | None]:
    """(start, end) in epoch milliseconds, as MLflow wants them."""
    return _ms(record.started), _ms(record.ended)


def trials_of(result: TaskResult) -> list[dict[str, Any]]:
    """A tuned task's trials (from its study summary), the best one marked."""
    study = result.study or {}
    best = study.get("best_trial")
    metric = valid_name(study.get("metric") or "objective")
    out = []
    for row in study.get("trials") or []:
        metrics = {}
        if row.get("value") is not None:
            metrics[metric] = float(row["value"])
        history = []
        if row.get("last_reported") is not None:
            history.append((int(row.get("last_step") or 0), float(row["last_reported"])))
        out.append({"number": row.get("number"), "state": row.get("state", ""), "params": flatten(row.get("params") or {}),
                    "metrics": metrics, "history": history, "metric": metric, "best": row.get("number") == best,
                    "cached": bool(row.get("cached")), "started": _ms(row.get("started")), "ended": _ms(row.get("ended"))})
    return out


def plan_json(execution: WorkflowExecution) -> str:
    """The plan as run, indented (the record keeps it compact)."""
    if not execution.plan_json:
        return "{}"
    return Plan.from_json(execution.plan_json).canonical_json(indent=2)
