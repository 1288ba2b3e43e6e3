"""A drop-in for Lark's ``basic`` lexer, built from the same terminals of ``mlw.lark``.

Lark's basic lexer runs one Python iteration per token *and* per ignored whitespace run, and
keeps its line counter by feeding it every token. This lexer matches one master regex
(``re.Pattern.match`` at a position), skips whitespace and comments in the same loop, and
counts newlines only where a token can contain them. It produces exactly the tokens Lark's
basic lexer would (types, values and positions — a hypothesis test compares the two), so the
grammar stays the single source of truth.

It keeps Lark's lexer state up to date after every token, which Lark's LALR error recovery
(``on_error``) relies on to resume lexing after an error (see ``lark_adapter``).
"""

from __future__ import annotations

import re

from lark.exceptions import UnexpectedCharacters

from mlflowdsl.grammar.lark_adapter import CustomLexer, is_literal, lexer_input, new_token

# Terminals matched by their own regex, in the order they are tried (TRIPLE before STRING:
# it has the higher priority in the grammar). Literal keywords and punctuation come after.
_ORDERED = ("COMMENT", "WS", "TRIPLE", "STRING", "NUMBER", "NAME", "CMPOP")
_MULTILINE = frozenset({"TRIPLE"})  # tokens that may contain newlines (WS is handled apart)


class MlwLexer(CustomLexer):
    """Lark custom lexer (``Lark(..., lexer=MlwLexer)``) for the `.mlw` grammar."""

    def __init__(self, lexer_conf) -> None:
        self.terminals = list(lexer_conf.terminals)
        self.ignore = frozenset(lexer_conf.ignore)
        self.callbacks = dict(lexer_conf.callbacks or {})
        self.terminals_by_name = {t.name: t for t in self.terminals}
        literals = {t.pattern.value: t.name for t in self.terminals if is_literal(t.pattern)}
        # A name that spells a keyword is that keyword (Lark's basic lexer does the same).
        self.keywords = {v: n for v, n in literals.items() if v.isidentifier()}
        self.punctuation = {v: n for v, n in literals.items() if not v.isidentifier()}
        parts = [f"(?P<{name}>{self.terminals_by_name[name].pattern.to_regexp()})" for name in _ORDERED]
        punct = "|".join(re.escape(v) for v in sorted(self.punctuation, key=len, reverse=True))
        parts.append(f"(?P<PUNCT>{punct})")
        flags = 0
        for t in self.terminals:
            for f in t.pattern.flags:
                flags |= getattr(re, f.upper())
        self.master = re.compile("|".join(parts), flags)

    def lex(self, lexer_state, parser_state):
        text, end, ctr = lexer_input(lexer_state)
        pos = ctr.char_pos
        line = ctr.line
        line_start = ctr.line_start_pos
        match = self.master.match
        keywords = self.keywords
        punctuation = self.punctuation
        callbacks = self.callbacks
        ignore = self.ignore
        make_token = new_token  # a local: looked up once, not per token
        while pos < end:
            m = match(text, pos, end)
            if m is None:
                ctr.char_pos, ctr.line, ctr.column, ctr.line_start_pos = pos, line, pos - line_start + 1, line_start
                raise UnexpectedCharacters(
                    text, pos, line, pos - line_start + 1,
                    allowed={t.name for t in self.terminals if t.name not in ignore},
                    state=parser_state, token_history=lexer_state.last_token and [lexer_state.last_token],
                    terminals_by_name=self.terminals_by_name,
                )
            kind = m.lastgroup
            stop = m.end()
            if kind == "WS":
                nl = text.count("\n", pos, stop)
                if nl:
                    line += nl
                    line_start = text.rindex("\n", pos, stop) + 1
                pos = stop
                continue
            value = m.group()
            column = pos - line_start + 1
            if kind == "NAME":
                kind = keywords.get(value, "NAME")
            elif kind == "PUNCT":
                kind = punctuation[value]
            if kind in _MULTILINE and "\n" in value:
                end_line = line + value.count("\n")
                new_start = pos + value.rindex("\n") + 1
                tok = make_token(kind, value, pos, line, column, end_line, stop - new_start + 1, stop)
                line, line_start = end_line, new_start
            else:
                tok = make_token(kind, value, pos, line, column, line, column + (stop - pos), stop)
            pos = stop
            ctr.char_pos, ctr.line, ctr.column, ctr.line_start_pos = pos, line, pos - line_start + 1, line_start
            if kind in ignore:  # a comment
                callback = callbacks.get(kind)
                if callback is not None:
                    callback(tok)
                continue
            lexer_state.last_token = tok
            yield tok
