"""String literals: JSON escapes, ``${ref}`` interpolation, and the way back (quoting).

Escapes are JSON's (``\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX``) plus ``\\$`` for a literal
``$`` (so ``"\\${x}"`` is the text ``${x}``, not an interpolation). Inside ``${...}`` goes a
reference (``params.target``, ``train[rf].model``) or a bare name (a ``foreach`` variable).

>>> decode_body("a\\\\tb", 0)[0]
['a\\tb']
>>> quote("say \\"hi\\" ${x}")
'"say \\\\"hi\\\\" \\\\${x}"'
"""

from __future__ import annotations

import re

# One piece of a string body: an escape, an interpolation (maybe unterminated), or text.
_PIECE = re.compile(r"\\u(?P<hex>[0-9a-fA-F]{4})|\\(?P<esc>[\s\S]?)|\$\{(?P<interp>[^}]*)(?P<close>\}?)")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
_INTERP = re.compile(
    r"\s*(?P<ref>[A-Za-z_][A-Za-z0-9_]*(?:\[(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\*)\])?"
    r"(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\*)\])?)*)\s*"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SEGMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>[^\]]*)\])?")


class StringError(ValueError):
    """A bad string body; ``offset``/``length`` locate the culprit inside the body."""

    def __init__(self, message: str, offset: int, length: int, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = length
        self.hint = hint


def decode_body(body: str, base: int) -> tuple[list, list[StringError]]:
    """Split a string body into literal text and interpolations.

    Returns ``(parts, errors)``: ``parts`` holds ``str`` pieces and, for interpolations,
    ``(offset, segments)`` tuples where ``segments`` is a list of ``(name, index, start, end)``
    with offsets relative to the body plus ``base``. The caller turns those into AST nodes
    (it knows the file positions).
    """
    parts: list = []
    errors: list[StringError] = []
    text: list[str] = []
    pos = 0

    def flush() -> None:
        run = "".join(text)
        text.clear()
        if _SURROGATE.search(run):
            try:  # join \uD83D\uDE00 pairs into one character; a lone half is an error
                run = run.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
            except UnicodeDecodeError:
                errors.append(StringError("lone surrogate in a `\\u` escape", base, 1))
        parts.append(run)

    for m in _PIECE.finditer(body):
        if m.start() > pos:
            text.append(body[pos : m.start()])
        pos = m.end()
        hexd, esc, interp = m.group("hex"), m.group("esc"), m.group("interp")
        if hexd is not None:
            text.append(chr(int(hexd, 16)))
        elif esc is not None:
            if esc in _SIMPLE_ESCAPES:
                text.append(_SIMPLE_ESCAPES[esc])
            else:
                shown = esc if esc.strip() else repr(esc)
                errors.append(
                    StringError(
                        f"invalid escape `\\{shown}` in string",
                        base + m.start(),
                        len(m.group(0)),
                        'valid escapes: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX \\$',
                    )
                )
        else:
            if not m.group("close"):
                errors.append(
                    StringError("unterminated `${` interpolation in string", base + m.start(), 2, "close it with `}`")
                )
                continue
            im = _INTERP.fullmatch(interp)
            if im is None:
                errors.append(
                    StringError(
                        f"invalid interpolation `${{{interp}}}`",
                        base + m.start(),
                        len(m.group(0)),
                        "`${...}` takes a reference such as `params.target` or a foreach variable;"
                        " write `\\${` for a literal `${`",
                    )
                )
                continue
            if text:
                flush()
            inner_start = m.start("interp") + im.start("ref")
            segments = [
                (s.group("name"), s.group("index"), base + inner_start + s.start(), base + inner_start + s.end())
                for s in _SEGMENT.finditer(im.group("ref"))
            ]
            parts.append((base + m.start(), base + m.end(), segments))
    if pos < len(body):
        text.append(body[pos:])
    if text or not parts:
        flush()
    return parts, errors


_ESCAPE_OUT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def quote(text: str) -> str:
    """``text`` as a one-line string literal that decodes back to ``text`` (no interpolation)."""
    return '"' + escape(text) + '"'


def escape(text: str) -> str:
    """The body of a one-line literal for ``text``: ``\\``, ``\"``, control characters and ``${``
    escaped."""
    out = []
    for ch in text:
        esc = _ESCAPE_OUT.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF or ch in "\u2028\u2029\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out).replace("${", "\\${")


def quote_triple_text(text: str) -> str:
    """The body of a ``\"\"\"...\"\"\"`` literal for ``text`` (newlines stay literal)."""
    out = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"' and (i == n - 1 or text.startswith('""', i + 1) or text[i + 1 : i + 2] == '"'):
            # A quote that could close the literal (or join two others to do so) is escaped.
            out.append('\\"')
        elif ch == "\r":
            out.append("\\r")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out).replace("${", "\\${")
