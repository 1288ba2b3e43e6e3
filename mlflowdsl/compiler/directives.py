"""The directives every task may carry — ``resources``, ``cache``, ``retry``, ``timeout``,
``domain`` (LANGUAGE.md §5) — checked field by field and converted to IR numbers.

``check_directives`` returns the fields that were *written* (so ``defaults { }`` and a
task's own values can be merged field by field) and diagnostics.

>>> from mlflowdsl.compiler.model import RAttr, RBlock, Qty
>>> from mlflowdsl.grammar.diagnostics import Span
>>> s = Span("f.mlw", 1, 1, 1, 2)
>>> block = RBlock("resources", s, (RAttr("memory", s, Qty("size", 1024, "1KiB", s), s),), s)
>>> check_directives((), (block,))[0]
{'resources': {'memory': 1024}}
"""

from __future__ import annotations

import re
from typing import Any, Callable

from mlflowdsl.compiler.evaluate import did_you_mean, quantity_from_text, to_text
from mlflowdsl.compiler.model import OutputRef, Qty, RAttr, RBlock
from mlflowdsl.grammar import units
from mlflowdsl.grammar.diagnostics import Diagnostic
from mlflowdsl.ir import CACHE_STRATEGIES

BACKOFFS = ("exponential", "fixed", "none")
_DOMAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class Problem(Exception):
    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def _describe(value: Any) -> str:
    if isinstance(value, Qty):
        return f"the {value.kind} {value.raw}"
    if isinstance(value, OutputRef):
        return f"the reference {value.dotted()}"
    if isinstance(value, str):
        return f'the string "{value}"'
    return to_text(value)


def number(minimum: float = 0.0) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Problem("MLW204", f"expected a number, got {_describe(value)}")
        if value < minimum:
            raise Problem("MLW206", f"{to_text(value)} is below the minimum {to_text(minimum)}")
        return float(value)
    return check


def integer(minimum: int = 0) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise Problem("MLW204", f"expected a whole number, got {_describe(value)}")
        if value < minimum:
            raise Problem("MLW206", f"{value} is below the minimum {minimum}")
        return value
    return check


_EXAMPLES = {"duration": "30s, 5m, 2h", "size": "512MiB, 4GiB", "rate": "100Mbps, 1Gbps"}


def quantity(kind: str) -> Callable[[Any], int | float]:
    """A quantity of ``kind``; a bare number is taken in the canonical unit (seconds,
    bytes, bit/s); the seed form's strings (``"4GiB"``) are accepted too."""
    def check(value: Any) -> int | float:
        if isinstance(value, str):
            try:
                parsed = quantity_from_text(value)
            except units.UnknownUnit as exc:
                close = units.suggest(exc.unit)
                raise Problem("MLW103", f"unknown unit `{exc.unit}` in \"{value}\"",
                              f"did you mean `{close}`?" if close else f"{kind} units: {', '.join(units.units_of(kind))}")
            if parsed is not None:
                value = Qty(parsed[0], parsed[1], value, None)  # type: ignore[arg-type]
        if isinstance(value, Qty):
            if value.kind != kind:
                raise Problem("MLW204", f"expected a {kind} such as {_EXAMPLES[kind]}, got {_describe(value)}")
            value = value.value
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Problem("MLW204", f"expected a {kind} such as {_EXAMPLES[kind]}, got {_describe(value)}")
        if value < 0:
            raise Problem("MLW206", f"a {kind} cannot be negative")
        return float(value) if kind == "duration" else int(value)
    return check


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``none`` (or null) clears an inherited value: ``timeout = none`` in a task whose
    defaults set one."""
    def check_optional(value: Any) -> Any:
        return None if value is None or value == "none" else check(value)
    return check_optional


def choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Problem("MLW204", f"expected one of {', '.join(options)}, got {_describe(value)}")
        if value not in options:
            raise Problem("MLW206", f"`{value}` is not one of {', '.join(options)}", did_you_mean(value, options))
        return value
    return check


def text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return to_text(value)
    if not isinstance(value, str):
        raise Problem("MLW204", f"expected a string, got {_describe(value)}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Problem("MLW204", f"expected true or false, got {_describe(value)}")
    return value


def domain(value: Any) -> str:
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise Problem("MLW204", f"a domain is a name such as `training`, got {_describe(value)}")
    return value


BLOCKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "resources": {"cpu": number(0), "memory": quantity("size"), "gpu": integer(0),
                  "storage": quantity("size"), "network": quantity("rate")},
    "cache": {"strategy": choice(CACHE_STRATEGIES), "ttl": optional(quantity("duration")), "version": text},
    "retry": {"attempts": integer(1), "backoff": choice(BACKOFFS), "initial": quantity("duration"),
              "max": quantity("duration"), "jitter": boolean},
}
# The seed's spellings.
FIELD_ALIASES: dict[str, dict[str, str]] = {"retry": {"max_attempts": "attempts"}, "resources": {}, "cache": {}}
ATTRS: dict[str, Callable[[Any], Any]] = {"timeout": optional(quantity("duration")), "domain": domain}
# `cache = disk` is shorthand for `cache { strategy = disk }` (the seed writes "cache": "disk").
DIRECTIVE_ATTRS = ("timeout", "domain", "cache")


def check_directives(attrs: tuple[RAttr, ...], blocks: tuple[RBlock, ...]) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Directive attributes (``timeout``, ``domain``, ``cache``) and blocks -> written fields."""
    out: dict[str, Any] = {}
    diags: list[Diagnostic] = []
    for a in attrs:
        if a.name == "cache":
            try:
                out.setdefault("cache", {})["strategy"] = BLOCKS["cache"]["strategy"](a.value)
            except Problem as p:
                diags.append(Diagnostic(p.code, f"`cache`: {p.message}", a.span, hint=p.hint))
            continue
        try:
            out[a.name] = ATTRS[a.name](a.value)
        except Problem as p:
            diags.append(Diagnostic(p.code, f"`{a.name}`: {p.message}", a.span, hint=p.hint))
    for b in blocks:
        fields = BLOCKS.get(b.name)
        if fields is None:
            diags.append(Diagnostic("MLW202", f"unknown block `{b.name}`", b.name_span,
                                    hint=did_you_mean(b.name, BLOCKS) or f"blocks: {', '.join(BLOCKS)}"))
            continue
        written = out.setdefault(b.name, {})
        for a in b.attrs:
            name = FIELD_ALIASES[b.name].get(a.name, a.name)
            check = fields.get(name)
            if check is None:
                diags.append(Diagnostic("MLW203", f"unknown field `{a.name}` in `{b.name}`", a.name_span,
                                        hint=did_you_mean(a.name, fields) or f"{b.name} fields: {', '.join(fields)}"))
                continue
            try:
                written[name] = check(a.value)
            except Problem as p:
                diags.append(Diagnostic(p.code, f"`{b.name}.{name}`: {p.message}", a.span, hint=p.hint))
    return out, diags


def merge(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A task's own directive values win over the defaults, field by field.

    >>> merge({"resources": {"cpu": 1, "memory": 5}}, {"resources": {"memory": 9}})
    {'resources': {'cpu': 1, 'memory': 9}}
    """
    if not own:
        return defaults  # shared, so identical directives are lowered once
    out = dict(defaults)
    for key, value in own.items():
        out[key] = {**defaults.get(key, {}), **value} if isinstance(value, dict) else value
    return out
