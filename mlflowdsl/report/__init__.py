"""The run report: one self-contained HTML file per execution (``mlw run --report``,
``mlw report ID -o FILE``).

Everything is inline (CSS, a few lines of JavaScript, SVG drawn in ``svg.py``), so the file
opens anywhere without a network. The template is rendered with autoescaping: task ids,
errors and tracebacks are user data.

>>> from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
>>> e = WorkflowExecution(id="e1", workflow_id="w", status="succeeded",
...                       tasks={"a": TaskResult(task_id="a", status="succeeded", metrics={"acc": 0.9})})
>>> html = render_report(e)
>>> html.count('class="task-row'), "acc" in html, "<script src" in html
(1, True, False)
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import jinja2

from mlflowdsl.ir import Plan
from mlflowdsl.report.svg import STATUS_COLOR, dag_svg, gantt_svg
from mlflowdsl.runtime.records import WorkflowExecution
from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.runtime.state import open_state
from mlflowdsl.runtime.state.base import AttemptLog
from mlflowdsl.runtime.usage import fmt_bytes
from mlflowdsl.settings import load_settings

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = _duration
    env.filters["bytes"] = fmt_bytes
    env.filters["when"] = lambda t: "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    env.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, (int, float)) else str(v)
    return env


def _graph(execution: WorkflowExecution) -> tuple[list[str], list[tuple[str, str]]]:
    """Nodes and edges from the plan stored with the execution (tasks only, when it has none)."""
    nodes = list(execution.tasks)
    edges: list[tuple[str, str]] = []
    if execution.plan_json:
        try:
            plan = Plan.from_json(execution.plan_json)
        except ValueError as exc:  # a plan this IR version does not read: draw the tasks alone
            log.debug("execution %s: stored plan not readable, drawing its tasks without edges: %s",
                      execution.id, exc)
            return nodes, edges
        nodes = [t.id for t in plan.tasks] + [t for t in execution.tasks if t not in plan.tasks_by_id()]
        edges = [(d, t.id) for t in plan.tasks for d in t.dependencies]
    return nodes, edges


def _studies(execution: WorkflowExecution) -> list[dict[str, Any]]:
    out = []
    for tid, r in execution.tasks.items():
        study = r.study
        if not study:
            continue
        trials = [t for t in study.get("trials", []) if t.get("value") is not None]
        reverse = study.get("direction") == "maximize"
        top = sorted(trials, key=lambda t: t["value"], reverse=reverse)[:5]
        out.append({"task": tid, "study": study, "top": top})
    return out


def registered_models(execution: WorkflowExecution, settings: Any = None) -> list[dict[str, Any]]:
    """Model versions whose lineage names this execution; empty when there is no registry."""
    if settings is None:
        settings = load_settings()
    if not getattr(settings, "redis_url", None) and not os.path.exists(os.path.join(str(settings.home), "registry.db")):
        return []  # nothing was ever registered here; do not create an empty registry
    try:
        registry = open_registry(settings)
    except Exception as exc:  # noqa: BLE001 - no registry configured or reachable
        log.debug("report of %s without registered models: the registry does not open: %s", execution.id, exc)
        return []
    try:
        found = []
        for mv in registry.versions():
            if (mv.lineage or {}).get("execution_id") == execution.id:
                aliases = [a for a, v in registry.aliases(mv.name).items() if v == mv.version]
                found.append({"name": mv.name, "version": mv.version, "task": mv.lineage.get("task_id"),
                              "aliases": aliases, "metrics": mv.metrics, "model_type": mv.model_type})
        return found
    except Exception as exc:  # noqa: BLE001 - a report must not fail on the registry
        log.debug("report of %s without registered models: reading the registry failed: %s", execution.id, exc)
        return []
    finally:
        try:
            registry.close()
        except Exception as exc:  # noqa: BLE001 - the models are read; a failed close changes nothing
            log.debug("closing the registry after the report of %s: %s", execution.id, exc)


def attempt_logs(execution: WorkflowExecution, settings: Any = None) -> list[AttemptLog]:
    """The execution's attempt logs from the settings' state store; none when it has none."""
    if settings is None:
        settings = load_settings()
    cluster = bool(getattr(settings, "redis_url", None))
    if not cluster and not os.path.exists(os.path.join(str(settings.home), "state.db")):
        return []  # no state here; do not create an empty one
    try:
        state = open_state(settings, cluster=cluster)
    except Exception as exc:  # noqa: BLE001 - a report must not fail on the logs
        log.debug("report of %s without logs: the state does not open: %s", execution.id, exc)
        return []
    try:
        return state.attempt_logs(execution.id)
    except Exception as exc:  # noqa: BLE001 - an execution kept elsewhere (another home, Redis) has none here
        log.debug("report of %s without logs: %s", execution.id, exc)
        return []
    finally:
        state.close()


def render_report(execution: WorkflowExecution, *, models: list[dict[str, Any]] | None = None,
                  generated: float | None = None, logs: list[AttemptLog] | None = None) -> str:
    """The report's HTML (pure: everything it shows comes from the arguments)."""
    nodes, edges = _graph(execution)
    tasks = [execution.tasks[t] for t in nodes if t in execution.tasks]
    bars = [{"task": r.task_id, "worker": r.worker, "start": r.started, "end": r.ended, "status": r.status}
            for r in tasks if r.started is not None and r.ended is not None and not r.cached]
    metric_names = sorted({m for r in tasks for m in r.metrics})
    counts = execution.counts()
    return _environment().get_template("report.html.j2").render(
        execution=execution, tasks=tasks, counts=counts, colors=STATUS_COLOR,
        dag=dag_svg(nodes, edges, {t: r.status for t, r in execution.tasks.items()}),
        gantt=gantt_svg(bars), studies=_studies(execution), models=models or [], logs=logs or [],
        failed_ids={t for t, r in execution.tasks.items() if r.status == "failed"},
        metric_names=metric_names, generated=time.time() if generated is None else generated,
        # JSON inside <script>: <, > and & as \u escapes, so no data can close the element
        data_json=json.dumps(execution.summary(), sort_keys=True, default=str)
        .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
    )


def write_report(execution: WorkflowExecution, path: str | os.PathLike, *, settings: Any = None,
                 logs: list[AttemptLog] | None = None) -> str:
    """Render and write the report (with the registered models, when there is a registry, and
    the attempt logs: ``logs``, or those of the settings' state store)."""
    html = render_report(execution, models=registered_models(execution, settings),
                         logs=attempt_logs(execution, settings) if logs is None else logs)
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return str(target)


__all__ = ["attempt_logs", "registered_models", "render_report", "write_report"]
