"""Lark parse errors -> ``MLW101``/``MLW102`` diagnostics in words, with error recovery.

Wording: the parser's state tells what was expected; the value stack tells what came
just before (the attribute name missing its ``=``, the task header missing its type, the
``{`` still open). Those cover the common mistakes precisely; anything else gets
"unexpected X; expected A, B or C".

Recovery (so one run reports several errors): when a single missing token (``=``, ``}``,
``,``, ``]``, ``)``, ``:``) makes the input acceptable again it is inserted; otherwise the
offending token is dropped. To avoid cascades, at most one error is reported per line and an
error right after a recovery point is not reported.
"""

from __future__ import annotations

import logging

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Diagnostic, Span
from mlflowdsl.grammar.units import UNITS
from mlflowdsl.grammar.lark_adapter import skip_text, value_stack

log = logging.getLogger(__name__)

MAX_ERRORS = 10

# Tokens that can start a value; when all are expected we say "a value".
_VALUE_START = {"STRING", "TRIPLE", "NUMBER", "TRUE", "FALSE", "NULL", "NAME", "PARAMS", "LSQB", "LBRACE", "LPAR", "NOT"}
_NAMED = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "TRIPLE": "a string",
    "CMPOP": "a comparison (`==`, `<`, ...)",
    "$END": "the end of the file",
}
# Tokens we try to insert to recover, most useful first.
_INSERTABLE = ("EQUAL", "RBRACE", "COMMA", "RSQB", "RPAR", "COLON")
_INSERT_TEXT = {"EQUAL": "=", "RBRACE": "}", "COMMA": ",", "RSQB": "]", "RPAR": ")", "COLON": ":"}
_STATEMENTS = {"TASK", "TUNE", "USE", "PARAMS", "DEFAULTS", "WORKFLOW", "TEMPLATE", "IMPORT", "OUTPUT"}
_OPENERS = {"LBRACE": "}", "LSQB": "]", "LPAR": ")"}
_CLOSERS = {"RBRACE", "RSQB", "RPAR"}


def _word(term: str, lark: Lark) -> str:
    if term in _NAMED:
        return _NAMED[term]
    pattern = lark.get_terminal(term).pattern
    return f"`{pattern.value}`"


