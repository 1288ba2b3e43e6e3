"""The HTTP app every replica runs (a Starlette ASGI app under a uvicorn worker of gunicorn).

- ``POST /predict`` with ``{"rows": [{col: value, ...}, ...]}`` (or just the list of rows;
  a row may also be a list of values in the model's column order) -> ``{"predictions": [...]}``.
- ``GET /health`` -> ``{"status": "ok", "model": "fraud/3", "pid": ...}``.

Bad bodies get a 4xx with ``{"error": "..."}`` saying what is wrong; the replica keeps serving.
The model is loaded once per worker process from ``MLW_SERVE_MODEL`` and checked against
``MLW_SERVE_SHA256``. Each worker writes its load counters to ``MLW_SERVE_STATS_DIR/<pid>.json``
for the autoscaler (a file per process: no shared memory, no locking between replicas).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlflowdsl.runtime.registry.artifacts import load_artifact
from mlflowdsl.runtime.registry.serving.bodies import BadRequest, check_rows, decode, read_limited, rows_of_predict



def parse_rows(body: bytes, columns: list[str] | tuple[str, ...] = ()) -> list[Any]:
    """The rows of a ``POST /predict`` body, or :class:`BadRequest` saying what is wrong.

    >>> parse_rows(b'{"rows": [{"x": 1}]}')
    [{'x': 1}]
    >>> parse_rows(b'[[1, 2]]')
    [[1, 2]]
    >>> parse_rows(b'{"row": []}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlflowdsl...BadRequest: the body must be {"rows": [...]} or a JSON list of rows; got an object with keys: row
    """
    rows, _probabilities = rows_of_predict(decode(body))
    return check_rows(rows, columns)


def to_json_value(values: Any) -> list[Any]:
    """Predictions as plain JSON values (numpy scalars and arrays converted)."""
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else [getattr(v, "item", lambda v=v: v)() for v in values]


class Stats:
    """Counters of this worker process, dumped to a file a few times per second."""

    def __init__(self, directory: str | None, interval: float = 0.25):
        self.directory = directory
        self.interval = interval
        self.requests = 0
        self.errors = 0
        self.busy_s = 0.0
        self.in_flight = 0
        self._lock = threading.Lock()
        if directory:
            os.makedirs(directory, exist_ok=True)
            threading.Thread(target=self._dump_loop, name="mlw-serve-stats", daemon=True).start()

    def record(self, seconds: float, *, error: bool) -> None:
        with self._lock:
            self.requests += 1
            self.errors += int(error)
            self.busy_s += seconds

    def _dump_loop(self) -> None:
        path = os.path.join(self.directory or ".", f"{os.getpid()}.json")
        last = None
        while True:
            with self._lock:
                snapshot = {"pid": os.getpid(), "requests": self.requests, "errors": self.errors,
                            "busy_s": self.busy_s, "in_flight": self.in_flight}
            if snapshot != last:
                tmp = f"{path}.tmp"
                with open(tmp, "w") as fh:
                    json.dump({**snapshot, "time": time.time()}, fh)
                os.replace(tmp, path)
                last = snapshot
            time.sleep(self.interval)


def die_with_master() -> None:
    """Under gunicorn (a worker forked by the master, which leads its own process group): ask
    Linux to SIGKILL this worker when the master dies, so a killed master never leaves workers
    holding the port. If the master is already gone (it died before the call: the worker's
    parent is no longer its group's leader), exit now. The supervisor's kill of the whole
    group covers the platforms without ``prctl``."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.environ.get("MLW_SERVE_GROUP") and os.getppid() != os.getpgrp():  # the master left already
        os._exit(1)


def create_app(model: Any = None, *, model_id: str | None = None, stats_dir: str | None = None) -> Starlette:
    """The Starlette app; without arguments (under gunicorn) it reads the ``MLW_SERVE_*`` env."""
    if model is None:
        die_with_master()
        model_id = os.environ.get("MLW_SERVE_MODEL_ID", "model")
        model = load_artifact(os.environ["MLW_SERVE_MODEL"], os.environ["MLW_SERVE_SHA256"], model_id)
        stats_dir = os.environ.get("MLW_SERVE_STATS_DIR")
    stats = Stats(stats_dir)
    columns = list(getattr(model, "raw_columns", ()) or getattr(model, "feature_names", ()))

    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        stats.in_flight += 1
        error = True
        try:
            rows = parse_rows(await read_limited(request.headers, request.stream()), columns)
            try:
                predictions = model.predict(rows)
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                raise BadRequest(422, f"cannot score these rows: {exc}") from None
            error = False
            return JSONResponse({"predictions": to_json_value(predictions), "model": model_id})
        except BadRequest as exc:
            return JSONResponse({"error": str(exc), "model": model_id}, status_code=exc.status)
        finally:
            stats.in_flight -= 1
            stats.record(time.perf_counter() - started, error=error)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": model_id, "pid": os.getpid(), "columns": columns})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"])])
