"""Workflow parameters: declared types, defaults, ``-p`` overrides, params files, ranges
and choices.

Values are checked against the declared type and converted to their canonical form
(durations in seconds, sizes in bytes). Overrides come as strings and are parsed by the
declared type.

>>> from mlflowdsl.grammar.diagnostics import Span
>>> s = Span("<doc>", 1, 1, 1, 2)
>>> parse_override("0.01", ast.TypeRef(s, "float"))
0.01
>>> parse_override("a,b", ast.TypeRef(s, "list", (ast.TypeRef(s, "str"),)))
['a', 'b']
"""

from __future__ import annotations

import json
from typing import Any

from mlflowdsl.compiler.evaluate import ERROR, Evaluator, Scope, did_you_mean, quantity_from_text, to_text
from mlflowdsl.compiler.model import Qty
from mlflowdsl.grammar import ast, units
from mlflowdsl.grammar.limits import MAX_INT_DIGITS, number_problem
from mlflowdsl.grammar.diagnostics import Diagnostic

SCALAR_TYPES = ("str", "int", "float", "bool", "path", "duration", "size")
ALL_TYPES = SCALAR_TYPES + ("list", "map")


class TypeMismatch(ValueError):
    pass


def type_problem(t: ast.TypeRef) -> tuple[str, str | None] | None:
    """Why a declared type is not a type (message, hint), or None when it is fine."""
    if t.name not in ALL_TYPES:
        return f"unknown parameter type `{t.name}`", did_you_mean(t.name, ALL_TYPES) or f"types: {', '.join(ALL_TYPES)}"
    if t.name == "list" and len(t.args) != 1:
        return "`list` takes one element type", "write e.g. list[str]"
    if t.name == "map" and (len(t.args) != 2 or t.args[0].name != "str"):
        return "`map` takes a str key type and a value type", "write e.g. map[str, float]"
    if t.name in SCALAR_TYPES and t.args:
        return f"`{t.name}` takes no type arguments", None
    for a in t.args:
        problem = type_problem(a)
        if problem:
            return problem
    return None


def coerce(value: Any, t: ast.TypeRef) -> Any:
    """``value`` (an evaluated or JSON value) checked against ``t`` and converted to its
    canonical form; raises ``TypeMismatch`` with a reason.

    >>> from mlflowdsl.grammar.diagnostics import Span
    >>> coerce(3, ast.TypeRef(Span("<doc>", 1, 1, 1, 2), "float"))
    3.0
    """
    name = t.name
    if isinstance(value, Qty) and name not in ("duration", "size"):
        raise TypeMismatch(f"expected {t.spelled()}, got the quantity {value.raw}")
    if name in ("str", "path"):
        if isinstance(value, str):
            return value
    elif name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            problem = number_problem(value)
            if problem:
                raise TypeMismatch(problem)
            return value
    elif name == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value):
            return float(value)
    elif name == "bool":
        if isinstance(value, bool):
            return value
    elif name in ("duration", "size"):
        return _quantity(value, name)
    elif name == "list":
        if isinstance(value, list):
            return [coerce(v, t.args[0]) for v in value]
    elif name == "map":
        if isinstance(value, dict):
            return {str(k): coerce(v, t.args[1]) for k, v in value.items()}
    raise TypeMismatch(f"expected {t.spelled()}, got {_describe(value)}")


def _quantity(value: Any, kind: str) -> Any:
    if isinstance(value, Qty):
        if value.kind != kind:
            raise TypeMismatch(f"expected a {kind}, got the {value.kind} {value.raw}")
        return value.value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value):
        return float(value) if kind == "duration" else int(value)
    if isinstance(value, str):
        try:
            parsed = quantity_from_text(value)
        except units.UnknownUnit as exc:
            raise TypeMismatch(f"unknown unit `{exc.unit}` in {value!r}") from None
        except units.QuantityOutOfRange as exc:
            raise TypeMismatch(str(exc)) from None
        if parsed and parsed[0] == kind:
            return parsed[1]
    example = "30s, 5m, 2h" if kind == "duration" else "512MiB, 4GiB"
    raise TypeMismatch(f"expected a {kind} such as {example}, got {_describe(value)}")


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {to_text(value)}"
    if isinstance(value, (int, float)):
        return f"the number {to_text(value)}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    if value is None:
        return "null"
    return type(value).__name__


