"""The payload of every event type, and the JSON Schema ``mlw schema --events`` publishes.

Each type's payload is a pydantic model. Payloads are *open* (``additionalProperties``): a
newer producer may add fields without breaking older consumers; a field is never renamed or
given another meaning without raising ``schema_version``.

>>> sorted(event_schemas())[:2]
['execution.cancel_requested', 'instance.joined']
>>> event_schemas()["task.completed"]["properties"]["type"]["const"]
'task.completed'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlflowdsl.runtime.events.base import SCHEMA_VERSION


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class WorkflowSubmitted(_Payload):
    tasks: int = Field(description="number of tasks in the plan")
    plan_fingerprint: str | None = None


class WorkflowStarted(_Payload):
    run: int = Field(description="tasks that will run")
    cached: int = Field(description="tasks served from the cache")
    carried: int = Field(0, description="tasks carried over from the resumed execution")


class WorkflowEnded(_Payload):
    status: str = Field(description="succeeded | failed | cancelled")
    error: str | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="tasks per final status")
    duration_s: float | None = None


class TaskStarted(_Payload):
    task_id: str
    worker: str | None = None


class TaskEnded(_Payload):
    task_id: str
    attempts: int | None = None
    duration_s: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    cache_key: str | None = None
    error: str | None = None


class TaskRetried(_Payload):
    task_id: str
    attempt: int | None = None
    delay_s: float | None = None
    error: str | None = None


class TrialCompleted(_Payload):
    task_id: str = Field(description="the tuned task (tune block or hyperparameter_tuning task)")
    trial: int = Field(description="trial number in the study")
    state: str = Field(description="complete | pruned | fail")
    value: float | None = Field(None, description="objective value of a complete trial")
    params: dict[str, Any] = Field(default_factory=dict)


class LeaderElected(_Payload):
    epoch: int = Field(description="fencing epoch of the new leader's lease")


class InstanceChanged(_Payload):
    domains: list[str] = Field(default_factory=list, description="declared capability domains (empty = any)")


class ShardsChanged(_Payload):
    epoch: int = Field(description="fencing epoch the map was written under")
    assignments: dict[str, str] = Field(description="domain -> instance id")


class CancelRequested(_Payload):
    reason: str


class ModelRegistered(_Payload):
    name: str
    version: int
    run_id: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)


class ModelPromoted(_Payload):
    name: str
    version: int
    alias: str | None = Field(None, description="the alias or stage the version now holds")


class ModelDeployed(_Payload):
    name: str
    version: int | None = None
    target: str | None = None
    url: str | None = None


PAYLOADS: dict[str, type[_Payload]] = {
    "workflow.submitted": WorkflowSubmitted,
    "workflow.started": WorkflowStarted,
    "workflow.completed": WorkflowEnded,
    "workflow.failed": WorkflowEnded,
    "workflow.cancelled": WorkflowEnded,
    "task.started": TaskStarted,
    "task.completed": TaskEnded,
    "task.failed": TaskEnded,
    "task.retried": TaskRetried,
    "task.cached": TaskEnded,
    "task.skipped": TaskEnded,
    "tuning.trial_completed": TrialCompleted,
    "leader.elected": LeaderElected,
    "instance.joined": InstanceChanged,
    "instance.left": InstanceChanged,
    "shards.changed": ShardsChanged,
    "execution.cancel_requested": CancelRequested,
    "model.registered": ModelRegistered,
    "model.promoted": ModelPromoted,
    "model.deployed": ModelDeployed,
}

# Events that instances act on (read by every orchestrator instance; see cluster_mode.events).
COORDINATION_TYPES = frozenset({"leader.elected", "instance.joined", "instance.left", "shards.changed",
                                "execution.cancel_requested"})


def event_schema(type_: str, schema_version: int) -> dict[str, Any]:
    """The JSON Schema of one event type: the envelope with ``type`` fixed and its payload."""
    payload = PAYLOADS[type_].model_json_schema()
    defs = payload.pop("$defs", None)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://mlflowdsl.dev/schemas/events/{type_}/v{schema_version}.json",
        "title": type_,
        "type": "object",
        "additionalProperties": False,
        "required": ["event_id", "schema_version", "type", "time", "execution_id", "workflow_id",
                     "instance_id", "payload"],
        "properties": {
            "event_id": {"type": "string", "description": "unique (32 hex digits); de-duplicate on it"},
            "schema_version": {"const": schema_version},
            "type": {"const": type_},
            "time": {"type": "number", "description": "seconds since the epoch (UTC)"},
            "execution_id": {"type": "string", "description": "empty for cluster events; the Kafka key"},
            "workflow_id": {"type": "string"},
            "instance_id": {"type": "string", "description": "the emitting process (host-pid or instance id)"},
            "payload": payload,
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


def event_schemas(schema_version: int | None = None) -> dict[str, dict[str, Any]]:
    """Every event type's JSON Schema, by type."""
    return {t: event_schema(t, schema_version or SCHEMA_VERSION) for t in sorted(PAYLOADS)}
