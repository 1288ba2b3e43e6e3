"""Replica autoscaling from the workers' load counters.

Every worker counts its cumulative busy seconds (time spent in ``predict``) in its Prometheus
metrics (:mod:`.metrics`, multiprocess files the supervisor reads: no thread in the workers).
Over a window, ``utilization = busy seconds / (window x replicas)``: near 1 every replica is answering
all the time and requests queue up; near 0 the replicas are idle. The decision is a pure
function of the recent utilization samples, so it is unit-tested without processes:

- scale **up** by one when every sample of the last ``up_samples`` is above ``high``;
- scale **down** by one when every sample of the last ``down_samples`` is below ``low``;
- never outside ``[min_replicas, max_replicas]``; after a change the history restarts, so the
  next change waits for a full window of the new replica count.

>>> policy = ScalingPolicy(min_replicas=1, max_replicas=3, up_samples=3, down_samples=5)
>>> policy.decide(1, [0.9, 0.95, 0.99])
2
>>> policy.decide(2, [0.9, 0.1, 0.99])
2
>>> policy.decide(3, [0.9] * 5)
3
>>> policy.decide(2, [0.05] * 5)
1
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from mlflowdsl.runtime.registry.serving.metrics import read_totals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int = 1
    max_replicas: int = 1
    high: float = 0.7
    low: float = 0.2
    up_samples: int = 3  # samples of `interval_s` each: ~3 s of sustained load before scaling up
    down_samples: int = 10  # ~10 s idle before scaling down
    interval_s: float = 1.0

    def decide(self, replicas: int, samples: Sequence[float]) -> int:
        """The wanted replica count given utilization ``samples`` (oldest first)."""
        if replicas < self.min_replicas:
            return self.min_replicas
        if replicas > self.max_replicas:
            return self.max_replicas
        if len(samples) >= self.up_samples and all(s > self.high for s in samples[-self.up_samples:]):
            return min(self.max_replicas, replicas + 1)
        if len(samples) >= self.down_samples and all(s < self.low for s in samples[-self.down_samples:]):
            return max(self.min_replicas, replicas - 1)
        return replicas


class LoadMeter:
    """Turns the replicas' busy-seconds counter into utilization samples."""

    def __init__(self, metrics_dir: str):
        self.metrics_dir = metrics_dir
        self._last_busy: float | None = None

    def totals(self) -> dict[str, float]:
        """``requests``, ``errors``, ``rows``, ``busy_s`` of every replica so far."""
        try:
            return read_totals(self.metrics_dir)
        except (OSError, ValueError) as exc:  # a file being created or removed meanwhile
            log.debug("cannot read the metrics in %s: %s", self.metrics_dir, exc)
            return {}

    def sample(self, replicas: int, interval_s: float) -> float:
        """Utilization since the previous sample (busy seconds of all replicas / wall seconds)."""
        busy = self.totals().get("busy_s")
        if busy is None:
            return 0.0
        last, self._last_busy = self._last_busy, busy
        if last is None:
            return 0.0
        return max(0.0, busy - last) / (interval_s * max(1, replicas))
