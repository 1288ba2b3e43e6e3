"""Helpers for the registry and serving integration tests: small fitted models, a free port,
HTTP calls with the standard library."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from stdlib_tasks.values import TrainedModel


def fitted(accuracy: float, name: str = "m", flip: bool = False) -> TrainedModel:
    """A tiny logistic regression on one column ``x`` (``flip`` reverses its labels, so two
    versions predict differently)."""
    from sklearn.linear_model import LogisticRegression

    y = [1, 1, 0, 0] if flip else [0, 0, 1, 1]
    est = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], y)
    return TrainedModel(estimator=est, algorithm="logistic_regression", problem="classification",
                        feature_names=("x",), target="y", metrics={"accuracy": accuracy, "log_loss": 1 - accuracy},
                        raw_columns=("x",), name=name)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: Any = None, *, raw: bytes | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; 4xx/5xx are returned, not raised."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class SlowModel:
    """A model that takes ``delay`` seconds per request (sleeping, so load tests do not burn the
    shared CPU): a replica serving it is busy all the time under a few concurrent clients."""

    raw_columns = ("x",)

    def __init__(self, delay: float = 0.05):
        self.delay = delay

    def predict(self, rows):
        import time

        time.sleep(self.delay)
        return [0 for _ in rows]
