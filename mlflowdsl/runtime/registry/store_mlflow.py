"""Registry metadata in MLflow's Model Registry (``registry = "mlflow"``, env ``MLW_REGISTRY``).

Each of our versions is an MLflow model version of the registered model of the same name, with
the same number (MLflow assigns it: :meth:`allocate_version` creates the version, so two
registering processes never get the same number). Its source is ``runs:/<run>/model`` of a run
in the experiment ``mlw-registry``, where :meth:`put_version` uploads the model in MLflow's
sklearn flavour, so ``models:/name@alias`` and ``models:/name/N`` load with ``mlflow.pyfunc``.
Our own record (metrics, lineage, checksum of the joblib artifact under ``<home>/models``) is
the version tag ``mlw.record``; metrics and lineage are also plain tags MLflow's UI shows.

Aliases are MLflow aliases. MLflow's alias API has no compare-and-set, so a move (read the
holder, run the gate, set the alias, append the history) holds the project's lock: a file lock
under ``<home>`` locally, the Redis ``DistributedLock`` in cluster mode. The alias history is
registered-model tags ``mlw.alias_history.<n>`` (one JSON move each). Deployments are local
processes and stay in the SQLite store under ``<home>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from typing import Any, Iterator

from mlflowdsl.runtime.registry.artifacts import load_artifact
from mlflowdsl.runtime.registry.models import AliasCheck, AliasMove, ModelVersion, RegistryError
from mlflowdsl.runtime.registry.store_sqlite import SQLiteRegistryStore

RECORD_TAG = "mlw.record"
HISTORY_TAG = "mlw.alias_history."
EXPERIMENT = "mlw-registry"


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


class MlflowRegistryStore:
    def __init__(self, uri: str, home: str, *, lock: Any = None):
        from mlflowdsl.runtime.mlflow_tracking.writer import mlflow_client  # noqa: PLC0415 - heavy: mlflow only for this backend

        self.uri = uri
        self.home = home
        self.client = mlflow_client(uri)
        self.lock_factory = lock  # name -> context manager; None = a file lock under home
        self.local = SQLiteRegistryStore(os.path.join(home, "registry.db"))  # deployments only

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the MLflow registry's errors, reported with the server named
            raise RegistryError(f"MLflow registry at {self.uri}: {what} failed: {type(exc).__name__}: {str(exc)[:300]}",
                                subject="registry = \"mlflow\"",
                                hint="check that the tracking server answers (mlflow_tracking_uri)") from None

    # ------------------------------------------------------------------ versions

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(EXPERIMENT)
        except Exception:  # noqa: BLE001 - created meanwhile by another process: read it back
            return self.client.get_experiment_by_name(EXPERIMENT).experiment_id

    def allocate_version(self, name: str) -> int:
        def allocate() -> int:
            try:
                self.client.create_registered_model(name, tags={"mlw.managed": "true"})
            except Exception as exc:  # noqa: BLE001 - it exists already: fine
                if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
            run = self.client.create_run(self._experiment_id(), tags={"mlflow.runName": f"register {name}",
                                                                       "mlw.model_name": name})
            mv = self.client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                                  tags={"mlw.state": "allocated"})
            return int(mv.version)
        return self._call(f"allocating a version of {name!r}", allocate)

    def put_version(self, mv: ModelVersion) -> None:
        from mlflowdsl.runtime.mlflow_tracking.models import save_mlflow_model  # noqa: PLC0415 - heavy: mlflow flavour only here
        from mlflowdsl.tasks.values import TrainedModel  # noqa: PLC0415 - heavy: only when a version is stored

        def put() -> None:
            version = self.client.get_model_version(mv.name, str(mv.version))
            model = load_artifact(mv.artifact_path, mv.sha256, mv.id)
            if not isinstance(model, TrainedModel):
                model = TrainedModel(estimator=model, algorithm=type(model).__name__, problem=mv.model_type,
                                     feature_names=tuple(mv.signature.get("inputs") or ()), name=mv.name)
            with tempfile.TemporaryDirectory(prefix="mlw-mlflow-") as tmp:
                path = save_mlflow_model(model, os.path.join(tmp, "model"))
                self.client.log_artifacts(version.run_id, path, artifact_path="model")
            self.client.set_terminated(version.run_id, "FINISHED")
            tags = {RECORD_TAG: json.dumps(mv.to_dict(), sort_keys=True, default=str), "mlw.state": "ready",
                    "mlw.sha256": mv.sha256, **{f"mlw.metric.{k}": str(v) for k, v in mv.metrics.items()},
                    **{f"mlw.lineage.{k}": str(v) for k, v in mv.lineage.items()}}
            if mv.label:
                tags["mlw.label"] = mv.label
            for key, value in tags.items():
                self.client.set_model_version_tag(mv.name, str(mv.version), key, value)
        self._call(f"storing {mv.id}", put)

    def _record(self, version: Any) -> ModelVersion | None:
        raw = version.tags.get(RECORD_TAG)
        return ModelVersion.from_dict(json.loads(raw)) if raw else None

    def get_version(self, name: str, version: int) -> ModelVersion | None:
        def get() -> ModelVersion | None:
            try:
                return self._record(self.client.get_model_version(name, str(version)))
            except Exception as exc:  # noqa: BLE001 - a missing version is None, anything else an error
                if _not_found(exc):
                    return None
                raise
        return self._call(f"reading {name}/{version}", get)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        def every() -> list[ModelVersion]:
            names = [name] if name is not None else sorted(m.name for m in self.client.search_registered_models())
            out: list[ModelVersion] = []
            for each in names:
                found = self.client.search_model_versions(f"name = '{each}'")
                records = [r for r in (self._record(v) for v in found) if r is not None]
                out.extend(sorted(records, key=lambda r: r.version))
            return out
        return self._call("listing versions", every)

    def delete_version(self, name: str, version: int) -> None:
        self._call(f"deleting {name}/{version}", lambda: self.client.delete_model_version(name, str(version)))

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        def read() -> dict[str, int]:
            try:
                model = self.client.get_registered_model(name)
            except Exception as exc:  # noqa: BLE001 - an unknown model has no aliases
                if _not_found(exc):
                    return {}
                raise
            return {a: int(v) for a, v in sorted((model.aliases or {}).items())}
        return self._call(f"reading the aliases of {name!r}", read)

    @contextlib.contextmanager
    def _locked(self, name: str, alias: str) -> Iterator[None]:
        if self.lock_factory is not None:
            with self.lock_factory(f"registry-alias:{name}:{alias}"):
                yield
            return
        os.makedirs(self.home, exist_ok=True)
        with open(os.path.join(self.home, f".registry-alias-{name}-{alias}.lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def move_alias(self, name: str, alias: str, version: int | None, *, by: str,
                   check: AliasCheck | None = None) -> AliasMove:
        with self._locked(name, alias):
            previous = self.aliases(name).get(alias)
            holder = self.get_version(name, previous) if previous is not None else None
            gate = check(holder) if check is not None else []
            entry = AliasMove(name, alias, version, previous, time.time(), by, gate)

            def move() -> None:
                if version is None:
                    self.client.delete_registered_model_alias(name, alias)
                else:
                    self.client.set_registered_model_alias(name, alias, str(version))
                seq = len(self._history_tags(name))
                self.client.set_registered_model_tag(name, f"{HISTORY_TAG}{seq:08d}",
                                                     json.dumps(entry.to_dict(), default=str))
            self._call(f"moving {name}@{alias}", move)
            return entry

    def _history_tags(self, name: str) -> dict[str, str]:
        tags = self.client.get_registered_model(name).tags or {}
        return {k: v for k, v in tags.items() if k.startswith(HISTORY_TAG)}

    def alias_history(self, name: str) -> list[AliasMove]:
        def read() -> list[AliasMove]:
            try:
                tags = self._history_tags(name)
            except Exception as exc:  # noqa: BLE001 - an unknown model has no history
                if _not_found(exc):
                    return []
                raise
            return [AliasMove.from_dict(json.loads(tags[k])) for k in sorted(tags)]
        return self._call(f"reading the alias history of {name!r}", read)

    # ------------------------------------------------------------------ deployments (local)

    def put_deployment(self, record: dict[str, Any]) -> None:
        self.local.put_deployment(record)

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        return self.local.get_deployment(name)

    def deployments(self) -> list[dict[str, Any]]:
        return self.local.deployments()

    def delete_deployment(self, name: str) -> None:
        self.local.delete_deployment(name)

    def close(self) -> None:
        self.local.close()
