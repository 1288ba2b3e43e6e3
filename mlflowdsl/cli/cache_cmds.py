"""``mlw cache ls|clear``: inspect and empty the shared result cache (disk, and Redis if set)."""

from __future__ import annotations

import json
import time

import click

from mlflowdsl.cli.common import load_settings, redis_option
from mlflowdsl.errors import MlwError

_LOCATION_OPTIONS = [
    click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                 help="Disk cache directory (default: MLW_CACHE_DIR, else <MLW_HOME>/cache)."),
    redis_option("Redis URL of a shared cache (default: MLW_REDIS_URL; none = disk only)."),
]


def _location_options(fn):
    for option in reversed(_LOCATION_OPTIONS):
        fn = option(fn)
    return fn


def _layers(cache_dir: str | None, redis_url: str | None):
    from mlflowdsl.runtime.cache.admin import shared_layers

    return shared_layers(load_settings(cache_dir=cache_dir, redis_url=redis_url))


@click.group("cache")
def cache() -> None:
    """Inspect and clear cached task results.

    Lists the shared layers: the disk cache and, when a Redis URL is set, the Redis cache.
    (Memory caches live inside worker processes and end with them.)
    """


@cache.command("ls")
@_location_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def ls(cache_dir: str | None, redis_url: str | None, as_json: bool) -> None:
    """List cache entries: key, task, backend, size, age and expiry."""
    from mlflowdsl.runtime.cache.admin import entry_record, human_age, human_size, list_entries

    try:
        entries = list_entries(_layers(cache_dir, redis_url))
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    now = time.time()
    if as_json:
        click.echo(json.dumps([entry_record(e, now) for e in entries], indent=2))
        return
    if not entries:
        click.echo("cache is empty")
        return
    rows = [("KEY", "TASK", "TYPE", "BACKEND", "SIZE", "AGE", "EXPIRES")]
    for e in entries:
        expires = "never" if e.expires is None else ("expired" if e.expires <= now else f"in {human_age(e.expires - now)}")
        rows.append((e.key[:12], e.task_id or "-", e.task_type or "-", e.backend, human_size(e.size),
                     human_age(now - e.created) if e.created else "?", expires))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    total = sum(e.size for e in entries)
    click.echo(f"{len(entries)} entries, {human_size(total)}")


def _parse_older_than(ctx, param, value):
    if value is None:
        return None
    from mlflowdsl.runtime.cache.admin import parse_age

    try:
        return parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cache.command("clear")
@_location_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--older-than", metavar="AGE", callback=_parse_older_than, default=None,
              help="Only remove entries created more than AGE ago (e.g. 12h, 7d).")
def clear(cache_dir: str | None, redis_url: str | None, yes: bool, older_than: float | None) -> None:
    """Remove cache entries (all of them, or those older than --older-than)."""
    from mlflowdsl.runtime.cache.admin import clear_entries

    try:
        layers = _layers(cache_dir, redis_url)
        if not yes:
            where = " and ".join(f"{layer.name} ({layer.location})" for layer in layers)
            scope = "cache entries" if older_than is None else "cache entries older than the given age"
            click.confirm(f"Remove {scope} from {where}?", abort=True)
        removed = clear_entries(layers, older_than)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    detail = ", ".join(f"{name}: {count}" for name, count in removed.items())
    click.echo(f"removed {sum(removed.values())} entries ({detail})")
