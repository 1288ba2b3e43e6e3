"""``mlw cluster status``: the coordination snapshot plus the submission queues."""

from __future__ import annotations

from typing import Any

from mlflowdsl.runtime.cluster_mode.submission import queue_stats
from mlflowdsl.runtime.coordination import coordination_config, coordination_status
from mlflowdsl.runtime.coordination.gateway import RedisGateway


def cluster_status(gateway: RedisGateway, settings: Any) -> dict[str, Any]:
    """A JSON-ready dict: instances, leader and epoch, shard map, breaker state (from
    ``coordination_status``), and per-domain queue depth, pending entries and dead letters."""
    beat = coordination_config(settings).heartbeat_s
    status = coordination_status(gateway, beat_s=beat)
    status.update(queue_stats(gateway))
    return status
