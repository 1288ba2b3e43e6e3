"""Serving throughput and latency: ``POST /predict`` of a deployment with 1 and 2 replicas under
a bounded local load, next to calling the same model in-process, in the same run.

The model is the fraud example's gradient boosting (with its preprocessing: imputation,
scaling, one-hot encoding) trained on examples/data/transactions.csv. Each request carries
``--rows`` rows. ``--clients`` Python threads, each with its own keep-alive connection, send
requests back to back for ``--seconds`` per configuration (loopback only). The machine's cores
are shared by the clients and the replicas, so more replicas than free cores cannot help.

    python bench/serving.py [--seconds 12] [--clients 4] [--rows 1] [--markdown]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
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


def train_fraud_model():
    from stdlib_tasks.data_preprocessing import DataPreprocessing
    from stdlib_tasks.model_training import ModelTraining

    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source=str(REPO / "examples/data/transactions.csv"), target="is_fraud",
                                impute="median", scale="standard", encode="onehot"), {}, TaskContext()).outputs["output"]
    return train.run(train.Params(algorithm="gradient_boosting"), {"data": data}, TaskContext()).outputs["model"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(port: int, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import pandas as pd

    model = train_fraud_model()
    frame = pd.read_csv(REPO / "examples/data/transactions.csv").drop(columns=["is_fraud"]).head(args.rows)
    records = frame.to_dict(orient="records")
    body = json.dumps({"rows": records}).encode()
    results: dict[str, dict[str, float]] = {"in-process `model.predict` (1 thread)": in_process(
        model, records, args.seconds)}
    with tempfile.TemporaryDirectory(prefix="mlw-bench-serving-") as home:
        settings = Settings(home=home)
        open_registry(settings).register("fraud", model)
        for replicas in (1, 2):
            record = deployments.deploy(settings, "fraud", {"scaling_config": {
                "min_replicas": replicas, "max_replicas": replicas}})
            try:
                load(record["port"], body, args.clients, 1.0)  # warm-up: connections, first predictions
                results[f"HTTP, {replicas} replica(s), {args.clients} clients"] = load(
                    record["port"], body, args.clients, args.seconds)
            finally:
                deployments.stop(settings, "fraud")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.markdown:
        print(f"Serving ({now}; {machine}; {args.rows} row(s) per request, {args.seconds:g} s per line, "
              f"load average at the end {load_avg}):\n")
        print("| configuration | requests | predictions/s | p50 (ms) | p99 (ms) | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            print(f"| {name} | {r['requests']:,} | {r['per_s'] * args.rows:,.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['errors']} |")
    else:
        print(json.dumps({"time": now, "machine": machine, "rows": args.rows, "results": results}, indent=2))


if __name__ == "__main__":
    main()
