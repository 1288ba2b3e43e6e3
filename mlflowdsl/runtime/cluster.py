"""Where tasks run: an embedded ``LocalCluster`` or an existing Dask cluster by address.

The embedded cluster's workers declare ``CPU`` (the machine's cores) and ``MEMORY`` (their
memory limit) as Dask resources, so a task asking ``cpu = 2  memory = 4GiB`` is placed (and
limited) the way it says; no ``GPU`` is declared, so a ``gpu = 1`` task is refused up front.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator

from mlflowdsl.errors import ConfigError, RuntimeFailure
from mlflowdsl.settings import Settings


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


def _ignore_sigint():
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be changed from the main thread
    return signal.signal(signal.SIGINT, signal.SIG_IGN)


def _restore_sigint(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def open_client(settings: Settings, *, import_paths: list[str] | None = None) -> Iterator["distributed.Client"]:  # noqa: F821
    """A Dask client on ``settings.scheduler``, or on an embedded cluster started (and
    stopped) here."""
    from distributed import Client, LocalCluster  # noqa: PLC0415 - heavy: distributed only when a client opens

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
    resources, memory_limit = embedded_resources(settings.local_workers)
    # Ctrl-C in a terminal signals the whole process group. Worker processes started while
    # SIGINT is ignored inherit that, so only this process reacts: it cancels the run and
    # stops the cluster cleanly, instead of every worker dying with a traceback.
    previous = _ignore_sigint()
    try:
        cluster = LocalCluster(
            n_workers=settings.local_workers, threads_per_worker=settings.local_threads_per_worker,
            processes=True, resources=resources, memory_limit=memory_limit,
            dashboard_address=":0", silence_logs=logging.ERROR,
        )
    finally:
        _restore_sigint(previous)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
