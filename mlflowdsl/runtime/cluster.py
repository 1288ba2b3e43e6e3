"""Where tasks run: an embedded cluster or an existing Dask cluster by address.

The embedded cluster is a scheduler in this process and ``local_workers`` ``dask worker``
processes (fresh interpreters, each in a session of its own): unlike a multiprocessing spawn
they never import the caller's ``__main__`` again, so a script without a main guard runs once,
and a terminal's Ctrl-C reaches only this process, which then stops them.

The embedded cluster's workers declare ``CPU`` (the machine's cores) and ``MEMORY`` (their
memory limit) as Dask resources, so a task asking ``cpu = 2  memory = 4GiB`` is placed (and
limited) the way it says; no ``GPU`` is declared, so a ``gpu = 1`` task is refused up front.

A *warm* cluster (``mlw cluster up``, :func:`serve_warm`) is the same embedded cluster kept
running in a detached process; it writes its address to ``<home>/cluster.json``, and a
:class:`ClientOnDemand` with ``use_warm`` connects to it instead of starting one when that file
names a live scheduler.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from mlflowdsl.errors import ConfigError, RuntimeFailure
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

WARM_FILE = "cluster.json"  # in <home>: the warm cluster's address, pid and workers


def embedded_resources(n_workers: int) -> tuple[dict[str, float], int]:
    """Resources each embedded worker declares, and its memory limit in bytes."""
    import psutil  # noqa: PLC0415 - heavy: psutil only when an embedded cluster starts

    memory_limit = int(psutil.virtual_memory().total // max(1, n_workers))
    return {"CPU": float(os.cpu_count() or 1), "MEMORY": float(memory_limit)}, memory_limit


def _extend_import_path(paths: list[str]) -> None:
    """Make user modules (custom tasks next to the workflow file) importable in workers:
    spawned worker processes inherit ``sys.path`` and ``PYTHONPATH``."""
    current = os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.environ.get("PYTHONPATH") else []
    for path in paths:
        full = os.path.abspath(path)
        if full not in sys.path:
            sys.path.append(full)
        if full not in current:
            current.append(full)
    os.environ["PYTHONPATH"] = os.pathsep.join(current)


class _Spawned:
    """The worker processes one embedded cluster started, so that they are stopped even when
    the cluster's start is interrupted (Ctrl-C) half-way; once ``closed``, no more start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processes: list[subprocess.Popen] = []
        self.closed = False

    def add(self, argv: list[str]) -> subprocess.Popen | None:
        with self.lock:
            if self.closed:
                return None
            # A session of its own: Ctrl-C in a terminal signals the foreground process group,
            # and only this process should react (cancel the run, stop the cluster cleanly).
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            self.processes.append(proc)
            return proc

    def stop(self, timeout: float = 10.0) -> None:
        with self.lock:
            self.closed = True
            processes = list(self.processes)
        for proc in processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the nanny and its worker process
        for proc in processes:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)


def worker_argv(scheduler: str, name: str, *, nthreads: int, memory_limit: int,
                resources: dict[str, float]) -> list[str]:
    """The command of one embedded worker: ``dask worker`` in a fresh interpreter, so the
    user's script is never imported again as ``__main__`` (as a multiprocessing spawn would),
    and an unguarded ``asyncio.run(main())`` at a script's top level runs once."""
    return [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--name", name,
            "--host", "127.0.0.1", "--nthreads", str(nthreads), "--nworkers", "1",
            "--memory-limit", str(memory_limit), "--no-dashboard", "--death-timeout", "60",
            "--resources", ",".join(f"{k}={v:g}" for k, v in resources.items())]


def _start_embedded(settings: Settings, spawned: _Spawned):
    """An in-process scheduler (on loopback, dashboard on a free port) and ``local_workers``
    worker processes connected to it; returns the cluster once every worker has joined."""
    from distributed import Scheduler, SpecCluster  # noqa: PLC0415 - heavy: distributed only when a client opens
    from distributed.deploy.spec import ProcessInterface  # noqa: PLC0415 - heavy: as above

    resources, memory_limit = embedded_resources(settings.local_workers)

    class WorkerProcess(ProcessInterface):
        def __init__(self, scheduler: str, name: str | None = None):
            super().__init__(scheduler, name)
            self.argv = worker_argv(scheduler, f"mlw-embedded-{name}", nthreads=settings.local_threads_per_worker,
                                    memory_limit=memory_limit, resources=resources)

        async def start(self) -> None:
            if spawned.add(self.argv) is None:
                raise RuntimeFailure("the embedded cluster was stopped while it started")
            await super().start()

    cluster = SpecCluster(
        scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "port": 0, "dashboard_address": ":0"}},
        workers={i: {"cls": WorkerProcess, "options": {}} for i in range(settings.local_workers)},
        silence_logs=logging.ERROR, name="mlw-embedded")
    return cluster


