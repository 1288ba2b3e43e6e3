"""Start-up and shut-down of the embedded cluster: ours (an in-process scheduler and
``dask worker`` processes in their own sessions, ``mlflowdsl.runtime.cluster.open_client``)
against Dask's ``LocalCluster(processes=True)`` with the same workers, alternated in one run.

Each round opens a cluster, waits for its 2 workers, runs one task and closes it.

    python bench/embedded_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _local_cluster() -> tuple[float, float]:
    from distributed import Client, LocalCluster

    from mlflowdsl.runtime.cluster import embedded_resources

    resources, memory_limit = embedded_resources(2)
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, resources=resources,
                           memory_limit=memory_limit, dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    client.wait_for_workers(2)
    assert client.submit(abs, -1).result() == 1
    started = time.perf_counter() - t0
    t1 = time.perf_counter()
    client.close()
    cluster.close()
    return started, time.perf_counter() - t1


def _ours(home: str) -> tuple[float, float]:
    from mlflowdsl.runtime.cluster import open_client
    from mlflowdsl.settings import Settings

    t0 = time.perf_counter()
    context = open_client(Settings(home=home, local_workers=2))
    client = context.__enter__()
    assert client.submit(abs, -1).result() == 1
    started = time.perf_counter() - t0
    t1 = time.perf_counter()
    context.__exit__(None, None, None)
    return started, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"LocalCluster(processes=True)": [], "mlw embedded": []}
    with tempfile.TemporaryDirectory() as home:
        for _ in range(args.rounds):
            results["LocalCluster(processes=True)"].append(_local_cluster())
            results["mlw embedded"].append(_ours(home))
    base = statistics.median(s for s, _ in results["LocalCluster(processes=True)"])
    print(f"embedded cluster start ({args.rounds} alternated rounds, 2 workers x 1 thread; load {os.getloadavg()})")
    print("| cluster | start median (s) | start min-max (s) | stop median (s) | start vs LocalCluster |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        starts = [s for s, _ in rows]
        print(f"| {name} | {statistics.median(starts):.2f} | {min(starts):.2f}-{max(starts):.2f} | "
              f"{statistics.median(e for _, e in rows):.2f} | {statistics.median(starts) / base:.2f}x |")


if __name__ == "__main__":
    main()
