"""A broker that dies mid-run (issue 14, point 10): closing the bus at the end of `mlw run`
returns at once instead of waiting out the producer's 5 s request timeout (the run exited
6.5 s late)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.events.base import Event  # noqa: E402
from mlflowdsl.runtime.events.kafka import KafkaBus  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.conftest import stop_group  # noqa: E402
from tests.integration.events_support import fresh_topic  # noqa: E402

pytestmark = pytest.mark.integration


def _emit(bus: KafkaBus, n: int) -> None:
    for i in range(n):
        bus.emit(Event.create("task.completed", execution_id="x1", workflow_id="w", payload={"task_id": str(i)}))


def test_close_after_the_broker_died_mid_run_does_not_wait_for_the_request_timeout(tmp_path, kafka_broker):
    settings = Settings(home=str(tmp_path / "home"), kafka_bootstrap=kafka_broker.bootstrap, kafka_topic=fresh_topic())
    bus = KafkaBus.from_settings(settings)
    try:
        _emit(bus, 5)
        assert bus.flush(20) and bus.delivered == 5  # connected and delivering
        stop_group(kafka_broker.proc, sig=signal.SIGKILL)  # dies mid-run, not shut down politely
        _emit(bus, 20)
        began = time.monotonic()
        bus.close()
        took = time.monotonic() - began
    finally:
        kafka_broker.start()
    print(f"close() {took:.2f}s after the broker died")
    assert took < 2.5, f"close() waited {took:.2f}s for a dead broker"
    assert bus.delivered + bus.dropped == bus.emitted == 25 and bus.dropped >= 1