def _found(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    if tok.type in ("STRING", "TRIPLE"):
        return "a string"
    if tok.type == "NUMBER":
        return f"number `{tok}`"
    if tok.type == "NAME":
        return f"name `{tok}`"
    return f"`{tok}`"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


class Recovery:
    """The ``on_error`` callback of one parse, and the diagnostics it collected."""

    def __init__(self, text: str, file: str, lark: Lark):
        self.text = text
        self.file = file
        self.lark = lark
        self.diagnostics: list[Diagnostic] = []
        self._last_line = 0
        self._resume_pos = -1  # text offset where parsing resumed after the last error
        self._reported_eof = False

    # ------------------------------------------------------------------ lark hooks
    def on_error(self, e: UnexpectedInput) -> bool:
        if len(self.diagnostics) >= MAX_ERRORS:
            return False
        if isinstance(e, UnexpectedCharacters):
            return self._bad_character(e)
        if isinstance(e, UnexpectedToken):
            return self._bad_token(e)
        return False

    def record_final(self, e: Exception) -> None:
        """The parse stopped with ``e``; make sure it is reported."""
        if isinstance(e, UnexpectedCharacters):
            self._bad_character(e)
        elif isinstance(e, UnexpectedToken):
            if not self.diagnostics or e.token.type != "$END" or not self._reported_eof:
                self._bad_token(e, final=True)
        elif not isinstance(e, UnexpectedInput):
            raise e

    # ------------------------------------------------------------------ reporting
    def _add(self, code: str, message: str, span: Span, hint: str | None, pos: int) -> None:
        suppressed = span.line <= self._last_line or self._only_trivia_between(self._resume_pos, pos)
        if not suppressed or not self.diagnostics:
            self.diagnostics.append(Diagnostic(code, message, span, hint))
            self._last_line = span.line

    def _only_trivia_between(self, a: int, b: int) -> bool:
        if a < 0 or b < a:
            return False
        gap = self.text[a:b]
        lines = [ln.split("#", 1)[0] for ln in gap.split("\n")]
        return not "".join(lines).strip()

    def _span(self, tok: Token) -> Span:
        if tok.type == "$END" or getattr(tok, "line", None) is None:
            return self._eof_span()
        return Span(self.file, tok.line, tok.column, tok.end_line, tok.end_column)

    def _eof_span(self) -> Span:
        line = self.text.count("\n") + 1
        col = len(self.text) - self.text.rfind("\n")
        return Span(self.file, line, col, line, col)

    # ------------------------------------------------------------------ characters
    def _bad_character(self, e: UnexpectedCharacters) -> bool:
        pos = e.pos_in_stream
        char = self.text[pos] if pos < len(self.text) else ""
        ip = e.interactive_parser
        if char == '"':
            if pos >= 2 and self.text[pos - 2 : pos + 1] == '"""':
                start = pos - 2
                line, col = self._line_col(start)
                span = Span(self.file, line, col, line, col + 3)
                self._add("MLW102", "unterminated `\"\"\"` string", span, 'close it with `"""`', start)
                skip_to = len(self.text)
            else:
                eol = self.text.find("\n", pos)
                eol = len(self.text) if eol < 0 else eol
                span = Span(self.file, e.line, e.column, e.line, e.column + max(1, eol - pos))
                self._add(
                    "MLW102",
                    "unterminated string",
                    span,
                    'close it with `"` on the same line (use `"""..."""` for text over several lines)',
                    pos,
                )
                skip_to = eol
            if ip is not None:
                self._feed_stand_in(e, Token("STRING", '""', start_pos=pos, line=e.line, column=e.column,
                                             end_line=e.line, end_column=e.column + 1, end_pos=pos + 1))
                skip_text(ip, self.text[pos:skip_to])
                self._resume_pos = skip_to
            return True
        shown = {"\t": "\\t", "\r": "\\r"}.get(char, char)
        hint = None
        if char == "'":
            hint = 'strings use double quotes: "..."'
        elif char == ";":
            hint = "no `;` is needed between items"
        span = Span(self.file, e.line, e.column, e.line, e.column + 1)
        self._add("MLW101", f"unexpected character `{shown}`", span, hint, pos)
        self._resume_pos = pos + 1
        return True

    @staticmethod
    def _feed_stand_in(e: UnexpectedInput, tok: Token) -> None:
        """Feed ``tok`` for the literal that could not be lexed, if the parser wants one there."""
        ip = e.interactive_parser
        try:
            trial = ip.copy(deepcopy_values=False)
            trial.feed_token(tok)
        except UnexpectedInput:
            return
        ip.feed_token(tok)

    def _line_col(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        return line, pos - self.text.rfind("\n", 0, pos)

    # ------------------------------------------------------------------ tokens
    def _bad_token(self, e: UnexpectedToken, final: bool = False) -> bool:
        tok = e.token
        ip = e.interactive_parser
        stack = value_stack(ip) if ip is not None else []
        # `accepts` (tokens that really let the parse go on, found by trying each) is exact;
        # `expected` (the LALR state's lookaheads) can be wider. Use it only as a fallback.
        try:
            accepts = set(e.accepts or ()) if ip is not None else set()
        except Exception as exc:  # noqa: BLE001 - computing `accepts` re-runs reductions; never fail on it
            log.debug("cannot compute the accepted tokens at %r, using the expected ones: %r", tok, exc)
            accepts = set()
        expected = accepts or set(e.expected or ())
        if tok.type != "$END":
            expected.discard("$END")
        spaced = _spaced_quantity(stack, self.text) if "EQUAL" in expected else None
        if spaced is not None:
            message, hint, span = self._spaced_quantity(*spaced)
        else:
            message, hint, span = self._describe(tok, expected, stack)
        pos = getattr(tok, "start_pos", None)
        pos = len(self.text) if tok.type == "$END" or pos is None else pos
        self._add("MLW101", message, span, hint, pos)
        if spaced is not None and ip is not None and not final and tok.type != "$END":
            # `= 0` after the unit completes a stand-in attribute, so the rest parses as written
            # and the one mistake is one error
            self._resume_pos = getattr(tok, "end_pos", pos + len(tok))
            trial = ip.copy(deepcopy_values=False)
            try:
                for fake in (Token.new_borrow_pos("EQUAL", "=", tok), Token.new_borrow_pos("NUMBER", "0", tok), tok):
                    trial.feed_token(fake)
            except UnexpectedInput:
                return True
            for fake in (Token.new_borrow_pos("EQUAL", "=", tok), Token.new_borrow_pos("NUMBER", "0", tok), tok):
                ip.feed_token(fake)
            return True
        if tok.type == "$END":
            self._reported_eof = True
            return False
        if final or ip is None:
            return False
        end = getattr(tok, "end_pos", pos + len(tok))
        self._resume_pos = end
        for cand in _INSERTABLE:
            if cand not in expected:
                continue
            trial = ip.copy(deepcopy_values=False)
            fake = Token.new_borrow_pos(cand, _INSERT_TEXT[cand], tok)
            try:
                trial.feed_token(fake)
                trial.feed_token(tok)
            except UnexpectedInput:
                continue
            ip.feed_token(fake)
            ip.feed_token(tok)
            return True
        return True  # drop the token and go on

    def _spaced_quantity(self, number: str, unit: Token, start: tuple[int, int]) -> tuple[str, str, Span]:
        span = Span(self.file, start[0], start[1], unit.end_line, unit.end_column)
        return (f"a quantity is written without a space: `{number}{unit}`, not `{number} {unit}`",
                f"write `{number}{unit}`", span)

    def _describe(self, tok: Token, expected: set[str], stack: list) -> tuple[str, str | None, Span]:
        prev = stack[-1] if stack else None
        prev_tok = prev if isinstance(prev, Token) else None
        found = _found(tok)
        span = self._span(tok)

        if tok.type == "$END":
            opener = _innermost_open(stack)
            if opener is not None:
                close = _OPENERS[opener[0].type]
                what = opener[1]
                return (
                    f"`{opener[0]}`{what} is never closed: expected `{close}` before the end of the file",
                    f"add `{close}` to close it",
                    self._span(opener[0]),
                )
            return "unexpected end of the file", None, span

        if (
            "EQUAL" in expected
            and prev_tok is not None
            and prev_tok.type in ("NAME", "OUTPUT")
            and not (tok.type == "LBRACE" and "LBRACE" not in expected)
        ):
            before = stack[-2] if len(stack) > 1 else None
            if not (isinstance(before, Token) and before.type in ("TASK", "TUNE", "TEMPLATE", "WORKFLOW")):
                hint = f"write `{prev_tok} = ...`"
                if "LBRACE" in expected:
                    hint += f" (or `{prev_tok} {{ ... }}` for a block)"
                return f"expected `=` after attribute name `{prev_tok}`, found {found}", hint, span

        if prev_tok is not None and prev_tok.type == "NAME" and "COLON" in expected:
            before = stack[-2] if len(stack) > 1 else None
            if isinstance(before, Token) and before.type == "TASK":
                return (
                    f"task `{prev_tok}` has no type: expected `:` and a task type, found {found}",
                    f"write `task {prev_tok}: TYPE {{ ... }}`, e.g. `task {prev_tok}: custom`",
                    span,
                )
        if prev_tok is not None and prev_tok.type == "COLON" and "NAME" in expected:
            before = stack[-2] if len(stack) > 1 else None
            if isinstance(before, Token) and before.type == "NAME" and len(stack) > 2 and _is(stack[-3], "TASK"):
                return (
                    f"expected a task type after `task {before}:`, found {found}",
                    "e.g. `model_training`, `data_preprocessing` or `custom`",
                    span,
                )

        if tok.type in _STATEMENTS and "RBRACE" in expected:
            opener = _innermost_open(stack)
            where = opener[1] if opener else ""
            return (
                f"unexpected `{tok}` here: `{{`{where} is not closed yet",
                "is a `}` missing before it?",
                span,
            )

        if tok.type == "EQUAL" and "CMPOP" in expected:
            return f"unexpected `=` after {_found(prev_tok) if prev_tok is not None else 'a value'}", (
                "to compare, write `==`"
            ), span
        if expected == {"DOT"}:  # after `train[*]` or `params`: only a `.field` can follow
            return (
                f"a reference needs a field here, found {found}",
                "e.g. `train[*].output`, `train[rf].model` or `params.seed`",
                span,
            )

        if _VALUE_START <= expected or (prev_tok is not None and prev_tok.type == "EQUAL"):
            rest = sorted(_word(t, self.lark) for t in expected - _VALUE_START)
            words = ["a value"] + rest
            after = f" after `{prev_tok}`" if prev_tok is not None else ""
            return f"expected {_join(words)}{after}, found {found}", None, span

        if tok.type == "LBRACE" and prev_tok is not None and prev_tok.type == "NAME" and "EQUAL" in expected:
            return (
                f"a block `{prev_tok} {{ ... }}` is not allowed here",
                "blocks such as `resources`, `cache` and `retry` go inside a task or in `defaults { }`",
                span,
            )
        hint = None
        if "NAME" in expected and str(tok).isidentifier() and tok.type not in ("NAME",):
            hint = f"`{tok}` is a keyword and cannot be used as a name"
        words = sorted({_word(t, self.lark) for t in expected})
        if not words:
            return f"unexpected {found}", hint, span
        if len(words) > 5:
            return f"unexpected {found} here", hint or f"expected one of: {', '.join(words)}", span
        return f"unexpected {found}; expected {_join(words)}", hint, span


def _spaced_quantity(stack: list, text: str) -> tuple[str, Token, tuple[int, int]] | None:
    """``memory = 5 GiB``: the stack ends with an attribute whose value is a plain number and
    the name of a unit after it on the same line. Returns (number text, unit token, start)."""
    if len(stack) < 2 or not _is(stack[-1], "NAME") or str(stack[-1]) not in UNITS:
        return None
    attr = stack[-2]
    while hasattr(attr, "children") and attr.children:  # the repetition helper holding the attributes
        attr = attr.children[-1]
    value = getattr(attr, "value", None)
    if not isinstance(attr, ast.Attr) or not isinstance(value, (ast.Int, ast.Float)):
        return None
    unit = stack[-1]
    vs = value.span
    if vs.end_line != unit.line:
        return None
    number = value.raw if isinstance(value, ast.Float) else str(value.value)
    return number, unit, (vs.line, vs.column)


def _is(x, kind: str) -> bool:
    return isinstance(x, Token) and x.type == kind


def _innermost_open(stack: list) -> tuple[Token, str] | None:
    """The last unreduced opening bracket on the parser's stack and what it opens."""
    closed = 0  # closing brackets on the stack whose rule is not reduced yet
    for i in range(len(stack) - 1, -1, -1):
        x = stack[i]
        if not isinstance(x, Token):
            continue
        if x.type in _CLOSERS:
            closed += 1
        elif x.type in _OPENERS:
            if closed:
                closed -= 1
            else:
                return x, _what_opens(stack, i)
    return None


def _what_opens(stack: list, i: int) -> str:
    """`` of task `a` ``-style words for the bracket at ``stack[i]``."""
    x = stack[i]
    if x.type != "LBRACE" or i == 0:
        return ""
    before = stack[i - 1]
    if _is(before, "EQUAL"):
        return " of a map"
    if _is(before, "NAME") and not (
        i > 1 and (_is(stack[i - 2], "COLON") or any(_is(stack[i - 2], k) for k in ("WORKFLOW", "TUNE")))
    ):
        return f" of block `{before}`"
    if _is(before, "PARAMS") or _is(before, "DEFAULTS"):
        return f" of `{before}`"
    # Walk back to the statement keyword: task a: t after b foreach x in e {
    for j in range(i - 1, max(-1, i - 8), -1):
        y = stack[j]
        if isinstance(y, Token) and y.type in ("TASK", "TUNE", "WORKFLOW", "TEMPLATE") and j + 1 < len(stack):
            return f" of {str(y).lower()} `{stack[j + 1]}`"
    return ""
