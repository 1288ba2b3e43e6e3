"""``mlw models ...``, ``mlw serve`` and ``mlw deployments ...``: the model registry and its
deployments from the command line (docs/models.md)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import click

from mlflowdsl.cli.common import load_settings, redis_option
from mlflowdsl.cli.views import fmt_number
from mlflowdsl.errors import MlwError

_STORE_OPTIONS = [
    click.option("--home", default=None, metavar="DIR", help="mlw home (default: MLW_HOME, else .mlw)."),
    redis_option("Redis URL of a cluster-mode registry (default: MLW_REDIS_URL; none = SQLite under home)."),
]


def _store_options(fn):
    for option in reversed(_STORE_OPTIONS):
        fn = option(fn)
    return fn


def _settings(home: str | None, redis_url: str | None) -> Any:
    try:
        return load_settings(home=home, redis_url=redis_url)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None


def _registry(home: str | None, redis_url: str | None) -> Any:
    from mlflowdsl.runtime.registry import open_registry

    try:
        return open_registry(_settings(home, redis_url))
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _metrics(metrics: dict[str, float], limit: int = 3) -> str:
    return ", ".join(f"{k}={fmt_number(v)}" for k, v in list(sorted(metrics.items()))[:limit]) or "-"


# ---------------------------------------------------------------------- mlw models

@click.group("models")
def models() -> None:
    """The model registry: versions, aliases (champion, staging...), lineage."""


@models.command("ls")
@click.argument("name", required=False)
@_store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models_ls(name: str | None, home: str | None, redis_url: str | None, as_json: bool) -> None:
    """List registered model versions (of NAME, or all)."""
    registry = _registry(home, redis_url)
    try:
        versions = registry.versions(name)
        aliases = {n: registry.aliases(n) for n in {mv.name for mv in versions}}
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([{**mv.to_dict(), "id": mv.id, "aliases": sorted(
            a for a, v in aliases[mv.name].items() if v == mv.version)} for mv in versions], indent=2))
        return
    if not versions:
        click.echo("no registered models" + (f" named {name!r}" if name else ""))
        return
    rows = [("MODEL", "VERSION", "LABEL", "ALIASES", "TYPE", "METRICS", "EXECUTION", "TASK", "REGISTERED")]
    for mv in versions:
        held = ",".join(sorted(a for a, v in aliases[mv.name].items() if v == mv.version))
        rows.append((mv.name, str(mv.version), mv.label or "-", held or "-", mv.model_type or "-", _metrics(mv.metrics),
                     str(mv.lineage.get("execution_id", "-"))[:12], str(mv.lineage.get("task_id", "-")),
                     _when(mv.created_at)))
    _table(rows)


@models.command("show")
@click.argument("ref")
@_store_options
def models_show(ref: str, home: str | None, redis_url: str | None) -> None:
    """Everything about one version: REF is NAME/VERSION, NAME@ALIAS or NAME (latest)."""
    registry = _registry(home, redis_url)
    try:
        mv = registry.resolve(ref)
        aliases = registry.aliases(mv.name)
        history = [h.to_dict() for h in registry.history(mv.name) if mv.version in (h.version, h.previous)]
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({**mv.to_dict(), "id": mv.id, "uri": mv.uri,
                           "aliases": sorted(a for a, v in aliases.items() if v == mv.version),
                           "alias_history": history}, indent=2, default=str))


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", required=True, help="The alias to move, e.g. champion.")
@click.option("--better-than", default=None, metavar="ALIAS",
              help="Gate against this alias's holder (default: the alias being moved).")
@click.option("--metric", "metrics", multiple=True, help="Gate metric (repeatable; default: accuracy or r2).")
@click.option("--min-delta", type=float, default=0.0, show_default=True, help="Required absolute improvement.")
@click.option("--min-relative", type=float, default=0.0, show_default=True, help="Required relative improvement.")
@click.option("--no-gate", is_flag=True, help="Move the alias without comparing (an explicit override).")
@_store_options
def models_promote(name: str, version: int, alias: str, better_than: str | None, metrics: tuple[str, ...],
                   min_delta: float, min_relative: float, no_gate: bool, home: str | None, redis_url: str | None) -> None:
    """Point ALIAS of NAME at VERSION, only if it beats the current holder (recorded metrics).

    The comparison and the move happen under the alias's lock: a concurrent promotion cannot
    slip in between. A refusal names the metric that failed and by how much (exit status 1).
    """
    from mlflowdsl.runtime.registry import Gate

    registry = _registry(home, redis_url)
    gate = None if no_gate else Gate(against=better_than or alias, metrics=metrics, min_delta=min_delta,
                                     min_relative=min_relative)
    try:
        move = registry.promote(f"{name}/{version}", alias, gate=gate)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    was = f" (was {name}/{move.previous})" if move.previous is not None else ""
    click.echo(f"{name}@{alias} -> {name}/{version}{was}")
    for check in move.gate:
        click.echo(f"  {check['message']}")


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--delete", "delete", is_flag=True, help="Remove the alias.")
@_store_options
def models_alias(name: str, alias: str, version: int | None, delete: bool, home: str | None,
                 redis_url: str | None) -> None:
    """Show ALIAS of NAME, set it to VERSION (no gate: use `promote` for gated moves), or --delete it."""
    registry = _registry(home, redis_url)
    try:
        if delete:
            move = registry.remove_alias(name, alias)
            click.echo(f"{name}@{alias} removed (was {name}/{move.previous})")
        elif version is not None:
            move = registry.promote(f"{name}/{version}", alias)
            was = f" (was {name}/{move.previous})" if move.previous is not None else ""
            click.echo(f"{name}@{alias} -> {name}/{version}{was}")
        else:
            click.echo(registry.resolve(f"{name}@{alias}").id)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None


@models.command("delete")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--force", is_flag=True,
              help="Also remove the aliases that point at it; delete it even while a deployment serves it.")
@_store_options
def models_delete(name: str, version: int, force: bool, home: str | None, redis_url: str | None) -> None:
    """Delete one version (metadata and artifact); refused while an alias points at it."""
    registry = _registry(home, redis_url)
    try:
        mv = registry.delete(name, version, force=force)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"deleted {mv.id}")


# ---------------------------------------------------------------------- mlw serve

@models.command("export")
@click.argument("ref")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mlflow"]), default="mlflow", show_default=True,
              help="Model directory format (docs/mlflow.md).")
@_store_options
def models_export(ref: str, directory: str, fmt: str, home: str | None, redis_url: str | None) -> None:
    """Write the version REF as an MLflow model directory (sklearn flavour, loads with mlflow.pyfunc)."""
    from mlflowdsl.runtime.mlflow_tracking.models import export_version

    try:
        mv = export_version(_registry(home, redis_url), ref, directory)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{mv.id} -> {directory} ({fmt})")


def _batching_options(fn: Any) -> Any:
    fn = click.option("--max-wait-ms", type=click.FloatRange(0, 1000), default=0.0, show_default=True,
                      help="Wait up to this long for more requests before scoring a partial batch.")(fn)
    fn = click.option("--max-batch-rows", type=click.IntRange(1, 100_000), default=256, show_default=True,
                      help="At most this many rows per predict call when batching.")(fn)
    return click.option("--batching/--no-batching", default=True, show_default=True,
                        help="Score concurrent requests together in one predict call.")(fn)


@click.command("serve")
@click.argument("model_uri")
@click.option("--port", type=int, default=None, help="Port (default: a free one, printed).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--replicas", type=click.IntRange(1, 1000), default=1, show_default=True, help="Worker processes.")
@click.option("--max-replicas", type=click.IntRange(1, 1000), default=None, help="Autoscale up to this many.")
@_batching_options
@_store_options
def serve(model_uri: str, port: int | None, host: str, replicas: int, max_replicas: int | None,
          batching: bool, max_batch_rows: int, max_wait_ms: float, home: str | None, redis_url: str | None) -> None:
    """Serve MODEL_URI (models:/NAME@ALIAS, models:/NAME/3) in the foreground until Ctrl-C.

    POST /predict with {"rows": [{column: value, ...}]} answers {"predictions": [...]};
    GET /health answers {"status": "ok"}.
    """
    from mlflowdsl.runtime.registry.deployments import serve_foreground

    def ready(spec: Any) -> None:
        click.echo(f"serving {spec.model_id} at {spec.endpoint} with {spec.min_replicas} replica(s); Ctrl-C stops",
                   err=True)

    try:
        serve_foreground(_settings(home, redis_url), model_uri, port=port, replicas=replicas,
                         max_replicas=max_replicas, host=host, on_ready=ready,
                         batching={"enabled": batching, "max_batch_rows": max_batch_rows, "max_wait_ms": max_wait_ms})
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None


# ---------------------------------------------------------------------- mlw deployments

@click.group("deployments")
def deployments() -> None:
    """Detached model deployments: list, start, status, stop, promote, rollback."""


def _show_record(record: dict[str, Any]) -> None:
    click.echo(json.dumps({k: record.get(k) for k in (
        "name", "state", "model", "label", "endpoint", "replicas", "min_replicas", "max_replicas", "target_replicas",
        "canary", "pid", "server_pid", "worker_pids", "requests", "errors", "utilization", "restarts", "previous",
        "batching", "log",
        "error") if record.get(k) is not None}, indent=2))


@deployments.command("ls")
@_store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def deployments_ls(home: str | None, redis_url: str | None, as_json: bool) -> None:
    """List deployments with their state, model version, endpoint and replicas."""
    from mlflowdsl.runtime.registry import deployments as impl

    try:
        records = impl.list_deployments(_settings(home, redis_url))
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no deployments")
        return
    rows = [("NAME", "STATE", "MODEL", "ENDPOINT", "REPLICAS", "PID", "UPDATED")]
    for r in records:
        rows.append((r["name"], r["state"], r["model"], r["endpoint"], f"{r.get('replicas', 0)}/{r['max_replicas']}",
                     str(r.get("pid") or "-"), _when(r.get("updated_at"))))
    _table(rows)


@deployments.command("start")
@click.argument("model_uri")
@click.option("--name", default=None, help="Deployment name (default: the model's name).")
@click.option("--port", type=int, default=None, help="Port (default: the deployment's previous port, else a free one).")
@click.option("--min-replicas", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option("--max-replicas", type=click.IntRange(1, 1000), default=None)
@click.option("--canary", default=None, help="Also serve this version (a number of the same model, or NAME/VERSION) "
              "to --canary-percent of the requests.")
@click.option("--canary-percent", type=click.FloatRange(0, 100, min_open=True, max_open=True), default=10.0,
              show_default=True, help="The canary's share of the requests.")
@_batching_options
@_store_options
def deployments_start(model_uri: str, name: str | None, port: int | None, min_replicas: int,
                      max_replicas: int | None, canary: str | None, canary_percent: float, batching: bool,
                      max_batch_rows: int, max_wait_ms: float, home: str | None, redis_url: str | None) -> None:
    """Deploy MODEL_URI detached (it keeps serving after this command returns).

    With --canary, two versions answer behind the one port; `mlw deployments promote NAME`
    then serves the canary alone, `mlw deployments rollback NAME` the original alone."""
    from mlflowdsl.runtime.registry import deployments as impl

    config = {"target": "local", "port": port, "scaling_config": {
        "min_replicas": min_replicas, "max_replicas": max(min_replicas, max_replicas or min_replicas)},
        "batching": {"enabled": batching, "max_batch_rows": max_batch_rows, "max_wait_ms": max_wait_ms},
        "canary": canary, "canary_percent": canary_percent}
    try:
        record = impl.deploy(_settings(home, redis_url), model_uri, config, name=name)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{record['name']}: serving {record['model']} at {record['endpoint']} ({record['replicas']} replicas)"
               + (f"; canary {record['canary']['model']} gets {record['canary']['percent']:g}% of the requests"
                  if record.get("canary") else ""))


@deployments.command("status")
@click.argument("name")
@_store_options
def deployments_status(name: str, home: str | None, redis_url: str | None) -> None:
    """The deployment's record, with the state checked against its supervisor process."""
    from mlflowdsl.runtime.registry import deployments as impl

    try:
        _show_record(impl.status(_settings(home, redis_url), name))
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None


@deployments.command("stop")
@click.argument("name")
@_store_options
def deployments_stop(name: str, home: str | None, redis_url: str | None) -> None:
    """Stop the deployment's supervisor and all its replicas."""
    from mlflowdsl.runtime.registry import deployments as impl

    try:
        record = impl.stop(_settings(home, redis_url), name)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}: stopped (was serving {record['model']})")


@deployments.command("promote")
@click.argument("name")
@_store_options
def deployments_promote(name: str, home: str | None, redis_url: str | None) -> None:
    """Finish a canary: serve the canary version alone, on the same port."""
    from mlflowdsl.runtime.registry import deployments as impl

    try:
        record = impl.promote(_settings(home, redis_url), name)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}: promoted; serving {record['model']} alone at {record['endpoint']}")


@deployments.command("rollback")
@click.argument("name")
@_store_options
def deployments_rollback(name: str, home: str | None, redis_url: str | None) -> None:
    """Serve the previously deployed version again, on the same port (with a canary: end the
    canary, serving the original version alone)."""
    from mlflowdsl.runtime.registry import deployments as impl

    try:
        record = impl.rollback(_settings(home, redis_url), name)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}: rolled back to {record['model']} at {record['endpoint']}")
