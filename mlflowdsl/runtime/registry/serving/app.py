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

import json
import os
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlflowdsl.runtime.registry.artifacts import load_artifact

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ROWS = 100_000


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_rows(body: bytes) -> list[Any]:
    """The rows of a request body, or :class:`BadRequest` saying what is wrong.

    >>> parse_rows(b'{"rows": [{"x": 1}]}')
    [{'x': 1}]
    >>> parse_rows(b'[[1, 2]]')
    [[1, 2]]
    >>> parse_rows(b'{"row": []}')
    Traceback (most recent call last):
    ...
    mlflowdsl.runtime.registry.serving.app.BadRequest: the body must be {"rows": [...]} or a JSON list of rows; got an object with keys: row
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is larger than {MAX_BODY_BYTES} bytes; send fewer rows per request")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        if "rows" not in data:
            raise BadRequest(422, 'the body must be {"rows": [...]} or a JSON list of rows; got an object with keys: '
                             + ", ".join(map(str, data)))
        data = data["rows"]
    if not isinstance(data, list):
        raise BadRequest(422, f'"rows" must be a list of rows, got {type(data).__name__}')
    if not data:
        raise BadRequest(422, '"rows" is empty: send at least one row')
    if len(data) > MAX_ROWS:
        raise BadRequest(413, f"{len(data)} rows in one request; the limit is {MAX_ROWS}")
    kinds = {type(row) for row in data}
    if not (kinds <= {dict} or kinds <= {list}):
        raise BadRequest(422, "every row must be an object {column: value} (or every row a list of values); "
                         f"got {', '.join(sorted(k.__name__ for k in kinds))}")
    return data


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


def create_app(model: Any = None, *, model_id: str | None = None, stats_dir: str | None = None) -> Starlette:
    """The Starlette app; without arguments (under gunicorn) it reads the ``MLW_SERVE_*`` env."""
    if model is None:
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
            rows = parse_rows(await request.body())
            if isinstance(rows[0], dict) and columns:
                missing = sorted({c for c in columns if any(c not in row for row in rows)})
                if missing:
                    raise BadRequest(422, f"missing column(s): {', '.join(missing)}; the model needs: "
                                     + ", ".join(columns))
            try:
                predictions = model.predict(rows)
            except (ValueError, TypeError, KeyError) as exc:
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
