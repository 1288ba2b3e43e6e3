"""The HTTP app every replica runs (a Starlette ASGI app under a uvicorn worker of gunicorn).

- ``POST /predict`` with ``{"rows": [{col: value, ...}, ...]}`` (or just the list of rows;
  a row may also be a list of values in the model's column order; ``"probabilities": true``
  adds the class probabilities of a classifier) -> ``{"predictions": [...], "model": ...}``.
- ``GET /health`` -> ``{"status": "ok", "model": "fraud/3", "pid": ...}``.
- ``GET /metrics`` -> the Prometheus text format (:mod:`.metrics`).

Bad bodies get a 4xx with ``{"error": "..."}`` saying what is wrong (:mod:`.bodies`); the
replica keeps serving. Concurrent requests are scored together (:mod:`.batching`) unless
batching is off. Under gunicorn the model is loaded once per worker process from
``MLW_SERVE_MODEL``, checked against ``MLW_SERVE_SHA256``; ``MLW_SERVE_BATCHING=0`` turns
batching off, ``MLW_SERVE_MAX_BATCH_ROWS`` and ``MLW_SERVE_MAX_WAIT_MS`` bound it;
``MLW_SERVE_SPEC`` names a JSON file whose values replace these (what the supervisor rewrites
to roll a deployment over to a new version).
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlflowdsl.runtime.registry.artifacts import load_artifact
from mlflowdsl.runtime.registry.serving.batching import SCORING_ERRORS, Batcher
from mlflowdsl.runtime.registry.serving.bodies import BadRequest, check_rows, decode, read_limited, rows_of_predict
from mlflowdsl.runtime.registry.serving.metrics import CONTENT_TYPE, ServingMetrics
from mlflowdsl.runtime.registry.serving.protocols import input_datatypes, mlflow_rows, v2_outputs, v2_rows

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_ROWS = 256


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


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


class NoProbabilities(ValueError):
    pass


@dataclass
class Served:
    """One model version a replica serves: the model, its id, its columns and how it scores."""

    model: Any
    model_id: str
    metrics: ServingMetrics
    batcher: Batcher | None = None

    def batch(self, *, max_rows: int, max_wait_s: float) -> None:
        """Score concurrent requests together from now on."""
        split = hasattr(self.model, "features_of") and hasattr(self.model, "predict_features")
        self.batcher = Batcher(self.score_now, max_rows=max_rows, max_wait_s=max_wait_s,
                               on_batch=lambda rows, seconds: self.metrics.scored(self.model_id, rows, seconds),
                               features=self.model.features_of if split else None,
                               score_features=self.score_features if split else None)

    columns: list[str] = field(init=False)
    classes: list[Any] | None = field(init=False)

    def __post_init__(self) -> None:
        self.columns = list(getattr(self.model, "raw_columns", ()) or getattr(self.model, "feature_names", ()))
        classes = getattr(self.model, "classes", None)
        self.classes = to_json_value(classes) if classes is not None else None

    def score_now(self, rows: list[Any], probabilities: bool) -> tuple[list[Any], list[Any] | None]:
        if probabilities and hasattr(self.model, "features_of") and hasattr(self.model, "predict_features"):
            return self.score_features(self.model.features_of(rows), True)  # one transform for both
        predictions = to_json_value(self.model.predict(rows))
        if not probabilities:
            return predictions, None
        proba = getattr(self.model, "predict_proba", None)
        values = proba(rows) if proba is not None else None
        if values is None:
            raise NoProbabilities(f"{self.model_id} gives no probabilities (it is not a classifier with "
                                  "predict_proba); leave \"probabilities\" out")
        return predictions, to_json_value(values)

    def score_features(self, features: Any, probabilities: bool) -> tuple[list[Any], list[Any] | None]:
        """Like :meth:`score_now` on rows already transformed by the model's preprocessing."""
        predictions = to_json_value(self.model.predict_features(features))
        if not probabilities:
            return predictions, None
        values = self.model.predict_proba_features(features)
        if values is None:
            raise NoProbabilities(f"{self.model_id} gives no probabilities; leave \"probabilities\" out")
        return predictions, to_json_value(values)

    async def score(self, rows: list[Any], probabilities: bool) -> tuple[list[Any], list[Any] | None]:
        try:
            if self.batcher is not None:
                return await self.batcher.submit(rows, probabilities)
            started = time.perf_counter()
            try:
                return self.score_now(rows, probabilities)  # on the event loop, as a plain app does
            finally:
                self.metrics.scored(self.model_id, len(rows), time.perf_counter() - started)
        except SCORING_ERRORS as exc:
            raise BadRequest(422, f"cannot score these rows: {exc}") from None


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


