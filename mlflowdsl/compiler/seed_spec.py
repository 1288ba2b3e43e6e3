"""The JSON/YAML workflow form -> the same AST the parser builds.

Every later pass sees one representation, so a JSON document and the equivalent ``.mlw``
file compile to the same IR. Spans point at the line of each task's ``"task_id"`` (and of
each parameter key inside it) when the raw text is known, else at line 1.

>>> m = spec_to_module({"workflow_id": "w", "tasks": [
...     {"task_id": "a", "task_type": "data_preprocessing", "parameters": {"source": "x.csv"}}]})
>>> [t.id for t in m.workflow.tasks]
['a']
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

from mlflowdsl.compiler.seed_document import load_document
from mlflowdsl.errors import CompileError
from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Diagnostic, Span
from mlflowdsl.grammar.limits import number_problem

__all__ = ["load_document", "spec_to_module", "to_expr"]

WORKFLOW_KEYS = ("workflow_id", "name", "description", "version", "global_parameters", "defaults", "tasks")
TASK_KEYS = (
    "task_id", "task_type", "dependencies", "parameters", "resources", "cache", "retry",
    "timeout", "domain", "when", "uses", "foreach",
)
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
_DOTTED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?)*)\s*\Z")
_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]*)\])?\Z")


_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_YAML_KEY = re.compile(r"""^[ \t]*(?:-[ \t]+)?(?:"([^"\n]*)"|'([^'\n]*)'|([^\s:#'"{}\[\],][^:#\n]*?))[ \t]*:(?=[ \t]|$)""",
                       re.MULTILINE)


@dataclass
class _Locator:
    """Finds the line/column of keys in the raw text, so diagnostics point somewhere useful.

    The text is scanned once for keys (every JSON string followed by ``:``, or every YAML
    ``key:``); lookups then walk the keys of one task's stretch of text.
    """

    file: str
    text: str | None
    yaml: bool = False
    _line_starts: list[int] | None = None
    _keys: list[tuple[int, str, int]] | None = None  # (offset, key, offset after the colon)

    def span_at(self, offset: int, length: int) -> Span:
        if self.text is None or offset < 0:
            return Span(self.file, 1, 1, 1, 2)
        if self._line_starts is None:
            self._line_starts = [0] + [i + 1 for i, c in enumerate(self.text) if c == "\n"]
        line = bisect.bisect_right(self._line_starts, offset)
        col = offset - self._line_starts[line - 1] + 1
        return Span(self.file, line, col, line, col + max(1, length))

    def keys(self) -> list[tuple[int, str, int]]:
        if self._keys is None:
            self._keys = self._scan_yaml() if self.yaml else self._scan_json()
        return self._keys

    def _scan_json(self) -> list[tuple[int, str, int]]:
        text, out = self.text or "", []
        for m in _JSON_STRING.finditer(text):  # strings in order: never starts inside one
            after = m.end()
            while after < len(text) and text[after] in " \t\r\n":
                after += 1
            if after < len(text) and text[after] == ":":
                try:
                    key = json.loads(m.group())
                except ValueError:
                    continue
                out.append((m.start(), key, after + 1))
        return out

    def _scan_yaml(self) -> list[tuple[int, str, int]]:
        out = []
        for m in _YAML_KEY.finditer(self.text or ""):
            key = next(g for g in m.groups() if g is not None).strip()
            group = next(i for i, g in enumerate(m.groups(), 1) if g is not None)
            out.append((m.start(group) - (group < 3), key, m.end()))
        return out

    def find_key(self, key: str, value: str | None = None, start: int = 0, end: int | None = None) -> int:
        """Offset of ``"key": "value"`` (JSON) or ``key: value`` (YAML) in [start, end); -1 if absent."""
        if self.text is None:
            return -1
        keys = self.keys()
        i = bisect.bisect_left(keys, (start, "", 0))
        stop = len(self.text) if end is None else end
        while i < len(keys) and keys[i][0] < stop:
            offset, found, after = keys[i]
            if found == key and (value is None or self._value_at(after, value)):
                return offset
            i += 1
        return -1

    def _value_at(self, pos: int, value: str) -> bool:
        rest = self.text[pos:pos + len(value) + 64].lstrip()
        for quoted in (json.dumps(value), f"'{value}'"):
            if rest.startswith(quoted):
                return True
        return rest.startswith(value) and (len(rest) == len(value) or not (rest[len(value)].isalnum() or rest[len(value)] == "_"))


