"""What the UI shows, as plain JSON-ready data: the pages render it and ``/api/`` returns it.

Everything is read from the state store (SQLite under ``--home`` or the cluster's Redis) and
the model registry of the same settings; nothing here writes (actions are in ``actions.py``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from mlflowdsl.errors import StateError
from mlflowdsl.ir import Plan
from mlflowdsl.report import registered_models
from mlflowdsl.report.svg import STATUS_COLOR, dag_svg, gantt_svg
from mlflowdsl.runtime.records import TASK_TERMINAL, WorkflowExecution
from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.runtime.state.base import StateBackend
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

PER_PAGE = 50


@dataclass
class Source:
    """Where the UI reads: one state store and the settings of its registry."""

    state: StateBackend
    settings: Settings
    mode: str  # "embedded" (SQLite under the home) or "cluster" (Redis)
    dashboard: str | None = None  # the Dask dashboard's address, when known


def progress(counts: dict[str, int]) -> dict[str, Any]:
    """Done (terminal) tasks of all, and the counts.

    >>> progress({"succeeded": 3, "running": 1})["percent"]
    75
    """
    total = sum(counts.values())
    done = sum(n for s, n in counts.items() if s in TASK_TERMINAL)
    return {"total": total, "done": done, "percent": round(100 * done / total) if total else 0, "counts": counts}


def _header(e: WorkflowExecution) -> dict[str, Any]:
    return {"id": e.id, "workflow_id": e.workflow_id, "workflow_name": e.workflow_name, "status": e.status,
            "created": e.created, "started": e.started, "ended": e.ended, "duration_s": e.duration_s,
            "params": e.params, "error": e.error, "source": e.source, "plan_fingerprint": e.plan_fingerprint}


def executions(src: Source, *, workflow: str | None = None, status: str | None = None, page: int = 1,
               per_page: int = PER_PAGE) -> dict[str, Any]:
    page = max(1, page)
    rows, total = src.state.page_executions(offset=(page - 1) * per_page, limit=per_page,
                                            workflow_id=workflow or None, status=status or None)
    counts = src.state.task_counts([e.id for e in rows])
    items = [{**_header(e), "progress": progress(counts.get(e.id, {}))} for e in rows]
    return {"items": items, "total": total, "page": page, "per_page": per_page,
            "pages": max(1, -(-total // per_page)), "workflow": workflow or "", "status": status or "",
            "workflows": src.state.workflow_ids()}


def _graph(e: WorkflowExecution) -> tuple[list[str], list[tuple[str, str]]]:
    nodes, edges = list(e.tasks), []
    if e.plan_json:
        try:
            plan = Plan.from_json(e.plan_json)
        except ValueError as exc:
            log.debug("execution %s: stored plan not readable: %s", e.id, exc)
            return nodes, edges
        known = plan.tasks_by_id()
        nodes = [t.id for t in plan.tasks] + [t for t in e.tasks if t not in known]
        edges = [(d, t.id) for t in plan.tasks for d in t.dependencies]
    return nodes, edges


def execution(src: Source, execution_id: str) -> dict[str, Any]:
    e = src.state.get_execution(execution_id)
    nodes, edges = _graph(e)
    tasks = []
    for tid in nodes:
        r = e.tasks.get(tid)
        if r is None:
            continue
        tasks.append({"task_id": tid, "status": r.status, "attempts": r.attempts, "started": r.started,
                      "ended": r.ended, "duration_s": r.duration_s, "cached": r.cached, "worker": r.worker,
                      "metrics": r.metrics, "error": r.error, "cpu_s": r.cpu_s, "peak_rss": r.peak_rss,
                      "attempt_errors": [a.model_dump(mode="json") for a in r.attempt_errors],
                      "has_study": bool(r.study)})
    return {**_header(e), "progress": progress(e.counts()), "tasks": tasks, "nodes": nodes,
            "edges": [list(x) for x in edges], "colors": STATUS_COLOR, "record": e}


def execution_svgs(e: WorkflowExecution, nodes: list[str], edges: list[list[str]]) -> dict[str, Any]:
    bars = [{"task": r.task_id, "worker": r.worker, "start": r.started, "end": r.ended, "status": r.status}
            for r in e.tasks.values() if r.started is not None and r.ended is not None and not r.cached]
    return {"dag": dag_svg(nodes, [tuple(x) for x in edges], {t: r.status for t, r in e.tasks.items()}),
            "gantt": gantt_svg(bars)}


def live_status(src: Source, execution_id: str) -> dict[str, Any]:
    """The small snapshot the execution page follows (server-sent events)."""
    status, tasks = src.state.task_statuses(execution_id)
    counts: dict[str, int] = {}
    for st, _ in tasks.values():
        counts[st] = counts.get(st, 0) + 1
    return {"status": status, "tasks": {t: {"status": st, "attempts": n} for t, (st, n) in tasks.items()},
            "progress": progress(counts)}


def logs(src: Source, execution_id: str, task_id: str | None = None, attempt: int | None = None) -> dict[str, Any]:
    e = src.state.get_execution(execution_id)
    entries = src.state.attempt_logs(e.id, task_id, attempt)
    running = (not e.tasks[task_id].finished) if task_id in e.tasks else not e.finished
    return {"execution_id": e.id, "task_id": task_id, "running": running, "logs": [g.as_dict() for g in entries],
            "errors": [a.model_dump(mode="json") for a in e.tasks[task_id].attempt_errors] if task_id in e.tasks else []}


def compare(src: Source, ids: list[str], metric: str | None = None) -> dict[str, Any]:
    """Params and metrics of executions side by side (metrics as ``task.metric``)."""
    found = [src.state.get_execution(i) for i in ids]
    found.sort(key=lambda e: e.created)
    params = sorted({k for e in found for k in e.params})
    metrics = sorted({f"{t}.{m}" for e in found for t, r in e.tasks.items() for m in r.metrics})

    def value(e: WorkflowExecution, name: str) -> float | None:
        task, _, m = name.rpartition(".")
        r = e.tasks.get(task)
        return r.metrics.get(m) if r else None

    columns = [{"id": e.id, "workflow_id": e.workflow_id, "status": e.status, "created": e.created,
                "duration_s": e.duration_s} for e in found]
    chosen = metric if metric in metrics else (metrics[0] if metrics else None)
    series = [{"id": e.id, "value": value(e, chosen)} for e in found] if chosen else []
    return {"executions": columns, "workflows": sorted({e.workflow_id for e in found}),
            "params": [{"name": p, "values": [_jsonable(e.params.get(p)) for e in found]} for p in params],
            "metrics": [{"name": m, "values": [value(e, m) for e in found]} for m in metrics],
            "metric": chosen, "series": series}


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except (TypeError, ValueError):
        return str(v)


def studies(src: Source) -> dict[str, Any]:
    items = []
    for execution_id, r in src.state.studies(limit=100):
        s = r.study or {}
        items.append({"execution_id": execution_id, "task_id": r.task_id, "study": s.get("study"),
                      "metric": s.get("metric"), "direction": s.get("direction"), "best_value": s.get("best_value"),
                      "best_params": s.get("best_params", {}), "trials": len(s.get("trials", [])),
                      "counts": s.get("counts", {}), "sampler": s.get("sampler")})
    return {"items": items}


def study(src: Source, execution_id: str, task_id: str) -> dict[str, Any]:
    e = src.state.get_execution(execution_id)
    r = e.tasks.get(task_id)
    if r is None or not r.study:
        raise StateError(f"execution {e.id} has no study for task {task_id!r}", hint="the studies page lists them")
    s = r.study
    trials = s.get("trials", [])
    maximize = s.get("direction") == "maximize"
    best, history = None, []
    for t in sorted(trials, key=lambda t: t.get("number", 0)):
        v = t.get("value")
        if v is not None and (best is None or (v > best if maximize else v < best)):
            best = v
        history.append({"number": t.get("number"), "value": v, "best": best, "state": t.get("state")})
    importances = sorted((s.get("importances") or {}).items(), key=lambda kv: -kv[1])
    return {"execution_id": e.id, "task_id": task_id, "study": s, "history": history,
            "importances": [{"param": k, "importance": v} for k, v in importances]}


def models(src: Source) -> dict[str, Any]:
    """Versions (with lineage), aliases and their history, and deployments with health."""
    settings = src.settings
    if not settings.redis_url and not os.path.exists(os.path.join(str(settings.home), "registry.db")):
        return {"models": [], "deployments": []}
    registry = open_registry(settings)
    try:
        out = []
        for name in registry.names():
            aliases = registry.aliases(name)
            versions = [{"version": mv.version, "model_type": mv.model_type, "metrics": mv.metrics,
                         "created_at": mv.created_at, "label": getattr(mv, "label", None),
                         "execution_id": (mv.lineage or {}).get("execution_id"), "task_id": (mv.lineage or {}).get("task_id"),
                         "aliases": sorted(a for a, v in aliases.items() if v == mv.version)}
                        for mv in sorted(registry.versions(name), key=lambda m: -m.version)]
            history = [h.to_dict() for h in reversed(registry.history(name))]
            out.append({"name": name, "aliases": aliases, "versions": versions, "history": history})
        deps = []
        for d in deployments.list_deployments(settings, registry=registry):
            deps.append({k: d.get(k) for k in ("name", "model", "version", "state", "replicas", "min_replicas",
                                               "max_replicas", "port", "host", "updated_at")})
        return {"models": out, "deployments": deps}
    finally:
        registry.close()


def execution_models(src: Source, e: WorkflowExecution) -> list[dict[str, Any]]:
    return registered_models(e, src.settings)


def now() -> float:
    return time.time()
