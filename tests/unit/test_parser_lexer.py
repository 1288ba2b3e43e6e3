"""The fast lexer and LALR driver match Lark's basic lexer and parser: same tokens, same AST."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark
from lark.exceptions import UnexpectedCharacters

from mlflowdsl.grammar.lark_adapter import lex
from mlflowdsl.grammar.lexer import MlwLexer
from mlw_strategies import programs

GRAMMAR = Path(__file__).resolve().parents[2] / "mlflowdsl" / "grammar" / "mlw.lark"
REFERENCE = Lark.open(str(GRAMMAR), parser="lalr", lexer="basic")
FAST = MlwLexer(REFERENCE.lexer_conf)


def tokens(lex, text: str):
    out = []
    try:
        for t in lex(text):
            out.append((t.type, str(t), t.start_pos, t.line, t.column, t.end_line, t.end_column, t.end_pos))
    except UnexpectedCharacters as e:
        out.append(("error", e.pos_in_stream, e.line, e.column))
    return out


def reference(text: str):
    return REFERENCE.lex(text)


def fast(text: str):
    return lex(FAST, text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_same_tokens_on_valid_programs(text):
    assert tokens(fast, text) == tokens(reference, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list('ab_1-.e "\\\n\t#{}[]()=<>!:,*$\u00e9') + ['"""', "task", "in"]), max_size=40).map("".join))
def test_same_tokens_or_same_error_on_any_text(text):
    assert tokens(fast, text) == tokens(reference, text)


@pytest.mark.parametrize(
    "text",
    ['task a: t { x = 4GiB }', '"""two\nlines""" x', "a..b 0..1 1e-4 -3 1e3ms", "# c\n  x == y != z <= >= < >"],
)
def test_same_tokens_examples(text):
    assert tokens(fast, text) == tokens(reference, text)


# ----------------------------------------------------------------------------- the fast LALR driver


def _through_lark(text: str):
    """The start rule's value from Lark's own LALR parser (the error path's parser)."""
    from mlflowdsl.grammar import parser as p

    with p._LOCK:
        lark, builder, _ = p._parser()
        builder.file, builder.diags, builder.comments = "p.mlw", [], []
        value = lark.parse(text)
        comments = builder.comments
        builder.diags, builder.comments = [], []
    return value, comments


def _through_fast(text: str):
    from mlflowdsl.grammar import parser as p

    with p._LOCK:
        _, builder, fast = p._parser()
        builder.file, builder.diags, builder.comments = "p.mlw", [], []
        value = fast.parse(text)
        comments = builder.comments
        builder.diags, builder.comments = [], []
    return value, comments


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fast_driver_builds_the_same_ast_as_larks_parser(text):
    assert _through_fast(text) == _through_lark(text)  # spans included


def test_fast_driver_gives_up_on_errors():
    from mlflowdsl.grammar.lalr import FAILED

    assert _through_fast("workflow w { x 1 }")[0] is FAILED
    assert _through_fast("workflow w { x = @ }")[0] is FAILED
    assert _through_fast("workflow w {")[0] is FAILED