def spec_to_module(spec: dict, file: str = "<spec>", text: str | None = None) -> ast.Module:
    """Convert a JSON/YAML workflow document to an ``ast.Module``; raises ``CompileError``
    (MLW106) listing every structural problem."""
    loc = _Locator(file, text, yaml=file.lower().endswith((".yaml", ".yml")))
    whole = Span(file, 1, 1, 1, 2)
    diags: list[Diagnostic] = []
    if not isinstance(spec, dict):
        raise CompileError([Diagnostic("MLW106", "a workflow document must be an object", whole)])
    bad = _unrepresentable(spec, loc, whole)
    if bad:
        raise CompileError(bad)
    _check_keys(spec, WORKFLOW_KEYS, "workflow document", whole, diags)
    wf_id = spec.get("workflow_id")
    if not isinstance(wf_id, str) or not wf_id:
        diags.append(Diagnostic("MLW106", "the document needs a `workflow_id` string", whole,
                                hint='add "workflow_id": "my_pipeline"'))
        wf_id = "workflow"
    elif not _WORD.fullmatch(wf_id):
        diags.append(Diagnostic("MLW106", f"`workflow_id` {_quoted(wf_id)} is not a name", whole,
                                hint="a workflow id is a name as in .mlw: letters, digits and `_`, not starting with a digit"))
    id_off = loc.find_key("workflow_id")
    id_span = loc.span_at(id_off, len("workflow_id") + 2) if id_off >= 0 else whole
    items: list[Any] = []
    for key in ("name", "description", "version"):
        if key in spec:
            value = spec[key]
            span = _key_span(loc, key, 0, None, whole)
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                diags.append(Diagnostic("MLW106", f"`{key}` must be a string", span))
                continue
            items.append(ast.Attr(span, key, span, ast.Str(span, (str(value),))))
    params = spec.get("global_parameters") or {}
    if not isinstance(params, dict):
        diags.append(Diagnostic("MLW106", "`global_parameters` must be an object", _key_span(loc, "global_parameters", 0, None, whole)))
        params = {}
    if params:
        items.append(_params(params, loc, whole, diags))
    defaults = spec.get("defaults")
    if defaults is not None:
        span = _key_span(loc, "defaults", 0, None, whole)
        if not isinstance(defaults, dict):
            diags.append(Diagnostic("MLW106", "`defaults` must be an object", span))
        else:
            items.append(ast.Defaults(span, tuple(_directives(defaults, span, loc, 0, None, diags))))
    tasks = spec.get("tasks")
    if not isinstance(tasks, list):
        diags.append(Diagnostic("MLW106", "the document needs a `tasks` list", whole))
        tasks = []
    offsets = _task_offsets(tasks, loc)
    ends: list[int | None] = [None] * len(offsets)  # where the next located task starts
    following: int | None = None
    for i in range(len(offsets) - 1, -1, -1):
        ends[i] = following
        if offsets[i] >= 0:
            following = offsets[i]
    for i, raw in enumerate(tasks):
        task = _task(raw, i, loc, offsets[i], ends[i], whole, diags)
        if task is not None:
            items.append(task)
    if diags:
        raise CompileError(diags)
    wf = ast.Workflow(whole, wf_id, id_span, tuple(items))
    return ast.Module(whole, file, None, (), (), wf, (), (wf,))


