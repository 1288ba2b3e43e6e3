"""Cluster-mode commands: ``mlw orchestrator start``, ``mlw submit``, ``mlw cluster status``,
``mlw cancel``. Thin wrappers over :mod:`mlflowdsl.runtime.cluster_mode`. And the warm local
cluster: ``mlw cluster up`` / ``mlw cluster down`` (:func:`mlflowdsl.runtime.cluster.serve_warm`).

Exit codes: 0 done; 1 bad input, a workflow that does not compile, or Redis unreachable; 2 usage.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

import click

from mlflowdsl.cli.common import compile_plan, fail, load_settings, param_options, redis_option
from mlflowdsl.cli.views import console, print_letters
from mlflowdsl.errors import MlwError

REDIS_OPTION = redis_option("The cluster's Redis (redis://[user:password@]host:port/db, rediss:// for TLS; "
                            "env MLW_REDIS_URL).")


def _settings(redis_url: str | None, **more):
    """The settings of a cluster command: a Redis URL is required."""
    settings = load_settings(redis_url=redis_url, **more)
    if not settings.redis_url:
        raise click.UsageError("give --redis URL (or set MLW_REDIS_URL)")
    return settings


def _gateway(settings):
    from mlflowdsl.runtime.coordination import gateway_from_settings

    return gateway_from_settings(settings)


# --------------------------------------------------------------------------- orchestrator

@click.group()
def orchestrator() -> None:
    """Run orchestrator instances of a cluster."""


@orchestrator.command("start")
@REDIS_OPTION
@click.option("--scheduler", metavar="ADDR", help="The Dask scheduler that runs the tasks (env MLW_DASK_SCHEDULER; "
                                                 "default: an embedded cluster).")
@click.option("--domains", metavar="A,B", default="", help="Capability domains this instance serves (default: all).")
@click.option("--id", "instance_id", metavar="NAME", help="Instance id (default: HOST-PID).")
@click.option("--max-running", default=4, show_default=True, help="Executions run at once by this instance.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def start(redis_url, scheduler, domains, instance_id, max_running, verbose):
    """Run one instance in the foreground until SIGTERM or Ctrl-C.

    The first signal stops claiming and lets running executions finish; a second one exits at
    once (the executions it held are resumed by another instance after ~3 heartbeats)."""
    import logging

    from mlflowdsl.runtime.cluster import open_client
    from mlflowdsl.runtime.cluster_mode.instance import OrchestratorInstance

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("distributed", "tornado", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings(redis_url, scheduler=scheduler)
    name = instance_id or f"{socket.gethostname()}-{os.getpid()}"
    doms = tuple(d.strip() for d in domains.split(",") if d.strip())
    try:
        with open_client(settings) as client:
            instance = OrchestratorInstance(settings, name, client, domains=doms, max_running=max_running)

            def on_signal(signum, frame):
                if instance.stopping.is_set():
                    click.echo(f"instance {name}: second signal, exiting now", err=True)
                    os._exit(1)
                click.echo(f"instance {name}: stopping (finishing {len(instance.jobs)} running execution(s))",
                           err=True)
                instance.stop()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            click.echo(f"instance {name} serving {', '.join(doms) or 'all domains'} "
                       f"(redis {instance.gateway.safe_url}, scheduler {settings.scheduler or 'embedded'})", err=True)
            instance.start().run()
    except MlwError as exc:
        fail(str(exc))


# --------------------------------------------------------------------------- submit

@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@param_options
@click.option("--keep-going", is_flag=True, help="On a failure, run everything not downstream of it.")
@REDIS_OPTION
def submit(file, params, params_file, keep_going, redis_url):
    """Compile FILE and queue it for the cluster; prints the execution id."""
    from mlflowdsl.runtime.cluster_mode.submission import submit_plan

    settings = _settings(redis_url)
    try:
        the_plan = compile_plan(file, params, params_file)
        execution_id = submit_plan(_gateway(settings), the_plan, keep_going=keep_going)
    except MlwError as exc:
        fail(str(exc))
    click.echo(execution_id)


# --------------------------------------------------------------------------- cancel

@click.command()
@click.argument("execution_id")
@REDIS_OPTION
def cancel(execution_id, redis_url):
    """Cancel a submitted or running execution (its owner stops it within a heartbeat)."""
    from mlflowdsl.runtime.cluster_mode.submission import request_cancel

    settings = _settings(redis_url)
    try:
        execution = request_cancel(_gateway(settings), execution_id, settings=settings)
    except MlwError as exc:
        fail(str(exc))
    if execution.status == "cancelled":
        click.echo(f"execution {execution.id} cancelled")
    elif execution.finished:
        click.echo(f"execution {execution.id} already {execution.status}; nothing to cancel")
    else:
        click.echo(f"execution {execution.id}: cancel requested (its instance stops it shortly)")


# --------------------------------------------------------------------------- cluster status

@click.group()
def cluster() -> None:
    """Inspect the cluster; start or stop a warm local one (up/down)."""


# --------------------------------------------------------------------------- warm local cluster

@cluster.command("up")
@click.option("--foreground", is_flag=True, help="Run the warm cluster in this process until SIGTERM or Ctrl-C.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the workers to join.")
def cluster_up(foreground, timeout):
    """Start a warm local cluster (the embedded scheduler and workers) in the background; `mlw run`
    then uses it instead of starting one per run. Its address is in <home>/cluster.json."""
    import threading

    from mlflowdsl.runtime.cluster import connect_warm, read_warm, serve_warm, warm_file

    try:
        settings = load_settings()
        running = connect_warm(settings)
        if running is not None:
            running.close()
            click.echo(f"a warm cluster is already up at {read_warm(settings)['address']} "
                       "(stop it with `mlw cluster down`)")
            return
        if foreground:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: stop.set())
            serve_warm(settings, stop)
            return
        log_path = warm_file(settings).with_suffix(".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        import subprocess

        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen([sys.executable, "-c", "from mlflowdsl.cli import main; main()",
                                     "cluster", "up", "--foreground"], stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=log_file, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            info = read_warm(settings)
            if info is not None and info["pid"] == proc.pid:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.terminate()
                fail(f"the warm cluster did not start (its log: {log_path})")
            time.sleep(0.1)
    except MlwError as exc:
        fail(str(exc))
    click.echo(f"warm cluster up at {info['address']} ({info['workers']} workers, pid {info['pid']}); "
               "`mlw run` uses it; stop it with `mlw cluster down`")


@cluster.command("down")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait before killing it.")
def cluster_down(timeout):
    """Stop the warm local cluster `mlw cluster up` started."""
    import psutil

    from mlflowdsl.runtime.cluster import read_warm, warm_file

    try:
        settings = load_settings()
    except MlwError as exc:
        fail(str(exc))
    info = read_warm(settings)
    if info is None:
        click.echo(f"no warm cluster is up (no {warm_file(settings)})")
        return
    try:
        proc = psutil.Process(info["pid"])
        if "--foreground" not in proc.cmdline():  # a stale file: that pid is some other process now
            raise psutil.NoSuchProcess(info["pid"])
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        done = "stopped"
    except psutil.NoSuchProcess:
        done = "was not running (stale file removed)"
    warm_file(settings).unlink(missing_ok=True)
    click.echo(f"warm cluster at {info['address']} {done}")


@cluster.command("status")
@REDIS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cluster_status_cmd(redis_url, as_json):
    """Instances, leader, shard map, queues, dead letters and the Redis breaker state."""
    from mlflowdsl.runtime.cluster_mode.health import cluster_status

    settings = _settings(redis_url)
    try:
        data = cluster_status(_gateway(settings), settings)
    except MlwError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    _print_status(data)


def _print_status(data: dict) -> None:
    from rich.table import Table

    out = console()
    leader = data.get("leader")
    out.print(f"redis {data['redis']} (prefix {data['prefix']}), breaker {data['breaker']}; "
              f"leader {leader['id'] + ' (epoch ' + str(leader['epoch']) + ')' if leader else 'none'}", highlight=False)
    table = Table(title="instances")
    for column in ("id", "domains", "owns", "load", "last heartbeat", "host/pid"):
        table.add_column(column)
    shards = (data.get("shards") or {}).get("assignments") or {}
    now = time.time()
    for i in data["instances"]:
        owns = ", ".join(sorted(d for d, owner in shards.items() if owner == i["id"])) or "-"
        beat = f"{now - i['last_heartbeat']:.1f}s ago" if i.get("last_heartbeat") else "-"
        table.add_row(i["id"], ", ".join(i["domains"]) or "*", owns, f"{i['load']:g}", beat, f"{i['host']}/{i['pid']}")
    out.print(table)
    queues = Table(title="queues")
    for column in ("domain", "owner", "queued", "pending"):
        queues.add_column(column)
    for domain, q in sorted(data.get("queues", {}).items()):
        queues.add_row(domain, shards.get(domain, "[yellow]unassigned[/]"), str(q["queued"]), str(q["pending"]))
    out.print(queues)
    print_letters(data.get("dead_letters") or [])
