"""The replica supervisor: one gunicorn master with N uvicorn workers behind one port, plus
the autoscaler loop.

Why gunicorn: its master (arbiter) already restarts a worker that dies (within about a second,
woken by SIGCHLD), and ``SIGTTIN``/``SIGTTOU`` add or remove one worker without a restart, so
replica management and scaling need no hand-written process pool. The workers are uvicorn's
(``uvicorn_worker.UvicornWorker``) running the Starlette app of :mod:`.app`.

The supervisor itself only watches: it restarts the whole gunicorn master if *that* dies,
samples the workers' load every ``interval_s`` and signals the master to scale. ``mlw serve``
runs it in the foreground; a detached deployment runs it in its own process
(``python -m mlflowdsl.runtime.registry.serving``, :mod:`.__main__`), which keeps the
deployment record up to date through ``on_change``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

import psutil
from prometheus_client.multiprocess import mark_process_dead

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry.serving.autoscaler import LoadMeter, ScalingPolicy

log = logging.getLogger(__name__)

APP = "mlflowdsl.runtime.registry.serving.app:create_app()"

# The autoscaler timing a deployment's ``scaling_config`` may set: config key -> (ServeSpec field, type).
AUTOSCALE_FIELDS: dict[str, tuple[str, type]] = {
    "scale_interval_s": ("interval_s", float),
    "scale_up_samples": ("scale_up_samples", int),
    "scale_down_samples": ("scale_down_samples", int),
}


BATCHING_KEYS = {"enabled": bool, "max_batch_rows": int, "max_wait_ms": float}


def batching_of(config: dict[str, Any]) -> dict[str, Any]:
    """The micro-batching settings of a deployment config: ``batching = false`` turns it off,
    ``batching = {enabled, max_batch_rows, max_wait_ms}`` bounds it (default: on, 256 rows,
    no added wait)."""
    raw = config.get("batching", True)
    raw = {"enabled": raw} if isinstance(raw, bool) else dict(raw or {})
    unknown = sorted(set(raw) - set(BATCHING_KEYS))
    if unknown:
        raise MlwError(f"bad batching setting(s): {', '.join(unknown)}", hint="use " + ", ".join(BATCHING_KEYS))
    out = {"enabled": True, "max_batch_rows": 256, "max_wait_ms": 0.0}
    for key, kind in BATCHING_KEYS.items():
        if key not in raw:
            continue
        value = raw[key]
        if kind is bool:
            if not isinstance(value, bool):
                raise MlwError(f"bad batching setting: enabled must be true or false, got {value!r}")
        else:
            try:
                value = kind(value)
            except (TypeError, ValueError):
                value = -1
            if value < 0 or (key == "max_batch_rows" and value < 1) or value > (100_000 if kind is int else 1000):
                raise MlwError(f"bad batching setting: {key} = {raw[key]!r}",
                               hint="max_batch_rows from 1 to 100000, max_wait_ms from 0 to 1000")
        out[key] = value
    return out


def spec_batching(batching: dict[str, Any]) -> dict[str, Any]:
    """The :class:`ServeSpec` fields of :func:`batching_of`'s settings."""
    return {"batching": batching["enabled"], "max_batch_rows": batching["max_batch_rows"],
            "max_wait_ms": batching["max_wait_ms"]}


@dataclass(frozen=True)
class ServeSpec:
    model_id: str
    artifact_path: str
    sha256: str
    port: int
    run_dir: str  # the metrics directory and the gunicorn pid file
    host: str = "127.0.0.1"
    min_replicas: int = 1
    max_replicas: int = 1
    interval_s: float = 1.0
    scale_up_samples: int = 3  # intervals of sustained load before one more replica
    scale_down_samples: int = 10  # idle intervals before one replica less
    start_timeout_s: float = 60.0
    batching: bool = True  # micro-batching of concurrent requests (serving/batching.py)
    max_batch_rows: int = 256
    max_wait_ms: float = 0.0
    canary_model_id: str | None = None  # a second version served to canary_percent of the requests
    canary_artifact_path: str | None = None
    canary_sha256: str | None = None
    canary_percent: float = 0.0

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def policy(self) -> ScalingPolicy:
        return ScalingPolicy(min_replicas=max(1, self.min_replicas), max_replicas=max(1, self.max_replicas),
                             interval_s=self.interval_s, up_samples=self.scale_up_samples,
                             down_samples=self.scale_down_samples)


def gunicorn_argv(spec: ServeSpec, workers: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--workers", str(workers),
            "--worker-class", "uvicorn_worker.UvicornWorker", "--bind", f"{spec.host}:{spec.port}",
            "--pid", os.path.join(spec.run_dir, "gunicorn.pid"), "--graceful-timeout", "5", "--timeout", "60",
            "--log-level", "warning", "--no-control-socket", APP]


