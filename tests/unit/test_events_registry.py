"""The registry emits model.registered / model.promoted (JSONL here; Kafka the same way)."""

from __future__ import annotations

import json

from mlflowdsl.runtime.events import process
from mlflowdsl.runtime.registry.registry import open_registry
from mlflowdsl.settings import Settings


def read_events(home) -> list[dict]:
    process._close_all()  # flush the process bus
    return [json.loads(line) for line in (home / "events.jsonl").read_text().splitlines()]


def test_register_and_promote_emit_model_events(tmp_path):
    settings = Settings(home=str(tmp_path))
    registry = open_registry(settings)
    try:
        mv = registry.register("churn", {"weights": [1, 2, 3]}, metrics={"accuracy": 0.91},
                               lineage={"execution_id": "ex123", "task_id": "deploy"})
        registry.promote(mv, "champion")
    finally:
        registry.close()
    events = read_events(tmp_path)
    assert [e["type"] for e in events] == ["model.registered", "model.promoted"]
    registered, promoted = events
    assert registered["execution_id"] == "ex123"
    assert registered["payload"]["name"] == "churn" and registered["payload"]["version"] == mv.version
    assert registered["payload"]["metrics"] == {"accuracy": 0.91}
    assert promoted["payload"]["alias"] == "champion" and promoted["payload"]["version"] == mv.version


def test_a_bad_events_setting_never_fails_a_registration(tmp_path):
    settings = Settings(home=str(tmp_path), events="kafka")  # kafka without a broker: a config error
    registry = open_registry(settings)
    try:
        mv = registry.register("churn", {"w": 1})
        assert mv.version == 1
    finally:
        registry.close()
    assert not (tmp_path / "events.jsonl").exists()
