"""The UI's actions, off unless ``mlw ui --allow-actions``: cancel an execution, resume it,
move a model alias through the promotion gate. Each needs the token the command prints.

- cancel: cluster mode only (the owner instance stops the run within a heartbeat, as
  ``mlw cancel`` does); an embedded run belongs to the ``mlw run`` process that started it;
- resume: starts ``mlw run --resume ID`` as a detached process with the UI's home (embedded
  mode; a cluster execution is resumed by its instance after a failover, or resubmitted);
- promote: ``Registry.promote`` with a gate against the alias's current holder (the same rule
  as ``mlw models promote --gate``), refused with the gate's message when it fails.
"""

from __future__ import annotations

import hmac
import os
import secrets
import subprocess
import sys
from typing import Any

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.runtime.registry.gates import Gate
from mlflowdsl.ui.data import Source


class ActionRefused(MlwError):
    """An action the UI cannot do (off, bad token, or not possible in this mode)."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def cancel(src: Source, execution_id: str) -> dict[str, Any]:
    if src.mode != "cluster":
        raise ActionRefused("cancel from the UI works for cluster executions (mlw ui --redis URL)",
                            hint="an embedded run stops with Ctrl-C in the `mlw run` that started it")
    from mlflowdsl.runtime.cluster_mode.submission import request_cancel  # noqa: PLC0415 - heavy: redis, cluster mode only
    from mlflowdsl.runtime.coordination.config import gateway_from_settings  # noqa: PLC0415 - heavy: redis, cluster mode only

    e = request_cancel(gateway_from_settings(src.settings), execution_id, reason="cancelled from mlw ui",
                       settings=src.settings)
    return {"execution_id": e.id, "status": e.status,
            "message": "cancelled" if e.status == "cancelled" else
            f"already {e.status}" if e.finished else "cancel requested (its instance stops it shortly)"}


def resume(src: Source, execution_id: str) -> dict[str, Any]:
    e = src.state.get_execution(execution_id)
    if src.mode != "embedded":
        raise ActionRefused("resume from the UI works for embedded executions (mlw ui --home DIR)",
                            hint="a cluster execution is resumed by its instance, or submit the workflow again")
    if e.status not in ("failed", "cancelled"):
        raise ActionRefused(f"execution {e.id} is {e.status}: only a failed or cancelled execution resumes")
    log_path = os.path.join(str(src.settings.home), f"ui-resume-{e.id}.log")
    env = {**os.environ, "MLW_HOME": os.path.abspath(str(src.settings.home))}
    if src.settings.scheduler:
        env["MLW_DASK_SCHEDULER"] = src.settings.scheduler
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from mlflowdsl.cli import main; main()", "run", "--resume", e.id], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    return {"execution_id": e.id, "pid": proc.pid, "log": log_path, "message": f"resuming (process {proc.pid})"}


def promote(src: Source, name: str, alias: str, version: int, *, min_delta: float = 0.0) -> dict[str, Any]:
    registry = open_registry(src.settings)
    try:
        candidate = registry.store.get_version(name, version)
        if candidate is None:
            raise ActionRefused(f"model {name!r} has no version {version}")
        move = registry.promote(candidate, alias, gate=Gate(against=alias, min_delta=min_delta), by="mlw ui")
        return {"name": name, "alias": alias, "version": move.version, "previous": move.previous, "gate": move.gate,
                "message": f"{alias} -> {name}/{move.version}"}
    finally:
        registry.close()
