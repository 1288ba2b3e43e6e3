"""``mlw events tail``: follow the event stream live, from Kafka or the JSONL file.

The source: ``--file PATH`` reads that JSONL file; otherwise ``--kafka BOOTSTRAP`` (or the
``kafka_bootstrap`` setting, env ``MLW_KAFKA_BOOTSTRAP``) reads the topic; otherwise
``<home>/events.jsonl``. Exit codes: 0 (Ctrl-C or the end with ``--no-follow``), 1 a source
that cannot be read (an unreachable broker, a missing file with ``--no-follow``).
"""

from __future__ import annotations

import fnmatch
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from mlflowdsl.cli.common import load_settings
from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.events.base import Event

POLL_S = 0.2


def matches(event: Event, execution: str | None, types: tuple[str, ...]) -> bool:
    """``execution`` is an id prefix; ``types`` are globs (``task.*``), any of which may match.

    >>> e = Event.create("task.failed", execution_id="3f2a9c01", workflow_id="w")
    >>> matches(e, "3f2a", ("task.*",)), matches(e, None, ("workflow.*",)), matches(e, "99", ())
    (True, False, False)
    """
    if execution and not event.execution_id.startswith(execution):
        return False
    return not types or any(fnmatch.fnmatchcase(event.type, t) for t in types)


def render(event: Event) -> str:
    """One line: time, type, execution, then the payload's main fields.

    >>> e = Event.create("task.completed", execution_id="3f2a9c01", workflow_id="w", at=0,
    ...                  payload={"task_id": "train", "duration_s": 1.5})
    >>> render(e).split(None, 1)[1]
    'task.completed          3f2a9c01  w  task_id=train duration_s=1.5'
    """
    stamp = time.strftime("%H:%M:%S", time.gmtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
    fields = " ".join(f"{k}={_short(v)}" for k, v in event.payload.items() if v not in (None, {}, []))
    where = event.execution_id or event.instance_id
    return f"{stamp} {event.type:<23} {where}  {event.workflow_id or '-'}  {fields}".rstrip()


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- sources

def follow_file(path: Path, *, from_beginning: bool, follow: bool) -> Iterator[Event]:
    """Events appended to ``path`` (waiting for it to appear when following)."""
    while not path.exists():
        if not follow:
            raise click.ClickException(f"no events file at {path} (run a workflow first, or give --file PATH)")
        time.sleep(POLL_S)
    with open(path, "rb") as fh:
        if not from_beginning:
            fh.seek(0, 2)
        partial = b""
        while True:
            chunk = fh.readline()
            if not chunk:
                if not follow:
                    return
                time.sleep(POLL_S)
                continue
            partial += chunk
            if not partial.endswith(b"\n"):
                continue  # the writer is mid-line: wait for the rest
            line, partial = partial.strip(), b""
            if line:
                try:
                    yield Event.model_validate_json(line)
                except ValueError:
                    click.echo(f"warning: skipping a malformed line in {path}", err=True)


def follow_kafka(bootstrap: str, topic: str, settings, *, from_beginning: bool, follow: bool) -> Iterator[Event]:
    """Events on ``topic`` (every partition; no consumer group, so nothing is committed)."""
    from dataclasses import replace

    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from mlflowdsl.runtime.events.kafka import client_config

    config = client_config(replace(settings, kafka_bootstrap=bootstrap))
    try:  # a reachability probe with a bounded wait, so a dead broker is an error, not a hang
        KafkaAdminClient(**config, bootstrap_timeout_ms=3000, request_timeout_ms=3000).close()
    except (KafkaError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot reach the Kafka broker at {bootstrap}: {exc} "
                                   "(check --kafka or MLW_KAFKA_BOOTSTRAP, and the TLS/SASL settings)") from None
    consumer = KafkaConsumer(**config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                             fetch_max_wait_ms=200, request_timeout_ms=5000)
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if not follow:
                return
            time.sleep(POLL_S * 5)  # the topic appears with the first event published
            consumer.topics()  # refresh metadata
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
        ends = consumer.end_offsets(tps)
        while True:
            batch = consumer.poll(timeout_ms=int(POLL_S * 1000))
            for records in batch.values():
                for record in records:
                    try:
                        yield Event.model_validate_json(record.value)
                    except ValueError:
                        click.echo(f"warning: skipping a malformed event at {record.topic}:{record.partition}:"
                                   f"{record.offset}", err=True)
            if not follow and not batch and all(consumer.position(tp) >= ends[tp] for tp in tps):
                return
    finally:
        consumer.close()


# --------------------------------------------------------------------------- commands

@click.group()
def events() -> None:
    """Follow the lifecycle and cluster events."""


@events.command("tail")
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", help="Read the Kafka topic at this broker "
              "(default: the kafka_bootstrap setting, env MLW_KAFKA_BOOTSTRAP; else the JSONL file).")
@click.option("--topic", default=None, help="Kafka topic (default: the kafka_topic setting, mlw.events).")
@click.option("--file", "file", type=click.Path(dir_okay=False), help="Read this JSONL file "
              "(default: <home>/events.jsonl).")
@click.option("--execution", metavar="ID", help="Only this execution (an id prefix is enough).")
@click.option("--type", "types", multiple=True, metavar="GLOB", help="Only these types, e.g. 'task.*'. Repeatable.")
@click.option("--from", "start", type=click.Choice(["beginning", "now"]), default="now", show_default=True,
              help="Start with the stored events, or only new ones.")
@click.option("--json", "as_json", is_flag=True, help="One event as JSON per line.")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep waiting for new events (Ctrl-C stops), or stop at the end.")
def tail(bootstrap, topic, file, execution, types, start, as_json, follow):
    """Print events as they happen; Ctrl-C stops."""
    try:
        settings = load_settings(kafka_bootstrap=bootstrap)
    except MlwError as exc:
        raise click.ClickException(str(exc)) from None
    from_beginning = start == "beginning"
    if file or not settings.kafka_bootstrap:
        source = follow_file(Path(file) if file else settings.home_path / "events.jsonl",
                             from_beginning=from_beginning, follow=follow)
    else:
        source = follow_kafka(settings.kafka_bootstrap, topic or settings.kafka_topic, settings,
                              from_beginning=from_beginning, follow=follow)
    try:
        for event in source:
            if matches(event, execution, types):
                click.echo(event.model_dump_json() if as_json else render(event))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
