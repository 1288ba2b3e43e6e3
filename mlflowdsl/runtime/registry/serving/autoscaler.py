"""Replica autoscaling from the workers' load counters.

Every worker reports its cumulative busy seconds (time spent answering requests). Over a
window, ``utilization = busy seconds / (window x replicas)``: near 1 every replica is answering
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

import json
import logging
import os
from dataclasses import dataclass
from typing import Sequence

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
    """Reads the workers' stats files and turns them into utilization samples."""

    def __init__(self, stats_dir: str):
        self.stats_dir = stats_dir
        self._last: dict[int, float] = {}

    def read(self, pids: set[int]) -> dict[int, dict]:
        out = {}
        try:
            names = os.listdir(self.stats_dir)
        except FileNotFoundError:
            return out
        for name in names:
            if not name.endswith(".json"):
                continue
            pid = int(name.split(".")[0]) if name.split(".")[0].isdigit() else -1
            path = os.path.join(self.stats_dir, name)
            if pid not in pids:  # a dead worker's file: its load is history
                try:
                    os.unlink(path)
                except OSError as exc:
                    log.debug("cannot remove the stats file of a gone worker %s: %s", path, exc)
                continue
            try:
                with open(path) as fh:
                    out[pid] = json.load(fh)
            except (OSError, ValueError) as exc:  # removed meanwhile: the worker is gone
                log.debug("skipping the stats file %s: %s", path, exc)
                continue
        return out

    def sample(self, pids: set[int], interval_s: float) -> float:
        """Utilization since the previous sample (busy seconds of live workers / wall seconds)."""
        stats = self.read(pids)
        busy = 0.0
        current = {}
        for pid, data in stats.items():
            total = float(data.get("busy_s", 0.0))
            current[pid] = total
            busy += max(0.0, total - self._last.get(pid, total))
        self._last = current
        return busy / (interval_s * max(1, len(pids)))

    def totals(self, pids: set[int]) -> dict[str, float]:
        stats = self.read(pids)
        return {"requests": sum(d.get("requests", 0) for d in stats.values()),
                "errors": sum(d.get("errors", 0) for d in stats.values())}
