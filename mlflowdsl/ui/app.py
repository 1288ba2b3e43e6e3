"""The ``mlw ui`` web application (starlette): server-rendered pages, a JSON API under
``/api/`` that returns what each page shows, and server-sent events for live execution pages.

Pages are rendered with Jinja2 (autoescaped: task ids, logs and errors are user data); the only
scripts are the vendored htmx (``static/htmx.min.js``) and ``static/ui.js``, served from the
package, so the UI works offline. Reads go to the state store and registry of one
:class:`~mlflowdsl.ui.data.Source`; the actions (POST, ``actions.py``) need the token of
``--allow-actions``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import anyio
import jinja2
from markupsafe import escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mlflowdsl.errors import MlwError
from mlflowdsl.report.svg import STATUS_COLOR
from mlflowdsl.runtime.records import EXECUTION_TERMINAL
from mlflowdsl.runtime.registry.models import GateRefused
from mlflowdsl.runtime.usage import fmt_bytes
from mlflowdsl.ui import actions, charts, data
from mlflowdsl.ui.data import Source

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "mlw_ui_token"
LIVE_POLL_S = 0.25  # how often a live page's stream reads the state (the runner writes every 0.25 s)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = _duration
    env.filters["bytes"] = fmt_bytes
    env.filters["when"] = lambda t: "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    env.filters["num"] = lambda v: "-" if v is None else (f"{v:.4g}" if isinstance(v, (int, float)) else str(v))
    env.filters["tojson_attr"] = lambda v: json.dumps(v, sort_keys=True, default=str)
    return env


class UiApp:
    """The routes over one source; ``token`` is set when actions are allowed."""

    def __init__(self, src: Source, *, token: str | None = None):
        self.src = src
        self.token = token
        self.env = _environment()

    # ------------------------------------------------------------------ helpers

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("x-mlw-token") or request.cookies.get(COOKIE)
        return actions.token_ok(self.token, given)

    def render(self, request: Request, name: str, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            request=request, colors=STATUS_COLOR, mode=self.src.mode, dashboard=self.src.dashboard,
            actions_on=self.token is not None, authorized=self.authorized(request), **ctx)
        return HTMLResponse(html)

    def error_page(self, request: Request, exc: MlwError, status: int = 404) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc), "hint": exc.hint}, status_code=status)
        response = self.render(request, "error.html.j2", message=str(exc), hint=exc.hint or "")
        response.status_code = status
        return response

    # ------------------------------------------------------------------ pages

    def executions_page(self, request: Request) -> Response:
        q = request.query_params
        if self.token and q.get("token"):  # the URL printed by --allow-actions: keep the token in a cookie
            response = RedirectResponse("/", status_code=303)
            if actions.token_ok(self.token, q["token"]):
                response.set_cookie(COOKIE, q["token"], httponly=True, samesite="strict")
            return response
        listing = data.executions(self.src, workflow=q.get("workflow"), status=q.get("status"),
                                  page=_int(q.get("page"), 1))
        fragment = request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request")
        name = "_execution_rows.html.j2" if fragment else "executions.html.j2"
        return self.render(request, name, listing=listing)

    def execution_page(self, request: Request) -> Response:
        info = data.execution(self.src, request.path_params["id"])
        svgs = data.execution_svgs(info["record"], info["nodes"], info["edges"])
        models = data.execution_models(self.src, info["record"])
        return self.render(request, "execution.html.j2", e=info, svgs=svgs, models=models)

    def logs_fragment(self, request: Request) -> Response:
        info = data.logs(self.src, request.path_params["id"], request.path_params["task"])
        return self.render(request, "_logs.html.j2", info=info)

    def compare_page(self, request: Request) -> Response:
        ids = self._compare_ids(request)
        info = data.compare(self.src, ids, request.query_params.get("metric"))
        chart = charts.line_chart([(c["id"][:8], s["value"]) for c, s in zip(info["executions"], info["series"])],
                                  title=info["metric"] or "")
        return self.render(request, "compare.html.j2", info=info, chart=chart)

    def _compare_ids(self, request: Request) -> list[str]:
        q = request.query_params
        ids = [i for i in (q.get("ids") or "").split(",") if i] + q.getlist("id")
        if not ids and q.get("workflow"):
            rows, _ = self.src.state.page_executions(limit=_int(q.get("last"), 10), workflow_id=q["workflow"])
            ids = [e.id for e in rows]
        return list(dict.fromkeys(ids))

    def studies_page(self, request: Request) -> Response:
        return self.render(request, "studies.html.j2", info=data.studies(self.src))

    def study_page(self, request: Request) -> Response:
        info = data.study(self.src, request.path_params["id"], request.path_params["task"])
        history = charts.line_chart([(str(h["number"]), h["value"]) for h in info["history"]],
                                    best=[h["best"] for h in info["history"]],
                                    title=f"{info['study'].get('metric', 'value')} per trial (dashed: best so far)")
        importances = charts.bar_chart([(i["param"], i["importance"]) for i in info["importances"]],
                                       title="parameter importances")
        return self.render(request, "study.html.j2", info=info, history=history, importances=importances)

    def models_page(self, request: Request) -> Response:
        return self.render(request, "models.html.j2", info=data.models(self.src))

    # ------------------------------------------------------------------ JSON API

    def api_index(self, request: Request) -> Response:
        return JSONResponse({"endpoints": API_DOC, "mode": self.src.mode, "actions": self.token is not None})

    def api_executions(self, request: Request) -> Response:
        q = request.query_params
        return JSONResponse(data.executions(self.src, workflow=q.get("workflow"), status=q.get("status"),
                                            page=_int(q.get("page"), 1),
                                            per_page=min(_int(q.get("per_page"), data.PER_PAGE), 500)))

    def api_execution(self, request: Request) -> Response:
        info = data.execution(self.src, request.path_params["id"])
        info.pop("record")
        return JSONResponse(info)

    def api_status(self, request: Request) -> Response:
        return JSONResponse(data.live_status(self.src, request.path_params["id"]))

    def api_logs(self, request: Request) -> Response:
        q = request.query_params
        attempt = _int(q.get("attempt"), 0) or None
        return JSONResponse(data.logs(self.src, request.path_params["id"], q.get("task"), attempt))

    def api_compare(self, request: Request) -> Response:
        return JSONResponse(data.compare(self.src, self._compare_ids(request), request.query_params.get("metric")))

    def api_studies(self, request: Request) -> Response:
        return JSONResponse(data.studies(self.src))

    def api_study(self, request: Request) -> Response:
        return JSONResponse(data.study(self.src, request.path_params["id"], request.path_params["task"]))

    def api_models(self, request: Request) -> Response:
        return JSONResponse(data.models(self.src))

    async def api_events(self, request: Request) -> Response:
        """Server-sent events: the live snapshot whenever it changes, then ``done``."""
        execution_id = request.path_params["id"]
        first = await anyio.to_thread.run_sync(data.live_status, self.src, execution_id)  # 404 before streaming

        async def stream():
            snapshot, last, beat = first, None, time.monotonic()
            while True:
                text = json.dumps(snapshot, sort_keys=True)
                if text != last:
                    yield f"data: {text}\n\n"
                    last, beat = text, time.monotonic()
                elif time.monotonic() - beat > 15:
                    yield ": keep-alive\n\n"
                    beat = time.monotonic()
                if snapshot["status"] in EXECUTION_TERMINAL:
                    yield "event: done\ndata: {}\n\n"
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(LIVE_POLL_S)
                try:
                    snapshot = await anyio.to_thread.run_sync(data.live_status, self.src, execution_id)
                except MlwError as exc:  # the store went away: say so, the page keeps what it shows
                    yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
                    return

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ actions

    def _guard(self, request: Request) -> None:
        if self.token is None:
            raise actions.ActionRefused("the UI is read-only", hint="start it with `mlw ui --allow-actions`")
        if not self.authorized(request):
            raise actions.ActionRefused("missing or wrong token", hint="open the URL `mlw ui --allow-actions` printed")
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
            raise actions.ActionRefused(f"cross-origin request from {origin} refused")

    async def act(self, request: Request) -> Response:
        try:
            self._guard(request)
            kind = request.path_params["action"]
            if kind == "cancel":
                result = await anyio.to_thread.run_sync(actions.cancel, self.src, request.path_params["id"])
            elif kind == "resume":
                result = await anyio.to_thread.run_sync(actions.resume, self.src, request.path_params["id"])
            else:
                return JSONResponse({"error": f"unknown action {kind!r}"}, status_code=404)
        except actions.ActionRefused as exc:
            return JSONResponse({"error": str(exc), "hint": exc.hint}, status_code=403)
        return self._acted(request, result)

    async def promote(self, request: Request) -> Response:
        try:
            self._guard(request)
            form = await request.form() if "form" in request.headers.get("content-type", "") else await request.json()
            version = _int(form.get("version"), 0)
            result = await anyio.to_thread.run_sync(
                lambda: actions.promote(self.src, request.path_params["name"], request.path_params["alias"], version))
        except actions.ActionRefused as exc:
            return JSONResponse({"error": str(exc), "hint": exc.hint}, status_code=403)
        except GateRefused as exc:
            return self._acted(request, {"error": str(exc), "message": f"refused by the gate: {exc}"}, status=409)
        return self._acted(request, result)

    def _acted(self, request: Request, result: dict[str, Any], status: int = 200) -> Response:
        if request.headers.get("hx-request"):
            text = result.get("message") or result.get("error") or "done"
            return HTMLResponse(f'<span class="acted">{escape(text)}</span>')
        return JSONResponse(result, status_code=status)


API_DOC = {
    "GET /api/executions?workflow=&status=&page=&per_page=": "executions, newest first, with progress",
    "GET /api/executions/{id}": "one execution: header, tasks, DAG nodes and edges",
    "GET /api/executions/{id}/status": "the live snapshot: execution status, each task's status",
    "GET /api/executions/{id}/events": "server-sent events of that snapshot, then `done`",
    "GET /api/executions/{id}/logs?task=&attempt=": "captured attempt logs and attempt errors",
    "GET /api/compare?ids=a,b or ?workflow=W&last=10 [&metric=task.m]": "params and metrics side by side",
    "GET /api/studies": "the latest tuning studies",
    "GET /api/studies/{id}/{task}": "one study: trials, history, importances",
    "GET /api/models": "models: versions, aliases, alias history, deployments",
    "POST /api/executions/{id}/cancel": "cancel (cluster mode; token)",
    "POST /api/executions/{id}/resume": "resume a failed or cancelled execution (embedded; token)",
    "POST /api/models/{name}/aliases/{alias} version=N": "move an alias through the gate (token)",
}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


class ServerTiming:
    """ASGI middleware: a ``Server-Timing: app;dur=MS`` header with the time until the response
    started (the whole rendering, for a page), which bench/ui.py reads."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: dict) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", took)]}
            await send(message)

        await self.app(scope, receive, timed)