def _unrepresentable(spec: dict, loc: _Locator, whole: Span) -> list[Diagnostic]:
    """Values no plan can hold: strings with a lone UTF-16 surrogate (``"\\ud800"`` in JSON
    decodes to one; it cannot be written as UTF-8), numbers that are not finite 64-bit floats
    (``1e400``, ``NaN``) or integers beyond 64 bits. Each is reported at the key holding it."""
    out: list[Diagnostic] = []
    stack: list[tuple[Any, str | None]] = [(spec, None)]
    while stack and len(out) < 20:
        value, key = stack.pop()
        problem = None
        if isinstance(value, str):
            problem = _surrogate(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            problem = number_problem(value)
            code = "MLW108"
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and _surrogate(k):
                    out.append(Diagnostic("MLW106", f"a key {_surrogate(k)}", _key_span(loc, "", 0, None, whole),
                                          hint="write the character itself, or a \\uD8xx\\uDCxx pair"))
                stack.append((v, str(k)))
            continue
        elif isinstance(value, list):
            stack.extend((v, key) for v in value)
            continue
        if problem:
            span = _key_span(loc, key, 0, None, whole) if key is not None else whole
            where = f"the value of `{key}`" if key is not None else "a value"
            if isinstance(value, str):
                out.append(Diagnostic("MLW106", f"{where} {problem}", span,
                                      hint="write the character itself, or a \\uD8xx\\uDCxx pair"))
            else:
                out.append(Diagnostic(code, f"{where} is out of range: {problem}", span, hint="write a smaller number"))
    return out


def _quoted(text: str) -> str:
    shown = json.dumps(text)
    return shown if len(shown) <= 60 else shown[:40] + "…" + shown[-12:]


def _surrogate(text: str) -> str | None:
    if any("\ud800" <= c <= "\udfff" for c in text):
        return "holds a lone UTF-16 surrogate (an unpaired \\uD800-\\uDFFF escape)"
    return None


def _check_keys(obj: dict, allowed: tuple[str, ...], what: str, span: Span, diags: list[Diagnostic]) -> None:
    for key in obj:
        if key not in allowed:
            close = get_close_matches(str(key), allowed, n=1)
            diags.append(Diagnostic(
                "MLW106", f"unknown key `{key}` in {what}", span,
                hint=f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}",
            ))


def _key_span(loc: _Locator, key: str, start: int, end: int | None, fallback: Span) -> Span:
    off = loc.find_key(key, None, start, end)
    return loc.span_at(off, len(key) + 2) if off >= 0 else fallback


def _task_offsets(tasks: list, loc: _Locator) -> list[int]:
    offsets: list[int] = []
    pos = 0
    for raw in tasks:
        tid = raw.get("task_id") if isinstance(raw, dict) else None
        off = loc.find_key("task_id", tid, pos) if isinstance(tid, str) else -1
        offsets.append(off)
        if off >= 0:
            pos = off + 1
    return offsets


def _task(raw: Any, index: int, loc: _Locator, start: int, end: int | None, whole: Span,
          diags: list[Diagnostic]) -> ast.Task | None:
    if not isinstance(raw, dict):
        diags.append(Diagnostic("MLW106", f"task #{index + 1} must be an object", whole))
        return None
    span = loc.span_at(start, len("task_id") + 2) if start >= 0 else whole
    _check_keys(raw, TASK_KEYS, f"task #{index + 1}", span, diags)
    tid, ttype = raw.get("task_id"), raw.get("task_type")
    if not isinstance(tid, str) or not tid:
        diags.append(Diagnostic("MLW106", f"task #{index + 1} needs a `task_id` string", span))
        return None
    if not _WORD.fullmatch(tid):
        diags.append(Diagnostic("MLW106", f"task #{index + 1}: `task_id` {_quoted(tid)} is not a name", span,
                                hint="a task id is a name as in .mlw: letters, digits and `_`, not starting with a digit"))
        return None
    if not isinstance(ttype, str) or not ttype:
        diags.append(Diagnostic("MLW106", f"task `{tid}` needs a `task_type` string", span,
                                hint='e.g. "task_type": "model_training"'))
        return None
    type_off = loc.find_key("task_type", ttype, max(start, 0), end)
    type_span = loc.span_at(type_off, len("task_type") + 2) if type_off >= 0 else span
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        diags.append(Diagnostic("MLW106", f"`dependencies` of task `{tid}` must be a list of task ids", span))
        deps = []
    dep_span = _key_span(loc, "dependencies", max(start, 0), end, span)
    after = tuple(ast.Ident(_value_span(loc, d, dep_span, max(start, 0), end), d) for d in deps)
    body: list[Any] = []
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        diags.append(Diagnostic("MLW106", f"`parameters` of task `{tid}` must be an object", span))
        parameters = {}
    for name, value in parameters.items():
        pspan = _key_span(loc, str(name), max(start, 0), end, span)
        body.append(ast.Attr(pspan, str(name), pspan, to_expr(value, pspan, diags)))
    for key in ("uses", "when"):
        if key in raw:
            kspan = _key_span(loc, key, max(start, 0), end, span)
            value = raw[key]
            expr = _when_expr(value, kspan, diags) if key == "when" else to_expr(value, kspan, diags)
            body.append(ast.Attr(kspan, key, kspan, expr))
    body.extend(_directives(raw, span, loc, max(start, 0), end, diags))
    foreach = None
    if "foreach" in raw:
        fspan = _key_span(loc, "foreach", max(start, 0), end, span)
        fe = raw["foreach"]
        if not (isinstance(fe, dict) and set(fe) == {"var", "in"} and isinstance(fe["var"], str)):
            diags.append(Diagnostic("MLW106", '`foreach` must look like {"var": "x", "in": [...] or "params.name"}', fspan))
        else:
            iterable = _ref_from_text(fe["in"], fspan) if isinstance(fe["in"], str) else to_expr(fe["in"], fspan, diags)
            if iterable is None:
                diags.append(Diagnostic("MLW106", f'`foreach` "in" must be a list or a parameter such as "params.name", '
                                        f"got {_quoted(fe['in'])}", fspan))
            else:
                foreach = ast.Foreach(fspan, fe["var"], fspan, iterable)
    return ast.Task(span, tid, span, ttype.lower(), type_span, after, foreach, tuple(body))


