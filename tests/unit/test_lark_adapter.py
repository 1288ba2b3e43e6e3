"""Every Lark internal that ``mlflowdsl/grammar/lark_adapter.py`` relies on, checked against the
installed Lark. Each test names the assumption that broke and what to update, so a Lark
upgrade fails here with a clear message instead of somewhere deep in the parser."""

from __future__ import annotations

import functools
import importlib
import inspect
import tomllib
from pathlib import Path

import lark
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GRAMMAR = REPO / "mlflowdsl" / "grammar" / "mlw.lark"
UPDATE = "update mlflowdsl/grammar/lark_adapter.py and the lark bound in pyproject.toml"


def broken(what: str) -> str:
    return f"{what}: {UPDATE}"


def attribute(module: str, name: str):
    """``module.name``, or a failure naming it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.fail(broken(f"{module}.{name} moved"))


def lark_bound() -> Requirement:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return next(r for r in map(Requirement, project["dependencies"]) if r.name == "lark")


@functools.cache
def mlw_lalr(keep_all_tokens: bool = False) -> lark.Lark:
    """The .mlw grammar with Lark's own basic lexer, built from the cache as the parser is."""
    return lark.Lark.open(str(GRAMMAR), parser="lalr", lexer="basic", keep_all_tokens=keep_all_tokens, cache=True)


# ----------------------------------------------------------------------------- the bound


def test_installed_lark_is_within_the_bound_in_pyproject():
    bound = lark_bound()
    assert bound.specifier, "pyproject.toml: lark needs an upper bound (lark_adapter.py uses Lark internals)"
    assert Version(lark.__version__) in bound.specifier, (
        f"lark {lark.__version__} is outside `{bound}` (pyproject.toml): run this file against it, "
        f"then {UPDATE}")


# ----------------------------------------------------------------------------- the custom lexer


def test_lexer_base_class():
    base = attribute("lark.lexer", "Lexer")
    assert inspect.isclass(base), broken("lark.lexer.Lexer is no longer a class")


def test_pattern_str_marks_literal_terminals():
    pattern_str = attribute("lark.lexer", "PatternStr")
    literals = {t.name for t in mlw_lalr().terminals if isinstance(t.pattern, pattern_str)}
    assert "LBRACE" in literals and "NAME" not in literals, broken("lark.lexer.PatternStr no longer marks literals")


def test_token_future_new_takes_positional_fields():
    make = getattr(lark.Token, "_future_new", None)
    assert make is not None, broken("lark.Token._future_new is gone")
    tok = make("NAME", "x", 3, 1, 4, 1, 5, 4)
    got = (tok.type, str(tok), tok.start_pos, tok.line, tok.column, tok.end_line, tok.end_column, tok.end_pos)
    assert got == ("NAME", "x", 3, 1, 4, 1, 5, 4), broken("lark.Token._future_new changed its arguments")


def test_custom_lexer_interface_2_gets_the_lexer_state():
    """A ``__future_interface__ = 2`` lexer is called with the lexer state: a TextSlice and a
    LineCounter with the fields our lexer keeps current."""
    base = attribute("lark.lexer", "Lexer")
    seen = {}

    class Probe(base):
        __future_interface__ = 2

        def __init__(self, lexer_conf):
            pass

        def lex(self, lexer_state, parser_state):
            seen["text"] = lexer_state.text
            seen["ctr"] = lexer_state.line_ctr
            seen["has_last_token"] = hasattr(lexer_state, "last_token")
            return iter(())

    parser = lark.Lark("start: NAME*\nNAME: /[a-z]+/\n", parser="lalr", lexer=Probe)
    parser.parse("abc")
    text = seen.get("text")
    assert text is not None, broken("a custom lexer with __future_interface__ = 2 is not called with the lexer state")
    assert (getattr(text, "text", None), getattr(text, "end", None)) == ("abc", 3), (
        broken("lexer_state.text is no longer a TextSlice with .text and .end"))
    ctr = seen["ctr"]
    for name in ("char_pos", "line", "column", "line_start_pos"):
        assert hasattr(ctr, name), broken(f"lexer_state.line_ctr has no `{name}`")
    assert seen["has_last_token"], broken("lexer_state has no `last_token`")


