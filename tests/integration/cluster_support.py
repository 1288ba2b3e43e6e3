"""Helpers for the cluster-mode tests: orchestrator instances as separate `mlw orchestrator
start` processes on the test Redis and Dask cluster, and workflow files of test tasks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import spawn, stop_group, wait_until  # noqa: E402

MLW = str(Path(sys.executable).parent / "mlw")
FN = "tests.integration.tasks_for_tests"
# Fast coordination for tests: an instance is dead 1.5 s after its last beat.
FAST = {"MLW_HEARTBEAT_S": "0.5", "MLW_LEADER_LEASE_S": "1.5", "MLW_LEADER_RENEW_S": "0.4",
        "MLW_REDIS_RETRY_MAX_S": "1.0", "MLW_REDIS_BREAKER_RESET_S": "0.5"}


def chain_workflow(n: int, *, logs: Path, seconds: float, domain: str | None = None, name: str = "chain") -> str:
    """``n`` tasks in a chain (``after``); task ``i`` logs one line per execution and reports
    ``total = i + 1``."""
    lines = [f"workflow {name} {{", f'  params {{ logs: str = "{logs}" }}',
             "  defaults { cache { strategy = disk }" + (f"  domain = {domain}" if domain else "") + " }"]
    for i in range(n):
        after = f" after t{i - 1:02d}" if i else ""
        lines.append(f'  task t{i:02d}: custom{after} {{ uses = "{FN}:step"  name = "t{i:02d}"  '
                     f'log_dir = params.logs  seconds = {seconds}  x = {i + 1} }}')
    lines.append("}")
    return "\n".join(lines) + "\n"


class Cluster:
    """Instances started with `mlw orchestrator start`, all sharing one MLW_HOME (the disk cache)."""

    def __init__(self, tmp: Path, redis_url: str, scheduler: str):
        self.tmp = tmp
        self.redis_url = redis_url
        self.scheduler = scheduler
        self.env = dict(os.environ, MLW_HOME=str(tmp / "home"), MLW_REDIS_URL=redis_url,
                        MLW_DASK_SCHEDULER=scheduler, **FAST,
                        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis = redis.Redis.from_url(redis_url)

    def log(self, name: str) -> Path:
        return self.tmp / f"instance-{name}.log"

    def start(self, name: str, domains: str = "", *extra: str) -> subprocess.Popen:
        argv = [MLW, "orchestrator", "start", "--id", name, *extra]
        if domains:
            argv += ["--domains", domains]
        proc = spawn(argv, self.log(name), env=self.env, cwd=self.tmp)
        self.procs[name] = proc
        wait_until(lambda: self.redis.exists(f"mlw:instance:{name}"), timeout=60, what=f"instance {name}",
                   log=self.log(name), proc=proc)
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        stop_group(self.procs[name], sig=sig, timeout=30)

    def mlw(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([MLW, *args], env=self.env, cwd=self.tmp, capture_output=True, text=True,
                              timeout=timeout)

    def submit(self, path: Path, *params: str) -> str:
        argv = ["submit", str(path)]
        for p in params:
            argv += ["-p", p]
        done = self.mlw(*argv)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def execution(self, execution_id: str) -> dict:
        done = self.mlw("status", execution_id, "--json", "--redis", self.redis_url)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def shards(self) -> dict[str, str]:
        raw = self.redis.get("mlw:shards")
        return json.loads(raw)["assignments"] if raw else {}

    def wait_status(self, execution_id: str, statuses: tuple[str, ...], timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.execution(execution_id)
            if data["status"] in statuses:
                return data
            time.sleep(0.3)
        logs = "\n".join(f"--- {n}\n{self.log(n).read_text()[-3000:]}" for n in self.procs)
        raise AssertionError(f"execution {execution_id} not {statuses} within {timeout}s: {data['status']}\n{logs}")

    def close(self) -> None:
        for proc in self.procs.values():
            stop_group(proc, sig=signal.SIGKILL, timeout=5)
        self.redis.close()
