"""The canonical layout of a `.mlw` file (``mlw fmt``).

Layout: 2-space indent; one attribute per line in bodies, with the ``=`` of a run of
attributes aligned; a block, map, list or call stays on one line when it fits in
``WIDTH`` columns and holds no comment (``resources { cpu = 2  memory = 4GiB }``), otherwise
it opens one line per entry; a blank line between top-level items and between workflow items
other than consecutive attributes.

Comments are kept in place: a comment after code stays at the end of the line that prints
that code, and a comment on a line of its own stays before the item that follows it.

The formatter works on the AST and prints from it alone, so ``parse(format(m))`` equals
``m`` up to spans, and formatting is idempotent (both are hypothesis-tested).

>>> print(format_text('workflow w{task a:custom{uses="m:f" resources{cpu=2 memory=4GiB}}}'), end="")
workflow w {
  task a: custom {
    uses = "m:f"
    resources { cpu = 2  memory = 4GiB }
  }
}
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass, field

from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Span
from mlflowdsl.grammar.parser import parse_text
from mlflowdsl.grammar.strings import escape, quote, quote_triple_text

WIDTH = 100
INDENT = "  "

_KEYWORDS = frozenset(
    "workflow task tune template use import params defaults after foreach in output true false null and or not mlw".split()
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PREC = {"or": 1, "and": 2, "not": 3}  # comparisons are 4, atoms 5


@dataclass
class _Line:
    """One output line; ``first``/``last`` are the source lines it prints (0: none)."""

    depth: int
    text: str
    first: int = 0
    last: int = 0
    closing: bool = False  # a closing bracket: comments before it belong one level deeper
    trailing: list = field(default_factory=list)


def _line(depth: int, text: str, node: ast.Node | None = None, closing: bool = False) -> _Line:
    if node is None:
        return _Line(depth, text)
    s = node.span
    if closing:
        return _Line(depth, text, s.end_line, s.end_line, True)
    return _Line(depth, text, s.line, s.end_line)


def format_text(text: str, file: str = "<string>") -> str:
    """Parse ``text`` and print it in the canonical layout (raises ``CompileError``)."""
    return format_module(parse_text(text, file))


def format_module(module: ast.Module) -> str:
    """The canonical text of ``module`` (ends with one newline)."""
    lines = _Printer(module.comments).module(module)
    return _render(_place_comments(lines, module.comments, _code_columns(module)))


# ---------------------------------------------------------------------------- comments


def _code_columns(module: ast.Module) -> dict[int, int]:
    """line -> the first column known to hold code, from every span in the AST (to tell a
    comment after code from a comment on a line of its own)."""
    cols: dict[int, int] = {}

    def mark(line: int, col: int) -> None:
        if cols.get(line, 1 << 30) > col:
            cols[line] = col

    def walk(node) -> None:
        if isinstance(node, (tuple, list)):
            for x in node:
                walk(x)
            return
        if not dataclasses.is_dataclass(node) or isinstance(node, (ast.Comment, ast.Module)):
            return
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, Span):
                mark(value.line, value.column)
                mark(value.end_line, max(1, value.end_column - 1))
            elif f.name not in ("span",):
                walk(value)

    walk(module.order)
    if module.version_span is not None:
        mark(module.version_span.line, module.version_span.column)
    return cols


def _place_comments(lines: list[_Line], comments, code_cols: dict[int, int]) -> list[_Line]:
    """Attach each comment to a printed line, keeping the comments' source order.

    A comment after code goes to the end of the line printing that code; a comment alone on
    its line goes above the first line that prints code at or after it (one level deeper when
    that is a closing bracket). When one printed line collects several comments, all but a
    last trailing one are printed above it, in source order.
    """
    code = [x for x in lines if x.first]
    lasts = [x.last for x in code]
    tail: list[str] = []
    for c in comments:
        line, col = c.span.line, c.span.column
        key = (line, col, c.text)
        if code_cols.get(line, 1 << 30) < col:
            target = next((x for x in reversed(code) if x.first <= line <= x.last), None)
            if target is not None:
                target.trailing.append((key, True))
                continue
        i = bisect.bisect_left(lasts, line)
        if i < len(code):
            code[i].trailing.append((key, False))
        else:
            tail.append(c.text)
    return lines + [_Line(0, t) for t in tail]


def _render(lines: list[_Line]) -> str:
    out: list[str] = []
    for x in lines:
        if not x.text:
            if out and out[-1] != "":  # collapse blank runs, none at the start
                out.append("")
            continue
        pad = INDENT * x.depth
        notes = sorted(x.trailing)
        after = notes.pop()[0][2] if notes and notes[-1][1] else None
        above = [n[0] for n in notes]
        inner = pad + INDENT if x.closing else pad
        out.extend(inner + text for _, _, text in above)
        # the source had a blank line between own-line comments and this code: keep one
        if above and not x.closing and above[-1][0] + 1 < x.first and out[-1] != "":
            out.append("")
        text = pad + x.text
        if after is not None:
            text += "  " + after
        out.append(text.rstrip())
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- printer


class _Printer:
    def __init__(self, comments) -> None:
        self.comment_pos = sorted((c.span.line, c.span.column) for c in comments)

    def _has_comment(self, node: ast.Node, after: Span | None = None) -> bool:
        """Is there a comment inside ``node`` (after the end of ``after``, when given)?

        Only comments that the opened-up layout would keep inside count, so that the choice
        between one line and several is the same when the output is formatted again.
        """
        s = node.span
        start = (after.end_line, after.end_column) if after is not None else (s.line, s.column)
        i = bisect.bisect_right(self.comment_pos, start)
        return i < len(self.comment_pos) and self.comment_pos[i] < (s.end_line, s.end_column)

    # ------------------------------------------------------------------ file structure
    def module(self, m: ast.Module) -> list[_Line]:
        out: list[_Line] = []
        if m.version is not None:
            vs = m.version_span
            out += [_Line(0, f"mlw {m.version}", vs.line if vs else 1, vs.line if vs else 1), _Line(0, "")]
        prev = None
        for item in m.order:
            if prev is not None and not (isinstance(prev, ast.Import) and isinstance(item, ast.Import)):
                out.append(_Line(0, ""))
            if isinstance(item, ast.Import):
                out.append(_line(0, f"import {quote(item.path)}", item))
            elif isinstance(item, ast.Template):
                out += self.template(item)
            else:
                out += self.workflow(item)
            prev = item
        return out

    def template(self, t: ast.Template) -> list[_Line]:
        params = ", ".join(self.tparam(p) for p in t.params)
        header_last = max([t.name_span.end_line] + [p.span.end_line for p in t.params])
        out = [_Line(0, f"template {t.name}({params}) {{", t.span.line, header_last)]
        out += self.items(t.items, 1)
        out.append(_line(0, "}", t, closing=True))
        return out

    def tparam(self, p: ast.TemplateParam) -> str:
        text = p.name
        if p.type is not None:
            text += f": {p.type.spelled()}"
        if p.default is not None:
            text += f" = {self.inline(p.default)}"
        return text

    def workflow(self, w: ast.Workflow) -> list[_Line]:
        out = [_Line(0, f"workflow {w.id} {{", w.span.line, w.id_span.end_line)]
        out += self.items(w.items, 1)
        out.append(_line(0, "}", w, closing=True))
        return out

    def items(self, items, depth: int) -> list[_Line]:
        out: list[_Line] = []
        run = _runs(items)
        prev = None
        for item in items:
            if prev is not None and not (type(prev) is type(item) and isinstance(item, (ast.Attr, ast.Output))):
                out.append(_Line(depth, ""))
            if isinstance(item, ast.Attr):
                out += self.attr(item, depth, run.get(id(item), 0))
            elif isinstance(item, ast.Output):
                out += self.with_value(f"output {item.name} = ", item.value, depth, item)
            elif isinstance(item, ast.Params):
                out += self.params(item, depth)
            elif isinstance(item, ast.Defaults):
                out += self.braced("defaults", item, item.body, depth, item.span.line)
            elif isinstance(item, ast.Task):
                out += self.task(item, depth)
            elif isinstance(item, ast.Tune):
                out += self.braced(f"tune {item.target}", item, item.body, depth, item.target_span.end_line)
            elif isinstance(item, ast.Use):
                out += self.use(item, depth)
            prev = item
        return out

    def params(self, p: ast.Params, depth: int) -> list[_Line]:
        if not p.decls:
            return [_line(depth, "params { }", p)]
        out = [_Line(depth, "params {", p.span.line, p.span.line)]
        name_w = max(len(d.name) for d in p.decls) + 1
        type_w = max(len(d.type.spelled()) for d in p.decls)
        for d in p.decls:
            head = f"{(d.name + ':').ljust(name_w)} {d.type.spelled().ljust(type_w)}"
            tail = ""
            if d.constraint is not None:
                tail = " in " + self.constraint(d.constraint)
            if d.default is None:
                out.append(_line(depth + 1, (head.rstrip() + tail), d))
            else:
                lines = self.with_value(head + " = ", d.default, depth + 1, d)
                lines[-1].text += tail
                out += lines
        out.append(_line(depth, "}", p, closing=True))
        return out

    def constraint(self, c) -> str:
        if isinstance(c, ast.Choices):
            return self.inline(c.values)
        low = self.inline(c.low) if c.low is not None else ""
        high = self.inline(c.high) if c.high is not None else ""
        return f"{low}..{high}"

    def task(self, t: ast.Task, depth: int) -> list[_Line]:
        head = f"task {t.id}: {t.type}"
        header_last = t.type_span.end_line
        if t.after:
            head += " after " + ", ".join(a.name for a in t.after)
            header_last = t.after[-1].span.end_line
        if t.foreach is not None:
            head += f" foreach {t.foreach.var} in {self.inline(t.foreach.iterable)}"
            header_last = t.foreach.span.end_line
        return self.braced(head, t, t.body, depth, header_last)

    def braced(self, head: str, node: ast.Node, body, depth: int, header_last: int) -> list[_Line]:
        if not body:
            return [_line(depth, head + " { }", node)]
        out = [_Line(depth, head + " {", node.span.line, header_last)]
        out += self.body(body, depth + 1)
        out.append(_line(depth, "}", node, closing=True))
        return out

    def use(self, u: ast.Use, depth: int) -> list[_Line]:
        head = f"use {u.alias} = {u.template}("
        args = [f"{a.name} = {self.inline(a.value)}" for a in u.args]
        one = head + ", ".join(args) + ")"
        if not any(self._has_comment(a) or "\n" in s for a, s in zip(u.args, args)) and len(
            INDENT * depth + one
        ) <= WIDTH and not self._has_comment(u, after=u.template_span):
            return [_line(depth, one, u)]
        out = [_Line(depth, head, u.span.line, u.template_span.end_line)]
        for a in u.args:
            lines = self.with_value(f"{a.name} = ", a.value, depth + 1, a)
            lines[-1].text += ","
            out += lines
        out.append(_line(depth, ")", u, closing=True))
        return out

    # ------------------------------------------------------------------ bodies
    def body(self, body, depth: int) -> list[_Line]:
        out: list[_Line] = []
        run = _runs(body)
        for item in body:
            if isinstance(item, ast.Attr):
                out += self.attr(item, depth, run.get(id(item), 0))
            else:
                out += self.block(item, depth)
        return out

    def attr(self, a: ast.Attr, depth: int, pad: int) -> list[_Line]:
        return self.with_value(f"{a.name.ljust(pad)} = ", a.value, depth, a)

    def block(self, b: ast.Block, depth: int) -> list[_Line]:
        if not b.attrs:
            return [_line(depth, f"{b.name} {{ }}", b)]
        if not self._has_comment(b, after=b.name_span):
            parts = [f"{a.name} = {self.inline(a.value)}" for a in b.attrs]
            one = f"{b.name} {{ " + "  ".join(parts) + " }"
            if "\n" not in one and len(INDENT * depth + one) <= WIDTH:
                return [_line(depth, one, b)]
        out = [_Line(depth, f"{b.name} {{", b.span.line, b.name_span.end_line)]
        out += self.body(b.attrs, depth + 1)
        out.append(_line(depth, "}", b, closing=True))
        return out

    # ------------------------------------------------------------------ values
    def with_value(self, prefix: str, value: ast.Expr, depth: int, owner: ast.Node) -> list[_Line]:
        """``prefix`` + the value, on one line when it fits, else the value opened up."""
        one = self.inline(value)
        fits = "\n" not in one and len(INDENT * depth + prefix + one) <= WIDTH
        if (fits and not self._has_comment(value)) or not isinstance(value, (ast.ListExpr, ast.MapExpr)):
            return [_Line(depth, prefix + one, owner.span.line, owner.span.end_line)]
        if isinstance(value, ast.ListExpr) and not value.items or isinstance(value, ast.MapExpr) and not value.entries:
            return [_Line(depth, prefix + one, owner.span.line, owner.span.end_line)]
        opener, closer = ("[", "]") if isinstance(value, ast.ListExpr) else ("{", "}")
        out = [_Line(depth, prefix + opener, owner.span.line, value.span.line)]
        if isinstance(value, ast.ListExpr):
            for item in value.items:
                lines = self.with_value("", item, depth + 1, item)
                lines[-1].text += ","
                out += lines
        else:
            pad = max(len(self.key(e.key)) for e in value.entries)
            for e in value.entries:
                out += self.with_value(f"{self.key(e.key).ljust(pad)} = ", e.value, depth + 1, e)
        out.append(_line(depth, closer, value, closing=True))
        return out

    @staticmethod
    def key(name: str) -> str:
        if _IDENT.match(name) and (name not in _KEYWORDS or name == "output"):
            return name
        return quote(name)

    def inline(self, e: ast.Expr) -> str:
        """``e`` on one line (a triple string may still contain newlines)."""
        if isinstance(e, ast.Str):
            return _string(e, self.inline)
        if isinstance(e, ast.Bool):
            return "true" if e.value else "false"
        if isinstance(e, ast.Int):
            return str(e.value)
        if isinstance(e, ast.Float):
            return e.raw or repr(e.value)
        if isinstance(e, ast.Quantity):
            return e.raw
        if isinstance(e, ast.Null):
            return "null"
        if isinstance(e, ast.Name):
            return e.name
        if isinstance(e, ast.Ref):
            return _ref(e)
        if isinstance(e, ast.ListExpr):
            return "[" + ", ".join(self.inline(x) for x in e.items) + "]"
        if isinstance(e, ast.MapExpr):
            if not e.entries:
                return "{ }"
            return "{ " + ", ".join(f"{self.key(x.key)} = {self.inline(x.value)}" for x in e.entries) + " }"
        if isinstance(e, ast.Call):
            args = ", ".join((f"{a.name} = " if a.name else "") + self.inline(a.value) for a in e.args)
            return f"{e.func}({args})"
        if isinstance(e, ast.BinOp):
            p = _prec(e)
            left = self._operand(e.left, p if p < 4 else 5)
            right = self._operand(e.right, p + 1 if p < 4 else 5)
            return f"{left} {e.op} {right}"
        if isinstance(e, ast.UnaryOp):
            if e.op == "not":
                return "not " + self._operand(e.operand, 3)
            return e.op + self._operand(e.operand, 5)
        raise TypeError(f"cannot format {type(e).__name__}")  # pragma: no cover - AST is closed

    def _operand(self, e: ast.Expr, need: int) -> str:
        text = self.inline(e)
        return f"({text})" if _prec(e) < need else text


def _prec(e: ast.Expr) -> int:
    if isinstance(e, ast.BinOp):
        return _PREC.get(e.op, 4)
    if isinstance(e, ast.UnaryOp) and e.op == "not":
        return 3
    return 5


def _runs(items) -> dict[int, int]:
    """id(attr) -> the name width of its run of consecutive attributes (for aligned ``=``)."""
    widths: dict[int, int] = {}
    run: list[ast.Attr] = []
    for item in list(items) + [None]:
        if isinstance(item, ast.Attr):
            run.append(item)
            continue
        if run:
            w = max(len(a.name) for a in run)
            for a in run:
                widths[id(a)] = w
            run = []
    return widths


def _index(index: str) -> str:
    if index == "*" or index.isdigit() and index.isascii() or (_IDENT.match(index) and index not in _KEYWORDS):
        return index
    return quote(index)


def _ref(r: ast.Ref) -> str:
    return ".".join(p.name + (f"[{_index(p.index)}]" if p.index is not None else "") for p in r.parts)


def _string(s: ast.Str, inline) -> str:
    out = []
    for part in s.parts:
        if isinstance(part, str):
            out.append(quote_triple_text(part) if s.triple else escape(part))
        else:
            out.append("${" + inline(part) + "}")
    if s.triple:
        return '"""' + "".join(out) + '"""'
    return '"' + "".join(out) + '"'
