"""Serving throughput and latency, side by side in one run with the same model and rows:

- ours, micro-batching on (the default) and off: a deployment with one replica;
- a bare app: uvicorn + Starlette calling ``model.predict`` once per request (one process);
- ``mlflow models serve`` when an ``mlflow`` executable is found (``--mlflow PATH``, else
  on PATH or in /work/main/.venv-mlflow-server), serving the same model as an MLflow
  sklearn model;
- in-process ``model.predict`` on the same rows (one thread: the model's own speed).

The model is the fraud example's (examples/data/transactions.csv with imputation, scaling and
one-hot encoding) trained with ``--algorithm`` (a random forest of ``--trees`` 50 by default). Each request
carries ``--rows`` rows (1 and 100 by default); ``--clients`` Python threads (1, 16, 100), each
with its own keep-alive connection, send requests back to back for ``--seconds`` per line.
Clients and servers share the machine's cores, so the figures are relative: read the ratios.

    python bench/serving.py [--seconds 6] [--rows 1 100] [--clients 1 16 100] [--markdown]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mlflowdsl.runtime.registry import deployments, open_registry  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from mlflowdsl.tasks import TaskContext  # noqa: E402

BARE_APP = """
import json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from mlflowdsl.runtime.registry.artifacts import load_artifact

model = load_artifact(sys.argv[1], sys.argv[2], "bench")

async def predict(request: Request):
    body = json.loads(await request.body())
    return JSONResponse({"predictions": model.predict(body["rows"]).tolist()})

app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


