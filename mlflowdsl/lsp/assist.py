"""Hover and completion: what a name means and what may be written at the cursor, from the
symbol index of the last parse and the task types' schemas (``schema.py``)."""

from __future__ import annotations

import re

from lsprotocol import types

from mlflowdsl.grammar import ast
from mlflowdsl.lsp import schema
from mlflowdsl.lsp.analysis import Analysis
from mlflowdsl.lsp.navigation import occurrence_at
from mlflowdsl.lsp.symbols import Occurrence, SymbolIndex

_QUANTITY = re.compile(r"\d+(?:\.\d+)?([A-Za-z]+)")
_STRING_VALUE = re.compile(r"(\w+)\s*=\s*\"([^\"]*)\"")
_K = types.CompletionItemKind


def _md(text: str) -> types.Hover:
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))


def _task_type(idx: SymbolIndex, scope: str, task_id: str) -> str | None:
    t = idx.tasks.get((scope, task_id))
    return t.type if t is not None else None


def _attr_value(task: ast.Task, name: str) -> str | None:
    for entry in task.body:
        if isinstance(entry, ast.Attr) and entry.name == name and isinstance(entry.value, ast.Str) and entry.value.is_plain:
            return entry.value.text
    return None


# ---------------------------------------------------------------------------- hover


def hover(a: Analysis, pos: types.Position) -> types.Hover | None:
    idx = a.index
    if idx is None:
        return None
    occ = occurrence_at(a, pos)
    if occ is not None:
        text = _hover_occurrence(idx, occ)
        if text:
            return _md(text)
    line, col = a.lines.columns(pos)
    src = a.lines.line(pos.line)
    for m in _QUANTITY.finditer(src):
        if m.start() < col <= m.end() + 1:
            doc = schema.unit_doc(m.group(1))
            if doc:
                return _md(doc)
    task = idx.task_at_line(line)
    for m in _STRING_VALUE.finditer(src):
        if task is not None and m.start(2) < col <= m.end(2) + 1:
            names = schema.hyperparameters(task.type, m.group(2)) if m.group(1) == "algorithm" else []
            if names:
                return _md(f"**algorithm `{m.group(2)}`**\n\nhyperparameters: " + ", ".join(f"`{n}`" for n in names))
    return None


def _hover_occurrence(idx: SymbolIndex, occ: Occurrence) -> str | None:
    if occ.kind == "type":
        return schema.type_doc(occ.name)
    if occ.kind == "attr" and occ.owner is not None:
        type_name = _task_type(idx, occ.scope, occ.owner)
        found = schema.attribute(type_name, occ.name) if type_name else None
        if found is not None:
            return found.markdown()
        if occ.name in schema.task_level_names():
            return f"**{occ.name}**: a directive every task takes (see docs/language.md)"
        return None
    if occ.kind in ("task", "use"):
        t = idx.tasks.get((occ.scope, occ.name))
        if t is not None:
            cls = schema.task_types().get(t.type)
            outs = ", ".join(f"`{o}` ({k})" for o, k in cls.outputs.items()) if cls else "?"
            return f"**task `{t.id}`**: `{t.type}`\n\noutputs: {outs}"
        use = idx.uses.get((occ.scope, occ.name))
        if use is not None:
            return f"**`{use.alias}`**: a use of template `{use.template}`"
        return None
    if occ.kind == "output" and occ.owner is not None:
        type_name = _task_type(idx, occ.scope, occ.owner)
        cls = schema.task_types().get(type_name) if type_name else None
        if cls is None:
            return None
        name = cls.default_output if occ.name == "output" else occ.name
        kind = cls.outputs.get(name)
        return f"**{occ.owner}.{occ.name}**: output `{name}` of `{type_name}` ({kind or 'unknown output'})"
    if occ.kind == "param":
        d = idx.params.get(occ.name)
        if d is None:
            return None
        text = f"**params.{d.name}**: `{d.type.spelled()}`"
        if d.default is None:
            text += " (required: give it with `-p " + d.name + "=...`)"
        return text
    if occ.kind == "template":
        t = idx.templates.get(occ.name)
        if t is None:
            return f"**template `{occ.name}`** (imported)"
        params = ", ".join(p.name for p in t.params)
        outs = ", ".join(o.name for o in t.items if isinstance(o, ast.Output))
        return f"**template `{t.name}`**({params})\n\noutputs: {outs}"
    if occ.kind == "import":
        return f"**import** `{occ.name}` (relative to this file)"
    return None


# ---------------------------------------------------------------------------- completion


def _items(names, kind: types.CompletionItemKind, detail: str | None = None) -> list[types.CompletionItem]:
    return [types.CompletionItem(label=n, kind=kind, detail=detail) for n in dict.fromkeys(names)]


def _snippets(names) -> list[types.CompletionItem]:
    return [types.CompletionItem(label=n, kind=_K.Module, insert_text=f"{n} {{\n\t$0\n}}",
                                 insert_text_format=types.InsertTextFormat.Snippet, detail="block")
            for n in names]


def _block_at(task: ast.Task, line: int) -> ast.Block | None:
    for entry in task.body:
        if isinstance(entry, ast.Block) and entry.span.line <= line <= entry.span.end_line:
            return entry
    return None