def test_error_recovery_resumes_from_the_line_counter():
    """After an unexpected character, Lark resumes lexing where ``line_ctr`` says: moving it
    with ``feed`` skips text (how an unterminated string is skipped)."""
    errors = []

    def on_error(e):
        errors.append(e.pos_in_stream)
        e.interactive_parser.lexer_thread.state.line_ctr.feed("@@@")
        return True

    mlw_lalr().parse("workflow w { x = 1 @@@ y = 2 }", on_error=on_error)
    assert errors == [19], broken("Lark's error recovery no longer resumes from lexer_state.line_ctr")


def test_lexer_thread_from_text_lexes_without_a_parser():
    thread = attribute("lark.lexer", "LexerThread")
    tokens = [t.type for t in thread.from_text(mlw_lalr().parser.lexer, "workflow w { }").lex(None)]
    assert tokens == ["WORKFLOW", "NAME", "LBRACE", "RBRACE"], broken("LexerThread.from_text(...).lex(None) changed")


# ----------------------------------------------------------------------------- the parse table


def test_parse_table_layout():
    shift = attribute("lark.parsers.lalr_analysis", "Shift")
    parser = mlw_lalr()
    try:
        inner = parser.parser.parser.parser
        table, callbacks = inner.parse_table, inner.callbacks
        states, start, end = table.states, table.start_states["start"], table.end_states["start"]
    except (AttributeError, KeyError):
        pytest.fail(broken("Lark.parser.parser.parser.parse_table/callbacks (start_states, end_states, states) moved"))
    assert isinstance(start, int) and isinstance(end, int), broken("parse table states are no longer ints")
    for row in states.values():
        for action, arg in row.values():
            if action is shift:
                assert isinstance(arg, int), broken("a Shift action no longer holds the next state")
            else:
                assert isinstance(arg.expansion, (list, tuple)) and isinstance(arg.origin.name, str), (
                    broken("a reduce action's Rule no longer has expansion and origin.name"))
                assert callable(callbacks[arg]), broken("parser callbacks are no longer keyed by Rule")


def test_inlined_rules_reduce_through_expand_single_child():
    expand = attribute("lark.parse_tree_builder", "ExpandSingleChild")
    inner = mlw_lalr(keep_all_tokens=True).parser.parser.parser
    inlined = {rule.origin.name for rule, callback in inner.callbacks.items() if isinstance(callback, expand)}
    assert {"expr", "or_expr", "and_expr", "not_expr", "cmp", "atom"} <= inlined, (
        broken("the callback of an inlined ?rule is no longer an ExpandSingleChild"))
    assert expand(lambda children: "built")(["child"]) == "child", (
        broken("ExpandSingleChild no longer returns a single child unchanged"))


def test_the_adapter_digests_the_mlw_parser():
    # imported here: if the adapter itself fails to import, the named failures above still run
    from mlflowdsl.grammar import parser as p  # noqa: PLC0415 - see above

    _, _, fast = p._parser()
    passthrough = sum(1 for row in fast.states.values() for act in row.values()
                      if type(act) is tuple and act[1] is None)
    assert passthrough, broken("no unit reduction of an inlined ?rule was recognised")
    assert fast.parse("workflow w { x = 1 }") is not p.FAILED


# ----------------------------------------------------------------------------- error recovery


def test_interactive_parser_state():
    seen = {}

    def on_error(e):
        ip = e.interactive_parser
        seen["stack"] = getattr(getattr(ip, "parser_state", None), "value_stack", None)
        ctr = getattr(getattr(getattr(ip, "lexer_thread", None), "state", None), "line_ctr", None)
        seen["feed"] = getattr(ctr, "feed", None)
        seen["copy"] = ip.copy(deepcopy_values=False) is not ip
        return False

    with pytest.raises(lark.exceptions.UnexpectedToken):
        mlw_lalr().parse("workflow w { x 1 }", on_error=on_error)
    assert isinstance(seen.get("stack"), list) and [str(t) for t in seen["stack"]][-1] == "x", (
        broken("InteractiveParser.parser_state.value_stack moved"))
    assert callable(seen["feed"]), broken("InteractiveParser.lexer_thread.state.line_ctr.feed moved")
    assert seen["copy"], broken("InteractiveParser.copy(deepcopy_values=False) changed")
