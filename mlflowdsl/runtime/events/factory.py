"""Which event backends the settings select, and the bus that writes to them.

>>> from mlflowdsl.runtime.events.base import NullBus
>>> isinstance(open_bus(Settings(events="none")), NullBus)
True
"""

from __future__ import annotations

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.events.base import EventBus, NullBus
from mlflowdsl.runtime.events.jsonl import JsonlBus
from mlflowdsl.runtime.events.kafka import KafkaBus
from mlflowdsl.runtime.events.multi import MultiBus
from mlflowdsl.settings import Settings

BACKENDS = ("jsonl", "kafka")


def event_backends(settings: Settings) -> tuple[str, ...]:
    """The backends the settings select: ``events`` ("jsonl", "kafka", "jsonl,kafka", "none");
    unset means JSONL, plus Kafka when ``kafka_bootstrap`` (``MLW_KAFKA_BOOTSTRAP``) is set.

    >>> event_backends(Settings()), event_backends(Settings(kafka_bootstrap="k:9092"))
    (('jsonl',), ('jsonl', 'kafka'))
    """
    raw = getattr(settings, "events", None)
    if raw is None or str(raw).strip() == "":
        return ("jsonl", "kafka") if settings.kafka_bootstrap else ("jsonl",)
    names = tuple(dict.fromkeys(n.strip().lower() for n in str(raw).replace("+", ",").split(",") if n.strip()))
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown event backend {unknown[0]!r} in events = {raw!r}", subject="events (MLW_EVENTS)",
                          hint="use jsonl, kafka, jsonl,kafka or none")
    if "kafka" in names and not settings.kafka_bootstrap:
        raise ConfigError("events include kafka but no broker is set", subject="kafka_bootstrap (MLW_KAFKA_BOOTSTRAP)",
                          hint="set kafka_bootstrap = \"host:9092\" or drop kafka from events")
    return names


def open_bus(settings: Settings) -> EventBus:
    """The bus the settings select (see :func:`event_backends`); several backends fan out."""
    buses: list[EventBus] = []
    for name in event_backends(settings):
        if name == "jsonl":
            buses.append(JsonlBus(settings.home_path / "events.jsonl", capacity=settings.events_queue_capacity))
        else:
            buses.append(KafkaBus.from_settings(settings))
    if not buses:
        return NullBus()
    if len(buses) == 1:
        return buses[0]
    return MultiBus(buses)