def _value_span(loc: _Locator, value: str, fallback: Span, start: int, end: int | None) -> Span:
    if loc.text is None:
        return fallback
    m = re.compile(r"""["']""" + re.escape(value) + r"""["']""").search(loc.text, start, len(loc.text) if end is None else end)
    return loc.span_at(m.start() + 1, len(value)) if m else fallback


def _directives(raw: dict, span: Span, loc: _Locator, start: int, end: int | None, diags: list[Diagnostic]) -> list[Any]:
    """``resources``/``cache``/``retry`` objects become blocks; ``"cache": "disk"`` is the
    shorthand for ``cache { strategy = disk }``; ``timeout``/``domain`` are attributes."""
    out: list[Any] = []
    for key in ("resources", "cache", "retry"):
        if key not in raw:
            continue
        kspan = _key_span(loc, key, start, end, span)
        value = raw[key]
        if key == "cache" and isinstance(value, str):
            value = {"strategy": value}
        if not isinstance(value, dict):
            diags.append(Diagnostic("MLW106", f"`{key}` must be an object", kspan))
            continue
        attrs = []
        for name, v in value.items():
            aspan = _key_span(loc, str(name), max(start, 0), end, kspan)
            attrs.append(ast.Attr(aspan, str(name), aspan, _directive_value(v, aspan, diags)))
        out.append(ast.Block(kspan, key, kspan, tuple(attrs)))
    for key in ("timeout", "domain"):
        if key in raw:
            kspan = _key_span(loc, key, start, end, span)
            out.append(ast.Attr(kspan, key, kspan, _directive_value(raw[key], kspan, diags)))
    return out


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)\Z")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def _directive_value(value: Any, span: Span, diags: list[Diagnostic]) -> ast.Expr:
    """Directive values as ``.mlw`` writes them: ``"4GiB"`` is the quantity ``4GiB`` and
    ``"disk"`` the word ``disk`` (same plan either way; ``mlw fmt`` prints them idiomatically)."""
    if isinstance(value, str):
        m = _QUANTITY.fullmatch(value)
        if m:
            return ast.Quantity(span, float(m.group(1)), m.group(2), value)
        if _WORD.fullmatch(value) and value not in ("true", "false", "null"):
            return ast.Name(span, value)
    return to_expr(value, span, diags)


def _params(params: dict, loc: _Locator, whole: Span, diags: list[Diagnostic]) -> ast.Params:
    """``global_parameters`` become declarations whose type is the value's type."""
    pspan = _key_span(loc, "global_parameters", 0, None, whole)
    decls = []
    for name, value in params.items():
        span = _key_span(loc, str(name), max(0, loc.find_key("global_parameters")), None, pspan)
        decls.append(ast.ParamDecl(span, str(name), span, ast.TypeRef(span, *_type_of(value)), to_expr(value, span, diags)))
    return ast.Params(pspan, tuple(decls))


