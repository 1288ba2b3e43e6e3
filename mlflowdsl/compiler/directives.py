"""The directives every task may carry — ``resources``, ``cache``, ``retry``, ``timeout``,
``domain`` — checked field by field and converted to IR numbers.

``check_directives`` returns a :class:`Directives`: the fields that were *written*, typed,
with ``UNSET`` for the others (so ``defaults { }`` and a task's own values can be merged
field by field with :func:`merge`), and diagnostics. The lower pass builds the IR's
``Resources``, ``CachePolicy`` and ``RetryPolicy`` from the written fields.

>>> from mlflowdsl.compiler.model import RAttr, RBlock, Qty
>>> from mlflowdsl.grammar.diagnostics import Span
>>> s = Span("f.mlw", 1, 1, 1, 2)
>>> block = RBlock("resources", s, (RAttr("memory", s, Qty("size", 1024, "1KiB", s), s),), s)
>>> check_directives((), (block,))[0].resources
ResourceFields(cpu=UNSET, memory=1024, gpu=UNSET, storage=UNSET, network=UNSET)
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, get_args

from mlflowdsl import ir
from mlflowdsl.compiler.evaluate import did_you_mean, quantity_from_text, to_text
from mlflowdsl.compiler.model import OutputRef, Qty, RAttr, RBlock
from mlflowdsl.grammar import units
from mlflowdsl.grammar.diagnostics import Diagnostic
from mlflowdsl.ir import CACHE_STRATEGIES

BACKOFFS: tuple[str, ...] = get_args(ir.Backoff)
_DOMAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\Z")


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
    bytes, bit/s); strings such as ``"4GiB"`` (the JSON/YAML workflow form) are accepted too."""
    def check(value: Any) -> int | float:
        if isinstance(value, str):
            try:
                parsed = quantity_from_text(value)
            except units.UnknownUnit as exc:
                close = units.suggest(exc.unit)
                raise Problem("MLW103", f"unknown unit `{exc.unit}` in \"{value}\"",
                              f"did you mean `{close}`?" if close else f"{kind} units: {', '.join(units.units_of(kind))}")
            except units.QuantityOutOfRange as exc:
                raise Problem("MLW206", str(exc), "durations must be finite, sizes and rates at most 2**63-1")
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


def _domain(value: Any) -> str:
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value):
        raise Problem("MLW204", f"a domain is a name such as `training`, got {_describe(value)}")
    return value


class Unset(enum.Enum):
    """The value of a directive field that was not written: an inherited value stays."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset.UNSET


def _checked(check: Callable[[Any], Any]) -> Any:
    """A directive field, not written by default, whose written values ``check`` converts."""
    return field(default=UNSET, metadata={"check": check})


@dataclass(frozen=True, slots=True)
class _Fields:
    """The written fields of one directive block."""

    def written(self) -> dict[str, Any]:
        """The fields that were written, by name (the keyword arguments of the IR model)."""
        return {name: value for name in self.__dataclass_fields__ if (value := getattr(self, name)) is not UNSET}

    def over(self, base: "_Fields") -> "_Fields":
        """These fields where written, ``base``'s elsewhere."""
        return type(self)(*[b if v is UNSET else v for v, b in zip(self._values(), base._values())])

    def _values(self) -> list[Any]:
        return [getattr(self, name) for name in self.__dataclass_fields__]


@dataclass(frozen=True, slots=True)
class ResourceFields(_Fields):
    """``resources { }`` -> ``ir.Resources``."""

    cpu: float | Unset = _checked(number(0))
    memory: int | Unset = _checked(quantity("size"))  # bytes
    gpu: int | Unset = _checked(integer(0))
    storage: int | Unset = _checked(quantity("size"))  # bytes
    network: int | Unset = _checked(quantity("rate"))  # bits per second


@dataclass(frozen=True, slots=True)
class CacheFields(_Fields):
    """``cache { }`` (or ``cache = STRATEGY``) -> ``ir.CachePolicy``."""

    strategy: str | Unset = _checked(choice(CACHE_STRATEGIES))
    ttl: float | None | Unset = _checked(optional(quantity("duration")))  # seconds; None: no expiry
    version: str | Unset = _checked(text)


@dataclass(frozen=True, slots=True)
class RetryFields(_Fields):
    """``retry { }`` -> ``ir.RetryPolicy``."""

    attempts: int | Unset = _checked(integer(1))
    backoff: str | Unset = _checked(choice(BACKOFFS))
    initial: float | Unset = _checked(quantity("duration"))  # seconds
    max: float | Unset = _checked(quantity("duration"))  # seconds
    jitter: bool | Unset = _checked(boolean)


