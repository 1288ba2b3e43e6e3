"""``model_deployment``: publish a model artifact with a deployment record.

Until the model registry and serving targets exist (a later issue) a deployment writes
``<artifact_dir>/<name>/<version>/model.joblib`` atomically, its sha256 checksum, and a
``deployment.json`` record beside it. ``models:/<name>/<version>`` then resolves to it for
``batch_inference``, ``model_evaluation`` and ``model_validation``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from mlflowdsl.tasks import InputSpec, TaskContext, TaskOutputs, TaskParams, TaskType

# Names become directory names: no separators, no "..", nothing hidden.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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


class ModelDeploymentParams(TaskParams):
    name: str = Field(description="The deployment/model name (letters, digits, _ - .).")
    target: str = Field(default="local", description="Where to deploy; only `local` until serving targets exist.")
    version: str | None = Field(default=None, description="Version label; default: the next `vN` for this name.")
    min_replicas: int = Field(default=1, ge=0, le=1000, description="Replicas to keep running (recorded).")
    max_replicas: int = Field(default=1, ge=1, le=1000, description="Upper bound for scale-up (recorded).")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_safe_name(value, "name")

    @field_validator("version")
    @classmethod
    def _safe_version(cls, value: str | None) -> str | None:
        return None if value is None else check_safe_name(value, "version")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value != "local":
            raise ValueError(f"unknown deployment target {value!r}; only 'local' is available")
        return value

    @model_validator(mode="after")
    def _replica_bounds(self) -> "ModelDeploymentParams":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is greater than max_replicas ({self.max_replicas})")
        return self


class ModelDeployment(TaskType):
    name = "model_deployment"
    Params = ModelDeploymentParams
    inputs = {"model": InputSpec("model", accepts_uri=True, doc="the model to deploy")}
    outputs = {"deployment": "deployment"}
    default_output = "deployment"
    aliases = {"model_name": "name", "deployment_target": "target", "environment": "target"}
    version = "1"
    sink = True
    side_effects = True
    doc = "Write the model artifact (joblib, sha256) and a deployment record under the artifact directory."

    def run(self, params: ModelDeploymentParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        import datetime
        import hashlib
        import io
        import json
        import os

        import joblib

        from stdlib_tasks._common import atomic_write_bytes, resolve_model

        model = resolve_model(inputs.get("model"), ctx)
        root = os.path.join(ctx.artifact_dir, params.name)
        version = params.version or next_version(root)
        directory = os.path.join(root, version)
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        payload = buffer.getvalue()
        model_path = os.path.join(directory, "model.joblib")
        atomic_write_bytes(model_path, payload)
        record = {
            "name": params.name,
            "version": version,
            "target": params.target,
            "uri": f"models:/{params.name}/{version}",
            "model_path": os.path.abspath(model_path),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size_bytes": len(payload),
            "algorithm": model.algorithm,
            "problem": model.problem,
            "features": list(model.raw_columns or model.feature_names),
            "metrics": dict(model.metrics),
            "scaling": {"min_replicas": params.min_replicas, "max_replicas": params.max_replicas},
            "execution_id": ctx.execution_id,
            "task_id": ctx.task_id,
            "deployed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "state": "deployed",
        }
        record_path = os.path.join(directory, "deployment.json")
        atomic_write_bytes(record_path, json.dumps(record, indent=2, sort_keys=True).encode())
        return TaskOutputs(
            outputs={"deployment": record},
            artifacts={"model": os.path.abspath(model_path), "deployment": os.path.abspath(record_path)},
        )


def next_version(root: str) -> str:
    """``v1`` for a new name, else one past the highest ``vN`` present."""
    import os

    numbers = [int(d[1:]) for d in (os.listdir(root) if os.path.isdir(root) else []) if re.fullmatch(r"v\d+", d)]
    return f"v{max(numbers, default=0) + 1}"
