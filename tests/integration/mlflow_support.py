"""A real MLflow tracking server for the MLflow tests, started on a free loopback port.

The server runs from its own virtualenv (``.venv-mlflow-server`` at the repository root, or
``MLW_MLFLOW_SERVER_VENV``): the full ``mlflow`` package pins gunicorn and pyarrow below the
versions our own venv has, while the client side (``mlflow-skinny``) lives in our venv. ``make
test`` builds that venv (``make mlflow-server-venv``); the fixture builds it too when it is
missing (a few minutes, once). ``MLW_TEST_MLFLOW_URI`` points the tests at an external server
instead (then the tests that stop the server are skipped: we do not own it).

- ``mlflow_server`` (session) -> :class:`MlflowServer` with ``uri``, ``stop()``, ``start()``;
- ``mlflow_uri`` (function) -> its URI, the server running (restarted if a test stopped it).

Import both into a test module: ``from mlflow_support import mlflow_server, mlflow_uri``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _services():
    """tests/conftest.py, the service helpers (free ports, spawning, stopping). Not ``import
    conftest``: in a whole-suite run that name is another directory's conftest
    (tests/lsp/conftest.py), and pytest keeps the root one out of sys.modules; loaded by path once."""
    module = sys.modules.get("mlw_test_services")
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("mlw_test_services", REPO_ROOT / "tests" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["mlw_test_services"] = module
        spec.loader.exec_module(module)
    return module
SERVER_REQUIREMENT = "mlflow>=3.17,<4"


def server_venv() -> Path:
    return Path(os.environ.get("MLW_MLFLOW_SERVER_VENV") or REPO_ROOT / ".venv-mlflow-server")


def ensure_server_venv() -> Path:
    """The server venv's ``mlflow`` executable, building the venv first when it is missing
    (under a file lock, so parallel test sessions build it once)."""
    venv = server_venv()
    exe = venv / "bin" / "mlflow"
    if exe.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            python = os.environ.get("MLW_MLFLOW_SERVER_PYTHON") or sys.executable
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", SERVER_REQUIREMENT], check=True)
    return exe


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


class MlflowServer:
    def __init__(self, workdir: Path, *, uri: str | None = None):
        self.workdir = workdir
        self.external = uri is not None
        if uri is None:
            free_port = _services().free_port

            self.port = free_port()
            uri = f"http://127.0.0.1:{self.port}"
        self.uri = uri
        self.proc: subprocess.Popen | None = None

    def running(self) -> bool:
        return _healthy(self.uri)

    def start(self) -> None:
        if self.external:
            return
        if self.proc is not None and self.proc.poll() is None:
            return
        services = _services()
        spawn, wait_until = services.spawn, services.wait_until

        exe = ensure_server_venv()
        log = self.workdir / "mlflow-server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLW_"))}
        self.proc = spawn([str(exe), "server", "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                           "--artifacts-destination", str(self.workdir / "artifacts"),
                           "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                          log, env=env, cwd=self.workdir)
        wait_until(self.running, timeout=120, what="mlflow server", log=log, proc=self.proc)

    def stop(self) -> None:
        if self.external:
            pytest.skip("MLW_TEST_MLFLOW_URI points at a server this test does not own")
        stop_group = _services().stop_group

        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def close(self) -> list[int]:
        group_alive = _services().group_alive

        pid = self.proc.pid if self.proc is not None else None
        if not self.external:
            self.stop()
        return [pid] if pid is not None and group_alive(pid) else []


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    workdir = Path(tempfile.mkdtemp(prefix="mlw-mlflow-"))
    server = MlflowServer(workdir, uri=os.environ.get("MLW_TEST_MLFLOW_URI"))
    try:
        server.start()
        yield server
    finally:
        leaked = server.close()
        if leaked:
            raise RuntimeError(f"mlflow_server: process groups still alive after teardown: {leaked}")


@pytest.fixture
def mlflow_uri(mlflow_server: MlflowServer) -> str:
    mlflow_server.start()  # no-op when running; restarts after an outage test
    return mlflow_server.uri
