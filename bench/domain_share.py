"""Executions of one domain over several instances (issue 14, point 10): 20 executions of the
default domain (one task sleeping ``--seconds`` each) submitted at once, run by one
``mlw orchestrator start`` instance (the anchor: what a second instance added before, when
only the shard owner read a domain's stream) and then by two (the second takes entries the
owner leaves waiting). Prints the wall time of each, their ratio, and how many executions each
instance ran. Default settings (1 s heartbeat, max-running 4); its own valkey, Dask scheduler
and one 8-thread worker.

    python bench/domain_share.py [--executions 20] [--seconds 2] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from locks import start_server  # noqa: E402  (bench/locks.py: a valkey on a free port)


def run_batch(cluster, names: list[str], plan, n: int) -> tuple[float, dict[str, int]]:
    from mlflowdsl.runtime.cluster_mode.submission import submit_plan
    from mlflowdsl.runtime.coordination.gateway import RedisGateway

    gateway = RedisGateway(cluster.redis_url, prefix="mlw")
    before = {name: cluster.log(name).read_text().count("starting execution") for name in names}
    began = time.monotonic()
    ids = [submit_plan(gateway, plan) for _ in range(n)]
    while True:
        statuses = [cluster.redis.hget(f"mlw:exec:{i}", "status") for i in ids]
        if all(s in (b"succeeded", b"failed", b"cancelled") for s in statuses):
            break
        if time.monotonic() - began > 600:
            raise RuntimeError("executions did not finish within 600 s")
        time.sleep(0.05)
    took = time.monotonic() - began
    assert all(s == b"succeeded" for s in statuses), statuses
    gateway.close()
    return took, {name: cluster.log(name).read_text().count("starting execution") - before[name] for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    from mlflowdsl.compiler.api import compile_file
    from tests.conftest import free_port, port_accepts, spawn, stop_group, wait_until
    from tests.integration.cluster_support import Cluster, chain_workflow

    workdir = Path(tempfile.mkdtemp(prefix="mlw-bench-share-"))
    server, url = start_server(str(workdir))
    port = free_port()
    scheduler = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    daskprocs = [spawn([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                       workdir / "scheduler.log", env=env)]
    wait_until(lambda: port_accepts(port), timeout=60, what="dask scheduler")
    daskprocs.append(spawn([dask, "worker", scheduler, "--nthreads", "8", "--no-dashboard"],
                           workdir / "worker.log", env=env))
    cluster = Cluster(workdir, url, scheduler)
    for key in ("MLW_HEARTBEAT_S", "MLW_LEADER_LEASE_S", "MLW_LEADER_RENEW_S"):
        cluster.env.pop(key, None)  # the defaults are what is measured
    wf = workdir / "wf.mlw"
    # No cache: every execution runs its task.
    wf.write_text(chain_workflow(1, logs=workdir / "logs", seconds=args.seconds).replace(
        "cache { strategy = disk }", "cache { strategy = none }"))
    result = compile_file(str(wf))
    assert result.ok and result.plan is not None, result.diagnostics
    try:
        cluster.start("one")
        alone, split_alone = run_batch(cluster, ["one"], result.plan, args.executions)
        cluster.start("two")
        time.sleep(3)  # the shard map now lists both
        both, split_both = run_batch(cluster, ["one", "two"], result.plan, args.executions)
    finally:
        cluster.close()
        for proc in daskprocs:
            stop_group(proc)
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = (f"{args.executions} default-domain executions of {args.seconds:g} s, max-running 4: one instance "
               f"{alone:.1f} s ({split_alone}); two instances {both:.1f} s ({split_both}); two/one = "
               f"{both / alone:.2f}")
    if args.markdown:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"{summary} ({when}; {machine}; `{load}`)")
    else:
        print(summary)


if __name__ == "__main__":
    main()
