"""Where names are defined and used in one parsed file: tasks, params, templates, template
uses and imports, each occurrence with its span and the scope it lives in.

The workflow is one scope; each template is its own (its tasks and parameters are local).
A reference ``a.b`` names the task (or template use) ``a``; ``params.x`` names the parameter
``x``; ``after a, b`` and ``tune a`` name tasks; ``use u = t(...)`` names the template ``t``.

>>> from mlflowdsl.grammar.parser import parse_text
>>> m = parse_text('workflow w {\\n  params { s: int = 1 }\\n'
...                '  task a: data_preprocessing { source = "x.csv"  seed = params.s }\\n'
...                '  task b: model_training after a { data = a.output }\\n}\\n', "w.mlw")
>>> idx = SymbolIndex(m)
>>> [(o.kind, o.name, o.span.line, o.definition) for o in idx.occurrences_of(idx.at(4, 43))]
[('task', 'a', 3, True), ('task', 'a', 4, False), ('task', 'a', 4, False)]
>>> idx.at(3, 64).kind, idx.at(3, 64).name
('param', 's')
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Union

from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Span

WORKFLOW = "workflow"


class Occurrence(NamedTuple):  # a tuple: a large file has tens of thousands
    kind: str  # "task", "param", "template", "use", "import", "type", "attr", "output"
    name: str
    span: Span
    scope: str  # WORKFLOW or "template:NAME"
    definition: bool = False
    # for kind "output" (``a.model``): the task or use it belongs to; for "attr": the task id
    owner: str | None = None


def contains(span: Span, line: int, column: int) -> bool:
    """Whether the 1-based position is inside ``span`` (its end included, for a cursor just
    after a word)."""
    if (line, column) < (span.line, span.column):
        return False
    return (line, column) <= (span.end_line, span.end_column)


class SymbolIndex:
    def __init__(self, module: ast.Module):
        self.module = module
        self.occurrences: list[Occurrence] = []
        self.tasks: dict[tuple[str, str], ast.Task] = {}  # (scope, id) -> task
        self.params: dict[str, ast.ParamDecl] = {}
        self.templates: dict[str, ast.Template] = {t.name: t for t in module.templates}
        self.uses: dict[tuple[str, str], ast.Use] = {}
        for imp in module.imports:
            self._add("import", imp.path, imp.path_span, WORKFLOW, True)
        for t in module.templates:
            self._template(t)
        if module.workflow is not None:
            self._items(module.workflow.items, WORKFLOW, frozenset())

    # ------------------------------------------------------------------ building

    def _add(self, kind: str, name: str, span: Span, scope: str, definition: bool = False,
             owner: str | None = None) -> None:
        self.occurrences.append(Occurrence(kind, name, span, scope, definition, owner))

    def _template(self, t: ast.Template) -> None:
        scope = f"template:{t.name}"
        self._add("template", t.name, t.name_span, WORKFLOW, True)
        local = frozenset(p.name for p in t.params)
        for p in t.params:
            self._add("tparam", p.name, p.span, scope, True)
        self._items(t.items, scope, local)

    def _items(self, items, scope: str, local: frozenset[str]) -> None:
        for item in items:
            if isinstance(item, ast.Task):
                self.tasks[(scope, item.id)] = item
            elif isinstance(item, ast.Use):
                self.uses[(scope, item.alias)] = item
        for item in items:
            if isinstance(item, ast.Params):
                for d in item.decls:
                    self.params[d.name] = d
                    self._add("param", d.name, d.name_span, scope, True)
                    for e in (d.default, d.constraint):
                        self._expr(e, scope, local)
            elif isinstance(item, ast.Task):
                self._task(item, scope, local)
            elif isinstance(item, ast.Tune):
                self._add("task", item.target, item.target_span, scope)
                self._body(item.body, scope, local, None)
            elif isinstance(item, ast.Use):
                self._add("use", item.alias, item.alias_span, scope, True)
                self._add("template", item.template, item.template_span, WORKFLOW)
                for a in item.args:
                    self._expr(a.value, scope, local)
            elif isinstance(item, (ast.Attr, ast.Output)):
                self._expr(item.value, scope, local)
            elif isinstance(item, ast.Defaults):
                self._body(item.body, scope, local, None)

    def _task(self, t: ast.Task, scope: str, local: frozenset[str]) -> None:
        self._add("task", t.id, t.id_span, scope, True)
        self._add("type", t.type, t.type_span, scope, owner=t.id)
        for ident in t.after:
            self._add("task", ident.name, ident.span, scope)
        inner = local
        if t.foreach is not None:
            self._expr(t.foreach.iterable, scope, local)
            inner = local | {t.foreach.var}
        self._body(t.body, scope, inner, t.id)

    def _body(self, body: ast.Body, scope: str, local: frozenset[str], owner: str | None) -> None:
        for entry in body:
            if isinstance(entry, ast.Attr):
                if owner is not None:
                    self._add("attr", entry.name, entry.name_span, scope, owner=owner)
                self._expr(entry.value, scope, local)
            else:
                for a in entry.attrs:
                    self._expr(a.value, scope, local)

    def _expr(self, e: Union[ast.Expr, ast.Range, ast.Choices, None], scope: str, local: frozenset[str]) -> None:
        for ref in _refs(e):
            if isinstance(ref, ast.Name):
                if ref.name in local:
                    self._add("tparam", ref.name, ref.span, scope)
                continue
            head = ref.parts[0]
            if head.name == "params" and len(ref.parts) > 1:
                self._add("param", ref.parts[1].name, ref.parts[1].span, WORKFLOW)
            elif head.name in local:
                self._add("tparam", head.name, head.span, scope)
            else:
                kind = "use" if (scope, head.name) in self.uses else "task"
                self._add(kind, head.name, head.span, scope)
                if len(ref.parts) > 1:
                    self._add("output", ref.parts[1].name, ref.parts[1].span, scope, owner=head.name)

    # ------------------------------------------------------------------ queries

    def at(self, line: int, column: int) -> Occurrence | None:
        """The innermost occurrence at a 1-based position."""
        best = None
        for o in self.occurrences:
            if contains(o.span, line, column):
                if best is None or (o.span.line, o.span.column) >= (best.span.line, best.span.column):
                    best = o
        return best

    def occurrences_of(self, target: Occurrence) -> list[Occurrence]:
        """Every occurrence of the symbol ``target`` is one of (definition first)."""
        kind = _symbol_kind(target.kind)
        if kind is None:
            return []
        same = [o for o in self.occurrences
                if _symbol_kind(o.kind) == kind and o.name == target.name
                and (kind in ("param", "template", "import") or o.scope == target.scope)]
        return sorted(same, key=lambda o: (not o.definition, o.span.line, o.span.column))

    def definition_of(self, target: Occurrence) -> Occurrence | None:
        return next((o for o in self.occurrences_of(target) if o.definition), None)

    def task_at_line(self, line: int) -> ast.Task | None:
        """The task whose body holds the 1-based ``line``."""
        for t in self.tasks.values():
            if t.span.line <= line <= t.span.end_line:
                return t
        return None

    def scope_at_line(self, line: int) -> str:
        for t in self.module.templates:
            if t.span.line <= line <= t.span.end_line:
                return f"template:{t.name}"
        return WORKFLOW


def _symbol_kind(kind: str) -> str | None:
    # a task and a template use share one namespace (``a.output`` may name either)
    return {"task": "task", "use": "task", "param": "param", "template": "template", "tparam": "tparam",
            "import": "import"}.get(kind)


def _refs(e) -> Iterator[ast.Ref | ast.Name]:
    """The references and bare names in an expression (a bare name may be a template parameter)."""
    if e is None:
        return
    if isinstance(e, (ast.Ref, ast.Name)):
        yield e
    elif isinstance(e, ast.Str):
        for p in e.parts:
            if not isinstance(p, str):
                yield from _refs(p)
    elif isinstance(e, ast.ListExpr):
        for i in e.items:
            yield from _refs(i)
    elif isinstance(e, ast.MapExpr):
        for entry in e.entries:
            yield from _refs(entry.value)
    elif isinstance(e, ast.Call):
        for a in e.args:
            yield from _refs(a.value)
    elif isinstance(e, ast.BinOp):
        yield from _refs(e.left)
        yield from _refs(e.right)
    elif isinstance(e, ast.UnaryOp):
        yield from _refs(e.operand)
    elif isinstance(e, ast.Range):
        yield from _refs(e.low)
        yield from _refs(e.high)
    elif isinstance(e, ast.Choices):
        yield from _refs(e.values)


def outline(module: ast.Module) -> list[tuple[str, str, Span, Span, list]]:
    """(kind, name, span, name span, children) for the document outline."""
    out: list[tuple[str, str, Span, Span, list]] = []
    for imp in module.imports:
        out.append(("import", imp.path, imp.span, imp.path_span, []))
    for t in module.templates:
        out.append(("template", t.name, t.span, t.name_span, _outline_items(t.items)))
    wf = module.workflow
    if wf is not None:
        out.append(("workflow", wf.id, wf.span, wf.id_span, _outline_items(wf.items)))
    return out


def _outline_items(items) -> list:
    out = []
    for item in items:
        if isinstance(item, ast.Task):
            out.append(("task", f"{item.id}: {item.type}", item.span, item.id_span, []))
        elif isinstance(item, ast.Params):
            out.extend(("param", f"{d.name}: {d.type.spelled()}", d.span, d.name_span, []) for d in item.decls)
        elif isinstance(item, ast.Use):
            out.append(("use", f"{item.alias} = {item.template}(...)", item.span, item.alias_span, []))
        elif isinstance(item, ast.Tune):
            out.append(("tune", f"tune {item.target}", item.span, item.target_span, []))
        elif isinstance(item, ast.Output):
            out.append(("output", item.name, item.span, item.name_span, []))
    return out
