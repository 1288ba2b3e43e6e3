"""The registry facade: register, resolve, load, promote (with gates), delete.

``open_registry(settings)`` picks the store: Redis when ``settings.redis_url`` is set (cluster
mode; keys under the key prefix), else SQLite at ``<home>/registry.db``. Artifacts always live
under ``<home>/models`` (in cluster mode ``home`` must be a shared directory, as for artifacts).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from typing import Any

import psutil

from mlflowdsl.runtime.events.base import Event
from mlflowdsl.runtime.events.process import emit_now
from mlflowdsl.runtime.registry.artifacts import (
    confined,
    load_artifact,
    read_source,
    store_artifact,
)
from mlflowdsl.runtime.registry.gates import Gate
from mlflowdsl.runtime.registry.models import (
    AliasMove,
    ModelRef,
    ModelVersion,
    RegistryError,
    RegistryStore,
    check_name,
    parse_ref,
)
from mlflowdsl.runtime.registry.store_sqlite import SQLiteRegistryStore
from mlflowdsl.settings import load_settings
from mlflowdsl.tasks.values import TrainedModel

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, store: RegistryStore, artifact_root: str, *, settings: Any = None):
        self.store = store
        self.artifact_root = os.path.abspath(artifact_root)
        self.settings = settings  # where model.* events go (none without settings)

    def emit_event(self, type_: str, mv: ModelVersion, **payload: Any) -> None:
        """Publish a ``model.*`` event about ``mv`` to the settings' event backends."""
        emit_now(self.settings, Event.create(
            type_, execution_id=str(mv.lineage.get("execution_id") or ""), workflow_id=str(mv.lineage.get("workflow_id") or ""),
            payload={"name": mv.name, "version": mv.version, "label": mv.label, **payload}))

    # ------------------------------------------------------------------ register

    def register(self, name: str, model: Any, *, label: str | None = None, model_type: str = "",
                 framework: str = "", metrics: dict[str, float] | None = None, params: dict[str, Any] | None = None,
                 signature: dict[str, Any] | None = None, lineage: dict[str, Any] | None = None) -> ModelVersion:
        """Store ``model`` (an object or a ``.joblib`` path) as the next version of ``name``. The
        same model again returns the version that has it (under ``label``, when one is given):
        the same bytes, or the same ``lineage["model_key"]`` (the cache key of the training that
        produced it, since pickled bytes of one model differ between processes)."""
        check_name(name)
        payload = read_source(model)
        key = (lineage or {}).get("model_key")
        if key:  # computed from the same inputs, code and parameters (a cache key): the same model
            same = [mv for mv in self.store.versions(name) if mv.lineage.get("model_key") == key
                    and (label is None or mv.label == label)]
            if same:
                return same[-1]
        if label is not None:
            check_name(label, "version label")
            if label.isdigit():
                raise RegistryError(f"version label {label!r} is a bare number",
                                    hint="omit the version to get the next number, or use a label like v1.2.0")
            existing = self.find_label(name, label)
            if existing is not None:
                if existing.sha256 == hashlib.sha256(payload).hexdigest():
                    return existing  # the same model registered again (a re-run): idempotent
                raise RegistryError(f"{name} already has a different model labelled {label!r} ({existing.id})",
                                    hint="use a new label, or omit it to get the next version number")
        else:
            digest = hashlib.sha256(payload).hexdigest()
            same = [mv for mv in self.store.versions(name) if mv.sha256 == digest]
            if same:
                return same[-1]  # identical bytes under the same name (an unchanged re-run): that version
        info = describe_model(model) if not isinstance(model, (str, os.PathLike)) else {}
        version = self.store.allocate_version(name)
        path, sha = store_artifact(self.artifact_root, name, version, payload)
        mv = ModelVersion(
            name=name, version=version, artifact_path=path, sha256=sha, size_bytes=len(payload), label=label,
            model_type=model_type or info.get("model_type", ""), framework=framework or info.get("framework", ""),
            metrics={k: float(v) for k, v in (metrics if metrics is not None else info.get("metrics", {})).items()},
            params=dict(params if params is not None else info.get("params", {})),
            signature=dict(signature if signature is not None else info.get("signature", {})),
            lineage={k: v for k, v in (lineage or {}).items() if v not in (None, "")},
            created_at=time.time())
        self.store.put_version(mv)
        self.emit_event("model.registered", mv, metrics=mv.metrics, run_id=mv.lineage.get("execution_id"))
        return mv

    # ------------------------------------------------------------------ look up

    def find_label(self, name: str, label: str) -> ModelVersion | None:
        return next((mv for mv in self.store.versions(name) if mv.label == label), None)

    def resolve(self, ref: str | ModelRef, *, check_artifact: bool = True) -> ModelVersion:
        """The version a reference names (``name@alias``, ``name/3``, ``name/v1.2.0``, ``name``);
        one whose artifact is not under the artifact root is refused (``artifacts.confined``)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        if parsed.alias:
            version = self.store.aliases(parsed.name).get(parsed.alias)
            if version is None:
                raise RegistryError(f"model {parsed.name!r} has no alias {parsed.alias!r}",
                                    hint=self._aliases_hint(parsed.name))
            found = self.store.get_version(parsed.name, version)
        elif parsed.version is not None:
            found = self.store.get_version(parsed.name, parsed.version)
        elif parsed.label:
            found = self.find_label(parsed.name, parsed.label)
        else:
            found = (self.store.versions(parsed.name) or [None])[-1]
        if found is None:
            known = self.store.versions(parsed.name)
            raise RegistryError(
                f"no registered model {parsed.describe()}",
                hint=(f"versions of {parsed.name}: " + ", ".join(str(v.version) + (f" ({v.label})" if v.label else "")
                                                           for v in known)) if known
                else "`mlw models ls` lists the registered models")
        return confined(self.artifact_root, found) if check_artifact else found

    def _aliases_hint(self, name: str) -> str:
        aliases = self.store.aliases(name)
        return ("its aliases: " + ", ".join(f"{a} -> {v}" for a, v in aliases.items())) if aliases \
            else f"promote a version first: mlw models promote {name} VERSION --alias ALIAS"

    def load(self, ref: str | ModelRef | ModelVersion) -> Any:
        mv = confined(self.artifact_root, ref if isinstance(ref, ModelVersion) else self.resolve(ref))
        return load_artifact(mv.artifact_path, mv.sha256, mv.id)

    def names(self) -> list[str]:
        return sorted({mv.name for mv in self.store.versions()})

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        return self.store.versions(name)

    def aliases(self, name: str) -> dict[str, int]:
        return self.store.aliases(name)

    def history(self, name: str) -> list[AliasMove]:
        return self.store.alias_history(name)

    # ------------------------------------------------------------------ aliases

    def promote(self, ref: str | ModelRef | ModelVersion, alias: str, *, gate: Gate | None = None,
                by: str = "") -> AliasMove:
        """Point ``alias`` at a version, atomically; with a gate only if the version beats the
        current holder (raises :class:`GateRefused` saying which metric failed and by how much)."""
        check_name(alias, "alias")
        candidate = ref if isinstance(ref, ModelVersion) else self.resolve(ref)
        check = None
        if gate is not None:
            if gate.against == alias:
                def check(holder: ModelVersion | None) -> list[dict[str, Any]]:
                    return gate.checks(candidate, holder)
            else:  # compared with another alias's holder: checked before the move
                other = self.store.aliases(candidate.name).get(gate.against)
                holder = self.store.get_version(candidate.name, other) if other is not None else None
                checks = gate.checks(candidate, holder)
                def check(_holder: ModelVersion | None) -> list[dict[str, Any]]:
                    return checks
        move = self.store.move_alias(candidate.name, alias, candidate.version, by=by or _who(), check=check)
        self.emit_event("model.promoted", candidate, alias=alias, by=by or _who())
        return move

    def remove_alias(self, name: str, alias: str, *, by: str = "") -> AliasMove:
        check_name(name)
        if alias not in self.store.aliases(name):
            raise RegistryError(f"model {name!r} has no alias {alias!r}", hint=self._aliases_hint(name))
        return self.store.move_alias(name, alias, None, by=by or _who())

    def delete(self, name: str, version: int, *, force: bool = False) -> ModelVersion:
        """Delete one version (metadata and artifact); refused while an alias points at it or a
        running deployment serves it (its replicas load the artifact when they start)."""
        mv = self.resolve(ModelRef(name, version=version), check_artifact=False)  # a forged one can be deleted
        serving = [d["name"] for d in self.store.deployments() if d.get("model") == mv.id and _running(d)]
        if serving and not force:
            raise RegistryError(f"{mv.id} is served by deployment(s) {', '.join(serving)}",
                                hint=f"stop it first (mlw deployments stop {serving[0]}) or deploy another "
                                     "version, or pass --force")
        holding = [a for a, v in self.store.aliases(name).items() if v == version]
        if holding and not force:
            raise RegistryError(f"{mv.id} holds the alias(es) {', '.join(holding)}",
                                hint="move or remove the aliases first, or pass --force")
        for alias in holding:
            self.store.move_alias(name, alias, None, by=_who())
        self.store.delete_version(name, version)
        directory = os.path.dirname(mv.artifact_path)
        if os.path.commonpath([self.artifact_root, os.path.realpath(directory)]) == self.artifact_root:
            shutil.rmtree(directory, ignore_errors=True)  # the version is gone; leftovers only take space
            if os.path.exists(directory):
                log.debug("could not remove all of %s", directory)
        return mv

    def close(self) -> None:
        self.store.close()


def _running(record: dict[str, Any]) -> bool:
    """Whether a deployment record's supervisor is alive (a record left by a killed one is not)."""
    if record.get("state") not in ("starting", "running") or not record.get("pid"):
        return False
    try:
        return psutil.Process(int(record["pid"])).status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):
        return False


