"""Event model, JSON Schemas, backend selection and the fan-out bus (no broker needed)."""

from __future__ import annotations

import json

import pytest

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.events.base import EVENT_TYPES, Event, NullBus
from mlflowdsl.runtime.events.factory import event_backends, open_bus
from mlflowdsl.runtime.events.jsonl import JsonlBus
from mlflowdsl.runtime.events.multi import MultiBus
from mlflowdsl.runtime.events.schema import PAYLOADS, event_schemas
from mlflowdsl.settings import Settings, load_settings

REQUIRED_TYPES = {
    "workflow.submitted", "workflow.started", "workflow.completed", "workflow.failed", "workflow.cancelled",
    "task.started", "task.completed", "task.failed", "task.retried", "task.cached", "task.skipped",
    "tuning.trial_completed", "leader.elected", "instance.joined", "instance.left", "shards.changed",
    "model.registered", "model.promoted", "model.deployed", "execution.cancel_requested",
}


def test_every_required_type_is_an_event_type_with_a_payload_schema():
    assert REQUIRED_TYPES <= set(EVENT_TYPES)
    assert set(PAYLOADS) == set(EVENT_TYPES)
    schemas = event_schemas()
    assert set(schemas) == set(EVENT_TYPES)
    for type_, schema in schemas.items():
        assert schema["properties"]["type"] == {"const": type_}
        assert schema["properties"]["schema_version"] == {"const": 1}
        json.dumps(schema)  # serializable as published


def test_payload_models_check_the_fields_the_schema_requires():
    from pydantic import ValidationError

    schema = event_schemas()["shards.changed"]
    assert set(schema["properties"]["payload"]["required"]) == {"epoch", "assignments"}
    PAYLOADS["shards.changed"].model_validate({"epoch": 3, "assignments": {"default": "i1"}, "later_field": 1})
    with pytest.raises(ValidationError):
        PAYLOADS["shards.changed"].model_validate({"epoch": "three"})


def test_unknown_event_type_is_refused():
    with pytest.raises(ValueError):
        Event.create("task.exploded", execution_id="x")


def test_backend_selection():
    assert event_backends(Settings()) == ("jsonl",)
    assert event_backends(Settings(kafka_bootstrap="k:9092")) == ("jsonl", "kafka")
    assert event_backends(Settings(kafka_bootstrap="k:9092", events="kafka")) == ("kafka",)
    assert event_backends(Settings(events="none")) == ()
    with pytest.raises(ConfigError, match="kafka_bootstrap"):
        event_backends(Settings(events="jsonl,kafka"))
    with pytest.raises(ConfigError, match="unknown event backend 'kafak'"):
        event_backends(Settings(events="kafak"))
    assert isinstance(open_bus(Settings(events="none")), NullBus)


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("MLW_EVENTS", "jsonl")
    monkeypatch.setenv("MLW_EVENTS_QUEUE_CAPACITY", "50")
    monkeypatch.setenv("MLW_KAFKA_SASL_MECHANISM", "PLAIN")
    s = load_settings()
    assert (s.events, s.events_queue_capacity, s.kafka_sasl_mechanism) == ("jsonl", 50, "PLAIN")


def test_multibus_fans_out_to_every_backend(tmp_path):
    a, b = JsonlBus(tmp_path / "a.jsonl"), JsonlBus(tmp_path / "b.jsonl")
    bus = MultiBus([a, b])
    for i in range(5):
        bus.emit(Event.create("task.started", execution_id="x", payload={"task_id": str(i)}))
    bus.close()
    for path in (tmp_path / "a.jsonl", tmp_path / "b.jsonl"):
        ids = [json.loads(line)["payload"]["task_id"] for line in path.read_text().splitlines()]
        assert ids == ["0", "1", "2", "3", "4"]
    assert bus.emitted == 5 and bus.dropped == 0
