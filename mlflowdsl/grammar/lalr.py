"""A lean LALR(1) driver over Lark's own parse table and rule callbacks — the happy path.

Lark's per-token ``ParserState.feed_token`` makes a method call, checks assertions and hashes
rule objects for every token. This loop does the same shifts and reductions over the table
pre-digested into plain dicts by ``lark_adapter.lalr_tables``: a shift is an ``int`` (the
next state), a reduction a ``(size, callback, goto symbol)`` tuple. The unit reductions of
inlined ``?rules`` (``?expr: or_expr``, ``?atom: ...``: five of them for every value) only
change the state; their callback would return the child unchanged, so it is not called.

It has no error handling on purpose: on the first unexpected token or character it gives
up (returns ``FAILED``) and the caller re-parses with Lark's own parser, whose error recovery
and interactive state produce the diagnostics. Valid input — the common case — pays only for
this loop.
"""

from __future__ import annotations

from lark import Lark
from lark.exceptions import UnexpectedCharacters

from mlflowdsl.grammar.lark_adapter import lex, lalr_tables

FAILED = object()


class FastLALR:
    def __init__(self, lark: Lark, start: str = "start") -> None:
        tables = lalr_tables(lark, start)
        self.lexer = tables.lexer
        self.start_state = tables.start_state
        self.end_state = tables.end_state
        self.states = tables.states

    def parse(self, text: str):
        """The value of the start rule, or ``FAILED`` on any syntax error."""
        states = self.states
        stack = [self.start_state]
        values: list = []
        push_state = stack.append
        push_value = values.append
        try:
            for tok in lex(self.lexer, text):
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
