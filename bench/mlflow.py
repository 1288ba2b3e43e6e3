"""MLflow tracking overhead and logging throughput, side by side in one run.

1. The 1,000-task no-op DAG of ``runtime_overhead.py`` (``cache = none``) through ``run_plan``
   with tracking off and on, alternating, on one ``LocalCluster(2 workers, 1 thread each)``;
   "on" includes the wait at the end of the run for the logging to finish (1 parent + 1,000
   nested runs). Target: <= 2 % overhead.
2. ``examples/training_pipeline.mlw`` (fresh home each time, so every task computes) off and
   on (with the models logged in the sklearn flavour). Target: <= 5 %.
3. Logging throughput: our writer logging a synthetic execution of ``--runs`` tasks with
   ``--metrics`` metrics each, against a bare ``MlflowClient`` loop doing the same (create_run,
   log_batch, set_terminated per run). Target: >= 0.8x of the bare loop's metrics/s.

The tracking server is ``mlflow server`` (sqlite backend, proxied artifacts) from
``.venv-mlflow-server`` (``make mlflow-server-venv``), on a free loopback port.

    python bench/mlflow.py [--repeat 3] [--runs 200] [--metrics 20] [--skip-example] [--skip-dag] [--flush-timeout S]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named mlflow.py: its directory must come after site-packages, or `import mlflow`
# would import this script. It is still on the path for noop_tasks and runtime_overhead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parent))
import mlflow.tracking  # noqa: F401 - the package, imported before runtime_overhead puts this directory first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: str) -> tuple[subprocess.Popen, str]:
    exe = HERE.parent / ".venv-mlflow-server" / "bin" / "mlflow"
    if not exe.exists():
        sys.exit(f"error: {exe} not found; run `make mlflow-server-venv` first")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLW_"))}
    log = open(os.path.join(workdir, "server.log"), "ab")
    proc = subprocess.Popen([str(exe), "server", "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
                             "--artifacts-destination", f"{workdir}/artifacts", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "2"], stdout=log, stderr=log, env=env,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1):
                return proc, uri
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit(f"error: mlflow server did not start; see {workdir}/server.log")


def timed_run(client, plan, settings, base_dir=None) -> float:
    from mlflowdsl.runtime.api import run_plan

    t0 = time.perf_counter()
    ex = run_plan(plan, settings, client=client, base_dir=base_dir)
    elapsed = time.perf_counter() - t0
    assert ex.status == "succeeded", ex.status
    return elapsed


def side_by_side(client, plan, make_settings, repeat: int, base_dir=None) -> tuple[list[float], list[float]]:
    from runtime_overhead import settle

    off, on = [], []
    for _ in range(repeat):
        for tracked, out in ((False, off), (True, on)):
            settle(client)
            out.append(timed_run(client, plan, make_settings(tracked), base_dir))
    return off, on


def throughput(uri: str, runs: int, metrics: int) -> tuple[float, float]:
    """metrics/s of our writer and of a bare MlflowClient loop, same shape of work."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from mlflowdsl.ir import Plan, Task, Workflow
    from mlflowdsl.runtime.mlflow_tracking.writer import ExecutionWriter
    from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
    from mlflowdsl.settings import Settings

    now = time.time()
    tasks = {f"t{i}": TaskResult(task_id=f"t{i}", status="succeeded", attempts=1, started=now, ended=now,
                                 metrics={f"m{j}": float(j) for j in range(metrics)}) for i in range(runs)}
    plan = Plan(workflow=Workflow(id="bench_throughput"),
                tasks=[Task(id=t, type="custom", uses="noop_tasks:noop") for t in tasks])
    execution = WorkflowExecution(id=f"tp{int(now)}", workflow_id="bench_throughput", status="succeeded",
                                  started=now, ended=now, tasks=tasks, plan_json=plan.model_dump_json())
    writer = ExecutionWriter(uri, "bench-throughput-ours", plan, settings=Settings(), base_dir=".", log_models=False)
    t0 = time.perf_counter()
    writer.start(execution)
    summary = writer.finish(execution)
    ours = time.perf_counter() - t0
    assert summary.error is None, summary.error

    bare_client = MlflowClient(tracking_uri=uri)
    t0 = time.perf_counter()
    exp = bare_client.create_experiment(f"bench-throughput-bare-{int(now)}")
    parent = bare_client.create_run(exp)
    ms = int(now * 1000)
    for i in range(runs):
        run = bare_client.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id})
        bare_client.log_batch(run.info.run_id, metrics=[Metric(f"m{j}", float(j), ms, 0) for j in range(metrics)],
                              synchronous=True)
        bare_client.set_terminated(run.info.run_id)
    bare_client.set_terminated(parent.info.run_id)
    bare = time.perf_counter() - t0
    n = runs * metrics
    return n / ours, n / bare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--skip-example", action="store_true")
    ap.add_argument("--skip-dag", action="store_true")
    ap.add_argument("--flush-timeout", type=float, default=1800.0, help="mlflow_flush_timeout_s of the tracked runs")
    args = ap.parse_args()

    from distributed import Client, LocalCluster
    from runtime_overhead import compile_shape

    from mlflowdsl.compiler.api import compile_file
    from mlflowdsl.settings import Settings

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    workdir = tempfile.mkdtemp(prefix="mlw-bench-mlflow-")
    server, uri = start_server(workdir)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{platform.node()} nproc {os.cpu_count()}, Python {platform.python_version()}; server {uri}")
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            dag = compile_shape("independent")

            def dag_settings(tracked: bool) -> Settings:
                return Settings(home=tempfile.mkdtemp(prefix="mlw-bench-"), mlflow_tracking_uri=uri if tracked else "off",
                                mlflow_experiment="bench-dag", mlflow_flush_timeout_s=args.flush_timeout)
            timed_run(client, dag, dag_settings(False))  # warm-up of the cluster (the first tracked run pays mlflow's import)
            if not args.skip_dag:
                off, on = side_by_side(client, dag, dag_settings, args.repeat)
                b_off, b_on = min(off), min(on)
                m_off, m_on = statistics.median(off), statistics.median(on)
                print(f"1,000-task DAG: off {b_off:.2f}s (median {m_off:.2f}), on {b_on:.2f}s (median {m_on:.2f}); "
                      f"overhead best {100 * (b_on / b_off - 1):+.1f} %, median {100 * (m_on / m_off - 1):+.1f} % "
                      f"(target <= 2 %)")
            if not args.skip_example:
                example = compile_file(HERE.parent / "examples" / "training_pipeline.mlw").raise_for_errors()

                def example_settings(tracked: bool) -> Settings:
                    return Settings(home=tempfile.mkdtemp(prefix="mlw-bench-ex-"), mlflow_flush_timeout_s=args.flush_timeout,
                                    mlflow_tracking_uri=uri if tracked else "off", mlflow_experiment="bench-example")
                timed_run(client, example, example_settings(False), str(HERE.parent / "examples"))
                off, on = side_by_side(client, example, example_settings, args.repeat, str(HERE.parent / "examples"))
                b_off, b_on = min(off), min(on)
                m_off, m_on = statistics.median(off), statistics.median(on)
                print(f"examples/training_pipeline.mlw: off {b_off:.2f}s (median {m_off:.2f}), on {b_on:.2f}s "
                      f"(median {m_on:.2f}); overhead best {100 * (b_on / b_off - 1):+.1f} %, median "
                      f"{100 * (m_on / m_off - 1):+.1f} % (target <= 5 %)")
        ours, bare = throughput(uri, args.runs, args.metrics)
        print(f"logging throughput ({args.runs} runs x {args.metrics} metrics): ours {ours:.0f} metrics/s, "
              f"bare MlflowClient loop {bare:.0f} metrics/s: {ours / bare:.2f}x (target >= 0.8x)")
        print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)


if __name__ == "__main__":
    main()
