import json
import time

from mlflowdsl.runtime.events import EVENT_TYPES, Event
from mlflowdsl.runtime.events.jsonl import JsonlBus


def _event(i=0, type="task.completed"):
    return Event.create(type, execution_id="x1", workflow_id="wf", payload={"task_id": f"t{i}"})


def test_events_are_appended_as_json_lines_in_order(tmp_path):
    bus = JsonlBus(tmp_path / "home" / "events.jsonl")
    for i in range(100):
        bus.emit(_event(i))
    bus.close()
    lines = (tmp_path / "home" / "events.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["payload"]["task_id"] for r in records] == [f"t{i}" for i in range(100)]
    assert len({r["event_id"] for r in records}) == 100
    assert set(records[0]) == {"event_id", "schema_version", "type", "time", "execution_id",
                               "workflow_id", "instance_id", "payload"}
    assert Event.model_validate(records[0]).payload == {"task_id": "t0"}
    assert bus.emitted == bus.written == 100 and bus.dropped == 0


def test_a_second_bus_appends_instead_of_truncating(tmp_path):
    path = tmp_path / "events.jsonl"
    for _ in range(2):
        bus = JsonlBus(path)
        bus.emit(_event())
        bus.close()
    assert len(path.read_text().splitlines()) == 2


def test_unwritable_path_never_raises_and_counts_drops(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bus = JsonlBus(blocker / "events.jsonl")
    for i in range(5):
        bus.emit(_event(i))
    bus.close()
    assert bus.emitted == 5 and bus.dropped == 5 and bus.written == 0


def test_emit_does_not_block_and_overflow_drops_oldest(tmp_path):
    bus = JsonlBus(tmp_path / "events.jsonl", capacity=10)
    real_write = bus._write
    bus._write = lambda batch: (time.sleep(0.2), real_write(batch))  # a very slow disk
    started = time.perf_counter()
    for i in range(1000):
        bus.emit(_event(i))
    elapsed = time.perf_counter() - started
    bus.close()
    assert elapsed < 0.5  # 1,000 emits while the writer sleeps: no waiting on the disk
    assert bus.dropped > 0
    assert bus.written + bus.dropped == bus.emitted == 1000
    ids = [json.loads(line)["payload"]["task_id"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert ids[-1] == "t999"  # the newest survive


def test_every_type_is_known():
    assert "workflow.cancelled" in EVENT_TYPES and "task.retried" in EVENT_TYPES
    # 11 run types + tuning, leader, instances, shards, cancel requests, models (issue 5)
    assert len(EVENT_TYPES) == 20 and len(set(EVENT_TYPES)) == 20