@dataclass(frozen=True, slots=True)
class Directives:
    """The directives written in one place (a task's body, ``defaults``), or merged."""

    resources: ResourceFields = ResourceFields()
    cache: CacheFields = CacheFields()
    retry: RetryFields = RetryFields()
    timeout: float | None | Unset = _checked(optional(quantity("duration")))  # seconds; None: none
    domain: str | Unset = _checked(_domain)

    @property
    def timeout_seconds(self) -> float | None:
        """The timeout of one attempt; None when there is none (not written, or ``none``)."""
        return None if self.timeout is UNSET else self.timeout

    @property
    def domain_name(self) -> str:
        return "default" if self.domain is UNSET else self.domain


NO_DIRECTIVES = Directives()

BLOCKS: dict[str, type[_Fields]] = {"resources": ResourceFields, "cache": CacheFields, "retry": RetryFields}
# block -> field -> its check, in declaration order
_FIELD_CHECKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    name: {f.name: f.metadata["check"] for f in fields(cls)} for name, cls in BLOCKS.items()}
# Other names of fields (the JSON/YAML workflow form writes `max_attempts`).
FIELD_ALIASES: dict[str, dict[str, str]] = {"retry": {"max_attempts": "attempts"}, "resources": {}, "cache": {}}
# Directive attributes; `cache = disk` is shorthand for `cache { strategy = disk }`.
DIRECTIVE_ATTRS = ("timeout", "domain", "cache")
_ATTR_CHECKS: dict[str, Callable[[Any], Any]] = {  # timeout, domain
    f.name: f.metadata["check"] for f in fields(Directives) if "check" in f.metadata}


def check_directives(attrs: tuple[RAttr, ...], blocks: tuple[RBlock, ...]) -> tuple[Directives, list[Diagnostic]]:
    """Directive attributes (``timeout``, ``domain``, ``cache``) and blocks -> written fields."""
    if not attrs and not blocks:
        return NO_DIRECTIVES, []
    top: dict[str, Any] = {}  # timeout, domain
    written: dict[str, dict[str, Any]] = {}  # block -> field -> value
    diags: list[Diagnostic] = []
    for a in attrs:
        if a.name == "cache":
            try:
                written.setdefault("cache", {})["strategy"] = _FIELD_CHECKS["cache"]["strategy"](a.value)
            except Problem as p:
                diags.append(Diagnostic(p.code, f"`cache`: {p.message}", a.span, hint=p.hint))
            continue
        try:
            top[a.name] = _ATTR_CHECKS[a.name](a.value)
        except Problem as p:
            diags.append(Diagnostic(p.code, f"`{a.name}`: {p.message}", a.span, hint=p.hint))
    for b in blocks:
        checks = _FIELD_CHECKS.get(b.name)
        if checks is None:
            diags.append(Diagnostic("MLW202", f"unknown block `{b.name}`", b.name_span,
                                    hint=did_you_mean(b.name, BLOCKS) or f"blocks: {', '.join(BLOCKS)}"))
            continue
        values = written.setdefault(b.name, {})
        for a in b.attrs:
            name = FIELD_ALIASES[b.name].get(a.name, a.name)
            check = checks.get(name)
            if check is None:
                diags.append(Diagnostic("MLW203", f"unknown field `{a.name}` in `{b.name}`", a.name_span,
                                        hint=did_you_mean(a.name, checks) or f"{b.name} fields: {', '.join(checks)}"))
                continue
            try:
                values[name] = check(a.value)
            except Problem as p:
                diags.append(Diagnostic(p.code, f"`{b.name}.{name}`: {p.message}", a.span, hint=p.hint))
    return Directives(**{name: BLOCKS[name](**values) for name, values in written.items()}, **top), diags


def merge(defaults: Directives, own: Directives) -> Directives:
    """A task's own directive values win over the defaults, field by field.

    >>> d = merge(Directives(ResourceFields(cpu=1.0, memory=5)), Directives(ResourceFields(memory=9)))
    >>> d.resources.written()
    {'cpu': 1.0, 'memory': 9}
    """
    if own is NO_DIRECTIVES:
        return defaults  # shared, so identical directives are lowered once
    return Directives(own.resources.over(defaults.resources), own.cache.over(defaults.cache),
                      own.retry.over(defaults.retry), defaults.timeout if own.timeout is UNSET else own.timeout,
                      defaults.domain if own.domain is UNSET else own.domain)
