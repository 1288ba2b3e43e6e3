"""The resolve pass: parameters, templates (``use``), ``foreach`` expansion, references and
``when`` — everything that turns the AST into a flat list of concrete tasks.

``resolve(module, templates, ...)`` returns a :class:`~mlflowdsl.compiler.model.ResolvedWorkflow`
whose tasks have final ids (``rf.train``, ``train[svm]``) and evaluated attribute values, and
the diagnostics found. It reads no files (imports are loaded by ``imports.load_imports``).
"""

from __future__ import annotations

from typing import Any

from mlflowdsl.compiler.evaluate import ERROR, Evaluator, Scope, did_you_mean, mentions_names, to_text
from mlflowdsl.compiler.model import OutputRef, RAttr, RBlock, RDefaults, ResolvedWorkflow, RTask, RTune
from mlflowdsl.compiler.params import TypeMismatch, coerce, resolve_params, type_problem
from mlflowdsl.grammar import ast, limits
from mlflowdsl.grammar.diagnostics import Diagnostic

WORKFLOW_ATTRS = ("name", "version", "description")


def resolve(
    module: ast.Module,
    templates: dict[str, ast.Template] | None = None,
    *,
    overrides: dict[str, str] | None = None,
    file_values: dict[str, Any] | None = None,
    file_subject: str = "params file",
) -> tuple[ResolvedWorkflow | None, list[Diagnostic]]:
    wf = module.workflow
    if wf is None:
        return None, [Diagnostic("MLW107", "this file declares no `workflow`", module.span,
                                 hint="add `workflow NAME { ... }` (a file with only templates can be imported)")]
    decls = tuple(d for item in wf.items if isinstance(item, ast.Params) for d in item.decls)
    params, diags = resolve_params(decls, overrides, file_values, file_subject)
    if any(d.severity == "error" for d in diags):
        return None, diags
    ev = Evaluator()
    ex = _Expander(ev, templates or {})
    tasks, tunes, _ = ex.expand(wf.items, Scope(params=params), ())
    meta = _workflow_attrs(wf, ev)
    defaults = _defaults(wf, ev, Scope(params=params))
    diags.extend(ev.diagnostics)
    resolved = ResolvedWorkflow(
        id=wf.id, id_span=wf.id_span, file=module.file,
        name=meta.get("name", ""), version=meta.get("version", ""), description=meta.get("description", ""),
        params=params, param_spans={d.name: d.name_span for d in decls},
        used_params=frozenset(ev.used_params), defaults=defaults, tasks=tuple(tasks), tunes=tuple(tunes),
    )
    return resolved, diags


def _workflow_attrs(wf: ast.Workflow, ev: Evaluator) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in wf.attrs:
        if a.name not in WORKFLOW_ATTRS:
            ev.fail("MLW203", f"unknown workflow attribute `{a.name}`", a.name_span,
                    hint=did_you_mean(a.name, WORKFLOW_ATTRS) or f"a workflow has {', '.join(WORKFLOW_ATTRS)}")
            continue
        if a.name in out:
            ev.fail("MLW209", f"`{a.name}` is set twice", a.name_span)
            continue
        value = ev.eval(a.value, Scope())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and a.name == "version":
            value = to_text(value)
        if value is not ERROR and not isinstance(value, str):
            ev.fail("MLW204", f"`{a.name}` must be a string", a.value.span)
            continue
        if value is not ERROR:
            out[a.name] = value
    return out


def _defaults(wf: ast.Workflow, ev: Evaluator, scope: Scope) -> RDefaults:
    found = [i for i in wf.items if isinstance(i, ast.Defaults)]
    for extra in found[1:]:
        ev.fail("MLW209", "`defaults` appears twice", extra.span, hint="merge them into one block")
    if not found:
        return RDefaults()
    attrs, blocks = _body(found[0].body, scope, ev)
    return RDefaults(tuple(attrs), tuple(blocks), found[0].span)


def _body(body: ast.Body, scope: Scope, ev: Evaluator) -> tuple[list[RAttr], list[RBlock]]:
    attrs: list[RAttr] = []
    blocks: list[RBlock] = []
    seen: dict[str, Any] = {}
    for item in body:
        if item.name in seen:
            first = seen[item.name]
            ev.fail("MLW209", f"`{item.name}` is set twice", item.name_span, hint=f"first set at line {first.line}")
            continue
        seen[item.name] = item.name_span
        if isinstance(item, ast.Block):
            battrs, _ = _body(item.attrs, scope, ev)
            blocks.append(RBlock(item.name, item.name_span, tuple(battrs), item.span))
        else:
            value = ev.eval(item.value, scope)
            if value is not ERROR:
                keys = tuple((e.key, e.key_span) for e in item.value.entries) if isinstance(item.value, ast.MapExpr) else ()
                attrs.append(RAttr(item.name, item.name_span, value, item.value.span, keys))
    return attrs, blocks