def parse_override(text: str, t: ast.TypeRef) -> Any:
    """A ``-p name=text`` value parsed by the declared type; raises ``TypeMismatch``."""
    name = t.name
    if name in ("str", "path"):
        return text
    if name == "int":
        digits = text.strip().lstrip("+-")
        if digits.isdigit() and len(digits) > MAX_INT_DIGITS:  # int() refuses 4,300+ digits anyway
            raise TypeMismatch(number_problem(2**63))
        try:
            value = int(text.strip())
        except ValueError:
            raise TypeMismatch(f"expected an integer, got {text[:40]!r}") from None
        problem = number_problem(value)
        if problem:
            raise TypeMismatch(problem)
        return value
    if name == "float":
        try:
            value = float(text.strip())
        except ValueError:
            raise TypeMismatch(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):  # JSON has no NaN/inf
            raise TypeMismatch(f"expected a finite number, got {text!r}")
        return value
    if name == "bool":
        low = text.strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise TypeMismatch(f"expected true or false, got {text!r}")
    if name in ("duration", "size"):
        try:
            return _quantity(float(text) if _is_number(text) else text, name)
        except TypeMismatch:
            raise
    stripped = text.strip()
    if name == "list" and not stripped.startswith("["):
        items = [s.strip() for s in stripped.split(",")] if stripped else []
        return [parse_override(i, t.args[0]) for i in items]
    try:
        import yaml  # noqa: PLC0415 - PyYAML only for a list/map override

        value = yaml.safe_load(stripped)
    except Exception:
        raise TypeMismatch(f"expected {t.spelled()} (JSON), got {text!r}") from None
    return coerce(value, t)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_constraint(value: Any, decl: ast.ParamDecl, ev: Evaluator) -> str | None:
    """Why ``value`` violates the declaration's range or choices, or None."""
    c = decl.constraint
    if c is None:
        return None
    if isinstance(c, ast.Range):
        low = ev.eval(c.low, Scope()) if c.low is not None else None
        high = ev.eval(c.high, Scope()) if c.high is not None else None
        low = low.value if isinstance(low, Qty) else low
        high = high.value if isinstance(high, Qty) else high
        if low is ERROR or high is ERROR:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            lo = "" if low is None else to_text(low)
            hi = "" if high is None else to_text(high)
            return f"{to_text(value)} is outside {lo}..{hi}"
        return None
    choices = ev.eval(c.values, Scope())
    if choices is ERROR:
        return None
    if value not in choices:
        return f"{to_text(value)!r} is not one of {', '.join(json.dumps(to_text(x)) for x in choices)}"
    return None


def resolve_params(
    decls: tuple[ast.ParamDecl, ...],
    overrides: dict[str, str] | None = None,
    file_values: dict[str, Any] | None = None,
    file_subject: str = "params file",
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Final parameter values: override > params file > default. Reports MLW209 duplicate,
    MLW210 unknown, MLW211 missing, MLW212 ill-typed, MLW206 out of range."""
    ev = Evaluator()
    diags = ev.diagnostics
    by_name: dict[str, ast.ParamDecl] = {}
    for d in decls:
        if d.name in by_name:
            diags.append(Diagnostic("MLW209", f"parameter `{d.name}` is declared twice", d.name_span,
                                    hint=f"first declared at line {by_name[d.name].span.line}"))
            continue
        problem = type_problem(d.type)
        if problem:
            diags.append(Diagnostic("MLW204", problem[0], d.type.span, hint=problem[1]))
            continue
        by_name[d.name] = d
    for source, values in (("-p", overrides or {}), (file_subject, file_values or {})):
        for name in values:
            if name not in by_name:
                subject = f"-p {name}" if source == "-p" else f"{file_subject}: {name}"
                diags.append(Diagnostic("MLW210", f"unknown parameter `{name}`", None,
                                        hint=did_you_mean(name, by_name) or _declared(by_name), subject=subject))
    params: dict[str, Any] = {}
    for name, d in by_name.items():
        subject = None
        try:
            if overrides and name in overrides:
                subject = f"-p {name}"
                value = parse_override(overrides[name], d.type)
            elif file_values and name in file_values:
                subject = f"{file_subject}: {name}"
                value = coerce(file_values[name], d.type)
            elif d.default is not None:
                raw = ev.eval(d.default, Scope())
                if raw is ERROR:
                    continue
                value = coerce(raw, d.type)
            else:
                diags.append(Diagnostic("MLW211", f"parameter `{name}` has no value", d.name_span,
                                        hint=f"pass it with `-p {name}=VALUE` or give it a default"))
                continue
        except TypeMismatch as exc:
            diags.append(_at(d, subject, "MLW212", f"parameter `{name}`: {exc}", f"`{name}` is declared as {d.type.spelled()}"))
            continue
        problem = check_constraint(value, d, ev)
        if problem:
            diags.append(_at(d, subject, "MLW206", f"parameter `{name}`: {problem}",
                             "choose a value inside the declared range" if subject else "change the default or the range"))
            continue
        params[name] = value
    return params, diags


def _at(d: ast.ParamDecl, subject: str | None, code: str, message: str, hint: str) -> Diagnostic:
    if subject is None:
        span = d.default.span if d.default is not None else d.name_span
        return Diagnostic(code, message, span, hint=hint)
    return Diagnostic(code, message, None, hint=hint + f" (declared at {d.span.file}:{d.span.line}:{d.span.column})", subject=subject)


def _declared(by_name: dict) -> str:
    return f"declared parameters: {', '.join(sorted(by_name))}" if by_name else "this workflow declares no parameters"