def _tune_at(module: ast.Module, line: int) -> ast.Tune | None:
    wf = module.workflow
    if wf is None:
        return None
    return next((t for t in wf.tunes if t.span.line <= line <= t.span.end_line), None)


def _algorithm_names(idx: SymbolIndex, task: ast.Task | None) -> list[str]:
    if task is None:
        return []
    return schema.hyperparameters(task.type, _attr_value(task, "algorithm") or "random_forest")


def completion(a: Analysis, pos: types.Position) -> list[types.CompletionItem]:
    idx = a.index
    line, col = a.lines.columns(pos)
    prefix = a.lines.line(pos.line)[: col - 1]
    if re.search(r"\btask\s+[\w\[\]]+\s*:\s*\w*$", prefix):
        return [types.CompletionItem(label=n, kind=_K.Class, documentation=schema.type_doc(n))
                for n in sorted(schema.task_types())]
    m = re.search(r"(?<![\w.])\d+(?:\.\d+)?([A-Za-z]+)$", prefix)
    if m:  # a unit after a number: replace the letters typed so far
        start = types.Position(pos.line, pos.character - len(m.group(1)))
        return [types.CompletionItem(label=u, kind=_K.Unit, detail=schema.unit_doc(u), filter_text=u,
                                     text_edit=types.TextEdit(range=types.Range(start, pos), new_text=u))
                for u in schema.all_units()]
    if idx is None:
        return _items(schema.KEYWORDS, _K.Keyword)
    scope = idx.scope_at_line(line)
    task = idx.task_at_line(line)
    m = re.search(r"\bparams\.(\w*)$", prefix)
    if m:
        return _items(sorted(idx.params), _K.Variable, "parameter")
    m = re.search(r"(?<![\w.])(\w+)(?:\[[^\]]*\])?\.(\w*)$", prefix)
    if m:
        return _outputs(idx, scope, m.group(1))
    m = re.search(r"(\w+)\s*=\s*\"(\w*)$", prefix)
    if m:
        found = schema.attribute(task.type, m.group(1)) if task is not None else None
        return _items(found.choices if found else (), _K.EnumMember)
    if re.search(r"\bhyperparameters\s*=\s*\{[^}]*$", prefix):
        return _items(_algorithm_names(idx, task), _K.Field, "hyperparameter")
    m = re.search(r"(\w+)\s*=\s*(\w*)$", prefix)
    if m:
        if m.group(1) in schema.NAME_VALUES:
            return _items(schema.NAME_VALUES[m.group(1)], _K.EnumMember)
        ids = [i for (s, i) in list(idx.tasks) + list(idx.uses) if s == scope]
        return _items(ids, _K.Reference, "task") + _items(["params"], _K.Module)
    if re.fullmatch(r"\s*\w*", prefix):
        return _statement_names(a, idx, line, task)
    return []


def _outputs(idx: SymbolIndex, scope: str, owner: str) -> list[types.CompletionItem]:
    t = idx.tasks.get((scope, owner))
    if t is not None:
        cls = schema.task_types().get(t.type)
        if cls is None:
            return []
        outs = {**cls.outputs, "output": cls.outputs.get(cls.default_output, "?")}
        return [types.CompletionItem(label=o, kind=_K.Property, detail=k) for o, k in outs.items()]
    use = idx.uses.get((scope, owner))
    if use is not None and use.template in idx.templates:
        outs = [o.name for o in idx.templates[use.template].items if isinstance(o, ast.Output)]
        return _items(outs, _K.Property, "template output")
    return []


def _statement_names(a: Analysis, idx: SymbolIndex, line: int, task: ast.Task | None) -> list[types.CompletionItem]:
    """What may start a line: a task's attributes and blocks, a block's fields, a tune's fields,
    or the workflow's statements."""
    if task is not None and task.span.line < line:
        block = _block_at(task, line)
        if block is not None and block.span.line < line:
            return _items(schema.directive_fields(block.name), _K.Field, block.name)
        items = [types.CompletionItem(label=f.name, kind=_K.Field, detail=f.type,
                                      documentation=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                                                        value=f.markdown()))
                 for f in schema.attributes(task.type)]
        return items + _items(schema.task_level_names(), _K.Keyword, "directive") + _snippets(schema.BLOCK_NAMES[:-1])
    tune = _tune_at(idx.module, line)
    if tune is not None:
        search = next((b for b in tune.body if isinstance(b, ast.Block) and b.name == "search"
                       and b.span.line < line <= b.span.end_line), None)
        if search is not None:
            target = idx.tasks.get(("workflow", tune.target))
            return _items(_algorithm_names(idx, target), _K.Field, "hyperparameter")
        return _items(schema.TUNE_FIELDS, _K.Field, "tune")
    wf = idx.module.workflow
    if wf is not None and wf.span.line < line < wf.span.end_line:
        return _items(schema.workflow_attrs(), _K.Field, "workflow") + _items(
            ("task", "params", "defaults", "tune", "use"), _K.Keyword)
    return _items(("workflow", "template", "import", "mlw"), _K.Keyword)