def read_spec_file() -> None:
    """Take the ``MLW_SERVE_*`` settings from the JSON file ``MLW_SERVE_SPEC`` names (when it
    does): the supervisor rewrites that file before a graceful reload, so the workers gunicorn
    starts then serve the new version while the master's environment stays as it was."""
    path = os.environ.get("MLW_SERVE_SPEC")
    if not path:
        return
    with open(path, "rb") as fh:
        values = orjson.loads(fh.read())
    for key in [k for k in os.environ if k.startswith("MLW_SERVE_") and k not in values]:
        if key not in ("MLW_SERVE_SPEC", "MLW_SERVE_GROUP"):
            del os.environ[key]
    os.environ.update({k: str(v) for k, v in values.items()})


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_model(prefix: str) -> tuple[Any, str] | None:
    path = os.environ.get(f"{prefix}_MODEL")
    if not path:
        return None
    model_id = os.environ.get(f"{prefix}_MODEL_ID", "model")
    return load_artifact(path, os.environ[f"{prefix}_SHA256"], model_id), model_id


def create_app(model: Any = None, *, model_id: str | None = None, batching: bool | None = None,
               max_batch_rows: int | None = None, max_wait_ms: float | None = None,
               canary: tuple[Any, str, float] | None = None) -> Starlette:
    """The Starlette app; without a model (under gunicorn) it reads the ``MLW_SERVE_*`` env.

    ``canary = (model, model_id, percent)`` sends that percentage of the scoring requests
    (picked at random, each on its own) to a second version.
    """
    if model is None:
        die_with_master()
        read_spec_file()
        model, model_id = _env_model("MLW_SERVE")  # type: ignore[misc]
        loaded = _env_model("MLW_SERVE_CANARY")
        if loaded is not None:
            canary = (*loaded, _env_number("MLW_SERVE_CANARY_PERCENT", 0.0))
    if batching is None:
        batching = os.environ.get("MLW_SERVE_BATCHING", "1") not in ("0", "false", "off")
    max_batch_rows = int(max_batch_rows or _env_number("MLW_SERVE_MAX_BATCH_ROWS", DEFAULT_MAX_BATCH_ROWS))
    max_wait_ms = float(max_wait_ms if max_wait_ms is not None else _env_number("MLW_SERVE_MAX_WAIT_MS", 0.0))
    metrics = ServingMetrics()
    primary = Served(model, model_id or "model", metrics)
    versions = [primary]
    share = 0.0
    if canary is not None:
        versions.append(Served(canary[0], canary[1], metrics))
        share = min(100.0, max(0.0, float(canary[2]))) / 100
    for role, served in zip(("primary", "canary"), versions):
        if batching:
            served.batch(max_rows=max_batch_rows, max_wait_s=max_wait_ms / 1000)
        metrics.served(served.model_id, role)
    name = primary.model_id.rpartition("/")[0] or primary.model_id

    def pick() -> Served:
        return versions[1] if share and random.random() < share else primary

    async def scored(request: Request, route: str, parse: Callable[[Any, Served], tuple[list[Any], bool]],
                     answer: Callable[[Served, list[Any], list[Any] | None], Any],
                     error: Callable[[Served, str], Any], served: Served | None = None) -> Response:
        started = time.perf_counter()
        served = served or pick()
        code = 500
        try:
            rows, probabilities = parse(decode(await read_limited(request.headers, request.stream())), served)
            check_rows(rows, served.columns)
            predictions, probs = await served.score(rows, probabilities)
            code = 200
            return json_response(answer(served, predictions, probs))
        except BadRequest as exc:
            code = exc.status
            return json_response(error(served, str(exc)), exc.status)
        except Exception as exc:  # noqa: BLE001 - the model itself failed: a 500 that says so, not a traceback
            log.exception("%s: the model failed", served.model_id)
            return json_response(error(served, f"the model failed: {type(exc).__name__}: {exc}"), 500)
        finally:
            metrics.answered(served.model_id, route, code, time.perf_counter() - started)

    def with_probabilities(out: dict[str, Any], served: Served, probs: list[Any] | None) -> dict[str, Any]:
        if probs is not None:
            out.update(probabilities=probs, classes=served.classes)
        return out

    async def predict(request: Request) -> Response:
        return await scored(request, "predict", lambda data, _s: rows_of_predict(data),
                            lambda s, p, pr: with_probabilities({"predictions": p, "model": s.model_id}, s, pr),
                            lambda s, message: {"error": message, "model": s.model_id})

    async def invocations(request: Request) -> Response:  # MLflow's scoring protocol
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if kind != "application/json":
            return json_response({"error_code": "BAD_REQUEST", "message": f"content type {kind!r} is not served; "
                                  "send application/json"}, 415)
        return await scored(request, "invocations", lambda data, _s: mlflow_rows(data),
                            lambda s, p, pr: with_probabilities({"predictions": p}, s, pr),
                            lambda s, message: {"error_code": "BAD_REQUEST", "message": message})

    def version_of(request: Request) -> Served | Response:
        asked, version = request.path_params["name"], request.path_params.get("version")
        if asked != name:
            return json_response({"error": f"no model {asked!r} here; this server serves {name!r}"}, 404)
        if version is None:
            return pick()
        for served in versions:
            if served.model_id.rpartition("/")[2] == version:
                return served
        return json_response({"error": f"model {name!r} has no version {version!r} here; it serves "
                              + ", ".join(s.model_id for s in versions)}, 404)

    async def v2_infer(request: Request) -> Response:
        served = version_of(request)
        if isinstance(served, Response):
            return served
        request_id = []

        def parse(data: Any, s: Served) -> tuple[list[Any], bool]:
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                request_id.append(data["id"])
            return v2_rows(data, s.columns)

        def answer(s: Served, predictions: list[Any], probs: list[Any] | None) -> dict[str, Any]:
            out = {"model_name": name, "model_version": s.model_id.rpartition("/")[2],
                   "outputs": v2_outputs(predictions, probs)}
            if request_id:
                out["id"] = request_id[0]
            return out

        return await scored(request, "v2_infer", parse, answer, lambda _s, message: {"error": message}, served)

    async def v2_model(request: Request) -> Response:
        served = version_of(request)
        if isinstance(served, Response):
            return served
        if request.url.path.endswith("/ready"):
            return json_response({"name": name, "ready": True})
        types = input_datatypes(served.model, served.columns)
        return json_response({"name": name, "versions": [s.model_id.rpartition("/")[2] for s in versions],
                              "platform": "mlflowdsl", "inputs": [{"name": c, "datatype": types[c], "shape": [-1]}
                                                                  for c in served.columns],
                              "outputs": [{"name": "predict", "datatype": "BYTES" if served.classes and any(
                                  isinstance(c, str) for c in served.classes) else "FP64", "shape": [-1]}]})

    async def v2_health(request: Request) -> Response:
        return json_response({"live": True} if request.url.path.endswith("live") else {"ready": True})

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "model": primary.model_id, "pid": os.getpid(),
                              "columns": primary.columns, **({"canary": versions[1].model_id, "canary_percent":
                                                              share * 100} if len(versions) > 1 else {})})

    async def ping(request: Request) -> Response:  # MLflow's health check
        return Response("\n", media_type="application/json")

    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return Starlette(routes=[
        Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping, methods=["GET"]),
        Route("/v2/health/live", v2_health, methods=["GET"]), Route("/v2/health/ready", v2_health, methods=["GET"]),
        Route("/v2/models/{name}", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/ready", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
    ])