def train_fraud_model(algorithm: str, trees: int = 50):
    from stdlib_tasks.data_preprocessing import DataPreprocessing
    from stdlib_tasks.model_training import ModelTraining

    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source=str(REPO / "examples/data/transactions.csv"), target="is_fraud",
                                impute="median", scale="standard", encode="onehot"), {}, TaskContext()).outputs["output"]
    hyperparameters = {"n_estimators": trees} if algorithm in ("random_forest", "extra_trees", "gradient_boosting") else {}
    return train.run(train.Params(algorithm=algorithm, hyperparameters=hyperparameters), {"data": data},
                     TaskContext()).outputs["model"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load(port: int, path: str, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if not ok:
                errors[i] += 1
            latencies[i].append(time.perf_counter() - started)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = [x for each in latencies for x in each]
    return {"requests": len(flat), "per_s": len(flat) / elapsed, "p50_ms": percentile(flat, 0.5) * 1000,
            "p99_ms": percentile(flat, 0.99) * 1000, "errors": sum(errors)}


def in_process(model, rows, seconds: float) -> dict[str, float]:
    latencies = []
    stop_at = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        model.predict(rows)
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - began
    return {"requests": len(latencies), "per_s": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000, "errors": 0}


def batcher_overhead(requests: int = 3000) -> dict[str, float]:
    """What the batcher adds to one request under light traffic (one request at a time), with
    a scorer that does nothing: the hand-over to the scoring thread and back."""
    import asyncio

    from mlflowdsl.runtime.registry.serving.batching import Batcher

    def score(rows, probabilities):
        return rows, None

    async def direct() -> float:
        started = time.perf_counter()
        for _ in range(requests):
            score([1], False)
        return (time.perf_counter() - started) / requests

    async def batched() -> float:
        batcher = Batcher(score)
        await batcher.submit([1])
        started = time.perf_counter()
        for _ in range(requests):
            await batcher.submit([1])
        elapsed = (time.perf_counter() - started) / requests
        batcher.close()
        return elapsed

    samples = [(asyncio.run(direct()), asyncio.run(batched())) for _ in range(3)]
    return {"direct_us": min(d for d, _ in samples) * 1e6, "batched_us": min(b for _, b in samples) * 1e6}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the server did not listen in time")


def find_mlflow(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("mlflow"), "/work/main/.venv-mlflow-server/bin/mlflow"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class Server:
    """A server to load: ``start()`` returns (port, path, body encoder); ``stop()``."""

    def __init__(self, name: str, start, stop):
        self.name, self.start, self.stop = name, start, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 100])
    parser.add_argument("--algorithm", default="random_forest")
    parser.add_argument("--trees", type=int, default=50, help="n_estimators of a tree ensemble")
    parser.add_argument("--mlflow", default=None, help="An mlflow executable (default: found on PATH)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import pandas as pd

    model = train_fraud_model(args.algorithm, args.trees)
    frame = pd.read_csv(REPO / "examples/data/transactions.csv").drop(columns=["is_fraud"])
    results: list[dict] = []
    home = tempfile.mkdtemp(prefix="mlw-bench-serving-")
    settings = Settings(home=home)
    mv = open_registry(settings).register("fraud", model)
    procs: list[subprocess.Popen] = []

    def ours(batching: bool):
        name = "batched" if batching else "unbatched"

        def start():
            record = deployments.deploy(settings, "fraud", {"batching": batching, "scaling_config": {
                "min_replicas": 1, "max_replicas": 1}}, name=name)
            return record["port"], "/predict", lambda rows: json.dumps({"rows": rows}).encode()
        return start, lambda: deployments.stop(settings, name)

    def bare():
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-c", BARE_APP, mv.artifact_path, mv.sha256, str(port)],
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        procs.append(proc)
        wait_listening(port, proc)
        return port, "/predict", lambda rows: json.dumps({"rows": rows}).encode()

    def stop_procs():
        while procs:
            proc = procs.pop()
            proc.terminate()
            proc.wait(timeout=30)

    def nothing():
        pass  # the bare app and mlflow are ended with the other processes

    servers = [Server("ours, batching on", *ours(True)), Server("ours, batching off", *ours(False)),
               Server("bare uvicorn+starlette", bare, nothing)]
    mlflow = find_mlflow(args.mlflow)
    if mlflow:
        def mlflow_start():
            import joblib

            model_dir = Path(home) / "mlflow-model"
            pipeline = Path(home) / "pipeline.joblib"
            joblib.dump(model, pipeline)
            saver = ("import sys, joblib, mlflow.pyfunc\n"
                     "class M(mlflow.pyfunc.PythonModel):\n"
                     "    def load_context(self, context):\n"
                     "        self.m = joblib.load(context.artifacts['model'])\n"
                     "    def predict(self, context, model_input, params=None):\n"
                     "        return self.m.predict(model_input)\n"
                     "mlflow.pyfunc.save_model(sys.argv[1], python_model=M(), artifacts={'model': sys.argv[2]})\n")
            python = str(Path(mlflow).parent / "python")
            subprocess.run([python, "-c", saver, str(model_dir), str(pipeline)], check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
            port = free_port()
            proc = subprocess.Popen([mlflow, "models", "serve", "-m", str(model_dir), "-p", str(port), "--env-manager",
                                     "local", "-w", "1"], env={**os.environ, "PYTHONPATH": str(REPO),  # it runs `uvicorn` from PATH
                                                          "PATH": f"{Path(mlflow).parent}:{os.environ.get('PATH', '')}"},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # a log line per request
            procs.append(proc)
            wait_listening(port, proc)
            return port, "/invocations", lambda rows: json.dumps({"dataframe_records": rows}).encode()
        servers.append(Server("mlflow models serve", mlflow_start, nothing))
    try:
        for n_rows in args.rows:
            rows = frame.head(n_rows).to_dict(orient="records")
            results.append({"server": "in-process model.predict", "rows": n_rows, "clients": 1,
                            **in_process(model, rows, args.seconds)})
        # Every server runs during the whole measurement (an idle one costs nothing) and the
        # lines of one (rows, clients) pair are measured one server after the other, so a change
        # of the machine's load falls on all servers alike rather than on the last ones started.
        started = []
        for server in servers:
            port, path, encode = server.start()
            started.append((server, port, path, encode))
        for n_rows in args.rows:
            records = frame.head(n_rows).to_dict(orient="records")
            for server, port, path, encode in started:
                load(port, path, encode(records), 4, 1.0)  # warm-up: connections, first predictions
            for clients in args.clients:
                for server, port, path, encode in started:
                    r = load(port, path, encode(records), clients, args.seconds)
                    results.append({"server": server.name, "rows": n_rows, "clients": clients, **r})
                    print(f"{server.name}: {n_rows} row(s), {clients} client(s): {r['per_s'] * n_rows:,.0f} rows/s, "
                          f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}", file=sys.stderr)
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - the other servers still get stopped
                print(f"stopping {server.name}: {exc}", file=sys.stderr)
        stop_procs()
        shutil.rmtree(home, ignore_errors=True)
    results.sort(key=lambda r: (r["server"] != "in-process model.predict", r["rows"], r["clients"]))
    report(args, results, mlflow, batcher_overhead())


def report(args, results: list[dict], mlflow: str | None, overhead: dict[str, float]) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    bare = {(r["rows"], r["clients"]): r for r in results if r["server"] == "bare uvicorn+starlette"}
    if not args.markdown:
        print(json.dumps({"time": now, "machine": machine, "load": load_avg, "results": results,
                          "batcher_overhead": overhead}, indent=2))
        return
    print(f"Serving ({now}; {machine}; model {args.algorithm} ({args.trees} trees) with its preprocessing; {args.seconds:g} s per line; "
          f"load average at the end {load_avg}; mlflow: {mlflow or 'not installed'}):\n")
    print("| server | rows/request | clients | requests/s | rows/s | p50 (ms) | p99 (ms) | rows/s vs bare | "
          "p99 vs bare | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        base = bare.get((r["rows"], r["clients"]))
        ratio = f"{r['per_s'] / base['per_s']:.2f}x" if base and r["server"] != "in-process model.predict" else ""
        p99 = f"{r['p99_ms'] / base['p99_ms']:.2f}x" if base and r["server"] != "in-process model.predict" else ""
        print(f"| {r['server']} | {r['rows']} | {r['clients']} | {r['per_s']:,.0f} | {r['per_s'] * r['rows']:,.0f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {ratio} | {p99} | {r['errors']} |")
    print(f"\nBatcher overhead per request under light traffic (one at a time, a scorer doing nothing, best of 3): "
          f"{overhead['batched_us']:.0f} µs through the batcher vs {overhead['direct_us']:.1f} µs called directly.")


if __name__ == "__main__":
    main()
