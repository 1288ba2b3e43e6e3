"""Leader failover time after SIGKILL, with the default lease (3 s) and renew period (1 s).

Three candidate processes (``tests/integration/coord_proc.py candidate``) share a valkey/redis
server started by this script. Each trial SIGKILLs the current leader, starts a replacement
candidate, and measures the time until another instance holds the lease. Target (issue 4):
failover <= lease + 0.5 s in 20/20 trials (the tests use a 1 s lease and allow the renew period
on top; here the bound is the issue's).

    python bench/failover.py [--trials 20] [--lease 3] [--renew 1] [--markdown]

``--resume`` measures instead the time for a submitted workflow to resume after its instance
dies: two ``mlw orchestrator start`` processes (default settings: 1 s heartbeat, 3 s lease) on
a Dask scheduler with one worker; each trial submits a 12-task chain, SIGKILLs the instance
running it after 3 tasks committed, starts a replacement instance, and measures from the kill
until the other instance has resumed the execution (its ``started`` time is rewritten).

    python bench/failover.py --resume [--trials 5] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

import redis  # noqa: E402

from coord_proc import Procs  # noqa: E402
from locks import start_server  # noqa: E402  (bench/locks.py: a valkey on a free port)


def holder(client: redis.Redis) -> tuple[str, int] | None:
    raw = client.get("bench:leader")
    if raw is None:
        return None
    who, _, epoch = raw.decode().rpartition(":")
    return who, int(epoch)


def wait_for(check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.002)
    raise RuntimeError(f"nothing happened within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--renew", type=float, default=1.0)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--resume", action="store_true", help="measure workflow resume after an instance dies")
    args = parser.parse_args()
    if args.resume:
        resume_trials(args.trials if args.trials != 20 else 5, args.markdown)
        return
    workdir = tempfile.mkdtemp(prefix="mlw-bench-failover-")
    server, url = start_server(workdir)
    procs = Procs(url, "bench", Path(workdir))
    times: list[float] = []
    epochs: list[int] = []
    try:
        client = redis.Redis.from_url(url)
        common = ("--lease", str(args.lease), "--renew", str(args.renew), "--write-interval", "0.1")
        for i in range(3):
            procs.start("candidate", f"c{i}", "--id", f"c{i}", *common)
        current = wait_for(lambda: holder(client), 30)
        spawned = 3
        for trial in range(args.trials):
            victim, _ = current
            # Kill at a random point of the renew cycle, as a crash would.
            time.sleep(args.renew * (0.5 + (trial % 5) / 10))
            procs.kill(victim)
            killed_at = time.monotonic()
            procs.start("candidate", f"c{spawned}", "--id", f"c{spawned}", *common)
            spawned += 1
            current = wait_for(lambda: (h := holder(client)) and h[0] != victim and h, args.lease * 3 + 5)
            times.append(time.monotonic() - killed_at)
            epochs.append(current[1])
            print(f"trial {trial + 1:2d}: {victim} killed, {current[0]} leader (epoch {current[1]}) "
                  f"after {times[-1]:.3f}s", file=sys.stderr)
        logged = [int(f[b"epoch"]) for _, f in client.xrange("bench:leader:log")]
    finally:
        procs.close()
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    bound = args.lease + 0.5
    within = sum(t <= bound for t in times)
    monotone = all(a <= b for a, b in zip(logged, logged[1:]))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = (f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s; "
               f"{within}/{len(times)} within lease + 0.5 s = {bound:g} s; "
               f"accepted-write epochs never decrease: {monotone} ({len(logged)} writes, "
               f"epochs {min(logged)}..{max(logged)})")
    if args.markdown:
        print(f"Leader failover after SIGKILL ({when}; {machine}; lease {args.lease:g} s, renew {args.renew:g} s, "
              f"3 candidate processes, {len(times)} trials): {summary}.")
    else:
        print(summary)


def resume_trials(trials: int, markdown: bool) -> None:
    """Kill the instance running a workflow; time until another instance resumed it."""
    import json
    import signal

    from tests.conftest import free_port, port_accepts, spawn, stop_group, wait_until
    from tests.integration.cluster_support import Cluster, chain_workflow

    workdir = Path(tempfile.mkdtemp(prefix="mlw-bench-resume-"))
    server, url = start_server(str(workdir))
    port = free_port()
    scheduler = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    daskprocs = [spawn([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                       workdir / "scheduler.log", env=env)]
    wait_until(lambda: port_accepts(port), timeout=60, what="dask scheduler")
    daskprocs.append(spawn([dask, "worker", scheduler, "--nthreads", "2", "--no-dashboard"],
                           workdir / "worker.log", env=env))
    cluster = Cluster(workdir, url, scheduler)
    for key in ("MLW_HEARTBEAT_S", "MLW_LEADER_LEASE_S", "MLW_LEADER_RENEW_S"):
        cluster.env.pop(key, None)  # the defaults are what is measured
    client = redis.Redis.from_url(url)
    times: list[float] = []
    try:
        names = iter(f"i{n}" for n in range(100))
        live = [next(names), next(names)]
        for name in live:
            cluster.start(name)
        for trial in range(trials):
            wf = workdir / f"wf{trial}.mlw"
            wf.write_text(chain_workflow(12, logs=workdir / f"logs{trial}", seconds=0.3, name=f"bench{trial}"))
            execution_id = cluster.submit(wf)
            header = lambda: json.loads(client.hget(f"mlw:exec:{execution_id}", "header"))  # noqa: E731
            statuses = lambda: client.hvals(f"mlw:exec:{execution_id}:tstatus")  # noqa: E731
            wait_for(lambda: sum(s == b"succeeded" for s in statuses()) >= 3, 60)
            owner = next(c["name"].decode() for c in client.xpending("mlw:queue:default", "orchestrators")["consumers"])
            started = header()["started"]
            cluster.kill(owner, sig=signal.SIGKILL)
            killed_at, killed_wall = time.monotonic(), time.time()
            live.remove(owner)
            replacement = next(names)
            cluster.start(replacement)
            live.append(replacement)
            wait_for(lambda: (h := header())["started"] != started and h["started"] > killed_wall - 1, 60)
            times.append(time.monotonic() - killed_at)
            wait_for(lambda: header()["status"] == "succeeded", 60)
            print(f"trial {trial + 1}: {owner} killed, resumed after {times[-1]:.2f}s", file=sys.stderr)
    finally:
        cluster.close()
        for proc in daskprocs:
            stop_group(proc)
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = (f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s "
               f"over {len(times)} trials")
    if markdown:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"Workflow resume after its instance is SIGKILLed ({when}; {machine}; heartbeat 1 s, lease 3 s, "
              f"2 instances + a replacement, 12-task chain killed after 3 commits): {summary}.")
    else:
        print(summary)


if __name__ == "__main__":
    main()
