"""The Kafka publisher's child process (kafka_child.py) against the Tansu broker: killed, hung,
unable to start, orphaned, parked and adopted; close() stays bounded and no process is left
behind (a cleanly closed bus parks its child for the next bus, until the keep-alive ends)."""

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
from mlflowdsl.runtime.events import kafka_pool
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


def parked_pids() -> set[int]:
    with kafka_pool._pool_lock:
        return {child.proc.pid for parked in kafka_pool._pool.values() for child in parked}


@pytest.fixture(autouse=True)
def no_parked_publishers():
    """Each test starts and ends without parked publisher processes (other tests' included)."""
    kafka_module.stop_idle_publishers()
    yield
    kafka_module.stop_idle_publishers()


def connected_bus(bootstrap: str, topic: str | None = None, **options) -> KafkaBus:
    bus = KafkaBus(client_config(Settings(kafka_bootstrap=bootstrap)), topic=topic or fresh_topic(), **options)
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
    assert parked_pids() == {second} and {p.pid for p in publisher_children()} == {second}  # kept for the next bus
    kafka_module.stop_idle_publishers()
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
    assert gone(pid)
    # The restarted child may have delivered everything before close(): then it is parked.
    assert {p.pid for p in publisher_children()} == parked_pids() and len(parked_pids()) <= 1
    kafka_module.stop_idle_publishers()
    assert not publisher_children()


@pytest.mark.parametrize("broker", ["up", "down"])
def test_no_publisher_process_is_left_after_close(monkeypatch, kafka_bootstrap, broker):
    monkeypatch.setattr(kafka_pool, "KEEP_ALIVE_S", 1.0)
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
    if broker == "up":  # parked for the next bus, until the keep-alive ends
        assert parked_pids() == {pid} and not gone(pid)
        assert wait_until(lambda: gone(pid), 10), "a parked publisher outlived its keep-alive"
    assert gone(pid) and not publisher_children() and not parked_pids()
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


def test_a_cleanly_closed_bus_parks_its_publisher_and_the_next_bus_adopts_it(kafka_bootstrap):
    topic = fresh_topic()
    first = connected_bus(kafka_bootstrap, topic)
    pid = first.publisher_pid
    first_events = [event(i, "first") for i in range(300)]
    for e in first_events:
        first.emit(e)
    first.close()
    assert first.delivered == first.emitted == 301 and first.dropped == 0
    assert first.publisher_pid is None and parked_pids() == {pid} and not gone(pid)

    second = KafkaBus(client_config(Settings(kafka_bootstrap=kafka_bootstrap)), topic=topic)
    assert wait_until(lambda: second.publisher_pid is not None, 5)
    assert second.publisher_pid == pid and not parked_pids()  # adopted, not started
    assert second.metrics() == {"events_emitted_total": 0, "events_delivered_total": 0, "events_dropped_total": 0}
    assert not second.broker_down
    second_events = [event(i, "second") for i in range(500)]
    for e in second_events:
        second.emit(e)
    assert second.flush(15), second.metrics()
    # Only its own events, counted once; the adopted child was already connected.
    assert second.delivered == second.emitted == 500 and second.dropped == 0 and second.pending == 0
    assert second.connects == 0 and second.restarts == 0
    assert first.metrics() == {"events_emitted_total": 301, "events_delivered_total": 301, "events_dropped_total": 0}
    second.close()
    assert second.delivered == second.emitted == 500 and parked_pids() == {pid}

    seen = [e.event_id for e in read_topic(kafka_bootstrap, topic, expect=801)]
    assert set(seen) >= {e.event_id for e in first_events} | {e.event_id for e in second_events}
    per_partition_order = [i for i in dict.fromkeys(seen) if i in {e.event_id for e in second_events}]
    assert per_partition_order == [e.event_id for e in second_events]  # one execution id: in emit order

    # A bus with another topic (another key) does not take it.
    other = connected_bus(kafka_bootstrap)
    other_pid = other.publisher_pid
    assert other_pid != pid and parked_pids() == {pid}
    other.close()
    assert parked_pids() == {pid, other_pid}  # one per key


def test_concurrent_buses_each_have_their_own_publisher_and_one_is_parked(kafka_bootstrap):
    topic = fresh_topic()
    a = connected_bus(kafka_bootstrap, topic)
    b = connected_bus(kafka_bootstrap, topic)  # same key while a is open: a process of its own
    pid_a, pid_b = a.publisher_pid, b.publisher_pid
    assert pid_a != pid_b
    a.close()
    b.close()
    assert parked_pids() == {pid_a}  # at most PARKED_PER_KEY (1) per key: b's was stopped
    assert wait_until(lambda: gone(pid_b), 5)
    assert {p.pid for p in publisher_children()} == {pid_a}


def test_a_parked_publisher_exits_after_the_keep_alive(monkeypatch, kafka_bootstrap):
    monkeypatch.setattr(kafka_pool, "KEEP_ALIVE_S", 1.5)
    bus = connected_bus(kafka_bootstrap)
    pid = bus.publisher_pid
    bus.close()
    parked_at = time.monotonic()
    assert parked_pids() == {pid}
    time.sleep(0.5)
    assert not gone(pid)  # still there for the next bus
    assert wait_until(lambda: gone(pid), 10)
    assert time.monotonic() - parked_at >= 1.4
    assert not parked_pids() and not publisher_children()


def test_a_bus_closed_with_the_broker_down_does_not_park_its_publisher(kafka_broker, kafka_bootstrap):
    bus = connected_bus(kafka_bootstrap)
    pid = bus.publisher_pid
    kafka_broker.stop()
    try:
        for i in range(50):
            bus.emit(event(i))
        assert wait_until(lambda: bus.broker_down, 20), bus.metrics()
        bus.close()  # unflushed: what is pending is dropped and the child stopped
    finally:
        kafka_broker.start()
    assert bus.delivered + bus.dropped == bus.emitted == 51 and bus.dropped >= 50
    assert gone(pid) and not parked_pids() and not publisher_children()


def test_a_publisher_killed_while_parked_is_not_adopted(kafka_bootstrap):
    topic = fresh_topic()
    bus = connected_bus(kafka_bootstrap, topic)
    pid = bus.publisher_pid
    bus.close()
    assert parked_pids() == {pid}
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: gone(pid), 5)
    assert wait_until(lambda: not parked_pids(), 5)  # its reader saw the end of its reports: forgotten
    nxt = KafkaBus(client_config(Settings(kafka_bootstrap=kafka_bootstrap)), topic=topic)
    events = [event(i) for i in range(100)]
    for e in events:
        nxt.emit(e)
    assert nxt.flush(15), nxt.metrics()
    assert nxt.publisher_pid not in (None, pid) and nxt.restarts == 0  # a fresh one, not a restart
    assert nxt.delivered == nxt.emitted == 100 and nxt.dropped == 0
    assert not parked_pids()
    seen = {e.event_id for e in read_topic(kafka_bootstrap, topic, expect=101)}
    assert {e.event_id for e in events} <= seen
    fresh = nxt.publisher_pid
    nxt.close()
    assert parked_pids() == {fresh}
    kafka_module.stop_idle_publishers()
    assert gone(fresh) and not publisher_children()
