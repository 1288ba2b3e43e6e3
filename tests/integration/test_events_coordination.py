"""Coordination events between orchestrator instances (separate `mlw orchestrator start`
processes) over the Tansu broker: `mlw cancel` reaches the instance that runs the execution
through an event, well before that instance would poll the Redis flag."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.cluster_support import Cluster, chain_workflow
from tests.integration.events_support import fresh_topic, read_topic
from tests.integration.tasks_for_tests import runs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A slow tick (heartbeat 6 s: the Redis cancel flag is polled every 3 s) so that a cancel
# that lands fast can only have come through the event.
SLOW_POLL = {"MLW_HEARTBEAT_S": "6"}


@pytest.fixture
def cluster(tmp_path, redis_url, dask_cluster, kafka_bootstrap):
    c = Cluster(tmp_path, redis_url, dask_cluster.address)
    c.env.update(SLOW_POLL, MLW_KAFKA_BOOTSTRAP=kafka_bootstrap, MLW_KAFKA_TOPIC=fresh_topic())
    yield c
    c.close()


def test_mlw_cancel_reaches_the_running_instance_through_an_event(cluster, tmp_path, kafka_bootstrap):
    logs = tmp_path / "logs"
    wf = tmp_path / "wf.mlw"
    wf.write_text(chain_workflow(12, logs=logs, seconds=1.0))
    cluster.start("a")
    cluster.start("b")
    execution_id = cluster.submit(wf)
    deadline = time.monotonic() + 90
    while not runs(str(logs), "t01") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runs(str(logs), "t01"), "the execution did not start"

    started = time.monotonic()
    done = cluster.mlw("cancel", execution_id)
    returned = time.monotonic()
    assert done.returncode == 0 and "cancel" in done.stdout, done.stdout + done.stderr
    final = cluster.wait_status(execution_id, ("cancelled", "succeeded", "failed"), timeout=30)
    stopped = time.monotonic()
    print(f"cancel: command took {returned - started:.2f}s; execution cancelled "
          f"{stopped - returned:.2f}s after it returned ({stopped - started:.2f}s in all)")
    assert final["status"] == "cancelled"
    assert final["tasks"]["t11"]["status"] == "skipped" and not runs(str(logs), "t11")
    # The event reached the owner, and only the owner acted on it. `mlw cancel` sets the Redis flag
    # before it publishes (the flag is the source of truth), so the owner's poll of the flag may see
    # it first; the owner then logs the event's arrival "after the flag's poll".
    owner_logs = [cluster.log(n).read_text() for n in ("a", "b")]
    assert sum(f"execution {execution_id}: cancel requested (event from" in text for text in owner_logs) == 1
    assert stopped - started < 5.0  # "within a few seconds"; the log line above proves the event path

    # The stream holds the cluster's own story too, each event once.
    events = read_topic(kafka_bootstrap, cluster.env["MLW_KAFKA_TOPIC"])
    assert max(Counter(e.event_id for e in events).values()) == 1
    kinds = Counter(e.type for e in events)
    assert kinds["instance.joined"] == 2 and kinds["leader.elected"] >= 1 and kinds["shards.changed"] >= 1
    assert kinds["execution.cancel_requested"] == 1 and kinds["workflow.cancelled"] == 1
    cancel = next(e for e in events if e.type == "execution.cancel_requested")
    assert cancel.execution_id == execution_id and cancel.payload["reason"]
