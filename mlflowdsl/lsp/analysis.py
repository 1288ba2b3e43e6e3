"""One open document checked by the compiler, as ``mlw lint`` checks a file: the same
``compile_text`` call (without lowering), with imports read from the editor's open buffers
before the disk, and the result kept for the other features (symbols, hovers, completion).

Positions: the compiler's spans are 1-based with columns in code points; LSP positions are
0-based with columns in the client's units (UTF-16 unless negotiated otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from mlflowdsl.compiler.perf import no_gc_pauses
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


class Analysis:
    """One check of one document; the symbol index is built when a feature first asks for
    it (publishing diagnostics never needs it)."""

    def __init__(self, uri: str, path: str, text: str, version: int | None, result: CompileResult, lines: Lines,
                 module: ast.Module | None, stale: bool = False, imported: dict[str, ast.Module] | None = None):
        self.uri, self.path, self.text, self.version = uri, path, text, version
        self.result, self.lines = result, lines
        # this text's parse, or the last one that parsed (while the user types a syntax
        # error, hovers and completion keep working on the previous parse)
        self.module = module
        self.stale = stale
        self.imported_modules = imported or {}
        self._index: SymbolIndex | None = None
        self._imported: dict[str, SymbolIndex] | None = None
        # file (absolute path) -> its diagnostics as LSP, filled by ``convert``
        self.published: dict[str, list[types.Diagnostic]] = {}

    def convert(self) -> "Analysis":
        """Turn the diagnostics into LSP ones, grouped by file (in the checking thread)."""
        with no_gc_pauses():
            for where, ds in by_file(self.result, self.path).items():
                if where == os.path.abspath(self.path):
                    lines = self.lines
                else:
                    lines = Lines(self.result.sources.get(where) or next(
                        (t for p, t in self.result.sources.items() if os.path.abspath(p) == where), ""))
                self.published[where] = [to_lsp(d, lines) for d in ds]
        return self

    @property
    def index(self) -> SymbolIndex | None:
        if self._index is None and self.module is not None:
            with no_gc_pauses():
                self._index = SymbolIndex(self.module)
        return self._index

    @property
    def imported(self) -> dict[str, SymbolIndex]:
        if self._imported is None:
            self._imported = {p: SymbolIndex(m) for p, m in self.imported_modules.items()}
        return self._imported

    def with_text(self, text: str, version: int | None, lines: Lines) -> "Analysis":
        """This check seen with a newer text (marked stale: the symbols are this check's)."""
        other = Analysis(self.uri, self.path, text, version, self.result, lines, self.module, True,
                         self.imported_modules)
        other._index, other._imported = self._index, self._imported
        return other


def analyze(uri: str, text: str, version: int | None, read: Callable[[str], str],
            previous: Analysis | None = None, units: Callable[[str], int] | None = None) -> Analysis:
    """Check ``text`` as the file at ``uri`` (what ``mlw lint`` would say if it were saved)."""
    path = uri_to_path(uri)
    module = None
    if previous is not None and previous.result.module is not None and not is_seed_document(path, text):
        with no_gc_pauses():  # moving the later nodes makes many objects and no cycles
            module = reparse(previous.text, previous.result.module, text)
    if module is not None:  # only the edited item was parsed again
        result = compile_module(module, text, lower_plan=False, read=read)
    else:
        result = compile_text(text, path, lower_plan=False, read=read)
    if result.module is not None:
        return Analysis(uri, path, text, version, result, Lines(text, units), result.module, False,
                        result.imported).convert()
    if previous is not None and previous.module is not None:
        stale = Analysis(uri, path, text, version, result, Lines(text, units), previous.module, True,
                         previous.imported_modules)
        stale._index, stale._imported = previous._index, previous._imported
        return stale.convert()
    return Analysis(uri, path, text, version, result, Lines(text, units), None).convert()


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
