"""`mlw events tail --kafka` against the Tansu broker: stored events, live ones, filters, and a
clean error for an unreachable broker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.events.base import Event
from mlflowdsl.runtime.events.kafka import KafkaBus, client_config
from mlflowdsl.settings import Settings
from tests.conftest import free_port
from tests.integration.events_support import fresh_topic

pytestmark = pytest.mark.integration

MLW = str(Path(sys.executable).parent / "mlw")


def publish(bootstrap: str, topic: str, events: list[Event]) -> None:
    bus = KafkaBus(client_config(Settings(kafka_bootstrap=bootstrap)), topic=topic)
    for e in events:
        bus.emit(e)
    assert bus.flush(10)
    bus.close()


def mlw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([MLW, *args], capture_output=True, text=True, timeout=timeout)


def test_tail_reads_stored_events_with_filters(kafka_bootstrap):
    topic = fresh_topic()
    events = [Event.create("task.started", execution_id="e1", workflow_id="w", payload={"task_id": "a"}),
              Event.create("task.completed", execution_id="e1", workflow_id="w", payload={"task_id": "a"}),
              Event.create("workflow.completed", execution_id="e1", workflow_id="w", payload={"status": "succeeded"}),
              Event.create("task.started", execution_id="e2", workflow_id="w", payload={"task_id": "b"})]
    publish(kafka_bootstrap, topic, events)
    done = mlw("events", "tail", "--kafka", kafka_bootstrap, "--topic", topic, "--from", "beginning",
               "--no-follow", "--json", "--execution", "e1", "--type", "task.*")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["event_id"] for line in done.stdout.splitlines()] == [e.event_id for e in events[:2]]


def test_tail_follows_live_events_from_now_until_ctrl_c(kafka_bootstrap):
    topic = fresh_topic()
    old = Event.create("task.started", execution_id="e0", workflow_id="w", payload={"task_id": "old"})
    publish(kafka_bootstrap, topic, [old])
    proc = subprocess.Popen([MLW, "events", "tail", "--kafka", kafka_bootstrap, "--topic", topic, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4.0)  # started and positioned at the end
        new = Event.create("task.completed", execution_id="e1", workflow_id="w", payload={"task_id": "new"})
        publish(kafka_bootstrap, topic, [new])
        line = proc.stdout.readline()
        assert json.loads(line)["event_id"] == new.event_id  # not the old one: --from now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_tail_of_an_unreachable_broker_is_a_clear_error():
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = mlw("events", "tail", "--kafka", dead)
    assert done.returncode == 1
    assert f"cannot reach the Kafka broker at {dead}" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 15
