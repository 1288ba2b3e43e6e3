"""The Lark internals the grammar package relies on, in one module.

Everything else in ``mlflowdsl.grammar`` uses Lark's public API (``Lark``, ``Token``,
``Transformer``, the exceptions, ``InteractiveParser.copy/feed_token``) plus what this module
exports. The assumptions below hold for the Lark versions allowed by the ``lark`` bound in
``pyproject.toml``; ``tests/unit/test_lark_adapter.py`` checks each of them against the
installed Lark and names the one that broke.

Custom lexer (``lexer.py``):

* a ``lark.lexer.Lexer`` subclass with ``__future_interface__ = 2`` is called as
  ``lex(lexer_state, parser_state)``;
* ``lexer_state.text`` is a ``TextSlice`` (``.text``, ``.end``); ``lexer_state.line_ctr`` is a
  ``LineCounter`` whose ``char_pos``, ``line``, ``column`` and ``line_start_pos`` the lexer
  keeps current after every token (Lark's error recovery resumes lexing from them), and
  ``lexer_state.last_token`` is the last token produced;
* a terminal's pattern is a ``PatternStr`` (a literal) or a regexp pattern;
* ``Token._future_new(type, value, start_pos, line, column, end_line, end_column, end_pos)``
  builds a token (``Token(...)`` without its keyword-deprecation shim).

Fast LALR driver (``lalr.py``):

* ``Lark.parser.parser.parser`` (ParsingFrontend -> LALR_Parser -> _Parser) has a
  ``parse_table`` (``states``: state -> {symbol: (action, arg)}, where the action is
  ``Shift`` and ``arg`` the next state, or a reduction and ``arg`` the ``Rule`` with its
  ``expansion`` and ``origin.name``; ``start_states`` and ``end_states`` by start symbol) and
  ``callbacks`` (rule -> callback);
* the callback of an inlined ``?rule`` is an ``ExpandSingleChild``, which returns a single
  child unchanged;
* ``LexerThread.from_text(lexer, text).lex(None)`` lexes a text without a parser.

Error recovery (``syntax_errors.py``):

* an ``InteractiveParser`` has ``parser_state.value_stack`` (the values shifted and reduced so
  far) and ``lexer_thread.state.line_ctr``, whose ``feed(text)`` moves the lexer past ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from lark import Lark, Token
from lark.lexer import Lexer, LexerThread, PatternStr
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

new_token = Token._future_new


class CustomLexer(Lexer):
    """Base of a custom lexer that Lark calls as ``lex(lexer_state, parser_state)``."""

    __future_interface__ = 2


def is_literal(pattern: Any) -> bool:
    """Is this terminal pattern a literal string (a keyword or punctuation)?"""
    return isinstance(pattern, PatternStr)


def lexer_input(lexer_state: Any) -> tuple[str, int, Any]:
    """``(text, end, line_counter)`` of the slice a custom lexer is asked to lex.

    The lexer reads its start from and writes its progress to the line counter's
    ``char_pos``, ``line``, ``column`` and ``line_start_pos``.
    """
    text_slice = lexer_state.text
    return text_slice.text, text_slice.end, lexer_state.line_ctr


def lex(lexer: Any, text: str) -> Iterator[Token]:
    """The tokens of ``text`` from one of Lark's lexer objects (or a custom lexer)."""
    return LexerThread.from_text(lexer, text).lex(None)


@dataclass(frozen=True)
class LalrTables:
    """A Lark LALR parser's tables, digested into plain values.

    ``states`` maps each state to {terminal or rule name: action}; a shift is an ``int``
    (the next state), a reduction a ``(size, callback, rule name)`` tuple whose callback is
    None for the unit reduction of an inlined ``?rule`` (the child's value passes through).
    """

    lexer: Any
    start_state: int
    end_state: int
    states: dict[int, dict[str, Any]]


def lalr_tables(lark: Lark, start: str = "start") -> LalrTables:
    frontend = lark.parser
    parser = frontend.parser.parser  # ParsingFrontend -> LALR_Parser -> _Parser
    table = parser.parse_table
    callbacks = parser.callbacks
    reductions: dict[int, tuple] = {}
    states: dict[int, dict[str, Any]] = {}
    for state, row in table.states.items():
        digested = {}
        for symbol, (action, arg) in row.items():
            if action is Shift:
                digested[symbol] = arg
            else:
                key = id(arg)
                if key not in reductions:
                    size, callback = len(arg.expansion), callbacks[arg]
                    if size == 1 and isinstance(callback, ExpandSingleChild):
                        callback = None
                    reductions[key] = (size, callback, arg.origin.name)
                digested[symbol] = reductions[key]
        states[state] = digested
    if not all(type(s) is int for row in states.values() for s in row.values() if type(s) is not tuple):
        raise TypeError("unexpected Lark parse table layout (see lark_adapter.py)")  # pragma: no cover
    return LalrTables(frontend.lexer, table.start_states[start], table.end_states[start], states)


def value_stack(interactive_parser: Any) -> list:
    """The parser's value stack: tokens and reduced values, innermost last."""
    return interactive_parser.parser_state.value_stack


def skip_text(interactive_parser: Any, text: str) -> None:
    """Move the parser's lexer past ``text`` (which starts at its current position)."""
    interactive_parser.lexer_thread.state.line_ctr.feed(text)