@contextlib.contextmanager
def open_client(settings: Settings, *, import_paths: list[str] | None = None) -> Iterator["distributed.Client"]:  # noqa: F821
    """A Dask client on ``settings.scheduler``, or on an embedded cluster started (and
    stopped) here."""
    from distributed import Client  # noqa: PLC0415 - heavy: distributed only when a client opens

    _extend_import_path([os.getcwd(), *(import_paths or [])])
    if settings.scheduler:
        try:
            client = Client(settings.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot connect to the Dask scheduler at {settings.scheduler}: {exc}",
                              subject="--scheduler / MLW_DASK_SCHEDULER",
                              hint="check the address, or leave it unset to use an embedded cluster") from None
        try:
            try:
                client.wait_for_workers(1, timeout=30)
            except TimeoutError:
                raise RuntimeFailure(f"the Dask cluster at {settings.scheduler} has no workers",
                                     hint="start workers with `dask worker ADDRESS`") from None
            yield client
        finally:
            client.close()
        return
    spawned = _Spawned()
    cluster = None
    try:
        cluster = _start_embedded(settings, spawned)
        with Client(cluster) as client:
            client.wait_for_workers(settings.local_workers, timeout=120)
            yield client
    finally:
        try:
            if cluster is not None:
                cluster.close()
        finally:
            spawned.stop()


class ClientOnDemand:
    """A client that :func:`open_client` opens the first time :meth:`get` is called, and that
    :meth:`close` (or leaving the ``with``) closes: a run whose tasks are all cached or skipped
    never asks for one, so it starts no cluster. ``on_open(client)`` is called once, when it
    opens (the CLI shows the dashboard's address then), ``on_skip()`` once a run decided it
    needs none (:meth:`not_needed`). With ``use_warm`` (and no scheduler address set) a warm
    cluster named in ``<home>/cluster.json`` is used when it answers (``warm_address``)."""

    def __init__(self, settings: Settings, *, import_paths: list[str] | None = None,
                 on_open: Callable[[object], None] | None = None, on_skip: Callable[[], None] | None = None,
                 use_warm: bool = False):
        self.settings = settings
        self.use_warm = use_warm and not settings.scheduler
        self.warm_address: str | None = None  # set when the client is on a warm cluster
        self.on_skip = on_skip
        self.import_paths = import_paths
        self.on_open = on_open
        self.client = None
        self._stack = contextlib.ExitStack()

    @property
    def opened(self) -> bool:
        return self.client is not None

    def get(self):
        if self.client is None:
            warm = connect_warm(self.settings, self.import_paths) if self.use_warm else None
            if warm is not None:
                self._stack.callback(warm.close)
                self.client, self.warm_address = warm, warm.scheduler.address
            else:
                self.client = self._stack.enter_context(open_client(self.settings, import_paths=self.import_paths))
            if self.on_open is not None:
                self.on_open(self.client)
        return self.client

    def not_needed(self) -> None:
        """The run submits nothing: no cluster will be opened for it."""
        if self.client is None and self.on_skip is not None:
            self.on_skip()
            self.on_skip = None

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> "ClientOnDemand":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- warm cluster

def warm_file(settings: Settings) -> Path:
    return settings.home_path / WARM_FILE


def read_warm(settings: Settings) -> dict[str, Any] | None:
    """What ``<home>/cluster.json`` says (address, pid, workers), or None without a usable one."""
    try:
        data = json.loads(warm_file(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("address"), str) or not isinstance(data.get("pid"), int):
        return None
    return data


def _add_import_paths(paths: list[str]) -> None:
    """Run on each worker of a warm cluster: the run's directories on its import path."""
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)


def connect_warm(settings: Settings, import_paths: list[str] | None = None):
    """A client on the warm cluster ``<home>/cluster.json`` names, or None when there is none
    or it does not answer (a stale file: the caller starts its own cluster)."""
    from distributed import Client  # noqa: PLC0415 - heavy: distributed only when a client opens

    info = read_warm(settings)
    if info is None:
        return None
    try:
        client = Client(info["address"], timeout="3s")
    except (OSError, TimeoutError) as exc:
        log.info("the warm cluster in %s does not answer (%s); starting an embedded one", warm_file(settings), exc)
        return None
    try:
        client.wait_for_workers(1, timeout=5)
        paths = [os.path.abspath(p) for p in [os.getcwd(), *(import_paths or [])]]
        client.run(_add_import_paths, paths)
    except Exception as exc:  # noqa: BLE001 - an unusable warm cluster is as good as none
        log.info("the warm cluster at %s is not usable (%s); starting an embedded one", info["address"], exc)
        client.close()
        return None
    return client


def serve_warm(settings: Settings, stop: threading.Event) -> None:
    """Start the embedded cluster, write its address to ``<home>/cluster.json`` and keep it
    until ``stop`` is set; then stop it and remove the file (if it still names this process)."""
    from distributed import Client  # noqa: PLC0415 - heavy: distributed only when a cluster starts

    _extend_import_path([os.getcwd()])
    path = warm_file(settings)
    spawned = _Spawned()
    cluster = None
    try:
        cluster = _start_embedded(settings, spawned)
        with Client(cluster) as client:
            client.wait_for_workers(settings.local_workers, timeout=120)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"address": cluster.scheduler_address, "pid": os.getpid(),
                                       "workers": settings.local_workers, "started": time.time(),
                                       "dashboard": client.dashboard_link}))
            os.replace(tmp, path)
            while not stop.wait(0.5):
                pass
    finally:
        info = read_warm(settings)
        if info is not None and info["pid"] == os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()
        try:
            if cluster is not None:
                cluster.close()
        finally:
            spawned.stop()