def free_port(host: str) -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something listens on ``host:port``: anything but a refused connection counts (a
    listener whose backlog is full lets a connection time out instead of refusing it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) != errno.ECONNREFUSED


def kill_group(leader: int | None) -> None:
    """SIGKILL the process group that ``leader`` leads (a gunicorn master and its workers)."""
    if not leader:
        return
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone (or the pid is not ours)
        pass


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def healthy(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


class Supervisor:
    def __init__(self, spec: ServeSpec, on_change: Callable[[dict[str, Any]], None] | None = None,
                 respec: Callable[[], ServeSpec | None] | None = None):
        self.spec = spec
        self.policy = spec.policy()
        self.on_change = on_change or (lambda _state: None)
        self.metrics_dir = os.path.join(spec.run_dir, "metrics")
        self.meter = LoadMeter(self.metrics_dir)
        self.autoscaling = self.policy.max_replicas > self.policy.min_replicas
        self.target = self.policy.min_replicas
        self.master: subprocess.Popen | None = None
        self.samples: list[float] = []
        self.restarts = 0
        self._last_report: dict[str, Any] | None = None
        self.restarting = False
        self.stopping = threading.Event()
        self.spawned_workers = self.target
        self.retiring: set[int] = set()  # the workers a rollover replaces (until they are gone)
        self.respec = respec
        self.reload_wanted = threading.Event()

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        if not port_free(self.spec.host, self.spec.port):
            raise MlwError(f"port {self.spec.port} on {self.spec.host} is already in use",
                           hint="choose another port (--port), or stop what listens there")
        os.makedirs(self.spec.run_dir, exist_ok=True)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)  # prometheus multiprocess files of a former server
        os.makedirs(self.metrics_dir)
        self._spawn()
        deadline = time.monotonic() + self.spec.start_timeout_s
        while time.monotonic() < deadline:
            if self.master is not None and self.master.poll() is not None:
                raise MlwError(f"the server for {self.spec.model_id} exited with {self.master.returncode} while starting",
                               hint=f"see the log in {self.spec.run_dir}")
            if healthy(self.spec.endpoint, 1.0) and len(self.workers()) >= self.target:
                self.restarting = False
                self._report("running")
                return
            time.sleep(0.1)
        self.stop()
        raise MlwError(f"the server for {self.spec.model_id} did not answer /health within "
                       f"{self.spec.start_timeout_s:g}s", hint=f"see the log in {self.spec.run_dir}")

    def serve_env(self) -> dict[str, str]:
        """The ``MLW_SERVE_*`` settings of the served version(s), as the workers read them."""
        env = {"MLW_SERVE_MODEL": self.spec.artifact_path, "MLW_SERVE_SHA256": self.spec.sha256,
               "MLW_SERVE_MODEL_ID": self.spec.model_id, "MLW_SERVE_BATCHING": "1" if self.spec.batching else "0",
               "MLW_SERVE_MAX_BATCH_ROWS": str(self.spec.max_batch_rows),
               "MLW_SERVE_MAX_WAIT_MS": str(self.spec.max_wait_ms)}
        if self.spec.canary_model_id:
            env.update(MLW_SERVE_CANARY_MODEL=str(self.spec.canary_artifact_path),
                       MLW_SERVE_CANARY_SHA256=str(self.spec.canary_sha256),
                       MLW_SERVE_CANARY_MODEL_ID=self.spec.canary_model_id,
                       MLW_SERVE_CANARY_PERCENT=str(self.spec.canary_percent))
        return env

    def _write_spec_file(self) -> str:
        """``<run dir>/serve.json``: what every worker started from now on serves (app.read_spec_file)."""
        path = os.path.join(self.spec.run_dir, "serve.json")
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(self.serve_env(), fh)
        os.replace(path + ".tmp", path)  # a worker starting now reads the old or the new file, whole
        return path

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLW_SERVE_")}  # never inherited
        env.update(self.serve_env(), MLW_SERVE_SPEC=self._write_spec_file(), PROMETHEUS_MULTIPROC_DIR=self.metrics_dir)
        env["MLW_SERVE_GROUP"] = "1"  # the master leads its own process group (see app.die_with_master)
        self.master = subprocess.Popen(gunicorn_argv(self.spec, self.target), env=env, stdin=subprocess.DEVNULL,
                                       process_group=0)
        self.spawned_workers = self.target
        self.retiring = set()
        self.restarting = True  # until every replica answers /health

    def roll_to(self, spec: ServeSpec) -> None:
        """Serve ``spec``'s version(s) without a refused request: rewrite the spec file, then
        SIGHUP the master, which starts new workers (they read the file) and stops the old ones
        gracefully (each finishes its requests). The listening socket stays open in the master
        throughout, so a connection made meanwhile waits in its backlog for a new worker."""
        self.spec = spec
        self._write_spec_file()
        if self.master is None or self.master.poll() is not None:
            return  # the next step() starts a master, which serves the new spec
        self.retiring = set(self.workers())
        self.target = self.spawned_workers  # gunicorn's reload goes back to its --workers
        self.samples = []
        self.restarting = True
        self.master.send_signal(signal.SIGHUP)
        self._report("restarting")

    def workers(self) -> list[int]:
        """The live worker pids of the gunicorn master."""
        if self.master is None or self.master.poll() is not None:
            return []
        try:
            children = psutil.Process(self.master.pid).children()
        except psutil.NoSuchProcess:
            return []
        return sorted(c.pid for c in children if c.status() != psutil.STATUS_ZOMBIE)

    def step(self) -> None:
        """One supervision round: revive the master, sample load, scale."""
        if self.master is not None and self.master.poll() is not None and not self.stopping.is_set():
            self.restarts += 1
            log.warning("the server of %s exited with %s; starting it again (restart %d)",
                        self.spec.model_id, self.master.returncode, self.restarts)
            self._respawn()
            return
        if self.reload_wanted.is_set() and self.respec is not None:
            self.reload_wanted.clear()
            spec = self.respec()
            if spec is not None:
                self.roll_to(spec)
                return
        if self.restarting:
            workers = self.workers()
            if (healthy(self.spec.endpoint, 1.0) and len(workers) >= self.target
                    and not self.retiring.intersection(workers)):
                for pid in self.retiring:  # a replaced worker's versions leave mlw_serve_model_info
                    mark_process_dead(pid, self.metrics_dir)
                self.retiring = set()
                self.restarting = False
                self._report("running")
            else:
                self._report("restarting")
            return
        if not self.autoscaling:
            self._report("running")
            return
        self.samples = (self.samples + [self.meter.sample(len(self.workers()), self.spec.interval_s)])[-50:]
        wanted = self.policy.decide(self.target, self.samples)
        if wanted != self.target and self.master is not None:
            log.info("%s: %d -> %d replicas (utilization %.2f)", self.spec.model_id, self.target, wanted,
                     self.samples[-1])
            sig = signal.SIGTTIN if wanted > self.target else signal.SIGTTOU
            for _ in range(abs(wanted - self.target)):
                self.master.send_signal(sig)
            self.target = wanted
            self.samples = []
        self._report("running")

    def _respawn(self) -> None:
        """The master died: kill what is left of its group (workers that outlived it would keep
        the port and answer with the old processes), wait for the port, start a new master."""
        old = self.master.pid if self.master is not None else None
        kill_group(old)
        if not wait_until(lambda: port_free(self.spec.host, self.spec.port), 15):
            log.error("port %d is still taken 15 s after the server of %s died; trying to start anyway",
                      self.spec.port, self.spec.model_id)
        self._spawn()
        self._report("restarting")

    def run(self) -> None:
        """Supervise until :meth:`request_stop` (or a signal handler calling it)."""
        while not self.stopping.wait(self.spec.interval_s):
            self.step()
        self.stop()

    def request_reload(self, *_args: Any) -> None:
        """Roll over to what ``respec()`` returns, in the next :meth:`step` (a SIGHUP handler)."""
        self.reload_wanted.set()

    def request_stop(self, *_args: Any) -> None:
        self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()
        master, self.master = self.master, None
        if master is not None and master.poll() is None:
            master.terminate()  # gunicorn: graceful shutdown of all workers
            try:
                master.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("the server of %s did not stop within 15 s; killing it", self.spec.model_id)
                master.kill()
                master.wait(timeout=5)
        if master is not None:
            kill_group(master.pid)  # any worker still running
            if not wait_until(lambda: not answers(self.spec.host, self.spec.port), 10):
                log.error("something still answers on %s after the server of %s stopped",
                          self.spec.endpoint, self.spec.model_id)
        self._report("stopped")

    def _report(self, state: str) -> None:
        workers = self.workers() if state in ("running", "restarting") else []
        totals = {k: int(v) for k, v in self.meter.totals().items() if k in ("requests", "errors")}
        report = {"state": state, "replicas": len(workers), "target_replicas": self.target,
                  "worker_pids": workers, "server_pid": self.master.pid if self.master else None,
                  "utilization": round(self.samples[-1], 3) if self.samples else 0.0,
                  "restarts": self.restarts, "serving": [self.spec.model_id, self.spec.canary_model_id], **totals}
        if report != self._last_report:  # the record is written on change, not every second
            self._last_report = report
            self.on_change(report)