class _Expander:
    """Expands one body (the workflow's, or a template's under a use) into tasks."""

    def __init__(self, ev: Evaluator, templates: dict[str, ast.Template]):
        self.ev = ev
        self.templates = templates
        # Uses of uses grow exponentially with the text (each level using the one below twice):
        # the tasks expanded from templates are counted, and expansion stops at the limit.
        self.template_tasks = 0
        self.exhausted = False
        self.outermost: ast.Use | None = None

    def expand(self, items, scope: Scope, stack: tuple[str, ...]) -> tuple[list[RTask], list[RTune], dict[str, Any]]:
        ev = self.ev
        task_items = [i for i in items if isinstance(i, ast.Task)]
        use_items = [i for i in items if isinstance(i, ast.Use)]
        local: dict[str, Any] = {}
        for i in task_items:
            if i.id in local:
                ev.fail("MLW209", f"task `{i.id}` is defined twice", i.id_span, hint=f"first defined at line {local[i.id].line}")
            else:
                local[i.id] = i.id_span
        for u in use_items:
            if u.alias in local:
                ev.fail("MLW209", f"`{u.alias}` is already defined", u.alias_span,
                        hint=f"first defined at line {local[u.alias].line}; pick another name for the use")
            else:
                local[u.alias] = u.alias_span
        copies: dict[int, list[tuple[str, Any]]] = {}
        groups: dict[str, tuple[str, ...]] = {}
        for t in task_items:
            if t.foreach is not None:
                pairs = self._foreach(t, scope)
                copies[id(t)] = pairs
                groups[t.id] = tuple(scope.prefix + cid for cid, _ in pairs)
        scope = Scope(scope.params, scope.names, scope.prefix, frozenset(local), groups, {})
        tasks: list[RTask] = []
        tunes: list[RTune] = []
        uses: dict[str, Any] = {}
        use_tasks: dict[str, tuple[str, ...]] = {}  # `after rf` waits for every task of the use
        for u in use_items:
            sub_tasks, sub_tunes, outputs = self._use(u, scope, stack)
            tasks.extend(sub_tasks)
            tunes.extend(sub_tunes)
            uses[u.alias] = outputs
            use_tasks[u.alias] = tuple(t.id for t in sub_tasks)
            scope = Scope(scope.params, scope.names, scope.prefix, scope.local, groups, dict(uses))
        for t in task_items:
            pairs = copies.get(id(t), [(t.id, None)])
            if stack and not self._count(len(pairs)):
                break
            for cid, value in pairs:
                inner = scope if t.foreach is None else scope.bind(**{t.foreach.var: value})
                tasks.append(self._task(t, scope.prefix + cid, inner, use_tasks))
        for item in items:
            if isinstance(item, ast.Tune):
                targets = groups[item.target] if item.target in groups else (scope.task_id(item.target),)
                attrs, blocks = _body(item.body, scope, ev)
                for target in targets:
                    tunes.append(RTune(target, item.target_span, tuple(attrs), tuple(blocks), item.span))
        outputs: dict[str, Any] = {}
        for item in items:
            if isinstance(item, ast.Output):
                if item.name in outputs:
                    ev.fail("MLW209", f"output `{item.name}` is declared twice", item.name_span)
                    continue
                value = ev.eval(item.value, scope)
                if value is not ERROR:
                    outputs[item.name] = value
        return tasks, tunes, outputs

    def _foreach(self, t: ast.Task, scope: Scope) -> list[tuple[str, Any]]:
        """``(copy id, loop value)`` pairs; the copy is named by the value as written."""
        fe = t.foreach
        values = self.ev.eval(fe.iterable, scope)
        if values is ERROR:
            return []
        if not isinstance(values, list):
            self.ev.fail("MLW204", f"`foreach` needs a list, got {to_text(values)!r}", fe.iterable.span)
            return []
        literal = fe.iterable.items if isinstance(fe.iterable, ast.ListExpr) else [None] * len(values)
        pairs: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for value, node in zip(values, literal):
            if isinstance(value, (dict, list, OutputRef)) or value is None:
                self.ev.fail("MLW204", "`foreach` elements must be names, strings or numbers", fe.iterable.span)
                return []
            key = node.raw if isinstance(node, ast.Float) and node.raw else to_text(value)
            if key in seen:
                self.ev.fail("MLW209", f"`foreach` would create `{t.id}[{key}]` twice", fe.iterable.span,
                             hint="remove the duplicate element")
                continue
            seen.add(key)
            pairs.append((f"{t.id}[{key}]", value))
        return pairs

    def _task(self, t: ast.Task, task_id: str, scope: Scope, use_tasks: dict[str, tuple[str, ...]]) -> RTask:
        ev = self.ev
        after: list[tuple[str, Any]] = []
        for ident in t.after:
            if ident.name in scope.groups:
                after.extend((cid, ident.span) for cid in scope.groups[ident.name])
            elif ident.name in use_tasks:
                after.extend((tid, ident.span) for tid in use_tasks[ident.name])
            else:
                after.append((scope.task_id(ident.name), ident.span))
        when, when_span, constant = True, None, False
        body_items = []
        for item in t.body:
            if isinstance(item, ast.Attr) and item.name == "when":
                value = ev.eval(item.value, scope)
                when_span = item.value.span
                if value is ERROR:
                    continue
                if not isinstance(value, bool):
                    ev.fail("MLW204", f"`when` must be true or false, got {to_text(value)!r}", item.value.span,
                            hint="compare a parameter, e.g. `when = params.env == \"prod\"`")
                    continue
                when, constant = value, not mentions_names(item.value)
            else:
                body_items.append(item)
        attrs, blocks = _body(tuple(body_items), scope, ev)
        return RTask(task_id, t.id_span, t.type, t.type_span, t.span, tuple(after), tuple(attrs), tuple(blocks),
                     when, when_span, constant)

    def _count(self, n: int) -> bool:
        """Count ``n`` more tasks expanded from templates; False (reported once) past the limit."""
        self.template_tasks += n
        if self.template_tasks > limits.MAX_TEMPLATE_TASKS and not self.exhausted:
            self.exhausted = True
            top = self.outermost
            self.ev.fail("MLW109", f"`use {top.alias} = {top.template}(...)` expands to more than "
                         f"{limits.MAX_TEMPLATE_TASKS} tasks", top.span,
                         hint="templates that use other templates several times grow exponentially; "
                              "use `foreach` for many similar tasks")
        return not self.exhausted

    def _use(self, u: ast.Use, scope: Scope, stack: tuple[str, ...]):
        ev = self.ev
        if self.exhausted:
            return [], [], None
        if not stack:
            self.outermost = u
        if len(stack) >= limits.MAX_TEMPLATE_DEPTH:
            self.exhausted = True
            ev.fail("MLW109", f"templates nest more than {limits.MAX_TEMPLATE_DEPTH} deep: "
                    + " -> ".join(stack[:3] + ("…",) + stack[-2:] + (u.template,)), u.template_span,
                    hint="flatten the chain of templates using templates")
            return [], [], None
        template = self.templates.get(u.template)
        if template is None:
            ev.fail("MLW216", f"unknown template `{u.template}`", u.template_span,
                    hint=did_you_mean(u.template, self.templates) or "define it with `template` or `import` the file that does")
            return [], [], None
        if u.template in stack:
            ev.fail("MLW216", "template uses itself: " + " -> ".join(stack + (u.template,)), u.template_span)
            return [], [], None
        declared = {p.name: p for p in template.params}
        bound: dict[str, Any] = {}
        failed = False
        for arg in u.args:
            if arg.name not in declared:
                ev.fail("MLW216", f"template `{template.name}` has no parameter `{arg.name}`", arg.name_span,
                        hint=did_you_mean(arg.name, declared) or f"its parameters: {', '.join(declared) or 'none'}")
                failed = True
                continue
            if arg.name in bound:
                ev.fail("MLW209", f"argument `{arg.name}` is given twice", arg.name_span)
                continue
            value = ev.eval(arg.value, scope)
            if value is ERROR:
                failed = True
                continue
            bound[arg.name] = self._typed(declared[arg.name], value, arg.value.span)
            failed = failed or bound[arg.name] is ERROR
        for p in template.params:
            if p.name in bound:
                continue
            if p.default is None:
                ev.fail("MLW216", f"template `{template.name}` needs the argument `{p.name}`", u.span,
                        hint=f"add `{p.name} = ...` to the use")
                failed = True
                continue
            bound[p.name] = self._typed(p, ev.eval(p.default, scope), p.default.span)
        if failed:
            return [], [], None
        inner = Scope(scope.params, bound, scope.prefix + u.alias + ".")
        return self.expand(template.items, inner, stack + (u.template,))

    def _typed(self, p: ast.TemplateParam, value: Any, span) -> Any:
        if p.type is None or value is ERROR:
            return value
        problem = type_problem(p.type)
        if problem:
            return self.ev.fail("MLW204", problem[0], p.type.span, hint=problem[1])
        try:
            return coerce(value, p.type)
        except TypeMismatch as exc:
            return self.ev.fail("MLW216", f"argument `{p.name}`: {exc}", span)
