"""Grammar reductions -> frozen AST nodes: the inline transformer of the `.mlw` parser.

``AstBuilder`` has one method per rule of ``mlw.lark``. It is passed to the Lark constructor
as an *inline* transformer, so LALR reductions produce ``ast`` nodes directly and no parse
tree is ever built. Lark cannot hand rule positions to an inline transformer, so the grammar
is parsed with ``keep_all_tokens=True`` and each node's span runs from its first to its last
token.

The builder also reports what the grammar accepts but the language does not: MLW102 (a bad
string literal), MLW103 (an unknown quantity unit), MLW104 (an unsupported ``mlw N``
header) and MLW209 (a second ``workflow`` in one file).
"""

from __future__ import annotations

import bisect
import re

from lark import Token, Transformer

from mlflowdsl.grammar import ast, limits
from mlflowdsl.grammar.diagnostics import Diagnostic, Span
from mlflowdsl.grammar.strings import decode_body
from mlflowdsl.grammar.units import UNITS, UnknownUnit, kind_of, suggest, units_of

SUPPORTED_VERSIONS = (1,)

_NUMBER = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)")


class _Index:
    """``[key]`` of a reference, before it is attached to its ``RefPart``."""

    __slots__ = ("value", "span")

    def __init__(self, value: str, span: Span):
        self.value = value
        self.span = span


class _Version(_Index):
    """The ``mlw N`` header."""


def _start(x) -> tuple[int, int]:
    if isinstance(x, Token):
        return x.line, x.column
    s = x.span
    return s.line, s.column


def _end(x) -> tuple[int, int]:
    if isinstance(x, Token):
        return x.end_line, x.end_column
    s = x.span
    return s.end_line, s.end_column


def _nodes(children, kinds) -> tuple:
    return tuple(c for c in children if isinstance(c, kinds))


class _Splice:
    """What Lark's generated helper rules (for ``x*`` repetitions) reduce to: their children
    are spliced into the parent rule. A bare holder is much cheaper than a ``Tree``."""

    __slots__ = ("children",)

    def __init__(self, children):
        self.children = children


