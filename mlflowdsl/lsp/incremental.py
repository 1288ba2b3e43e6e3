"""Re-parse only what an edit touched: when the change lies inside one item of the workflow (a
task, a tune, a use, the params...), that item alone is parsed again and put into the last
good parse; when the edit adds or removes lines, the nodes after it are moved by that many
lines (copied with shifted spans, cheaper than parsing them). Otherwise (an edit across items,
or touching an item's first or last character) the caller parses the whole text. The result
equals a full parse of the new text (tests/lsp/test_lsp_incremental.py checks it on edits all
over the examples), so the compiler's passes see the same module.

>>> from mlflowdsl.grammar.parser import parse_text
>>> old = 'workflow w {\\n  task a: data_preprocessing { source = "x.csv" }\\n}\\n'
>>> new = old.replace("x.csv", "y.csv")
>>> m = reparse(old, parse_text(old, "w.mlw"), new)
>>> m == parse_text(new, "w.mlw"), m.workflow.tasks[0].body[0].value.text
(True, 'y.csv')
"""

from __future__ import annotations

import bisect
import dataclasses

from mlflowdsl.errors import CompileError
from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Span
from mlflowdsl.grammar.parser import parse_text

_HEADER = "workflow w {"


def _changed(old: str, new: str) -> tuple[int, int, int]:
    """(start, old end, new end) of the region where the texts differ."""
    n = min(len(old), len(new))
    start = 0
    # compare in chunks first: the common prefix of a large file is found quickly
    step = 4096
    while start + step <= n and old[start:start + step] == new[start:start + step]:
        start += step
    while start < n and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    return start, end_old, end_new


def _line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    i = find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


def reparse(old: str, module: ast.Module, new: str) -> ast.Module | None:
    """``module`` (the parse of ``old``) updated for ``new``, or None when the edit is not
    confined to one workflow item (then parse ``new`` in full)."""
    wf = module.workflow
    if wf is None or not wf.items or old.startswith("\ufeff") or new.startswith("\ufeff"):
        return None
    start, end_old, end_new = _changed(old, new)
    if start == end_old == end_new:
        return module
    delta = new.count("\n", start, end_new) - old.count("\n", start, end_old)  # lines added
    starts = _line_starts(old)

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1

    firsts = [offset(i.span.line, i.span.column) for i in wf.items]
    k = bisect.bisect_right(firsts, start) - 1
    if k < 0:
        return None
    item = wf.items[k]
    first, last = firsts[k], offset(item.span.end_line, item.span.end_column)  # last: exclusive
    if not (first < start and end_old < last) or item.span.line < 2:
        return None  # the edit touches the item's first or last character: it may grow or merge
    rest = old[last:starts[item.span.end_line] - 1] if item.span.end_line < len(starts) else old[last:]
    if rest.strip():
        return None  # something else follows on the item's last line: its columns would move
    text = new[first:last + (end_new - end_old)]
    synthetic = _HEADER + "\n" * (item.span.line - 1) + " " * (item.span.column - 1) + text + "\n}"
    try:
        part = parse_text(synthetic, module.file)
    except CompileError:
        return None  # a syntax error: the full parse reports it (with its recovery)
    if part.workflow is None or len(part.workflow.items) != 1 or type(part.workflow.items[0]) is not type(item):
        return None
    later = wf.items[k + 1:]
    items = wf.items[:k] + part.workflow.items + (_shift(later, delta) if delta else later)
    new_wf = dataclasses.replace(wf, items=items, span=_shift_end(wf.span, delta))
    comments = [c for c in module.comments if offset(c.span.line, c.span.column) < first] + list(part.comments) + [
        _shift(c, delta) if delta else c for c in module.comments if offset(c.span.line, c.span.column) >= last]
    after = False  # imports and templates after the workflow move too
    order = []
    for x in module.order:
        if x is wf:
            order.append(new_wf)
            after = True
        else:
            order.append(_shift(x, delta) if after and delta else x)
    return dataclasses.replace(
        module, workflow=new_wf, comments=tuple(sorted(comments, key=lambda c: (c.span.line, c.span.column))),
        order=tuple(order), imports=tuple(x for x in order if isinstance(x, ast.Import)),
        templates=tuple(x for x in order if isinstance(x, ast.Template)), span=_file_span(new, module.span))


_FIELDS: dict[type, tuple[str, ...]] = {}


def _shift(x, delta: int):
    """``x`` (a node, a span, a tuple of them, or a plain value) ``delta`` lines further down."""
    if isinstance(x, Span):
        return Span(x.file, x.line + delta, x.column, x.end_line + delta, x.end_column)
    if isinstance(x, tuple):
        return tuple(_shift(i, delta) for i in x)
    if isinstance(x, ast.Node):
        cls = type(x)
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
        return cls(*[_shift(getattr(x, n), delta) for n in names])
    return x


def _shift_end(span: Span, delta: int) -> Span:
    return dataclasses.replace(span, end_line=span.end_line + delta)


def _file_span(text: str, old):
    """The whole file's span, as the parser makes it."""
    lines = text.count("\n")
    return dataclasses.replace(old, end_line=lines + 1, end_column=len(text) - text.rfind("\n"))
