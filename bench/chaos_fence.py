"""Chaos trials of execution fencing (issue 14, point 1): SIGSTOP the instance running an
8-task chain of side-effect tasks (0.4 s each) after 3 tasks committed, for ``--stop`` seconds
(past its lease: another instance takes the execution over), then SIGCONT it. Counts per
trial: tasks whose attempt started more than once, side effects made more than once,
``workflow.completed`` events, records without their metrics; and whether the take-over
happened and the woken instance stopped its graph. Target: 0, 0, 1, 0 in every trial.

Runs its own valkey/redis, Dask scheduler and one 2-thread worker, and two
``mlw orchestrator start`` instances with the test suite's fast coordination settings
(0.5 s heartbeat, 1.5 s lease); one trial after another on the same instances.

    python bench/chaos_fence.py [--trials 5] [--stop 6] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from locks import start_server  # noqa: E402  (bench/locks.py: a valkey on a free port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--stop", type=float, default=6.0, help="seconds the owner stays stopped")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    from tests.conftest import free_port, port_accepts, spawn, stop_group, wait_until
    from tests.integration.cluster_support import Cluster
    from tests.integration.fence_chaos import trial

    workdir = Path(tempfile.mkdtemp(prefix="mlw-bench-fence-"))
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
    results = []
    try:
        cluster.start("first")
        cluster.start("second")
        for n in range(args.trials):
            r = trial(cluster, workdir / f"trial{n}", stop_s=args.stop)
            no_metrics = sorted(t for t, m in r.metrics.items() if not m)
            results.append((r, no_metrics))
            print(f"trial {n + 1}: owner {r.owner}, {r.committed_at_stop} committed at SIGSTOP, {r.status}; "
                  f"ran twice {r.twice or 'none'}; effects twice "
                  f"{sorted(t for t, c in r.effects.items() if c > 1) or 'none'}; workflow.completed x"
                  f"{r.completed_events}; without metrics {no_metrics or 'none'}; taken over {r.took_over}, "
                  f"woken owner stopped {r.stale_stopped}", file=sys.stderr)
    finally:
        cluster.close()
        for proc in daskprocs:
            stop_group(proc)
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    good = sum(1 for r, nm in results if r.status == "succeeded" and not r.twice and r.completed_events == 1
               and all(c == 1 for c in r.effects.values()) and not nm and r.took_over and r.stale_stopped)
    summary = (f"{good}/{len(results)} trials clean: tasks run twice "
               f"{sum(len(r.twice) for r, _ in results)}, side effects twice "
               f"{sum(sum(c > 1 for c in r.effects.values()) for r, _ in results)}, workflow.completed per "
               f"execution {sorted({r.completed_events for r, _ in results})}, records without metrics "
               f"{sum(len(nm) for _, nm in results)}, take-overs {sum(r.took_over for r, _ in results)}")
    if args.markdown:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"Execution fencing under SIGSTOP ({when}; {machine}; stopped {args.stop:g} s; `{load}`): {summary}")
    else:
        print(summary)


if __name__ == "__main__":
    main()
