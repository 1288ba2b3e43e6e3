"""A real `mlw ui` server for the UI tests: started as a process on a free loopback port,
stopped with its process group; plus where the tests put their screenshots."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port, port_accepts, spawn, stop_group, wait_until  # noqa: E402

# Headless Debian chromium, as tests/integration/browser.py launches it.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def output_dir() -> Path:
    """The test output folder for screenshots (MLW_TEST_OUTPUT, default test-output/ in the repo)."""
    path = Path(os.environ.get("MLW_TEST_OUTPUT") or REPO / "test-output") / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


class UiServer:
    def __init__(self, url: str, proc, log: Path):
        self.url, self.proc, self.log = url, proc, log

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()


@contextmanager
def ui_server(workdir: Path, *args: str) -> Iterator[UiServer]:
    port = free_port()
    log = workdir / f"mlw-ui-{port}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = spawn([sys.executable, "-c", "from mlflowdsl.cli import main; main()", "ui", "--port", str(port), *args],
                 log, env=env, cwd=workdir)
    try:
        wait_until(lambda: port_accepts(port), timeout=60, what="mlw ui", log=log, proc=proc)
        yield UiServer(f"http://127.0.0.1:{port}", proc, log)
    finally:
        stop_group(proc)
