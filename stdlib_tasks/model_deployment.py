"""``model_deployment``: register a model in the model registry, optionally promote it to an
alias, and optionally serve it over HTTP.

The model becomes the next version of ``name`` in the registry (``<home>/models/<name>/<N>/``
with a sha256; metadata in ``<home>/registry.db`` or Redis) with lineage back to the execution
and task. ``alias`` moves an alias (``champion``...) to it, gated against the current holder
when ``better_than`` is set. ``serve = true`` starts a detached deployment (``min_replicas``
replicas behind one ``port``) that outlives the run: ``mlw deployments stop NAME`` ends it. The
default ``serve = false`` only registers, so plain pipelines leave no server running.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from mlflowdsl.errors import MlwError
from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from mlflowdsl.tasks.models import resolve_model
from mlflowdsl.tasks.services import GateRefused, RegistryError
from stdlib_tasks.metrics import check_metric_name

# Names become directory names: no separators, no "..", nothing hidden.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


class ModelDeploymentParams(TaskParams):
    name: str = Field(description="The registered model and deployment name (letters, digits, _ - .).")
    target: str = Field(
        default="local", description="Environment name (e.g. `local`, `production`); served by processes on this machine.")
    version: str | None = Field(default=None, description="A version label (e.g. `v1.2.0`); the number is automatic.")
    min_replicas: int = Field(default=1, ge=1, le=1000, description="Replicas started and kept running when serving.")
    max_replicas: int = Field(default=1, ge=1, le=1000, description="Upper bound for autoscaling under load.")
    serve: bool = Field(default=False, description="Start a detached HTTP deployment (`mlw deployments stop NAME`).")
    port: int | None = Field(default=None, ge=0, le=65535, description="Port to serve on; 0 or none: a free one.")
    canary: float | None = Field(
        default=None, gt=0, lt=100, description="With `serve`: send this percentage of the requests to the new version "
        "next to the one the deployment serves now (`mlw deployments promote|rollback NAME` ends it).")
    alias: str | None = Field(default=None, description="Alias to promote the new version to, e.g. `champion`.")
    better_than: str | None = Field(
        default=None, description="Promote only if the version beats this alias's holder (recorded metrics).")
    min_delta: float = Field(default=0.0, ge=0, description="Required absolute improvement for `better_than`.")
    min_relative: float = Field(default=0.0, ge=0, description="Required relative improvement for `better_than`.")
    compare: list[str] = Field(
        default_factory=list, description="Metrics of the `better_than` gate (default: accuracy or r2).")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_safe_name(value, "name")

    @field_validator("version")
    @classmethod
    def _safe_version(cls, value: str | None) -> str | None:
        if value is not None and value.isdigit():
            raise ValueError(f"version {value!r} is a bare number: numbers are allocated by the registry; "
                             "omit it or use a label like 'v1.2.0'")
        return None if value is None else check_safe_name(value, "version")

    @field_validator("alias", "better_than")
    @classmethod
    def _safe_alias(cls, value: str | None) -> str | None:
        return None if value is None else check_safe_name(value, "alias")

    @field_validator("compare")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            check_metric_name(name)
        return value

    @field_validator("target")
    @classmethod
    def _safe_target(cls, value: str) -> str:
        return check_safe_name(value, "target")

    @model_validator(mode="after")
    def _replica_bounds(self) -> "ModelDeploymentParams":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is greater than max_replicas ({self.max_replicas})")
        if self.better_than and not self.alias:
            raise ValueError("better_than gates a promotion: set alias too (e.g. alias = \"champion\")")
        return self


class ModelDeployment(TaskType):
    name = "model_deployment"
    Params = ModelDeploymentParams
    inputs = {"model": InputSpec("model", accepts_uri=True, doc="the model to deploy")}
    outputs = {"deployment": "deployment"}
    default_output = "deployment"
    aliases = {"model_name": "name", "deployment_target": "target", "environment": "target"}
    version = "2"
    sink = True
    side_effects = True
    doc = "Register the model (versioned, checksummed, with lineage), promote it to an alias, serve it over HTTP."

    def run(self, params: ModelDeploymentParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        model = resolve_model(inputs.get("model"), ctx)
        services = ctx.services
        registry = services.open_registry()
        try:
            lineage = {"execution_id": ctx.execution_id, "task_id": ctx.task_id,
                       "plan_fingerprint": ctx.extra.get("plan_fingerprint"),
                       "dataset_fingerprint": model.dataset_fingerprint, "trained_by": model.name,
                       # the training's cache key: an unchanged re-run registers nothing new
                       # (pickled bytes of the same model differ from one process to the next)
                       "model_key": (ctx.extra.get("input_keys") or {}).get(model.name)}
            try:
                mv = registry.register(params.name, model, label=params.version, lineage=lineage)
            except RegistryError as exc:
                raise TaskFailed(str(exc.args[0]), retryable=False, hint=exc.hint) from None
            promoted = None
            if params.alias:
                gate = services.gate(against=params.better_than, metrics=tuple(params.compare),
                                     min_delta=params.min_delta, min_relative=params.min_relative,
                                     ) if params.better_than else None
                try:
                    promoted = registry.promote(mv, params.alias, gate=gate, by=f"{ctx.execution_id}:{ctx.task_id}")
                except GateRefused as exc:
                    raise TaskFailed(str(exc.args[0]), retryable=False, hint=exc.hint) from None
            record = {
                "name": params.name,
                "model": mv.id,
                "version": mv.version,
                "label": mv.label,
                "target": params.target,
                "uri": mv.uri,
                "model_path": mv.artifact_path,
                "sha256": mv.sha256,
                "size_bytes": mv.size_bytes,
                "algorithm": model.algorithm,
                "problem": model.problem,
                "features": list(model.raw_columns or model.feature_names),
                "metrics": dict(mv.metrics),
                "scaling": {"min_replicas": params.min_replicas, "max_replicas": params.max_replicas},
                "execution_id": ctx.execution_id,
                "task_id": ctx.task_id,
                "alias": params.alias if promoted else None,
                "gate": promoted.gate if promoted else [],
                "state": "registered",
                "endpoint": None,
            }
            if params.serve:
                config = {"target": params.target, "port": params.port or None,
                          "scaling_config": {"min_replicas": params.min_replicas, "max_replicas": params.max_replicas}}
                current = registry.store.get_deployment(params.name) if params.canary else None
                primary: Any = mv
                if current and current.get("model") not in (None, mv.id):  # the new version as a canary
                    primary, config["canary"] = current["model"], {"model": mv.id, "percent": params.canary}
                try:
                    served = services.deploy(primary, config, name=params.name, registry=registry)
                except MlwError as exc:
                    raise TaskFailed(f"cannot serve {mv.id}: {exc.args[0]}", retryable=False, hint=exc.hint) from None
                record.update(state=served["state"], endpoint=served["endpoint"], port=served["port"],
                              replicas=served["replicas"])
        finally:
            registry.close()
        return TaskOutputs(outputs={"deployment": record}, artifacts={"model": mv.artifact_path},
                           metrics={"version": float(mv.version)})


def check_safe_name(value: str, what: str) -> str:
    """``value`` if it is safe as a directory name, else ValueError.

    >>> check_safe_name("fraud_model", "name")
    'fraud_model'
    """
    if not SAFE_NAME.match(value) or ".." in value:
        raise ValueError(
            f"{what} {value!r} is not a safe name: use letters, digits, '_', '-', '.', starting with a "
            "letter or digit, without '..'"
        )
    return value