def _who() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def describe_model(model: Any) -> dict[str, Any]:
    """Type, framework, metrics, params and signature read off a model object (a ``TrainedModel``
    knows them; anything else gets its class's module as framework)."""
    if isinstance(model, TrainedModel):
        return {
            "model_type": model.problem,
            "framework": type(model.estimator).__module__.split(".")[0],
            "metrics": {k: float(v) for k, v in model.metrics.items()},
            "params": {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                       for k, v in {**_estimator_params(model.estimator), **model.params}.items()},
            "signature": {"inputs": list(model.raw_columns or model.feature_names), "target": model.target,
                          "algorithm": model.algorithm},
        }
    return {"framework": type(model).__module__.split(".")[0]}


def _estimator_params(estimator: Any) -> dict[str, Any]:
    """The estimator's own hyperparameters (scikit-learn's ``get_params``: the defaults it was
    trained with too, not only those the workflow set); scalars only."""
    try:
        params = estimator.get_params(deep=False)
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator: nothing to read
        return {}
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool, type(None)))}


def open_registry(settings: Any = None) -> Registry:
    """The registry for ``settings`` (default: :func:`load_settings`)."""
    if settings is None:
        settings = load_settings()
    home = str(settings.home)
    kind = getattr(settings, "registry", None)
    if kind == "mlflow":
        store: RegistryStore = _mlflow_store(settings)
    elif kind not in (None, "", "sqlite", "redis"):
        raise RegistryError(f"unknown registry {kind!r}", subject="registry (MLW_REGISTRY)",
                            hint="use sqlite, redis or mlflow, or leave it unset")
    elif settings.redis_url:
        from mlflowdsl.runtime.coordination.config import (  # noqa: PLC0415 - heavy: redis only in cluster mode
            gateway_from_settings,
        )
        from mlflowdsl.runtime.registry.store_redis import (  # noqa: PLC0415 - heavy: redis only in cluster mode
            RedisRegistryStore,
        )

        store = RedisRegistryStore(gateway_from_settings(settings))
    else:
        store = SQLiteRegistryStore(os.path.join(home, "registry.db"))
    return Registry(store, os.path.join(home, "models"), settings=settings)