class AstBuilder(Transformer):
    """One method per grammar rule; ``children`` include every token (keep_all_tokens).

    The builder is shared by all parses (it is baked into the Lark instance), so the parser
    sets its per-parse state (file name, diagnostics, comments) under a lock.
    """

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.file = "<string>"
        self.diags: list[Diagnostic] = []
        self.comments: list[ast.Comment] = []

    # ------------------------------------------------------------------ helpers
    def __default__(self, data, children, meta):
        # Only Lark's generated `__x_star_n` rules get here (every grammar rule has a method).
        return _Splice(children)

    def _sp(self, first, last) -> Span:
        l1, c1 = _start(first)
        l2, c2 = _end(last)
        return Span(self.file, l1, c1, l2, c2)

    def _tok(self, t: Token) -> Span:
        return Span(self.file, t.line, t.column, t.end_line, t.end_column)

    def _error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, message, span, hint))

    def on_comment(self, t: Token) -> None:
        text = str(t)
        if text.endswith("\r"):  # a CRLF file: the \r is line ending, not comment text
            text = text.rstrip("\r")
            span = Span(self.file, t.line, t.column, t.line, t.column + len(text))
        else:
            span = self._tok(t)
        self.comments.append(ast.Comment(span, text))

    # ------------------------------------------------------------------ file structure
    def start(self, c):
        version = None
        version_span = None
        workflow = None
        order = []
        for x in c:
            if isinstance(x, _Version):
                version = int(x.value) if x.value.isdigit() and len(x.value) <= limits.MAX_INT_DIGITS else None
                version_span = x.span
            elif isinstance(x, ast.Workflow):
                if workflow is not None:
                    self._error(
                        "MLW209",
                        f"a second workflow `{x.id}` in one file (the first is `{workflow.id}`)",
                        x.id_span,
                        "one file holds one workflow; move this one to its own file",
                    )
                    continue
                workflow = x
                order.append(x)
            else:
                order.append(x)
        return (version, version_span, workflow, tuple(order))

    def version(self, c):
        tok = c[1]
        if not (tok.isdigit() and len(tok) <= 4 and int(tok) in SUPPORTED_VERSIONS):
            shown = str(tok) if len(tok) <= 40 else f"{tok[:20]}…{tok[-8:]}"
            self._error(
                "MLW104",
                f"unsupported language version `mlw {shown}`",
                self._tok(tok),
                "this mlw understands `mlw 1`",
            )
        return _Version(str(tok), self._sp(c[0], tok))

    def import_(self, c):
        path = self.string([c[1]])
        text = path.text if path.is_plain else ""
        if not path.is_plain:
            self._error("MLW102", "an import path cannot use `${...}` interpolation", path.span)
        return ast.Import(self._sp(c[0], c[1]), text, path.span)

    def template(self, c):
        return ast.Template(
            self._sp(c[0], c[-1]),
            str(c[1]),
            self._tok(c[1]),
            _nodes(c, ast.TemplateParam),
            _nodes(c, (ast.Task, ast.Tune, ast.Use, ast.Output)),
        )

    def tparam(self, c):
        typ = next((x for x in c if isinstance(x, ast.TypeRef)), None)
        default = c[-1] if len(c) > 2 and c[-2].__class__ is Token and c[-2].type == "EQUAL" else None
        return ast.TemplateParam(self._sp(c[0], c[-1]), str(c[0]), typ, default)

    def output(self, c):
        return ast.Output(self._sp(c[0], c[3]), str(c[1]), self._tok(c[1]), c[3])

    def workflow(self, c):
        items = tuple(c[3:-1])
        return ast.Workflow(self._sp(c[0], c[-1]), str(c[1]), self._tok(c[1]), items)

    # ------------------------------------------------------------------ params
    def params(self, c):
        return ast.Params(self._sp(c[0], c[-1]), tuple(c[2:-1]))

    def param_decl(self, c):
        default = None
        for i, x in enumerate(c):
            if x.__class__ is Token and x.type == "EQUAL":
                default = c[i + 1]
        constraint = c[-1] if isinstance(c[-1], (ast.Range, ast.Choices)) else None
        return ast.ParamDecl(self._sp(c[0], c[-1]), str(c[0]), self._tok(c[0]), c[2], default, constraint)

    def range(self, c):
        low = high = None
        seen_dots = False
        for x in c[1:]:
            if x.type == "DOTDOT":
                seen_dots = True
            elif seen_dots:
                high = self.number([x])
            else:
                low = self.number([x])
        return ast.Range(self._sp(c[0], c[-1]), low, high)

    def choices(self, c):
        return ast.Choices(self._sp(c[0], c[1]), c[1])

    def type(self, c):
        return ast.TypeRef(self._sp(c[0], c[-1]), str(c[0]), _nodes(c, ast.TypeRef))

    # ------------------------------------------------------------------ tasks and friends
    def defaults(self, c):
        return ast.Defaults(self._sp(c[0], c[-1]), tuple(c[2:-1]))

    def task(self, c):
        # c: task ID : TYPE [after] [foreach] { items } — the optional parts are c[4], c[5]
        i = 4
        after: tuple = ()
        foreach = None
        if c[i].__class__ is tuple:
            after = c[i]
            i += 1
        if c[i].__class__ is ast.Foreach:
            foreach = c[i]
            i += 1
        return ast.Task(
            self._sp(c[0], c[-1]),
            str(c[1]),
            self._tok(c[1]),
            str(c[3]),
            self._tok(c[3]),
            after,
            foreach,
            tuple(c[i + 1 : -1]),
        )

    def after(self, c):
        return _nodes(c, ast.Ident)

    def ident(self, c):
        return ast.Ident(self._tok(c[0]), str(c[0]))

    def foreach(self, c):
        return ast.Foreach(self._sp(c[0], c[3]), str(c[1]), self._tok(c[1]), c[3])

    def tune(self, c):
        return ast.Tune(self._sp(c[0], c[-1]), str(c[1]), self._tok(c[1]), tuple(c[3:-1]))

    def use(self, c):
        return ast.Use(
            self._sp(c[0], c[-1]), str(c[1]), self._tok(c[1]), str(c[3]), self._tok(c[3]), _nodes(c, ast.Attr)
        )

    def attr(self, c):
        return ast.Attr(self._sp(c[0], c[2]), str(c[0]), self._tok(c[0]), c[2])

    def block(self, c):
        return ast.Block(self._sp(c[0], c[-1]), str(c[0]), self._tok(c[0]), _nodes(c, ast.Attr))

    # ------------------------------------------------------------------ expressions
    def binop(self, c):
        return ast.BinOp(self._sp(c[0], c[2]), str(c[1]), c[0], c[2])

    def not_(self, c):
        return ast.UnaryOp(self._sp(c[0], c[1]), "not", c[1])

    def paren(self, c):
        return c[1]

    def true(self, c):
        return ast.Bool(self._tok(c[0]), True)

    def false(self, c):
        return ast.Bool(self._tok(c[0]), False)

    def null(self, c):
        return ast.Null(self._tok(c[0]))

    def name(self, c):
        return ast.Name(self._tok(c[0]), str(c[0]))

    def number(self, c):
        tok = c[0]
        span = self._tok(tok)
        m = _NUMBER.fullmatch(tok)
        digits, unit = m.group(1), m.group(2)
        is_float = bool(unit) or "." in digits or "e" in digits or "E" in digits
        if not is_float and len(digits.lstrip("-")) > limits.MAX_INT_DIGITS:
            value: int | float = limits.MAX_INT + 1  # not converted: int() of 4,300+ digits raises
        else:
            value = float(digits) if is_float else int(digits)
        problem = limits.number_problem(value)
        if problem:
            shown = str(tok) if len(tok) <= 40 else f"{tok[:20]}…{tok[-8:]}"
            self._error("MLW108", f"number `{shown}` is out of range: {problem}", span,
                        "write a smaller number")
            value = 0
        if unit:
            if unit not in UNITS:
                self._unknown_unit(tok, digits, unit)
            return ast.Quantity(span, float(value), unit, str(tok))
        if is_float:
            return ast.Float(span, float(value), str(tok))
        return ast.Int(span, int(value))

    def _unknown_unit(self, tok: Token, digits: str, unit: str) -> None:
        span = Span(self.file, tok.line, tok.column + len(digits), tok.end_line, tok.end_column)
        try:
            kind_of(unit)
        except UnknownUnit as e:
            kinds = [e.kind] if e.kind else ["duration", "size", "rate"]
        listed = "; ".join(f"{k}s: {' '.join(units_of(k))}" for k in kinds)
        close = suggest(unit)
        hint = (f"did you mean `{digits}{close}`? " if close else "") + f"known units — {listed}"
        self._error("MLW103", f"unknown unit `{unit}` in quantity `{tok}`", span, hint)

    def string(self, c):
        tok = c[0]
        raw = str(tok)
        triple = tok.type == "TRIPLE"
        q = 3 if triple else 1
        body = raw[q:-q]
        span = self._tok(tok)
        if "\\" not in body and "${" not in body:
            return ast.Str(span, (body,), triple)
        pieces, errors = decode_body(body, q)
        for err in errors:
            self._error("MLW102", err.message, self._offset_span(tok, err.offset, err.length), err.hint)
        parts: list = []
        for p in pieces:
            if isinstance(p, str):
                if p or not parts:
                    parts.append(p)
                continue
            start, end, segments = p
            parts.append(self._interpolation(tok, start, end, segments))
        return ast.Str(span, tuple(parts), triple)

    def _offset_span(self, tok: Token, offset: int, length: int) -> Span:
        l1, c1 = _pos_in_token(tok, offset)
        l2, c2 = _pos_in_token(tok, offset + max(length, 1))
        return Span(self.file, l1, c1, l2, c2)

    def _interpolation(self, tok: Token, start: int, end: int, segments) -> ast.Expr:
        if len(segments) == 1 and segments[0][1] is None:
            name, _, s, e = segments[0]
            return ast.Name(self._offset_span(tok, s, e - s), name)
        parts = tuple(
            ast.RefPart(self._offset_span(tok, s, e - s), name, index) for name, index, s, e in segments
        )
        first, last = parts[0].span, parts[-1].span
        if len(parts) == 1:
            self._error(
                "MLW102",
                f"`${{{parts[0].name}[{parts[0].index}]}}` needs a field, e.g. `.output`",
                first,
            )
        return ast.Ref(first.to(last), parts)

    def ref(self, c):
        parts: list[ast.RefPart] = []
        for x in c:
            if isinstance(x, _Index):
                p = parts[-1]
                parts[-1] = ast.RefPart(p.span.to(x.span), p.name, x.value)
            elif x.type != "DOT":
                parts.append(ast.RefPart(self._tok(x), str(x), None))
        return ast.Ref(self._sp(c[0], c[-1]), tuple(parts))

    def index(self, c):
        key = c[1]
        value = self.string([key]).text if key.type == "STRING" else str(key)
        return _Index(value, self._sp(c[0], c[2]))

    def call(self, c):
        return ast.Call(self._sp(c[0], c[-1]), str(c[0]), self._tok(c[0]), _nodes(c, ast.Arg))

    def arg(self, c):
        return ast.Arg(c[0].span, None, c[0])

    def kwarg(self, c):
        return ast.Arg(self._sp(c[0], c[2]), str(c[0]), c[2])

    def list(self, c):
        return ast.ListExpr(self._sp(c[0], c[-1]), tuple(x for x in c if not isinstance(x, Token)))

    def map(self, c):
        return ast.MapExpr(self._sp(c[0], c[-1]), _nodes(c, ast.MapEntry))

    def map_entry(self, c):
        key = c[0]
        name = self.string([key]).text if key.type == "STRING" else str(key)
        return ast.MapEntry(self._sp(key, c[2]), name, self._tok(key), c[2])


_NEWLINES: tuple[Token | None, list[int]] = (None, [])  # the newline offsets of the last token asked about


def _pos_in_token(tok: Token, offset: int) -> tuple[int, int]:
    """File line/column of character ``offset`` inside ``tok`` (which may span lines).

    The token's newlines are found once (a string with many interpolations asks for many
    offsets in one token), so each position is a bisection, not a scan of the text before it.
    """
    global _NEWLINES
    if _NEWLINES[0] is not tok:
        _NEWLINES = (tok, [i for i, c in enumerate(tok) if c == "\n"] if "\n" in tok else [])
    newlines = _NEWLINES[1]
    if not newlines or offset <= newlines[0]:
        return tok.line, tok.column + offset
    k = bisect.bisect_left(newlines, offset)  # newlines before `offset`
    return tok.line + k, offset - newlines[k - 1]