def create_app(src: Source, *, token: str | None = None) -> Starlette:
    ui = UiApp(src, token=token)
    routes = [
        Route("/", ui.executions_page),
        Route("/executions/{id}", ui.execution_page),
        Route("/executions/{id}/tasks/{task}/logs", ui.logs_fragment),
        Route("/compare", ui.compare_page),
        Route("/studies", ui.studies_page),
        Route("/studies/{id}/{task}", ui.study_page),
        Route("/models", ui.models_page),
        Route("/api/", ui.api_index),
        Route("/api/executions", ui.api_executions),
        Route("/api/executions/{id}", ui.api_execution),
        Route("/api/executions/{id}/status", ui.api_status),
        Route("/api/executions/{id}/events", ui.api_events),
        Route("/api/executions/{id}/logs", ui.api_logs),
        Route("/api/executions/{id}/{action}", ui.act, methods=["POST"]),
        Route("/api/compare", ui.api_compare),
        Route("/api/studies", ui.api_studies),
        Route("/api/studies/{id}/{task}", ui.api_study),
        Route("/api/models", ui.api_models),
        Route("/api/models/{name}/aliases/{alias}", ui.promote, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def mlw_error(request: Request, exc: Exception) -> Response:
        status = 404 if "no execution" in str(exc) or "has no" in str(exc) else 400
        return ui.error_page(request, exc, status)  # type: ignore[arg-type]

    app = Starlette(routes=routes, exception_handlers={MlwError: mlw_error}, middleware=[Middleware(ServerTiming)])
    app.state.ui = ui
    return app
