"""Prometheus metrics of the serving replicas (prometheus-client), and their reading by the
autoscaler.

Under gunicorn every worker is its own process, so the metrics use prometheus-client's
multiprocess mode: the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` to the deployment's
``<run dir>/metrics`` (emptied when the deployment starts), each worker's counters live in
memory-mapped files there (an increment is a write to mapped memory: no thread, no lock
between processes), and ``GET /metrics`` of any replica merges the files of all of them, the
counters of replaced workers included. A process without that variable (an app made
in-process, as the tests and the benchmark do) keeps its metrics in memory.

Metrics (``model`` is ``name/version``; with a canary both versions are reported):

- ``mlw_serve_requests_total{model,route,code}``, ``mlw_serve_errors_total{model,route,code}``
- ``mlw_serve_request_duration_seconds{model,route}`` (histogram)
- ``mlw_serve_batch_rows{model}`` (histogram: rows per ``predict`` call)
- ``mlw_serve_rows_scored_total{model}``, ``mlw_serve_busy_seconds_total{model}`` (seconds
  spent in ``predict``: the autoscaler's utilization)
- ``mlw_serve_model_info{model,name,version,role}`` (1 for each version served; role is
  ``primary`` or ``canary``)
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 100_000)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # private: two apps in one process do not collide
        r = self.registry
        self.requests = Counter("mlw_serve_requests", "Requests answered", ["model", "route", "code"], registry=r)
        self.errors = Counter("mlw_serve_errors", "Requests answered with a 4xx or 5xx", ["model", "route", "code"],
                              registry=r)
        self.latency = Histogram("mlw_serve_request_duration_seconds", "Time to answer a request",
                                 ["model", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("mlw_serve_batch_rows", "Rows per predict call", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.rows = Counter("mlw_serve_rows_scored", "Rows scored", ["model"], registry=r)
        self.busy = Counter("mlw_serve_busy_seconds", "Seconds spent in predict", ["model"], registry=r)
        self.info = Gauge("mlw_serve_model_info", "The model versions served (1 each)",
                          ["model", "name", "version", "role"], multiprocess_mode="livemax", registry=r)
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def served(self, model_id: str, role: str) -> None:
        name, _, version = model_id.rpartition("/")
        self.info.labels(model_id, name or model_id, version, role).set(1)

    def answered(self, model_id: str, route: str, code: int, seconds: float) -> None:
        key = (model_id, route, code)
        children = self._children.get(key)
        if children is None:  # label lookups once per (model, route, code), not per request
            children = (self.requests.labels(model_id, route, str(code)), self.latency.labels(model_id, route),
                        self.errors.labels(model_id, route, str(code)) if code >= 400 else None)
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

    def scored(self, model_id: str, rows: int, seconds: float) -> None:
        self.batch_rows.labels(model_id).observe(rows)
        self.rows.labels(model_id).inc(rows)
        self.busy.labels(model_id).inc(seconds)

    def exposition(self) -> bytes:
        """The text format of all replicas' metrics (or of this process's, outside gunicorn)."""
        directory = os.environ.get(ENV)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)


def read_totals(directory: str) -> dict[str, float]:
    """The replicas' counters summed over every worker that wrote to ``directory``:
    ``requests``, ``errors``, ``rows``, ``busy_s`` (read from the files, in any process)."""
    totals = {"requests": 0.0, "errors": 0.0, "rows": 0.0, "busy_s": 0.0}
    names = {"mlw_serve_requests_total": "requests", "mlw_serve_errors_total": "errors",
             "mlw_serve_rows_scored_total": "rows", "mlw_serve_busy_seconds_total": "busy_s"}
    if not os.path.isdir(directory):
        return totals
    for metric in MultiProcessCollector(None, path=directory).collect():
        for sample in metric.samples:
            key = names.get(sample.name)
            if key is not None:
                totals[key] += sample.value
    return totals
