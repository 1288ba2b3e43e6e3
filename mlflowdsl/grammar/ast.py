"""Frozen AST of a `.mlw` file. Every node carries its source ``span``.

The parser builds these from the grammar's reductions (``builder.py``); the JSON/YAML
workflow form (``compiler/seed_spec.py``) builds the same nodes, so every compiler pass
after parsing sees one representation. Nodes are plain data: no behaviour beyond
small helpers.

Expressions
-----------
``Str`` (with ``${...}`` interpolation parts), ``Int``, ``Float``, ``Bool``, ``Null``,
``Quantity`` (number + unit, converted by the compiler), ``ListExpr``, ``MapExpr``,
``Name`` (a bare identifier used as a value: ``hybrid``, ``training``, ``tpe``),
``Ref`` (a dotted reference: ``prep.output``, ``params.seed``, ``train[rf].model``,
``train[*].model``, ``rf.model``), ``Call`` (``int(1, 10, step = 1)``,
``maximize(accuracy)``, ``choice("a", "b")``), ``BinOp`` / ``UnaryOp`` (for ``when``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from mlflowdsl.grammar.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Node:
    span: Span


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Str(Node):
    """A string literal. ``parts`` alternates literal text (str) and interpolated
    expressions (``Expr``) in source order; a plain string has one str part."""

    parts: tuple[Union[str, "Expr"], ...]
    triple: bool = False  # written as """..."""; kept for the formatter

    @property
    def is_plain(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    @property
    def text(self) -> str:
        """The literal text; only meaningful when ``is_plain``."""
        return "".join(p for p in self.parts if isinstance(p, str))


@dataclass(frozen=True, slots=True)
class Int(Node):
    value: int


@dataclass(frozen=True, slots=True)
class Float(Node):
    value: float
    raw: str = ""  # source spelling, kept for the formatter (``1e-4`` stays ``1e-4``)


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Null(Node):
    pass


@dataclass(frozen=True, slots=True)
class Quantity(Node):
    """``250ms``, ``4GiB``, ``1Gbps``: number and unit as written; the compiler converts."""

    value: float
    unit: str
    raw: str  # e.g. "4GiB"


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True, slots=True)
class MapEntry(Node):
    key: str
    key_span: Span
    value: "Expr"


@dataclass(frozen=True, slots=True)
class MapExpr(Node):
    entries: tuple[MapEntry, ...]


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A bare identifier used as a value (an enum-like word such as ``hybrid``)."""

    name: str


@dataclass(frozen=True, slots=True)
class RefPart(Node):
    """One segment of a reference: ``train``, ``train[random_forest]`` or ``train[*]``."""

    name: str
    index: str | None = None  # the bracketed key, "*" for a collect-all, None when absent


@dataclass(frozen=True, slots=True)
class Ref(Node):
    """A dotted reference with at least two parts: ``prep.output``, ``params.seed``,
    ``train[*].model``, ``rf.model`` (a template use's output)."""

    parts: tuple[RefPart, ...]

    def dotted(self) -> str:
        return ".".join(p.name + (f"[{p.index}]" if p.index is not None else "") for p in self.parts)


@dataclass(frozen=True, slots=True)
class Arg(Node):
    """A call argument; ``name`` is set for keyword arguments (``log = true``)."""

    name: str | None
    value: "Expr"


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: str
    func_span: Span
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    op: str  # "==", "!=", "<", "<=", ">", ">=", "and", "or"
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True, slots=True)
class UnaryOp(Node):
    op: str  # "not", "-"
    operand: "Expr"


Expr = Union[Str, Int, Float, Bool, Null, Quantity, ListExpr, MapExpr, Name, Ref, Call, BinOp, UnaryOp]


# ----------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Attr(Node):
    """``name = value`` inside a workflow, task, block, tune or use."""

    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True, slots=True)
class Block(Node):
    """``name { attrs }``: resources, cache, retry, search, and any unknown block name
    (the compiler reports unknown ones with MLW202)."""

    name: str
    name_span: Span
    attrs: tuple[Attr, ...]


