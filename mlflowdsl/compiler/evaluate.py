"""Compile-time evaluation of expressions: literals, parameters, loop variables, template
arguments, references, interpolation, and the small boolean language of ``when``.

An :class:`Evaluator` collects diagnostics instead of raising, so one pass reports every
error; a value that could not be evaluated is the sentinel ``ERROR``.

>>> from mlflowdsl.grammar import ast
>>> from mlflowdsl.grammar.diagnostics import Span
>>> s = Span("f.mlw", 1, 1, 1, 2)
>>> ev = Evaluator()
>>> ev.eval(ast.BinOp(s, "==", ast.Ref(s, (ast.RefPart(s, "params"), ast.RefPart(s, "env"))),
...                   ast.Str(s, ("prod",))), Scope(params={"env": "prod"}))
True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Mapping

from mlflowdsl.compiler.model import CallArg, CallValue, OutputRef, Qty
from mlflowdsl.grammar import ast, units
from mlflowdsl.grammar.diagnostics import Diagnostic, Span


class _Error:
    def __repr__(self) -> str:
        return "ERROR"


ERROR: Any = _Error()
_QUANTITY_TEXT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]+)\s*$")


def did_you_mean(name: str, candidates) -> str | None:
    """A "did you mean" hint, or None when nothing is close.

    >>> did_you_mean("n_estimator", ["n_estimators", "max_depth"])
    'did you mean `n_estimators`?'
    """
    close = get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def quantity_from_text(text: str) -> tuple[str, int | float] | None:
    """``"4GiB"`` -> ``("size", 4294967296)``; None when the text is not number+unit.
    Raises ``units.UnknownUnit`` for a number with an unknown unit, ``units.QuantityOutOfRange``
    for one too large for its canonical unit.

    >>> quantity_from_text("30s")
    ('duration', 30.0)
    """
    m = _QUANTITY_TEXT.match(text)
    if not m:
        return None
    return units.convert(float(m.group(1)), m.group(2))


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:20]}…{text[-8:]}"


def unit_error(unit: str, raw: str, span: Span) -> Diagnostic:
    exc_kind = units.guess_kind(unit)
    close = units.suggest(unit)
    hint = f"did you mean `{close}`?" if close else None
    if exc_kind and not hint:
        hint = f"{exc_kind} units: {', '.join(units.units_of(exc_kind))}"
    return Diagnostic("MLW103", f"unknown unit `{unit}` in `{raw}`", span, hint=hint)


def to_text(value: Any) -> str:
    """How a value is spelled inside an interpolated string or a foreach copy's name.

    >>> to_text(True), to_text(0.5), to_text("rf")
    ('true', '0.5', 'rf')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Qty):
        return value.raw
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class Scope:
    """What names mean where an expression is evaluated.

    ``prefix`` is prepended to the ids of tasks declared in the current body (``rf.`` inside
    a template used as ``rf``); ``local`` holds those unprefixed names; ``groups`` maps a
    ``foreach`` task's name to the ids of its copies; ``uses`` maps a template use's alias
    to its evaluated outputs (None when the use failed and was reported)."""

    params: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, Any] = field(default_factory=dict)
    prefix: str = ""
    local: frozenset[str] = frozenset()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    uses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def bind(self, **names: Any) -> "Scope":
        return Scope(self.params, {**self.names, **names}, self.prefix, self.local, self.groups, self.uses)

    def task_id(self, name: str) -> str:
        return self.prefix + name if name in self.local else name


