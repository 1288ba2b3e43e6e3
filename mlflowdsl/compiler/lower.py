"""The lower pass: checked tasks -> ``ir.Plan``.

Tasks are listed in topological-then-id order; a task whose ``when`` is false is
``skip = true``, and so is every task that depends on a skipped task.
"""

from __future__ import annotations

from mlflowdsl import ir
from mlflowdsl.compiler import plan_text
from mlflowdsl.compiler.checked import CheckedTask
from mlflowdsl.compiler.directives import Directives
from mlflowdsl.compiler.model import ResolvedWorkflow
from mlflowdsl.grammar.diagnostics import Span


def source_span(s: Span | None) -> ir.SourceSpan | None:
    if s is None:
        return None
    return ir.SourceSpan(file=s.file, line=s.line, column=s.column, end_line=s.end_line, end_column=s.end_column)


def _directive_objects(d: Directives, shared: "_Shared", made: dict[int, tuple]) -> tuple:
    """(resources, cache, retry) for a task's merged directives; tasks that inherit the
    same ``defaults`` share one triple (keyed by the object's identity: the directives live
    as long as the checked tasks that hold them)."""
    triple = made.get(id(d))
    if triple is None:
        triple = made[id(d)] = (shared.get(ir.Resources, d.resources), shared.get(ir.CachePolicy, d.cache),
                                shared.get(ir.RetryPolicy, d.retry))
    return triple


class _Shared:
    """Frozen directive objects shared between tasks with the same values: most tasks of
    a large workflow inherit identical defaults, and building each once keeps lowering
    linear with a small constant."""

    def __init__(self) -> None:
        self._made: dict[tuple, object] = {}

    def get(self, cls, fields):
        """``cls`` built from the written ``fields`` (frozen, so they are the key too)."""
        key = (cls, fields)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = cls(**fields.written())
        return made


def lower(wf: ResolvedWorkflow, tasks: list[CheckedTask], tunings: list[ir.Tuning], order: list[str],
          source: str | None = None) -> ir.Plan:
    by_id = {t.id: t for t in tasks}
    shared = _Shared()
    made: dict[int, tuple] = {}
    spans: dict[Span, ir.SourceSpan | None] = {}  # foreach copies share their span
    skipped: set[str] = set()
    out: list[ir.Task] = []
    params_json: dict[int, str] = {}  # id(IR task) -> its params as compact JSON, made once
    for task_id in order:
        t = by_id[task_id]
        deps = sorted(t.deps)
        if not t.when or any(d in skipped for d in deps):
            skipped.add(task_id)
        d = t.directives
        resources, cache, retry = _directive_objects(d, shared, made)
        span = spans.get(t.span)
        if span is None:
            span = spans[t.span] = source_span(t.span)
        type_name = t.type.name
        params_text = plan_text.params_text(t.params)  # None: not plain JSON; the reference encodes
        if params_text is None:
            key = ir.key_part(type_name, t.type.version, t.uses, t.params, cache.version)
        else:
            key = plan_text.key_part(type_name, t.type.version, t.uses, t.params, params_text, cache.version)
        task = ir.Task(
            id=t.id,
            type=type_name,
            uses=t.uses,
            dependencies=deps,
            params=t.params,
            outputs=list(t.type.outputs),
            resources=resources,
            cache=cache,
            retry=retry,
            timeout=d.timeout_seconds,
            domain=d.domain_name,
            skip=task_id in skipped,
            impl_version=t.type.version,
            key_part=key,
            span=span,
        )
        out.append(task)
        if params_text is not None:
            params_json[id(task)] = params_text
    workflow = ir.Workflow(id=wf.id, name=wf.name, version=wf.version, description=wf.description,
                           params=wf.params, source=source)
    plan = ir.Plan(workflow=workflow, tasks=out, tunings=sorted(tunings, key=lambda x: x.task))
    fingerprint = plan_text.fingerprint(plan, params_json)  # Plan.compute_fingerprint()'s value
    if fingerprint is None:  # values the fast path leaves to the reference (see plan_text)
        return plan.with_fingerprint()
    return plan.model_copy(update={"fingerprint": fingerprint})
