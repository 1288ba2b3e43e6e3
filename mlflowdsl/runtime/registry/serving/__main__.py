"""The detached supervisor process of one deployment: ``python -m mlflowdsl.runtime.registry.serving
--deployment NAME --home DIR --run-dir DIR [--redis-url URL] [--key-prefix P]``.

:func:`mlflowdsl.runtime.registry.deployments.deploy` starts it in its own session (so it
outlives its caller) with standard output and error going to ``<run dir>/supervisor.log``. It
reads the deployment record, serves the recorded model version with a :class:`.Supervisor`,
keeps the record current (state, pid, replicas, load, ``serving``) and stops cleanly on
SIGTERM. On SIGHUP it reads the record again and rolls the replicas over to the version it
names without a failed request (:meth:`.Supervisor.roll_to`). A record
whose ``pid`` names another process belongs to a newer deployment of the same name: this one
then leaves it alone.

Exit status: 0 stopped on request, 1 the server could not start (the record says why), 2 no
such deployment record.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

from mlflowdsl.runtime.registry.artifacts import checked_bytes
from mlflowdsl.runtime.registry.registry import open_registry
from mlflowdsl.runtime.registry.serving.supervisor import (
    AUTOSCALE_FIELDS,
    ServeSpec,
    Supervisor,
    batching_of,
    spec_batching,
)
from mlflowdsl.settings import Settings

log = logging.getLogger("mlflowdsl.runtime.registry.serving")  # __name__ is "__main__" under -m


def spec_of(reg: Any, record: dict[str, Any], run_dir: str) -> ServeSpec:
    """What deployment ``record`` serves."""
    mv = reg.resolve(record["model"])
    timing = {AUTOSCALE_FIELDS[k][0]: v for k, v in (record.get("autoscale") or {}).items() if k in AUTOSCALE_FIELDS}
    canary = {}
    if record.get("canary"):
        other = reg.resolve(record["canary"]["model"])
        canary = {"canary_model_id": other.id, "canary_artifact_path": other.artifact_path,
                  "canary_sha256": other.sha256, "canary_percent": float(record["canary"]["percent"])}
    return ServeSpec(model_id=mv.id, artifact_path=mv.artifact_path, sha256=mv.sha256, port=int(record["port"]),
                     host=record.get("host", "127.0.0.1"), run_dir=run_dir,
                     min_replicas=int(record["min_replicas"]), max_replicas=int(record["max_replicas"]),
                     **timing, **spec_batching(batching_of(record)), **canary)


def supervise_deployment(settings: Settings, name: str, run_dir: str) -> int:
    """Serve deployment ``name`` until SIGTERM/SIGINT; returns the exit status."""
    reg = open_registry(settings)
    record = reg.store.get_deployment(name)
    if record is None:
        log.error("no deployment record %r", name)
        return 2
    me = os.getpid()

    def update(changes: dict[str, Any]) -> None:
        current = reg.store.get_deployment(name)
        if current is None or current.get("pid") not in (None, me):
            return  # the record now belongs to a newer deployment: do not overwrite it
        current.update(changes, pid=me, updated_at=time.time())
        reg.store.put_deployment(current)

    def respec() -> ServeSpec | None:
        """The spec of the record now (SIGHUP: deploy() changed the version); None if it cannot be served."""
        try:
            spec = spec_of(reg, reg.store.get_deployment(name) or record, run_dir)
            checked_bytes(spec.artifact_path, spec.sha256, spec.model_id)  # before any worker is replaced
            if spec.canary_model_id:
                checked_bytes(str(spec.canary_artifact_path), str(spec.canary_sha256), spec.canary_model_id)
            return spec
        except Exception as exc:  # noqa: BLE001 - recorded for deploy(), the served version stays
            log.error("deployment %r: cannot roll over: %s", name, exc)
            update({"rollover_error": str(exc)})
            return None

    try:
        spec = spec_of(reg, record, run_dir)
        supervisor = Supervisor(spec, on_change=update, respec=respec)
        signal.signal(signal.SIGHUP, supervisor.request_reload)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        signal.signal(signal.SIGINT, supervisor.request_stop)
        update({"state": "starting"})
        supervisor.start()
    except Exception as exc:  # noqa: BLE001 - recorded for `mlw deployments status`, then exit
        update({"state": "failed", "error": str(exc)})
        log.error("deployment %r failed: %s", name, exc)
        return 1
    log.info("deployment %r: serving %s at %s", name, spec.model_id, spec.endpoint)
    supervisor.run()
    log.info("deployment %r: stopped", name)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlflowdsl.runtime.registry.serving",
                                     description="Run one deployment's replicas (started by deploy()).")
    parser.add_argument("--deployment", required=True, help="The deployment's name (its record in the registry).")
    parser.add_argument("--home", required=True, help="The mlw home of the registry.")
    parser.add_argument("--run-dir", required=True, help="Where the server's pid file and metrics go.")
    parser.add_argument("--redis-url", default=None, help="The cluster-mode registry's Redis.")
    parser.add_argument("--key-prefix", default="mlw")
    parser.add_argument("--registry", default=None, help="The registry's store (mlflow: docs/mlflow.md).")
    parser.add_argument("--mlflow-uri", default=None, help="The MLflow registry's tracking URI.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(home=args.home, redis_url=args.redis_url, key_prefix=args.key_prefix, registry=args.registry,
                        mlflow_tracking_uri=args.mlflow_uri or None)
    return supervise_deployment(settings, args.deployment, args.run_dir)


if __name__ == "__main__":  # `python -m`; importing the module runs nothing
    sys.exit(main())
