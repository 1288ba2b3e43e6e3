"""Runtime overhead: mlw vs raw Dask on the same no-op DAGs and the same cluster.

Shapes: 1,000 independent tasks; a chain of 200; fan-out/fan-in 1 -> 500 -> 1. mlw runs the
compiled IR (``cache = none``, so every task really runs) through ``run_plan`` with state
(SQLite) and events (JSONL) on; raw Dask is ``client.submit`` with the same dependencies
followed by ``wait``. Both on one ``LocalCluster(2 workers, 1 thread each)`` in this process
run, alternating, best of ``--repeat``. Also: a fully cached rerun of the 1,000-task DAG
(cache = disk) and a run of the main example.

    python bench/runtime_overhead.py [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # workers are spawned with this sys.path: they import noop_tasks
sys.path.insert(0, str(HERE.parent))

USES = "noop_tasks:noop"


def mlw_source(shape: str, cache: str = "none") -> str:
    lines = [f"workflow bench_{shape} {{", f"  defaults {{ cache {{ strategy = {cache} }} }}"]

    def task(name: str, after: list[str]) -> None:
        dep = f" after {', '.join(after)}" if after else ""
        lines.append(f'  task {name}: custom{dep} {{ uses = "{USES}" }}')

    if shape == "independent":
        for i in range(1000):
            task(f"t{i}", [])
    elif shape == "chain":
        for i in range(200):
            task(f"t{i}", [f"t{i - 1}"] if i else [])
    elif shape == "fan":
        task("source", [])
        for i in range(500):
            task(f"t{i}", ["source"])
        task("sink", [f"t{i}" for i in range(500)])
    lines.append("}")
    return "\n".join(lines) + "\n"


def compile_shape(shape: str, cache: str = "none"):
    from mlflowdsl.compiler.api import compile_text

    result = compile_text(mlw_source(shape, cache), file=f"bench_{shape}.mlw")
    return result.raise_for_errors()


def settle(client, timeout: float = 10.0) -> None:
    """Wait (untimed) until the scheduler has forgotten the previous run's tasks: releasing
    500-1,000 futures is a flood of messages the scheduler works through for tens of ms, and
    without this the run that follows (raw or mlw, alternating) paid for the one before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0:
            return
        time.sleep(0.01)


def run_raw(client, plan) -> float:
    settle(client)
    from distributed import wait

    from noop_tasks import raw_noop

    started = time.perf_counter()
    futures = {}
    for t in plan.tasks:  # topological order
        futures[t.id] = client.submit(raw_noop, *[futures[d] for d in t.dependencies], pure=False)
    wait(list(futures.values()))
    elapsed = time.perf_counter() - started
    del futures
    return elapsed


def run_mlw(client, plan, settings) -> float:
    from mlflowdsl.runtime.api import run_plan

    settle(client)
    started = time.perf_counter()
    ex = run_plan(plan, settings, client=client)
    elapsed = time.perf_counter() - started
    if ex.status != "succeeded":
        details = {t: r.error for t, r in ex.tasks.items() if r.error}
        raise SystemExit(f"mlw run of {plan.workflow.id} {ex.status}: {ex.error} {details}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print the RESULTS.md section")
    ap.add_argument("--shapes", default="independent,chain,fan", help="comma-separated subset of the DAG shapes")
    ap.add_argument("--no-extras", action="store_true", help="skip the cached rerun and the main example")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from mlflowdsl.settings import Settings

    home = tempfile.mkdtemp(prefix="mlw-bench-")
    settings = Settings(home=home)
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for shape, label in (("independent", "1,000 independent"), ("chain", "chain of 200"),
                             ("fan", "fan-out/fan-in 1→500→1")):
            if shape not in args.shapes.split(","):
                continue
            plan = compile_shape(shape)
            n = len(plan.tasks)
            run_raw(client, plan), run_mlw(client, plan, settings)  # warm-up: imports, first pickles
            raw, mlw = [], []
            for _ in range(args.repeat):
                raw.append(run_raw(client, plan))
                mlw.append(run_mlw(client, plan, settings))
            best_raw, best_mlw = min(raw), min(mlw)
            rows.append((label, n, best_raw, best_mlw, statistics.median(raw), statistics.median(mlw)))
            print(f"{label:<24} n={n:<5} raw {best_raw * 1000 / n:6.2f} ms/task  mlw {best_mlw * 1000 / n:6.2f} "
                  f"ms/task  ratio {best_mlw / best_raw:5.2f}x  (medians {statistics.median(raw):.2f}s / "
                  f"{statistics.median(mlw):.2f}s, ratio {statistics.median(mlw) / statistics.median(raw):.2f}x)",
                  flush=True)

        if args.no_extras:
            return
        cached_plan = compile_shape("independent", cache="disk")
        run_mlw(client, cached_plan, settings)  # fill the cache
        cached = min(run_mlw(client, cached_plan, settings) for _ in range(args.repeat))
        print(f"fully cached rerun of 1,000 tasks: {cached:.3f}s", flush=True)

        from mlflowdsl.compiler.api import compile_file

        example = compile_file(HERE.parent / "examples" / "training_pipeline.mlw").raise_for_errors()
        cold_settings = Settings(home=tempfile.mkdtemp(prefix="mlw-bench-example-"))
        cold = run_mlw(client, example, cold_settings)
        from mlflowdsl.runtime.api import run_plan

        started = time.perf_counter()
        again = run_plan(example, cold_settings, client=client)
        warm = time.perf_counter() - started
        hits = sum(r.cached for r in again.tasks.values())
        print(f"examples/training_pipeline.mlw: {cold:.2f}s computed, rerun {warm:.3f}s with {hits}/"
              f"{len(again.tasks)} tasks from the cache (cluster already up)", flush=True)

    if args.markdown:
        cpu = _cpu_model()
        print("\n## Runtime\n")
        print(f"`python bench/runtime_overhead.py --repeat {args.repeat}` on {time.strftime('%Y-%m-%d')}, "
              f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}; LocalCluster(2 workers, "
              "1 thread each), best of the repeats (medians in brackets).\n")
        # Both ratios: on a shared machine a lucky best-of run of one side can make either alone misleading
        # (raw Dask's fan-out run is bimodal here).
        print("| DAG | tasks | raw Dask ms/task | mlw ms/task | mlw / raw (best) | mlw / raw (median) |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, n, braw, bmlw, mraw, mmlw in rows:
            print(f"| {label} | {n} | {braw * 1000 / n:.2f} ({mraw * 1000 / n:.2f}) | "
                  f"{bmlw * 1000 / n:.2f} ({mmlw * 1000 / n:.2f}) | {bmlw / braw:.2f}x | {mmlw / mraw:.2f}x |")
        print(f"\nFully cached rerun of the 1,000-task DAG: {cached:.3f} s (target < 1 s).")
        print(f"`examples/training_pipeline.mlw` on the warm cluster: {cold:.2f} s computed; rerun {warm:.3f} s "
              f"({hits}/{len(again.tasks)} tasks from the cache).")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
