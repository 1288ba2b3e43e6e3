"""Models from Python: ``register_ml_model(model_info) -> model id`` and
``deploy_ml_model(model_id, deployment_config) -> deployment id``, as plain functions (the
``DistributedOrchestrator`` wraps them as async methods).

``model_info`` is a dict, e.g. ``{"name": "fraud_detection_model", "version":
"v1.2.0", "model_type": "classification", "framework": "sklearn"}``. The model itself comes from,
in this order: ``model`` (an object), ``artifact_path`` (a ``.joblib`` file), ``model_uri`` (a
registered version, e.g. ``models:/fraud/3``), else the latest registered version of ``name``
(registered again under the given ``version`` label). ``version`` is kept as a label: numbers
are allocated by the registry. Re-registering the same bytes under the same label returns the
existing id.
"""

from __future__ import annotations

from typing import Any

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry.deployments import deploy
from mlflowdsl.runtime.registry.models import check_name
from mlflowdsl.runtime.registry.registry import open_registry
from mlflowdsl.settings import load_settings

MODEL_INFO_KEYS = {"name", "version", "model_type", "framework", "metrics", "params", "signature", "lineage",
                   "model", "artifact_path", "model_uri", "description"}


def register_ml_model(model_info: dict[str, Any], *, settings: Any = None) -> str:
    """Register a model; returns its id ``name/version``."""
    if not isinstance(model_info, dict) or not model_info.get("name"):
        raise MlwError("model_info needs a 'name'", hint='e.g. {"name": "fraud_model", "version": "v1.2.0"}')
    unknown = sorted(set(model_info) - MODEL_INFO_KEYS)
    if unknown:
        raise MlwError(f"unknown model_info key(s): {', '.join(unknown)}",
                       hint=f"known keys: {', '.join(sorted(MODEL_INFO_KEYS))}")
    registry = open_registry(settings)
    try:
        name = model_info["name"]
        source: Any = model_info.get("model") or model_info.get("artifact_path")
        inherited: dict[str, Any] = {}
        origin = model_info.get("model_uri")
        if source is None:
            if origin is None:
                existing = registry.versions(name) if _safe(name) else []
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
        return mv.id
    finally:
        registry.close()


def _safe(name: str) -> bool:
    check_name(name)  # raises a clear RegistryError for an unsafe name
    return True


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
