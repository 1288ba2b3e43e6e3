"""The UI and log capture at scale, each side by side with its anchor in one run.

1. capture: the cost of per-attempt log capture around one attempt, in-process (the same
   call without capture is the anchor), for an attempt that prints nothing and one that prints
   a line (one store write);
2. list: `mlw ui` over a home of 10,000 executions: server time (the ``Server-Timing``
   header) and wall time of the first page, a deep page and filtered lists (target < 300 ms);
3. page: the page of an execution of 1,000 tasks (server time; target < 1 s), and with
   ``--browser`` its load in headless chromium;
4. watch: a 300-task run on a LocalCluster with the UI following it over server-sent events
   vs without (alternating; target < 2 %).

    python bench/ui.py [--executions 10000] [--repeat 5] [--skip watch] [--browser]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def _best_median(xs):
    return min(xs), statistics.median(xs)


# ------------------------------------------------------------------ 1. capture

def bench_capture(home: str, n: int = 20000) -> dict:
    from mlflowdsl.runtime import logcapture
    from mlflowdsl.runtime.state.sqlite import SQLiteState
    from mlflowdsl.settings import Settings

    settings = Settings(home=home)
    target = SQLiteState(Path(home) / "capture.db").log_target()

    def attempt() -> int:
        return 0

    def loud() -> int:
        print("one line of output")
        return 0

    def plain(fn, k):
        started = time.perf_counter()
        for _ in range(k):
            fn()
        return (time.perf_counter() - started) / k

    from mlflowdsl.runtime.usage import UsageSampler

    def sampled(fn, k):  # the usage sampler every attempt already runs in: a yardstick
        started = time.perf_counter()
        for i in range(k):
            with UsageSampler(attempt=i):
                fn()
        return (time.perf_counter() - started) / k

    def captured(fn, k):
        started = time.perf_counter()
        for i in range(k):
            with logcapture.capture(target, settings, "bench", "t", i):
                fn()
        return (time.perf_counter() - started) / k

    with open(os.devnull, "w") as null:
        saved, sys.stdout = sys.stdout, null
        try:
            out = {"quiet": ([], []), "loud": ([], [])}
            usage = []
            for _ in range(5):  # alternating, best of 5
                out["quiet"][0].append(plain(attempt, n))
                out["quiet"][1].append(captured(attempt, n))
                usage.append(sampled(attempt, n // 4))
                out["loud"][0].append(plain(loud, n // 10))
                out["loud"][1].append(captured(loud, n // 10))
        finally:
            sys.stdout = saved
    result = {k: {"plain_us": min(a) * 1e6, "captured_us": min(b) * 1e6, "extra_us": (min(b) - min(a)) * 1e6}
              for k, (a, b) in out.items()}
    result["usage_sampler_us"] = (min(usage) - min(out["quiet"][0])) * 1e6
    return result


# ------------------------------------------------------------------ 2-3. seeding, the server

def seed(home: str, n: int, big: int) -> tuple[str, str]:
    """``n`` executions of 5 tasks over 4 workflows, and one of ``big`` tasks with its plan."""
    from mlflowdsl.ir import Plan, Task, Workflow
    from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
    from mlflowdsl.runtime.state.sqlite import SQLiteState

    state = SQLiteState(Path(home) / "state.db")
    now = time.time() - n
    statuses = ["succeeded"] * 8 + ["failed", "cancelled"]
    for i in range(n):
        status = statuses[i % len(statuses)]
        tasks = {f"t{j}": TaskResult(task_id=f"t{j}", status="succeeded" if j < 4 or status == "succeeded" else "failed",
                                     attempts=1, started=now + i, ended=now + i + 0.5, duration_s=0.5,
                                     metrics={"acc": (i % 97) / 97}) for j in range(5)}
        state.save(WorkflowExecution(id=f"{i:08x}-bench", workflow_id=f"wf{i % 4}", status=status, created=now + i,
                                     started=now + i, ended=now + i + 1, params={"i": i}, tasks=tasks))
    width = 25
    tasks = [Task(id=f"n{k}", type="custom", uses="noop_tasks:noop",
                  dependencies=[f"n{k - width}"] if k >= width else []) for k in range(big)]
    plan = Plan(workflow=Workflow(id="big"), tasks=tasks).with_fingerprint()
    results = {t.id: TaskResult(task_id=t.id, status="succeeded", attempts=1, started=now, ended=now + 1,
                                duration_s=1.0, worker=f"tcp://w{k % 2}") for k, t in enumerate(tasks)}
    state.save(WorkflowExecution(id="big-execution", workflow_id="big", status="succeeded", created=time.time(),
                                 started=now, ended=now + 2, plan_json=plan.model_dump_json(), tasks=results))
    state.close()
    return "big-execution", f"{(n // 2):08x}-bench"


def start_ui(home: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", "from mlflowdsl.cli import main; main()", "ui", "--home", home,
                             "--port", str(port)], stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"mlw ui did not start: {log.read_text()[-2000:]}")


def timed_get(url: str) -> tuple[float, float, int]:
    """(server ms from Server-Timing, wall ms, bytes)."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        header = response.headers.get("server-timing", "app;dur=nan")
    wall = (time.perf_counter() - started) * 1000
    return float(header.split("dur=")[1]), wall, len(body)


