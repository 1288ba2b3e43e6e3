"""Text -> AST: the Lark LALR parser for `.mlw` files.

The grammar lives in ``mlw.lark``; ``builder.AstBuilder`` turns its reductions into AST nodes.
Errors never escape as Lark exceptions: they become ``CompileError`` with diagnostics
(see ``syntax_errors.py`` for the wording and the error recovery): MLW101 syntax, MLW102
string literal, MLW103 quantity unit, MLW104 ``mlw N`` header, MLW105 unreadable file
(``parse_file``), MLW107 a file with neither a workflow nor a template (a file with only
templates is a valid import target; the compiler reports a main file without a workflow),
and MLW209 for a second ``workflow`` in one file (the AST holds one).

Valid input takes a fast path (``lexer.py``, ``lalr.py``); input with a syntax error is
parsed again by Lark's own LALR parser, whose error recovery reports several errors at once.

>>> m = parse_text('workflow w { task a: custom { uses = "m:f" } }')
>>> m.workflow.tasks[0].id, m.workflow.tasks[0].span.column
('a', 14)
"""

from __future__ import annotations

import threading
from pathlib import Path

from lark import Lark

from mlflowdsl.errors import CompileError
from mlflowdsl.files import read_regular_file
from mlflowdsl.grammar import ast, limits
from mlflowdsl.grammar.builder import AstBuilder
from mlflowdsl.grammar.diagnostics import Diagnostic, Span, sort_key
from mlflowdsl.grammar.lalr import FAILED, FastLALR
from mlflowdsl.grammar.lexer import MlwLexer
from mlflowdsl.grammar.syntax_errors import Recovery

_LOCK = threading.RLock()
_BUILDER: AstBuilder | None = None
_LARK: Lark | None = None
_FAST: FastLALR | None = None


def _parser() -> tuple[Lark, AstBuilder, FastLALR]:
    """The Lark instance, built on first use (keeps ``import`` of this module cheap)."""
    global _LARK, _BUILDER, _FAST
    if _LARK is None:
        builder = AstBuilder()
        _LARK = Lark.open(
            "mlw.lark",
            rel_to=__file__,
            parser="lalr",
            lexer=MlwLexer,  # the tokens of Lark's `basic` lexer (see lexer.py)
            keep_all_tokens=True,
            maybe_placeholders=False,
            transformer=builder,
            lexer_callbacks={"COMMENT": builder.on_comment},
            cache=True,
        )
        _BUILDER = builder
        _FAST = FastLALR(_LARK)
    return _LARK, _BUILDER, _FAST


def parse_text(text: str, file: str = "<string>") -> ast.Module:
    """Parse one `.mlw` text; raises ``CompileError`` with ``MLW1xx`` diagnostics."""
    if text.startswith("\ufeff"):  # a UTF-8 BOM is not part of the program
        text = text[1:]
    with _LOCK:
        lark, builder, fast = _parser()
        builder.file = file
        builder.diags = []
        builder.comments = []
        result = fast.parse(text)
        if result is FAILED:
            # A syntax error: parse again with Lark's parser, whose error recovery and
            # interactive state make the diagnostics (and several of them per run).
            builder.diags = []
            builder.comments = []
            recovery = Recovery(text, file, lark)
            try:
                result = lark.parse(text, on_error=recovery.on_error)
            except Exception as e:  # noqa: BLE001 - any Lark error is turned into diagnostics
                recovery.record_final(e)
                result = None
            builder.diags += recovery.diagnostics
        diags = builder.diags
        comments = tuple(builder.comments)
        builder.diags, builder.comments = [], []
    if result is None and not diags:  # pragma: no cover - recovery always records the cause
        diags.append(Diagnostic("MLW101", "syntax error", Span(file, 1, 1, 1, 1)))
    if not diags:
        version, version_span, workflow, order = result
        if workflow is None and not any(isinstance(x, ast.Template) for x in order):
            diags.append(
                Diagnostic(
                    "MLW107",
                    "no workflow and no template in this file",
                    Span(file, 1, 1, 1, 1),
                    "a file needs `workflow NAME { ... }` (or templates, when it is imported)",
                )
            )
    if diags:
        raise CompileError(sorted(set(diags), key=sort_key))
    return ast.Module(
        _file_span(text, file),
        file,
        version,
        tuple(x for x in order if isinstance(x, ast.Import)),
        tuple(x for x in order if isinstance(x, ast.Template)),
        workflow,
        comments,
        order,
        version_span,
    )


def parse_file(path: str | Path) -> ast.Module:
    """Read and parse a `.mlw` file; an unreadable file (or one that is not a regular file of at
    most ``limits.MAX_SOURCE_BYTES``) is ``MLW105``."""
    name = str(path)
    try:
        text = read_regular_file(name, limits.MAX_SOURCE_BYTES).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CompileError(
            [Diagnostic("MLW105", f"cannot read `{name}`: not UTF-8 text ({e.reason} at byte {e.start})",
                        subject=name, hint="save the file as UTF-8")]
        ) from None
    except OSError as e:
        raise CompileError(
            [Diagnostic("MLW105", f"cannot read `{name}`: {e.strerror or e}", subject=name,
                        hint="check the path and its permissions")]
        ) from None
    return parse_text(text, name)


def _file_span(text: str, file: str) -> Span:
    lines = text.count("\n")
    return Span(file, 1, 1, lines + 1, len(text) - text.rfind("\n"))
