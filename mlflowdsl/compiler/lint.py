"""Lint rules: warnings about workflows that compile but are probably not what was meant.

Each rule is one small function with a docstring naming the anti-pattern and the fix,
registered with ``@rule``. ``strict`` turns warnings into errors; a comment
``# mlw: ignore[MLW401]`` (several codes comma-separated) on a warning's line silences it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import networkx as nx

from mlflowdsl.compiler.checked import CheckedTask
from mlflowdsl.compiler.model import ResolvedWorkflow
from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Diagnostic

log = logging.getLogger(__name__)
_IGNORE = re.compile(r"#\s*mlw:\s*ignore\[([A-Za-z0-9_,\s]+)\]")


@dataclass(frozen=True)
class LintContext:
    workflow: ResolvedWorkflow
    tasks: list[CheckedTask]
    graph: nx.DiGraph


Rule = Callable[[LintContext], Iterable[Diagnostic]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


@rule
def unused_parameter(ctx: LintContext) -> Iterator[Diagnostic]:
    """MLW401: a declared parameter that nothing reads. Use it (``params.NAME``) or delete it."""
    wf = ctx.workflow
    for name in sorted(set(wf.params) - wf.used_params):
        yield Diagnostic("MLW401", f"parameter `{name}` is never used", wf.param_spans.get(name),
                         hint="use it as `params." + name + "` or remove it")


@rule
def unused_result(ctx: LintContext) -> Iterator[Diagnostic]:
    """MLW402: a task that nothing depends on and whose type is not a sink (deployment,
    evaluation, batch inference): its work is thrown away. Use its output or remove it."""
    for t in ctx.tasks:
        if ctx.graph.out_degree(t.id) == 0 and not getattr(t.type.cls, "sink", False):
            yield Diagnostic("MLW402", f"nothing uses the results of task `{t.id}` ({t.type.name})", t.id_span,
                             hint="use its output in another task, or remove it")


@rule
def cache_disabled_on_expensive_task(ctx: LintContext) -> Iterator[Diagnostic]:
    """MLW403: ``cache { strategy = none }`` on an expensive type (training, tuning) recomputes
    it on every run. Use ``disk`` (the default) or another strategy."""
    for t in ctx.tasks:
        if getattr(t.type.cls, "expensive", False) and t.directives.cache.strategy == "none":
            yield Diagnostic("MLW403", f"task `{t.id}` ({t.type.name}) is expensive but its cache is disabled",
                             t.id_span, hint="remove `strategy = none` (or use disk, memory, redis or hybrid)")


@rule
def when_always_false(ctx: LintContext) -> Iterator[Diagnostic]:
    """MLW404: a ``when`` that is false whatever the parameters say (a constant): the task
    never runs. Make it depend on a parameter or remove the task."""
    for t in ctx.tasks:
        if not t.when and t.when_constant:
            yield Diagnostic("MLW404", f"task `{t.id}` never runs: its `when` is always false", t.when_span or t.id_span,
                             hint="make it depend on a parameter, e.g. `when = params.deploy`")


@rule
def data_files(ctx: LintContext) -> Iterator[Diagnostic]:
    """MLW220 / MLW405 / MLW406: what a task type's ``check_data`` finds in the data files its
    params name (headers and a bounded sample only): a column that is not in the file or a
    missing target is an error, a missing file a warning (it may exist only where the task
    runs), a column with one value per row (an id, free text) a warning."""
    spans = {t.id: t for t in ctx.workflow.tasks}
    for t in ctx.tasks:
        check = getattr(t.type.cls, "check_data", None)
        if check is None or t.type.name == "custom":
            continue
        base_dir = os.path.dirname(os.path.abspath(t.span.file)) if not t.span.file.startswith("<") else os.getcwd()
        try:
            problems = check(t.params, base_dir)
        except Exception as exc:  # noqa: BLE001 - a plug-in's check must never stop compilation
            log.debug("%s.check_data failed for task %s: %r", t.type.name, t.id, exc)
            continue
        rtask = spans.get(t.id)
        for p in problems:
            span = t.id_span
            if rtask is not None:
                for a in rtask.attrs:
                    if t.type.aliases.get(a.name, a.name) == p.attribute:
                        span = a.span
                        break
            code = "MLW405" if p.kind == "file" else ("MLW406" if p.warning else "MLW220")
            yield Diagnostic(code, f"task `{t.id}`: {p.message}", span, hint=p.hint)


def ignored_codes(modules: Iterable[ast.Module]) -> dict[tuple[str, int], set[str]]:
    """(file, line) -> codes silenced by ``# mlw: ignore[...]`` comments on that line.

    >>> from mlflowdsl.grammar.diagnostics import Span
    >>> m = ast.Module(Span("f", 1, 1, 1, 1), "f", None, (), (), None,
    ...                (ast.Comment(Span("f", 3, 9, 3, 40), "# mlw: ignore[MLW401, MLW402]"),))
    >>> ignored_codes([m])[("f", 3)] == {"MLW401", "MLW402"}
    True
    """
    out: dict[tuple[str, int], set[str]] = {}
    for m in modules:
        for c in m.comments:
            match = _IGNORE.search(c.text)
            if match:
                codes = {code.strip().upper() for code in match.group(1).split(",") if code.strip()}
                out.setdefault((c.span.file, c.span.line), set()).update(codes)
    return out


def lint(ctx: LintContext, *, strict: bool = False,
         ignores: dict[tuple[str, int], set[str]] | None = None) -> list[Diagnostic]:
    """Run every rule; drop silenced warnings; promote the rest to errors when ``strict``."""
    ignores = ignores or {}
    out: list[Diagnostic] = []
    for r in RULES:
        for d in r(ctx):
            s = d.span
            if s is not None and d.code in ignores.get((s.file, s.line), ()):
                continue
            out.append(d.as_error() if strict else d)
    return out
