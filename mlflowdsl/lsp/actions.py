"""Formatting (``mlw fmt``'s formatter) and quick fixes for the diagnostics whose hint names
the fix ("did you mean `X`?")."""

from __future__ import annotations

import re

from lsprotocol import types

from mlflowdsl.compiler.api import is_seed_document
from mlflowdsl.compiler.fmt import format_text
from mlflowdsl.errors import CompileError
from mlflowdsl.lsp.analysis import Analysis, Lines

_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")


def formatting(a: Analysis) -> list[types.TextEdit] | None:
    """One edit replacing the whole text with its canonical layout; None when the text does not
    parse (the diagnostics say why) or is a JSON/YAML spec."""
    if is_seed_document(a.path, a.text):
        return None
    try:
        formatted = format_text(a.text, a.path)
    except CompileError:
        return None
    if formatted == a.text:
        return []
    end = a.lines.position(len(a.lines.lines), len(a.lines.lines[-1]) + 1)
    return [types.TextEdit(range=types.Range(types.Position(0, 0), end), new_text=formatted)]


def _word_range(lines: Lines, rng: types.Range, replacement: str) -> types.Range:
    """The diagnostic's range widened to the whole word it sits in (a unit's diagnostic points
    at the unit; its hint spells the number too)."""
    if rng.start.line != rng.end.line:
        return rng
    text = lines.line(rng.start.line)
    chars = r"[\w.]" if ("." in replacement or replacement[:1].isdigit()) else r"\w"
    start, end = rng.start.character, rng.end.character
    if not text.isascii():
        return rng
    while start > 0 and re.match(chars, text[start - 1]):
        start -= 1
    while end < len(text) and re.match(chars, text[end]):
        end += 1
    return types.Range(types.Position(rng.start.line, start), types.Position(rng.end.line, end))


def code_actions(a: Analysis, params: types.CodeActionParams) -> list[types.CodeAction]:
    out: list[types.CodeAction] = []
    for d in params.context.diagnostics:
        hint = (d.data or {}).get("hint") if isinstance(d.data, dict) else None
        m = _DID_YOU_MEAN.search(hint or "")
        if m is None:
            continue
        replacement = m.group(1)
        if not re.fullmatch(r"[\w.\[\]*]+", replacement):
            continue  # a hint that shows a whole statement is advice, not an edit
        rng = _word_range(a.lines, d.range, replacement)
        out.append(types.CodeAction(
            title=f"Change to `{replacement}`", kind=types.CodeActionKind.QuickFix, diagnostics=[d],
            is_preferred=True,
            edit=types.WorkspaceEdit(changes={a.uri: [types.TextEdit(range=rng, new_text=replacement)]})))
    return out
