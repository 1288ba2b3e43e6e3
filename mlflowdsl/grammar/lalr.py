"""A lean LALR(1) driver over Lark's own parse table and rule callbacks — the happy path.

Why: after the lexer, Lark's per-token ``ParserState.feed_token`` was the largest cost of
parsing a big file (a method call, assertions and rule-object hashing per token). This loop
does the same shifts and reductions with the table pre-digested into plain dicts: a shift is
an ``int`` (the next state), a reduction a ``(size, callback, goto symbol)`` tuple. The unit
reductions of inlined ``?rules`` (``?expr: or_expr``, ``?atom: ...``: five of them for every
value) only change the state; their callback would return the child unchanged, so it is not
called.

It has no error handling on purpose: on the first unexpected token or character it gives
up (returns ``FAILED``) and the caller re-parses with Lark's own parser, whose error recovery
and interactive state produce the diagnostics. Valid input — the common case — pays only for
this loop.
"""

from __future__ import annotations

from lark import Lark
from lark.exceptions import UnexpectedCharacters
from lark.lexer import LexerThread
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

FAILED = object()


class FastLALR:
    def __init__(self, lark: Lark, start: str = "start") -> None:
        frontend = lark.parser
        parser = frontend.parser.parser  # ParsingFrontend -> LALR_Parser -> _Parser
        table = parser.parse_table
        callbacks = parser.callbacks
        self.lexer = frontend.lexer
        self.start_state = table.start_states[start]
        self.end_state = table.end_states[start]
        reductions: dict[int, tuple] = {}
        self.states: dict = {}
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
                            callback = None  # an inlined `?rule` of one child: the value passes through
                        reductions[key] = (size, callback, arg.origin.name)
                    digested[symbol] = reductions[key]
            self.states[state] = digested
        if not all(type(s) is int for row in self.states.values() for s in row.values() if type(s) is not tuple):
            raise TypeError("unexpected Lark parse table layout")  # pragma: no cover - guards a Lark upgrade

    def parse(self, text: str):
        """The value of the start rule, or ``FAILED`` on any syntax error."""
        states = self.states
        stack = [self.start_state]
        values: list = []
        push_state = stack.append
        push_value = values.append
        try:
            for tok in LexerThread.from_text(self.lexer, text).lex(None):
                ttype = tok.type
                while True:
                    act = states[stack[-1]].get(ttype)
                    if act is None:
                        return FAILED
                    if act.__class__ is int:
                        push_state(act)
                        push_value(tok)
                        break
                    size, callback, origin = act
                    if callback is None:
                        stack[-1] = states[stack[-2]][origin]
                        continue
                    if size:
                        args = values[-size:]
                        del values[-size:]
                        del stack[-size:]
                    else:
                        args = []
                    push_value(callback(args))
                    push_state(states[stack[-1]][origin])
        except UnexpectedCharacters:
            return FAILED
        end_state = self.end_state
        while True:
            act = states[stack[-1]].get("$END")
            if act is None or act.__class__ is int:
                return FAILED
            size, callback, origin = act
            if callback is None:
                stack[-1] = states[stack[-2]][origin]
            else:
                if size:
                    args = values[-size:]
                    del values[-size:]
                    del stack[-size:]
                else:
                    args = []
                push_value(callback(args))
                push_state(states[stack[-1]][origin])
            if stack[-1] == end_state:
                return values[-1]