class Evaluator:
    """Evaluates expressions under a :class:`Scope`, collecting diagnostics and the names
    of the workflow parameters it read (for the unused-parameter lint)."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.used_params: set[str] = set()

    def fail(self, code: str, message: str, span: Span, hint: str | None = None) -> Any:
        self.diagnostics.append(Diagnostic(code, message, span, hint=hint))
        return ERROR

    # ------------------------------------------------------------------ dispatch

    def eval(self, expr: ast.Expr, scope: Scope) -> Any:
        method = getattr(self, "_" + type(expr).__name__, None)
        if method is None:
            return self.fail("MLW219", f"unsupported expression {type(expr).__name__}", expr.span)
        return method(expr, scope)

    def _Str(self, e: ast.Str, scope: Scope) -> Any:
        if e.is_plain:
            return e.text
        out: list[str] = []
        for part in e.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            if isinstance(part, ast.Name) and part.name not in scope.names:
                # outside interpolation a bare word is a value (`hybrid`); inside it, it must
                # be a loop variable or template argument, else it is a typo
                return self.fail("MLW219", f"`${{{part.name}}}` names no loop variable or template argument",
                                 part.span, hint=did_you_mean(part.name, scope.names)
                                 or f"for a parameter write `${{params.{part.name}}}`")
            value = self.eval(part, scope)
            if value is ERROR:
                return ERROR
            if isinstance(value, (OutputRef, list)) and _has_ref(value):
                return self.fail("MLW219", "a task's output cannot be interpolated into a string", part.span,
                                 hint="pass the reference as the attribute's whole value instead")
            if isinstance(value, CallValue):
                return self.fail("MLW219", "a call cannot be interpolated into a string", part.span)
            out.append(to_text(value))
        return "".join(out)

    def _Int(self, e: ast.Int, scope: Scope) -> Any:
        return e.value

    def _Float(self, e: ast.Float, scope: Scope) -> Any:
        return e.value

    def _Bool(self, e: ast.Bool, scope: Scope) -> Any:
        return e.value

    def _Null(self, e: ast.Null, scope: Scope) -> Any:
        return None

    def _Quantity(self, e: ast.Quantity, scope: Scope) -> Any:
        try:
            kind, value = units.convert(e.value, e.unit)
        except units.UnknownUnit:
            self.diagnostics.append(unit_error(e.unit, e.raw, e.span))
            return ERROR
        except units.QuantityOutOfRange as exc:
            return self.fail("MLW206", f"the {exc.kind} `{_short(e.raw)}` is out of range", e.span,
                             hint="durations must be finite, sizes and rates at most 2**63-1 bytes or bit/s")
        return Qty(kind, value, e.raw, e.span)

    def _ListExpr(self, e: ast.ListExpr, scope: Scope) -> Any:
        items = [self.eval(i, scope) for i in e.items]
        if any(i is ERROR for i in items):
            return ERROR
        # `train[*].model` inside a list contributes all its references, flattened.
        flat: list[Any] = []
        for item, node in zip(items, e.items):
            if isinstance(node, ast.Ref) and isinstance(item, list):
                flat.extend(item)
            else:
                flat.append(item)
        return flat

    def _MapExpr(self, e: ast.MapExpr, scope: Scope) -> Any:
        out: dict[str, Any] = {}
        failed = False
        for entry in e.entries:
            if entry.key in out:
                self.fail("MLW209", f"duplicate key `{entry.key}`", entry.key_span)
                failed = True
                continue
            value = self.eval(entry.value, scope)
            failed = failed or value is ERROR
            out[entry.key] = value
        return ERROR if failed else out

    def _Name(self, e: ast.Name, scope: Scope) -> Any:
        # A bound loop variable or template argument, else an enum-like word (`hybrid`).
        return scope.names.get(e.name, e.name)

    def _Call(self, e: ast.Call, scope: Scope) -> Any:
        args = []
        for a in e.args:
            value = self.eval(a.value, scope)
            if value is ERROR:
                return ERROR
            args.append(CallArg(a.name, value, a.span))
        return CallValue(e.func, e.func_span, tuple(args), e.span)

    def _UnaryOp(self, e: ast.UnaryOp, scope: Scope) -> Any:
        value = self.eval(e.operand, scope)
        if value is ERROR:
            return ERROR
        if e.op == "not":
            if not isinstance(value, bool):
                return self.fail("MLW204", f"`not` needs a boolean, got {to_text(value)!r}", e.operand.span)
            return not value
        if e.op == "-":
            if isinstance(value, Qty):
                return Qty(value.kind, -value.value, "-" + value.raw, e.span)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self.fail("MLW204", f"`-` needs a number, got {to_text(value)!r}", e.operand.span)
            return -value
        return self.fail("MLW219", f"unknown operator `{e.op}`", e.span)

    def _BinOp(self, e: ast.BinOp, scope: Scope) -> Any:
        left = self.eval(e.left, scope)
        right = self.eval(e.right, scope)
        if left is ERROR or right is ERROR:
            return ERROR
        if e.op in ("and", "or"):
            for side, node in ((left, e.left), (right, e.right)):
                if not isinstance(side, bool):
                    return self.fail("MLW204", f"`{e.op}` needs booleans, got {to_text(side)!r}", node.span)
            return (left and right) if e.op == "and" else (left or right)
        left, right = _plain(left), _plain(right)
        if e.op == "==":
            return left == right
        if e.op == "!=":
            return left != right
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        if not numeric and not (isinstance(left, str) and isinstance(right, str)):
            return self.fail("MLW204", f"cannot compare {to_text(left)!r} {e.op} {to_text(right)!r}", e.span,
                             hint="`<`, `<=`, `>`, `>=` compare two numbers or two strings")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}.get(e.op, ERROR)

    # ------------------------------------------------------------------ references

    def _Ref(self, e: ast.Ref, scope: Scope) -> Any:
        first = e.parts[0]
        if first.name == "params" and first.index is None and first.name not in scope.names:
            return self._param(e, scope)
        if first.index is None and first.name in scope.uses and len(e.parts) == 2:
            outputs = scope.uses[first.name]
            if outputs is None:  # the use itself failed and was reported
                return ERROR
            name = e.parts[1].name
            if name not in outputs or e.parts[1].index is not None:
                return self.fail("MLW208", f"`{first.name}` has no output `{name}`",
                                 e.parts[1].span, hint=did_you_mean(name, outputs) or
                                 (f"its outputs: {', '.join(sorted(outputs))}" if outputs else "its template declares no `output`"))
            return outputs[name]
        if first.name in scope.names and first.index is None:
            return self.fail("MLW219", f"`{first.name}` is a value, not a task: `{e.dotted()}` cannot be read",
                             e.span)
        last = e.parts[-1]
        if last.index is not None:
            return self.fail("MLW219", f"`{e.dotted()}` must end with an output name", last.span,
                             hint="write TASK.OUTPUT, e.g. `train[svm].model`")
        for p in e.parts[1:-1]:
            if p.index is not None:
                return self.fail("MLW219", f"only the task name may be indexed in `{e.dotted()}`", p.span)
        rest = "".join("." + p.name for p in e.parts[1:-1])
        if first.index == "*":
            copies = scope.groups.get(first.name)
            if copies is None:
                return self.fail("MLW207", f"`{first.name}[*]` needs a task declared with `foreach`", first.span,
                                 hint=did_you_mean(first.name, scope.groups))
            return [OutputRef(c + rest, last.name, e.span, first.span, e.parts[-2].span, last.span) for c in copies]
        if first.index is None and first.name in scope.groups and not rest:
            copies = scope.groups[first.name]
            example = f"{copies[0] if copies else first.name}.{last.name}"
            return self.fail("MLW207", f"`{first.name}` is expanded by `foreach`; name one copy or all of them",
                             first.span, hint=f"write `{first.name}[*].{last.name}` or e.g. `{example}`"
                             if copies else None)
        name = first.name + (f"[{first.index}]" if first.index is not None else "")
        task = (scope.prefix + name if first.name in scope.local or first.name in scope.uses else name) + rest
        return OutputRef(task, last.name, e.span, first.span, e.parts[-2].span, last.span)

    def _param(self, e: ast.Ref, scope: Scope) -> Any:
        if len(e.parts) != 2 or e.parts[1].index is not None:
            return self.fail("MLW219", f"`{e.dotted()}` is not a parameter reference", e.span,
                             hint="write params.NAME")
        name = e.parts[1].name
        if name not in scope.params:
            return self.fail("MLW210", f"unknown parameter `{name}`", e.parts[1].span,
                             hint=did_you_mean(name, scope.params) or "declare it in the workflow's `params { }` block")
        self.used_params.add(name)
        return scope.params[name]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Qty) else value


def _has_ref(value: Any) -> bool:
    if isinstance(value, OutputRef):
        return True
    if isinstance(value, list):
        return any(_has_ref(v) for v in value)
    return False


def mentions_names(expr: ast.Expr) -> bool:
    """True when ``expr`` reads a parameter, a loop variable or any other name (so its value
    can change between compilations): used to tell a constant ``when`` from a real one.

    >>> from mlflowdsl.grammar.diagnostics import Span
    >>> s = Span("f", 1, 1, 1, 2)
    >>> mentions_names(ast.Bool(s, False)), mentions_names(ast.Name(s, "x"))
    (False, True)
    """
    if isinstance(expr, (ast.Ref, ast.Name)):
        return True
    if isinstance(expr, ast.BinOp):
        return mentions_names(expr.left) or mentions_names(expr.right)
    if isinstance(expr, ast.UnaryOp):
        return mentions_names(expr.operand)
    if isinstance(expr, ast.Str):
        return not expr.is_plain
    if isinstance(expr, ast.ListExpr):
        return any(mentions_names(i) for i in expr.items)
    return False
