"""Deployments: a registered model served over HTTP by a detached supervisor process.

``deploy(settings, "models:/fraud@champion", {"target": "local", "scaling_config":
{"min_replicas": 2, "max_replicas": 10}})`` writes a deployment record to the registry store,
starts ``python -m mlflowdsl.runtime.registry.serving`` in its own session (it outlives the
caller, e.g. ``mlw run``), and waits until the replicas answer ``/health``. The
supervisor keeps the record current (pid, replicas, state); ``stop``/``status``/``rollback``
work from any process through that record. Deploying another version (or canary) to a running
deployment with the same port and replica bounds rolls it over in place: the supervisor stays,
gunicorn replaces its workers gracefully, and no request fails (:func:`can_roll_over`).

Record fields: name, target, model (``name/version``), model_uri, version, endpoint, host, port,
min_replicas, max_replicas, replicas, state (starting|running|stopped|failed), pid, server_pid,
previous (the models served before, newest last: what ``rollback`` goes back to), serving
(the [primary, canary] ids the workers load, as the supervisor reports), log, times.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry.models import ModelVersion, RegistryError, check_name
from mlflowdsl.runtime.registry.registry import Registry, open_registry
from mlflowdsl.runtime.registry.serving.supervisor import (
    AUTOSCALE_FIELDS,
    ServeSpec,
    Supervisor,
    answers,
    batching_of,
    free_port,
    kill_group,
    port_free,
    spec_batching,
    wait_until,
)

log = logging.getLogger(__name__)


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs (a zombie, a vanished or an invisible process does not)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):  # no such process, or not ours to see
        return False


def scaling_of(config: dict[str, Any]) -> tuple[int, int]:
    """(min, max) replicas from a deployment config (``scaling_config`` or top-level keys)."""
    scaling = dict(config.get("scaling_config") or {})
    low = int(scaling.get("min_replicas", config.get("min_replicas", 1)))
    high = int(scaling.get("max_replicas", config.get("max_replicas", max(low, 1))))
    if low < 1 or high < low:
        raise MlwError(f"bad scaling_config: min_replicas={low}, max_replicas={high}",
                       hint="use 1 <= min_replicas <= max_replicas")
    return low, high


def autoscale_of(config: dict[str, Any]) -> dict[str, Any]:
    """The autoscaler's timing from ``scaling_config`` (defaults: 1 s samples, 3 to scale up,
    10 to scale down)."""
    scaling = dict(config.get("scaling_config") or {})
    out = {}
    for key, (_field, kind) in AUTOSCALE_FIELDS.items():
        if key in scaling:
            try:
                value = kind(scaling[key])
            except (TypeError, ValueError):
                value = 0
            if value <= 0:
                raise MlwError(f"bad scaling_config: {key} must be a positive number, got {scaling[key]!r}")
            out[key] = value
    return out


def canary_of(reg: Registry, primary: ModelVersion, config: dict[str, Any]) -> dict[str, Any] | None:
    """``{"model": "fraud/4", "percent": 10.0}`` from a config's ``canary`` (a version number
    of the same model, a ``name/version`` or ``models:/`` reference, or ``{"model": ...,
    "percent": ...}``) and ``canary_percent`` (default 10); None without a canary."""
    raw = config.get("canary")
    if raw in (None, "", False):
        return None
    percent = config.get("canary_percent", 10.0)
    if isinstance(raw, dict):
        percent = raw.get("percent", percent)
        raw = raw.get("model")
    ref = f"{primary.name}/{raw}" if isinstance(raw, int) or str(raw).isdigit() else str(raw)
    try:
        percent = float(percent)
    except (TypeError, ValueError):
        percent = -1.0
    if not 0 < percent < 100:
        raise MlwError(f"bad canary_percent {config.get('canary_percent', percent)!r}: the canary's share of "
                       "the traffic must be between 0 and 100 (exclusive)", hint="e.g. --canary-percent 10")
    canary = reg.resolve(ref)
    if canary.id == primary.id:
        raise MlwError(f"the canary {canary.id} is the version already served",
                       hint="name another version of the model as the canary")
    return {"model": canary.id, "percent": percent}


def run_dir(settings: Any, name: str) -> str:
    return os.path.join(str(settings.home), "deployments", check_name(name, "deployment name"))


def deploy(settings: Any, model_ref: str | ModelVersion, config: dict[str, Any] | None = None, *,
           name: str | None = None, registry: Registry | None = None, wait_s: float = 60.0) -> dict[str, Any]:
    """Serve ``model_ref`` as deployment ``name`` (default: the model's name); a running
    deployment of that name is replaced (same port unless ``config["port"]`` says otherwise).
    Returns the running deployment record."""
    config = dict(config or {})
    # Every target is served by processes on this machine; the target's name (e.g. "production")
    # only labels the environment in the record.
    target = check_name(str(config.get("target", "local")), "deployment target")
    low, high = scaling_of(config)
    reg = registry or open_registry(settings)
    mv = model_ref if isinstance(model_ref, ModelVersion) else reg.resolve(model_ref)
    name = check_name(name or config.get("name") or mv.name, "deployment name")
    canary = canary_of(reg, mv, config)
    previous = reg.store.get_deployment(name)
    if serving_already(previous, mv, target, low, high, config) and (previous or {}).get("canary") == canary:
        return previous  # the same version, scale and port: left running, no restart
    history = list((previous or {}).get("previous", []))
    if previous and previous.get("model") and previous["model"] != mv.id:
        history = (history + [previous["model"]])[-20:]
    if can_roll_over(previous, low, high, config):
        return _roll_over(reg, previous, mv, {
            "target": target, "model": mv.id, "model_uri": mv.uri, "version": mv.version, "label": mv.label,
            "autoscale": autoscale_of(config), "batching": batching_of(config), "canary": canary,
            "previous": history}, wait_s)
    if previous and (previous.get("state") in ("starting", "running") or pid_alive(previous.get("pid"))
                     or pid_alive(previous.get("server_pid"))):
        stop(settings, name, registry=reg)  # also ends a server whose supervisor was killed
    host = config.get("host", "127.0.0.1")
    port = int(config.get("port") or (previous or {}).get("port") or free_port(host))
    if not port_free(host, port):
        raise MlwError(f"port {port} on {host} is already in use",
                       hint="choose another port, or stop what listens there")
    directory = run_dir(settings, name)
    os.makedirs(directory, exist_ok=True)
    log_path = os.path.join(directory, "supervisor.log")
    record = {
        "name": name, "target": target, "runs_on": "local", "model": mv.id, "model_uri": mv.uri, "version": mv.version,
        "label": mv.label, "host": host, "port": port, "endpoint": f"http://{host}:{port}",
        "min_replicas": low, "max_replicas": high, "autoscale": autoscale_of(config),
        "batching": batching_of(config), "canary": canary, "replicas": 0,
        "state": "starting", "pid": None,
        "previous": history, "log": log_path, "created_at": time.time(), "updated_at": time.time(),
    }
    reg.store.put_deployment(record)
    argv = [sys.executable, "-m", "mlflowdsl.runtime.registry.serving", "--deployment", name,
            "--home", os.path.abspath(str(settings.home)), "--run-dir", os.path.abspath(directory),
            "--key-prefix", getattr(settings, "key_prefix", "mlw")]
    if getattr(settings, "redis_url", None):
        argv += ["--redis-url", settings.redis_url]
    if getattr(settings, "registry", None) == "mlflow":  # docs/mlflow.md
        argv += ["--registry", "mlflow", "--mlflow-uri", str(settings.mlflow_tracking_uri or "")]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # outlives the caller and its Ctrl-C
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = reg.store.get_deployment(name) or {}
        if current.get("state") == "running":
            reg.emit_event("model.deployed", mv, deployment=name, target=target, url=current.get("endpoint"))
            return current
        if proc.poll() is not None or current.get("state") == "failed":
            tail = _tail(log_path)
            raise MlwError(f"deployment {name!r} failed to start: {current.get('error') or tail.splitlines()[-1:]}",
                           subject=log_path, hint="see the supervisor log")
        time.sleep(0.1)
    log.warning("deployment %r did not start within %gs; terminating its supervisor (pid %d)", name, wait_s, proc.pid)
    proc.terminate()
    raise MlwError(f"deployment {name!r} did not start within {wait_s:g}s", subject=log_path,
                   hint="see the supervisor log")


def serving_already(record: dict[str, Any] | None, mv: ModelVersion, target: str, low: int, high: int,
                    config: dict[str, Any]) -> bool:
    """Whether deployment ``record`` runs ``mv`` as ``config`` asks (an unchanged re-run of a
    deploying pipeline), so that deploying again changes nothing."""
    if not record or record.get("state") != "running" or not pid_alive(record.get("pid")):
        return False
    port = config.get("port")
    return (record.get("model") == mv.id and record.get("sha256", mv.sha256) == mv.sha256
            and (record.get("target"), record.get("min_replicas"), record.get("max_replicas")) == (target, low, high)
            and (not port or int(port) == record.get("port"))
            and config.get("host", "127.0.0.1") == record.get("host"))


def can_roll_over(record: dict[str, Any] | None, low: int, high: int, config: dict[str, Any]) -> bool:
    """Whether the running deployment ``record`` can switch versions in place (same host, port
    and replica bounds: only what its workers load changes)."""
    if not record or record.get("state") != "running" or not pid_alive(record.get("pid")):
        return False
    port = config.get("port")
    return ((record.get("min_replicas"), record.get("max_replicas")) == (low, high)
            and (not port or int(port) == record.get("port")) and config.get("host", "127.0.0.1") == record.get("host"))


def _roll_over(reg: Registry, record: dict[str, Any], mv: ModelVersion, changes: dict[str, Any],
               wait_s: float) -> dict[str, Any]:
    """Have the supervisor of ``record`` serve ``changes`` (a new version, canary, batching)
    without a failed request: the record is rewritten, SIGHUP tells the supervisor to read it
    (serving/__main__.py), and the rollover is done when the supervisor reports the new
    version(s) served by new workers only."""
    name, pid = record["name"], record["pid"]
    wanted = [mv.id, (changes["canary"] or {}).get("model")]
    reg.store.put_deployment({**record, **changes, "rollover_error": None, "updated_at": time.time()})
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = reg.store.get_deployment(name) or {}
        if current.get("rollover_error"):
            current.update({k: record.get(k) for k in changes})  # the record says what is served again
            reg.store.put_deployment(current)
            raise MlwError(f"deployment {name!r} cannot serve {mv.id}: {current['rollover_error']}",
                           subject=record.get("log"), hint="it still serves the former version; see the supervisor log")
        if current.get("state") == "running" and current.get("serving") == wanted:
            if any(current.get(k) != v for k, v in changes.items()):  # a supervisor write raced ours
                current.update(changes)
                reg.store.put_deployment(current)
            reg.emit_event("model.deployed", mv, deployment=name, target=changes["target"], url=current.get("endpoint"))
            return current
        if not pid_alive(pid):
            raise MlwError(f"deployment {name!r}: the supervisor (pid {pid}) exited while rolling over to {mv.id}",
                           subject=record.get("log"), hint="see the supervisor log, then deploy again")
        time.sleep(0.1)
    raise MlwError(f"deployment {name!r} did not roll over to {mv.id} within {wait_s:g}s", subject=record.get("log"),
                   hint="see the supervisor log; `mlw deployments status` shows what it serves")


def _tail(path: str, size: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def stop(settings: Any, name: str, *, registry: Registry | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """Stop a deployment's supervisor (and with it every replica); returns the final record."""
    reg = registry or open_registry(settings)
    record = get(settings, name, registry=reg)
    pid = record.get("pid")
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            log.warning("deployment %r: the supervisor (pid %d) did not stop within %gs; killing it",
                        name, pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
    server = record.get("server_pid")
    if pid_alive(server) and _is_server(server):  # the supervisor was killed hard: end its server too
        log.info("deployment %r: stopping the server (pid %d) its supervisor left behind", name, server)
        os.kill(server, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(server), 15):
            kill_group(server)
    for worker in record.get("worker_pids") or []:  # workers that outlived their master
        if pid_alive(worker) and _is_server(worker):
            os.kill(worker, signal.SIGKILL)
    if server and (not pid_alive(server) or _is_server(server)):  # not a pid reused by another program
        kill_group(server)  # the server's process group: workers whose master is gone keep it
    host, port = record.get("host", "127.0.0.1"), record.get("port")
    record = reg.store.get_deployment(name) or record
    if port and not wait_until(lambda: not answers(host, int(port)), 10):
        record.update(state="unknown", updated_at=time.time())
        reg.store.put_deployment(record)
        raise MlwError(f"deployment {name!r} was stopped, but something still answers on {host}:{port}",
                       hint=f"find it with `ss -ltnp 'sport = :{port}'` and stop it; the record now says 'unknown'")
    record.update(state="stopped", replicas=0, worker_pids=[], updated_at=time.time())
    reg.store.put_deployment(record)
    return record


def _is_server(pid: int) -> bool:
    """Whether ``pid`` runs a gunicorn server or worker (not an unrelated process that got the pid)."""
    try:
        return any("gunicorn" in part for part in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def get(settings: Any, name: str, *, registry: Registry | None = None) -> dict[str, Any]:
    reg = registry or open_registry(settings)
    record = reg.store.get_deployment(check_name(name, "deployment name"))
    if record is None:
        known = [d["name"] for d in reg.store.deployments()]
        raise RegistryError(f"no deployment {name!r}",
                            hint=("known deployments: " + ", ".join(known)) if known else "deploy a model first")
    return record


def status(settings: Any, name: str, *, registry: Registry | None = None) -> dict[str, Any]:
    """The record, corrected by what is observable now (a dead supervisor is not 'running')."""
    record = get(settings, name, registry=registry)
    if record.get("state") in ("running", "starting", "restarting") and not pid_alive(record.get("pid")):
        record = {**record, "state": "dead", "replicas": 0}
    elif record.get("worker_pids"):  # replicas alive now, not as last written
        alive = [p for p in record["worker_pids"] if pid_alive(p)]
        record = {**record, "replicas": len(alive), "worker_pids": alive}
    return record


def list_deployments(settings: Any, *, registry: Registry | None = None) -> list[dict[str, Any]]:
    reg = registry or open_registry(settings)
    return [status(settings, d["name"], registry=reg) for d in reg.store.deployments()]


def _same_config(record: dict[str, Any]) -> dict[str, Any]:
    return {"target": record["target"], "port": record["port"], "host": record.get("host", "127.0.0.1"),
            "scaling_config": {"min_replicas": record["min_replicas"], "max_replicas": record["max_replicas"],
                               **(record.get("autoscale") or {})}, "batching": record.get("batching", True)}


def promote(settings: Any, name: str, *, registry: Registry | None = None) -> dict[str, Any]:
    """Finish a canary: serve the canary version alone (the former version goes on the history,
    so ``rollback`` can return to it)."""
    reg = registry or open_registry(settings)
    record = get(settings, name, registry=reg)
    if not record.get("canary"):
        raise RegistryError(f"deployment {name!r} has no canary to promote",
                            hint="start one with `mlw deployments start MODEL --canary VERSION`")
    return deploy(settings, record["canary"]["model"], _same_config(record), name=name, registry=reg)


def rollback(settings: Any, name: str, *, registry: Registry | None = None) -> dict[str, Any]:
    """Serve the previously deployed version again, under the same name and port. With a
    canary running, end the canary instead: the primary version is served alone."""
    reg = registry or open_registry(settings)
    record = get(settings, name, registry=reg)
    if record.get("canary"):
        new = deploy(settings, record["model"], _same_config(record), name=name, registry=reg)
        new["previous"] = list(record.get("previous") or [])  # the canary was never served alone
        reg.store.put_deployment(new)
        return new
    history = list(record.get("previous") or [])
    if not history:
        raise RegistryError(f"deployment {name!r} has no previous version to roll back to",
                            hint=f"it has only served {record['model']}")
    target = history.pop()
    new = deploy(settings, target, _same_config(record), name=name, registry=reg)
    # The rolled-back-from version is not pushed on the history: rolling back twice goes further back.
    new["previous"] = history
    reg.store.put_deployment(new)
    return new


def serve_foreground(settings: Any, model_ref: str, *, port: int | None = None, replicas: int = 1,
                     max_replicas: int | None = None, host: str = "127.0.0.1",
                     on_ready: Any = None, batching: Any = True) -> None:
    """``mlw serve``: run the replicas in this process until Ctrl-C/SIGTERM (no record kept)."""
    reg = open_registry(settings)
    mv = reg.resolve(model_ref)
    spec = ServeSpec(model_id=mv.id, artifact_path=mv.artifact_path, sha256=mv.sha256,
                     port=port or free_port(host), host=host,
                     run_dir=os.path.join(str(settings.home), "serve", f"{mv.name}-{os.getpid()}"),
                     min_replicas=replicas, max_replicas=max(replicas, max_replicas or replicas),
                     **spec_batching(batching_of({"batching": batching})))
    supervisor = Supervisor(spec)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    supervisor.start()
    if on_ready is not None:
        on_ready(spec)
    supervisor.run()