Body = tuple[Union[Attr, Block], ...]


@dataclass(frozen=True, slots=True)
class TypeRef(Node):
    """A parameter type: ``str``, ``list[str]``, ``map[str, float]``."""

    name: str
    args: tuple["TypeRef", ...] = ()

    def spelled(self) -> str:
        return self.name + (f"[{', '.join(a.spelled() for a in self.args)}]" if self.args else "")


@dataclass(frozen=True, slots=True)
class Range(Node):
    """``in 0..1``, ``in 1..``, ``in ..100``."""

    low: Expr | None
    high: Expr | None


@dataclass(frozen=True, slots=True)
class Choices(Node):
    """``in ["dev", "prod"]``."""

    values: ListExpr


@dataclass(frozen=True, slots=True)
class ParamDecl(Node):
    name: str
    name_span: Span
    type: TypeRef
    default: Expr | None = None
    constraint: Range | Choices | None = None


@dataclass(frozen=True, slots=True)
class Foreach(Node):
    var: str
    var_span: Span
    iterable: Expr


@dataclass(frozen=True, slots=True)
class Ident(Node):
    """An identifier with its own span (a name in ``after a, b``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Task(Node):
    """``task ID: TYPE [after A, B] [foreach X in EXPR] { body }``."""

    id: str
    id_span: Span
    type: str
    type_span: Span
    after: tuple[Ident, ...]
    foreach: Foreach | None
    body: Body


@dataclass(frozen=True, slots=True)
class Tune(Node):
    """``tune TASK { search { ... } objective = maximize(m) trials = 50 ... }``."""

    target: str
    target_span: Span
    body: Body


@dataclass(frozen=True, slots=True)
class Use(Node):
    """``use ALIAS = TEMPLATE(arg = value, ...)``."""

    alias: str
    alias_span: Span
    template: str
    template_span: Span
    args: tuple[Attr, ...]


@dataclass(frozen=True, slots=True)
class Output(Node):
    """``output NAME = EXPR`` inside a template."""

    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True, slots=True)
class TemplateParam(Node):
    name: str
    type: TypeRef | None = None
    default: Expr | None = None


@dataclass(frozen=True, slots=True)
class Defaults(Node):
    body: Body


@dataclass(frozen=True, slots=True)
class Params(Node):
    decls: tuple[ParamDecl, ...]


WorkflowItem = Union[Attr, Params, Defaults, Task, Tune, Use]


@dataclass(frozen=True, slots=True)
class Template(Node):
    name: str
    name_span: Span
    params: tuple[TemplateParam, ...]
    items: tuple[Union[Task, Tune, Use, Output], ...]


@dataclass(frozen=True, slots=True)
class Workflow(Node):
    id: str
    id_span: Span
    items: tuple[WorkflowItem, ...]  # in source order (the formatter keeps it)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(i for i in self.items if isinstance(i, Task))

    @property
    def tunes(self) -> tuple[Tune, ...]:
        return tuple(i for i in self.items if isinstance(i, Tune))

    @property
    def uses(self) -> tuple[Use, ...]:
        return tuple(i for i in self.items if isinstance(i, Use))

    @property
    def attrs(self) -> tuple[Attr, ...]:
        return tuple(i for i in self.items if isinstance(i, Attr))


@dataclass(frozen=True, slots=True)
class Import(Node):
    path: str
    path_span: Span


@dataclass(frozen=True, slots=True)
class Comment(Node):
    """A ``#`` comment; collected by the parser for the formatter, ignored by the compiler."""

    text: str  # including the leading '#'


@dataclass(frozen=True, slots=True)
class Module(Node):
    """One parsed file."""

    file: str
    version: int | None
    imports: tuple[Import, ...]
    templates: tuple[Template, ...]
    workflow: Workflow | None
    comments: tuple[Comment, ...] = ()
    # Top-level items in source order (imports, templates, workflow), for the formatter.
    order: tuple[Union[Import, Template, Workflow], ...] = ()
    # Where the `mlw N` header is (None when absent); the formatter keeps its comments in place.
    version_span: Span | None = None