def _type_of(value: Any) -> tuple[str, tuple]:
    if isinstance(value, bool):
        return "bool", ()
    if isinstance(value, int):
        return "int", ()
    if isinstance(value, float):
        return "float", ()
    if isinstance(value, list):
        kinds = {_type_of(v) for v in value}
        inner = kinds.pop() if len(kinds) == 1 else ("str", ())
        return "list", (ast.TypeRef(_NOWHERE, *inner),)
    if isinstance(value, dict):
        kinds = {_type_of(v) for v in value.values()}
        inner = kinds.pop() if len(kinds) == 1 else ("str", ())
        return "map", (ast.TypeRef(_NOWHERE, "str"), ast.TypeRef(_NOWHERE, *inner))
    return "str", ()


_NOWHERE = Span("<spec>", 1, 1, 1, 2)


def to_expr(value: Any, span: Span, diags: list[Diagnostic]) -> ast.Expr:
    """A JSON value as an expression; ``{"$ref": "task.output"}`` is a reference and
    ``${...}`` inside strings is interpolation, as in ``.mlw``."""
    if value is None:
        return ast.Null(span)
    if isinstance(value, bool):
        return ast.Bool(span, value)
    if isinstance(value, int):
        return ast.Int(span, value)
    if isinstance(value, float):
        return ast.Float(span, value, repr(value))
    if isinstance(value, str):
        return _string(value, span, diags)
    if isinstance(value, list):
        return ast.ListExpr(span, tuple(to_expr(v, span, diags) for v in value))
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], str):
            ref = _ref_from_text(value["$ref"], span)
            if isinstance(ref, ast.Ref):
                return ref
            diags.append(Diagnostic("MLW106", f'`{{"$ref": "{value["$ref"]}"}}` must name `task.output`', span))
            return ast.Null(span)
        return ast.MapExpr(span, tuple(ast.MapEntry(span, str(k), span, to_expr(v, span, diags)) for k, v in value.items()))
    diags.append(Diagnostic("MLW106", f"unsupported value {value!r}", span))
    return ast.Null(span)


def _string(text: str, span: Span, diags: list[Diagnostic]) -> ast.Str:
    if "${" not in text:
        return ast.Str(span, (text,))
    parts: list[Any] = []
    pos = 0
    for m in _INTERPOLATION.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        expr = _ref_from_text(m.group(1), span)
        if expr is None:
            diags.append(Diagnostic("MLW219", f"cannot interpolate `${{{m.group(1)}}}`", span,
                                    hint="write a parameter or loop variable, e.g. ${params.target}"))
            expr = ast.Null(span)
        parts.append(expr)
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return ast.Str(span, tuple(parts))


def _ref_from_text(text: str, span: Span) -> ast.Ref | ast.Name | None:
    """``params.x`` -> Ref, ``x`` -> Name, ``train[*].model`` -> Ref; None when malformed."""
    m = _DOTTED.fullmatch(text)
    if not m:
        return None
    pieces = m.group(1).split(".")
    parts = []
    for piece in pieces:
        pm = _PART.fullmatch(piece)
        if not pm:
            return None
        parts.append(ast.RefPart(span, pm.group(1), pm.group(2)))
    if len(parts) == 1:
        return ast.Name(span, parts[0].name) if parts[0].index is None else None
    return ast.Ref(span, tuple(parts))


def _when_expr(value: Any, span: Span, diags: list[Diagnostic]) -> ast.Expr:
    """``"when": true`` or ``"when": "params.deploy"`` (a single parameter, optionally negated
    with ``not``)."""
    if isinstance(value, str):
        negate = value.strip().startswith("not ")
        ref = _ref_from_text(value.strip()[4:] if negate else value, span)
        if ref is None:
            diags.append(Diagnostic("MLW219", f"cannot read `when` expression {value!r}", span,
                                    hint='use true/false or "params.NAME" (optionally "not params.NAME")'))
            return ast.Bool(span, True)
        return ast.UnaryOp(span, "not", ref) if negate else ref
    return to_expr(value, span, diags)
