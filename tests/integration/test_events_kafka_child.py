"""The Kafka publisher's child process (kafka_child.py) against the Tansu broker: killed, hung,
unable to start, orphaned; close() stays bounded and no process is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.events import kafka as kafka_module
from mlflowdsl.runtime.events.base import Event
from mlflowdsl.runtime.events.kafka import KafkaBus, client_config
from mlflowdsl.settings import Settings
from tests.conftest import free_port
from tests.integration.events_support import fresh_topic, read_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def event(i: int, note: str = "") -> Event:
    return Event.create("task.started", execution_id="x1", workflow_id="w", payload={"task_id": str(i), "note": note})


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped by init yet
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def publisher_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("kafka_child" in part for part in child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def connected_bus(bootstrap: str, **options) -> KafkaBus:
    bus = KafkaBus(client_config(Settings(kafka_bootstrap=bootstrap)), topic=fresh_topic(), **options)
    bus.emit(event(-1))
    assert bus.flush(15), bus.metrics()
    assert bus.publisher_pid is not None
    return bus


def test_a_killed_publisher_process_is_restarted_and_later_events_are_delivered(kafka_bootstrap):
    bus = connected_bus(kafka_bootstrap)
    first = bus.publisher_pid
    sent: list[Event] = []
    stop = threading.Event()

    def flow():  # a workflow emitting ~500 events a second
        i = 0
        while not stop.is_set():
            sent.append(event(i))
            bus.emit(sent[-1])
            i += 1
            time.sleep(0.002)

    flowing = threading.Thread(target=flow)
    flowing.start()
    try:
        time.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: bus.publisher_pid not in (None, first), 15), "the publisher was not restarted"
        restarted_at = len(sent)
        time.sleep(1.0)
    finally:
        stop.set()
        flowing.join()
    assert bus.flush(30), bus.metrics()
    assert bus.restarts == 1 and gone(first)
    assert bus.delivered + bus.dropped == bus.emitted == len(sent) + 1
    assert bus.dropped <= bus.window  # at most what the killed child held
    after = [e.event_id for e in sent[restarted_at:]]
    seen = list(dict.fromkeys(e.event_id for e in read_topic(kafka_bootstrap, bus.topic)))
    assert len(after) > 100 and [i for i in seen if i in set(after)] == after  # all of them, in emit order
    second = bus.publisher_pid
    bus.close()
    assert gone(second) and not publisher_children()


def test_close_with_a_hung_publisher_process_returns_within_its_bound(kafka_bootstrap):
    bus = connected_bus(kafka_bootstrap, close_timeout_s=1.0)
    pid = bus.publisher_pid
    os.kill(pid, signal.SIGSTOP)  # hung: reads nothing, reports nothing
    try:
        for i in range(3_000):  # more than a pipe holds: the sender blocks writing to it
            bus.emit(event(i, note="x" * 300))
        time.sleep(0.3)
        started = time.monotonic()
        bus.close()
        took = time.monotonic() - started
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
    assert took < bus.close_timeout_s + 3.0, took
    assert gone(pid) and not publisher_children()
    assert bus.delivered + bus.dropped == bus.emitted == 3_001 and bus.dropped >= 3_000
    assert bus.pending == 0


def test_close_right_after_the_publisher_process_died_is_prompt_and_counts_everything(kafka_bootstrap):
    bus = connected_bus(kafka_bootstrap)
    pid = bus.publisher_pid
    os.kill(pid, signal.SIGKILL)
    for i in range(100):
        bus.emit(event(i))
    started = time.monotonic()
    bus.close()
    assert time.monotonic() - started < bus.close_timeout_s + 3.0
    assert bus.delivered + bus.dropped == bus.emitted == 101
    assert not publisher_children()


@pytest.mark.parametrize("broker", ["up", "down"])
def test_no_publisher_process_is_left_after_close(kafka_bootstrap, broker):
    bootstrap = kafka_bootstrap if broker == "up" else f"127.0.0.1:{free_port()}"
    bus = KafkaBus(client_config(Settings(kafka_bootstrap=bootstrap)), topic=fresh_topic())
    for i in range(50):
        bus.emit(event(i))
    assert wait_until(lambda: bus.publisher_pid is not None, 10)
    pid = bus.publisher_pid
    if broker == "up":
        assert bus.flush(15)
    else:
        assert wait_until(lambda: bus.broker_down, 15)
    started = time.monotonic()
    bus.close()
    took = time.monotonic() - started
    assert gone(pid) and not publisher_children()
    assert bus.publisher_pid is None and bus.pending == 0
    assert bus.delivered + bus.dropped == bus.emitted == 50
    if broker == "down":
        assert bus.dropped == 50 and took < 1.5, took  # nothing waited for on a dead broker


def test_the_publisher_process_exits_with_its_parent(kafka_bootstrap):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from mlflowdsl.runtime.events.kafka import KafkaBus
        bus = KafkaBus({{"bootstrap_servers": [{kafka_bootstrap!r}], "api_version": (2, 6)}}, topic={fresh_topic()!r})
        while bus.publisher_pid is None:
            time.sleep(0.05)
        print(bus.publisher_pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert not gone(pid)
    finally:
        parent.kill()  # no close(), no atexit: the child sees EOF on its stdin
        parent.wait()
    assert wait_until(lambda: gone(pid), 10), "the publisher process outlived its parent"


def test_a_publisher_process_that_cannot_start_makes_the_bus_drop_and_count(monkeypatch, kafka_bootstrap):
    monkeypatch.setattr(kafka_module, "CHILD_BACKOFF_S", (0.05, 0.2))

    class Broken(KafkaBus):
        python = "/bin/false"  # starts and exits at once, every time

    bus = Broken(client_config(Settings(kafka_bootstrap=kafka_bootstrap)), topic=fresh_topic())
    for i in range(20):
        bus.emit(event(i))
    assert bus.flush(15), bus.metrics()  # everything accounted for: lost with a child, or dropped
    assert wait_until(lambda: bus.broker_down, 15)  # it gave up
    assert bus.restarts == kafka_module.MAX_CHILD_FAILURES - 1 and bus.publisher_pid is None
    bus.emit(event(20))
    assert bus.dropped == bus.emitted == 21 and bus.delivered == 0
    started = time.monotonic()
    bus.close()
    assert time.monotonic() - started < 1.0
    assert bus.dropped == bus.emitted == 21 and not publisher_children()
