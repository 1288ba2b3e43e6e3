"""Go to definition, find references, rename and the document outline, over the symbol index
of the last parse (``symbols.py``)."""

from __future__ import annotations

import os
import re

from lsprotocol import types

from mlflowdsl.compiler.imports import import_path
from mlflowdsl.lsp.analysis import Analysis, Lines, path_to_uri
from mlflowdsl.lsp.symbols import Occurrence, SymbolIndex, outline

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
RENAMABLE = ("task", "use", "param", "tparam", "template")

_KINDS = {
    "import": types.SymbolKind.File, "template": types.SymbolKind.Class, "workflow": types.SymbolKind.Module,
    "task": types.SymbolKind.Function, "param": types.SymbolKind.Variable, "use": types.SymbolKind.Object,
    "tune": types.SymbolKind.Event, "output": types.SymbolKind.Property,
}


def occurrence_at(a: Analysis, pos: types.Position) -> Occurrence | None:
    if a.index is None:
        return None
    line, col = a.lines.columns(pos)
    return a.index.at(line, col)


def _location(span, lines: Lines) -> types.Location:
    return types.Location(uri=path_to_uri(span.file), range=lines.range(span))


def _template_home(a: Analysis, name: str) -> tuple[SymbolIndex, Lines] | None:
    """The index (and lines) of the file that defines template ``name``."""
    if a.index is not None and name in a.index.templates:
        return a.index, a.lines
    for path, idx in a.imported.items():
        if name in idx.templates:
            text = a.result.sources.get(path, "")
            return idx, Lines(text)
    return None


def definition(a: Analysis, pos: types.Position) -> list[types.Location]:
    occ = occurrence_at(a, pos)
    if occ is None or a.index is None:
        return []
    if occ.kind == "import":
        target = import_path(a.path, occ.name)
        if os.path.exists(target):
            return [types.Location(uri=path_to_uri(target), range=types.Range(types.Position(0, 0), types.Position(0, 0)))]
        return []
    if occ.kind == "template":
        home = _template_home(a, occ.name)
        if home is None:
            return []
        idx, lines = home
        return [_location(idx.templates[occ.name].name_span, lines)]
    if occ.kind == "output" and occ.owner is not None:
        use = a.index.uses.get((occ.scope, occ.owner))
        if use is not None:  # a template use's output: the template's `output` line
            home = _template_home(a, use.template)
            if home is not None:
                idx, lines = home
                out = next((o for o in idx.templates[use.template].items
                            if getattr(o, "name", None) == occ.name and hasattr(o, "name_span")), None)
                if out is not None:
                    return [_location(out.name_span, lines)]
        task = a.index.tasks.get((occ.scope, occ.owner))
        return [_location(task.id_span, a.lines)] if task is not None else []
    found = a.index.definition_of(occ)
    return [_location(found.span, a.lines)] if found is not None else []


def references(a: Analysis, pos: types.Position, include_declaration: bool = True) -> list[types.Location]:
    occ = occurrence_at(a, pos)
    if occ is None or a.index is None:
        return []
    return [_location(o.span, a.lines) for o in a.index.occurrences_of(occ)
            if include_declaration or not o.definition]


def prepare_rename(a: Analysis, pos: types.Position) -> types.Range | None:
    occ = occurrence_at(a, pos)
    if occ is None or occ.kind not in RENAMABLE or a.stale:
        return None
    if occ.kind == "template" and (a.index is None or occ.name not in a.index.templates):
        return None  # defined in another file: rename it there
    return a.lines.range(occ.span)


def rename(a: Analysis, pos: types.Position, new_name: str) -> types.WorkspaceEdit | None:
    if prepare_rename(a, pos) is None or a.index is None:
        return None
    if not _NAME.match(new_name) or new_name == "params":
        raise ValueError(f"`{new_name}` is not a valid name (letters, digits and _, not starting with a digit)")
    occ = occurrence_at(a, pos)
    edits = [types.TextEdit(range=a.lines.range(o.span), new_text=new_name) for o in a.index.occurrences_of(occ)]
    return types.WorkspaceEdit(changes={a.uri: edits})


def document_symbols(a: Analysis) -> list[types.DocumentSymbol]:
    if a.module is None:
        return []

    def symbol(entry) -> types.DocumentSymbol:
        kind, name, span, name_span, children = entry
        return types.DocumentSymbol(name=name, kind=_KINDS.get(kind, types.SymbolKind.Null),
                                    range=a.lines.range(span), selection_range=a.lines.range(name_span),
                                    detail=kind, children=[symbol(c) for c in children])

    return [symbol(e) for e in outline(a.module)]
