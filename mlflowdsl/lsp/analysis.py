"""One open document checked by the compiler, as ``mlw lint`` checks a file: the same
``compile_text`` call (without lowering), with imports read from the editor's open buffers
before the disk, and the result kept for the other features (symbols, hovers, completion).

Positions: the compiler's spans are 1-based with columns in code points; LSP positions are
0-based with columns in the client's units (UTF-16 unless negotiated otherwise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from mlflowdsl.compiler.api import CompileResult, compile_module, compile_text, is_seed_document
from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Diagnostic, Span
from mlflowdsl.lsp.incremental import reparse
from mlflowdsl.lsp.symbols import SymbolIndex

SOURCE = "mlw"


def uri_to_path(uri: str) -> str:
    return to_fs_path(uri) or uri


def path_to_uri(path: str) -> str:
    return from_fs_path(os.path.abspath(path)) or path


class Lines:
    """A text's lines, for converting between spans and LSP positions."""

    def __init__(self, text: str, units: Callable[[str], int] | None = None):
        self.lines = text.split("\n")
        self._units = units  # code units of a string in the client's encoding; None: UTF-16

    def _count(self, s: str) -> int:
        if s.isascii():
            return len(s)
        if self._units is not None:
            return self._units(s)
        return len(s.encode("utf-16-le")) // 2

    def position(self, line: int, column: int) -> types.Position:
        """A 1-based line and code-point column as an LSP position."""
        row = max(line - 1, 0)
        col = max(column - 1, 0)
        if row < len(self.lines):
            return types.Position(row, self._count(self.lines[row][:col]))
        return types.Position(row, col)

    def range(self, span: Span) -> types.Range:
        return types.Range(self.position(span.line, span.column), self.position(span.end_line, span.end_column))

    def columns(self, pos: types.Position) -> tuple[int, int]:
        """An LSP position as a 1-based line and code-point column."""
        if pos.line >= len(self.lines):
            return pos.line + 1, pos.character + 1
        text = self.lines[pos.line]
        if text.isascii():
            return pos.line + 1, pos.character + 1
        units = 0
        for i, ch in enumerate(text):
            if units >= pos.character:
                return pos.line + 1, i + 1
            units += self._count(ch)
        return pos.line + 1, len(text) + 1

    def line(self, row: int) -> str:
        """The 0-based line ``row`` ('' past the end)."""
        return self.lines[row] if 0 <= row < len(self.lines) else ""


@dataclass
class Analysis:
    uri: str
    path: str
    text: str
    version: int | None
    result: CompileResult
    lines: Lines
    # The index of this text's parse, or of the last text that parsed (while the user types
    # a syntax error, hovers and completion keep working on the previous parse).
    index: SymbolIndex | None
    stale: bool = False
    imported: dict[str, SymbolIndex] = field(default_factory=dict)

    @property
    def module(self) -> ast.Module | None:
        return self.index.module if self.index is not None else None


def analyze(uri: str, text: str, version: int | None, read: Callable[[str], str],
            previous: Analysis | None = None, units: Callable[[str], int] | None = None) -> Analysis:
    """Check ``text`` as the file at ``uri`` (what ``mlw lint`` would say if it were saved)."""
    path = uri_to_path(uri)
    module = None
    if previous is not None and previous.result.module is not None and not is_seed_document(path, text):
        module = reparse(previous.text, previous.result.module, text)
    if module is not None:  # only the edited item was parsed again
        result = compile_module(module, text, lower_plan=False, read=read)
    else:
        result = compile_text(text, path, lower_plan=False, read=read)
    index: SymbolIndex | None = None
    stale = False
    if result.module is not None:
        index = SymbolIndex(result.module)
    elif previous is not None and previous.index is not None:
        index, stale = previous.index, True
    imported = {p: SymbolIndex(m) for p, m in result.imported.items()}
    if stale and previous is not None:
        imported = previous.imported
    return Analysis(uri, path, text, version, result, Lines(text, units), index, stale, imported)


def to_lsp(d: Diagnostic, lines: Lines) -> types.Diagnostic:
    """One compiler diagnostic as LSP: the same code, range, message and severity; the hint is
    in ``data`` (exactly as ``mlw lint --format json`` has it) and shown as related information."""
    if d.span is not None:
        rng = lines.range(d.span)
    else:  # about a setting, not a place: the start of the file
        rng = types.Range(types.Position(0, 0), types.Position(0, 0))
    severity = types.DiagnosticSeverity.Error if d.severity == "error" else types.DiagnosticSeverity.Warning
    message = d.message if d.span is not None or not d.subject else f"{d.message} ({d.subject})"
    return types.Diagnostic(range=rng, message=message, severity=severity, code=d.code, source=SOURCE,
                            data={"hint": d.hint, "file": d.span.file if d.span else d.subject})


def by_file(result: CompileResult, path: str) -> dict[str, list[Diagnostic]]:
    """The diagnostics of one check grouped by the file they are in (span-less ones go with
    the checked file)."""
    out: dict[str, list[Diagnostic]] = {os.path.abspath(path): []}
    for d in result.diagnostics:
        where = os.path.abspath(d.span.file) if d.span is not None else os.path.abspath(path)
        out.setdefault(where, []).append(d)
    return out


def disk_text(path: str) -> str:
    return Path(path).read_bytes().decode("utf-8")