def bench_pages(base: str, paths: dict[str, str], repeat: int) -> dict:
    out = {}
    for label, path in paths.items():
        timed_get(base + path)  # warm (templates compiled, connections open)
        runs = [timed_get(base + path) for _ in range(repeat)]
        server, wall = [r[0] for r in runs], [r[1] for r in runs]
        out[label] = {"server_ms": _best_median(server), "wall_ms": _best_median(wall), "bytes": runs[0][2]}
    return out


def bench_browser(url: str, repeat: int) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    from tests.integration.ui_support import FLAGS

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page()
        for _ in range(repeat + 1):
            started = time.perf_counter()
            page.goto(url, wait_until="load")
            times.append((time.perf_counter() - started) * 1000)
        browser.close()
    return _best_median(times[1:])


# ------------------------------------------------------------------ 4. watching a run

def _follow(url: str, stop: threading.Event, seen: list) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                for line in response:
                    if line.startswith(b"data:"):
                        seen.append(time.time())
                    if line.startswith(b"event: done") or stop.is_set():
                        return
        except OSError:
            time.sleep(0.05)  # the execution is not recorded yet


def bench_watch(home: str, base: str, repeat: int, ui_pid: int) -> dict:
    """Alternating runs without and with a live page's stream open; also the CPU the UI's
    process spent per watched run (what it takes from the run on a busy machine)."""
    import psutil
    from distributed import Client, LocalCluster

    from mlflowdsl.compiler.api import compile_text
    from mlflowdsl.runtime.api import run_plan
    from mlflowdsl.settings import Settings

    from runtime_overhead import settle

    body = ["workflow watched {", "  defaults { cache { strategy = none } }"]
    for i in range(300):
        dep = f" after t{i - 10}" if i >= 10 else ""
        body.append(f'  task t{i}: custom{dep} {{ uses = "noop_tasks:noop" }}')
    plan = compile_text("\n".join(body + ["}"]) + "\n", file="watched.mlw").raise_for_errors()
    settings = Settings(home=home)
    times = {"off": [], "watched": []}
    events, ui_cpu = [], []
    ui = psutil.Process(ui_pid)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        run_plan(plan, settings, client=client)  # warm-up
        for i in range(repeat * 2):
            mode = "watched" if i % 2 else "off"
            execution_id = f"watch-{i:03d}"
            stop, seen = threading.Event(), []
            watcher = None
            if mode == "watched":
                watcher = threading.Thread(target=_follow, daemon=True,
                                           args=(f"{base}/api/executions/{execution_id}/events", stop, seen))
                watcher.start()
            settle(client)
            cpu0 = sum(ui.cpu_times()[:2])
            started = time.perf_counter()
            ex = run_plan(plan, settings, client=client, execution_id=execution_id)
            times[mode].append(time.perf_counter() - started)
            stop.set()
            if watcher is not None:
                watcher.join(10)
                events.append(len(seen))
                ui_cpu.append((sum(ui.cpu_times()[:2]) - cpu0) / times[mode][-1])
            assert ex.status == "succeeded", ex.error
    return {"off_s": _best_median(times["off"]), "watched_s": _best_median(times["watched"]),
            "events_per_run": statistics.median(events) if events else 0,
            "ui_cpu_share": statistics.median(ui_cpu) if ui_cpu else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executions", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: capture,list,page,watch")
    ap.add_argument("--browser", action="store_true", help="also time the 1,000-task page's load in chromium")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    home = tempfile.mkdtemp(prefix="mlw-bench-ui-")
    print(f"load: {open('/proc/loadavg').read().strip()}", flush=True)
    results: dict = {}
    if "capture" not in skip:
        results["capture"] = c = bench_capture(home)
        print(f"usage sampler around an attempt (already paid by every attempt): +{c.pop('usage_sampler_us'):.2f} us")
        for k, v in c.items():
            print(f"capture, attempt {k:<5}: {v['plain_us']:8.2f} us plain, {v['captured_us']:8.2f} us captured, "
                  f"+{v['extra_us']:.2f} us", flush=True)
    if not {"list", "page", "watch"} <= skip:
        started = time.perf_counter()
        big, middle = seed(home, args.executions, args.tasks)
        print(f"seeded {args.executions} executions + one of {args.tasks} tasks in {time.perf_counter() - started:.1f}s",
              flush=True)
        from tests.conftest import free_port

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_ui(home, port, Path(home) / "ui.log")
        try:
            paths = {}
            if "list" not in skip:
                paths.update({"list, first page": "/", "list, page 100": "/?page=100",
                              "list, workflow + status filter": "/?workflow=wf1&status=failed",
                              "api/executions": "/api/executions"})
            if "page" not in skip:
                paths.update({f"execution of {args.tasks} tasks": f"/executions/{big}",
                              f"api/executions/{{id}} ({args.tasks} tasks)": f"/api/executions/{big}",
                              "execution of 5 tasks": f"/executions/{middle}"})
            results["pages"] = pages = bench_pages(base, paths, args.repeat)
            for label, v in pages.items():
                print(f"{label:<36} server {v['server_ms'][0]:7.1f} ms (median {v['server_ms'][1]:7.1f})  "
                      f"wall {v['wall_ms'][0]:7.1f} ms (median {v['wall_ms'][1]:7.1f})  {v['bytes'] / 1024:.0f} KiB",
                      flush=True)
            if args.browser and "page" not in skip:
                results["browser_ms"] = b = bench_browser(f"{base}/executions/{big}", args.repeat)
                print(f"chromium load of the {args.tasks}-task page: {b[0]:.0f} ms (median {b[1]:.0f})", flush=True)
            if "watch" not in skip:
                results["watch"] = w = bench_watch(home, base, args.repeat, proc.pid)
                print(f"300-task run: {w['off_s'][0]:.3f}s without the UI (median {w['off_s'][1]:.3f}), "
                      f"{w['watched_s'][0]:.3f}s watched (median {w['watched_s'][1]:.3f}): "
                      f"{(w['watched_s'][0] / w['off_s'][0] - 1) * 100:+.1f}% best, "
                      f"{(w['watched_s'][1] / w['off_s'][1] - 1) * 100:+.1f}% median; "
                      f"{w['events_per_run']:.0f} events per watched run; the UI process used "
                      f"{w['ui_cpu_share'] * 100:.2f}% of one core while it watched (median)", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"load: {open('/proc/loadavg').read().strip()}")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