def _mlflow_store(settings: Any) -> RegistryStore:
    """MLflow's Model Registry at the tracking URI; moves lock in Redis in cluster mode."""
    from mlflowdsl.runtime.mlflow_tracking import tracking_uri  # noqa: PLC0415 - heavy: mlflow only for this backend
    from mlflowdsl.runtime.registry.store_mlflow import (  # noqa: PLC0415 - heavy: mlflow only for this backend
        MlflowRegistryStore,
    )

    uri = tracking_uri(settings)
    if uri is None:
        raise RegistryError("registry = \"mlflow\" needs an MLflow tracking URI", subject="registry (MLW_REGISTRY)",
                            hint="set mlflow_tracking_uri (MLW_MLFLOW_TRACKING_URI) or MLFLOW_TRACKING_URI")
    lock = None
    if settings.redis_url:
        from mlflowdsl.runtime.coordination.config import (  # noqa: PLC0415 - heavy: redis only in cluster mode
            gateway_from_settings,
        )
        from mlflowdsl.runtime.coordination.locks import (  # noqa: PLC0415 - heavy: redis only in cluster mode
            DistributedLock,
        )

        gateway = gateway_from_settings(settings)

        def lock(key: str) -> Any:
            return DistributedLock(gateway, key, ttl_s=10.0, timeout_s=30.0, renew=True)
    return MlflowRegistryStore(uri, str(settings.home), lock=lock)
