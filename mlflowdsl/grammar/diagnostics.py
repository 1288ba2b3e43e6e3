"""Diagnostics are data: a code, a severity, a message, a span and a hint.

Rendering (caret text, JSON) lives in the functions at the bottom, not in the passes.

>>> d = Diagnostic("MLW203", "unknown attribute `x`", Span("f.mlw", 2, 5, 2, 6), hint="did you mean `y`?")
>>> d.severity
'error'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Iterable, Literal

from mlflowdsl.grammar.limits import MAX_MESSAGE, SOURCE_WINDOW

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of a source file; lines and columns are 1-based, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: "Span") -> "Span":
        """The span from the start of ``self`` to the end of ``other``."""
        return replace(self, end_line=other.end_line, end_column=other.end_column)


# code -> (severity, title). Codes are stable: tests and users rely on them.
#   MLW1xx syntax and lexical, MLW2xx names and types, MLW3xx graph, MLW4xx lint warnings.
CODES: dict[str, tuple[Severity, str]] = {
    "MLW101": ("error", "syntax error"),
    "MLW102": ("error", "invalid string literal"),
    "MLW103": ("error", "unknown quantity unit"),
    "MLW104": ("error", "unsupported language version"),
    "MLW105": ("error", "cannot read file"),
    "MLW106": ("error", "invalid workflow spec document (JSON/YAML form)"),
    "MLW107": ("error", "no workflow in file"),
    "MLW108": ("error", "number out of range"),
    "MLW109": ("error", "template expansion exceeds a compiler limit"),
    "MLW201": ("error", "unknown task type"),
    "MLW202": ("error", "unknown block"),
    "MLW203": ("error", "unknown attribute"),
    "MLW204": ("error", "wrong value type"),
    "MLW205": ("error", "missing required attribute"),
    "MLW206": ("error", "value out of range"),
    "MLW207": ("error", "unknown task in reference"),
    "MLW208": ("error", "unknown output in reference"),
    "MLW209": ("error", "duplicate definition"),
    "MLW210": ("error", "unknown parameter"),
    "MLW211": ("error", "missing required parameter"),
    "MLW212": ("error", "ill-typed parameter value"),
    "MLW213": ("error", "search space on a task with no tunable hyperparameters"),
    "MLW214": ("error", "unknown hyperparameter in search space"),
    "MLW215": ("error", "invalid search space"),
    "MLW216": ("error", "unknown template or bad template arguments"),
    "MLW217": ("error", "ambiguous or unfillable input"),
    "MLW218": ("error", "custom task function cannot be loaded"),
    "MLW219": ("error", "invalid expression"),
    "MLW220": ("error", "data file does not fit the task (a named column is missing, no target)"),
    "MLW301": ("error", "dependency cycle"),
    "MLW302": ("error", "import cycle"),
    "MLW303": ("error", "unknown task in `after`"),
    "MLW401": ("warning", "unused parameter"),
    "MLW402": ("warning", "task result is never used"),
    "MLW403": ("warning", "cache disabled on an expensive task"),
    "MLW404": ("warning", "`when` is always false"),
    "MLW405": ("warning", "data file not found"),
    "MLW406": ("warning", "data column looks like an id or free text"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    # For diagnostics that are about a setting rather than a place in a file (e.g. `-p lr=x`).
    subject: str | None = None
    severity: Severity = field(default="error")

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown diagnostic code {self.code}")
        # A message or hint quoting an input (a 64 KB value, a long name) is cut in the middle.
        for name in ("message", "hint"):
            text = getattr(self, name)
            if text is not None and len(text) > MAX_MESSAGE:
                object.__setattr__(self, name, text[: MAX_MESSAGE - 200] + " … " + text[-190:])
        # The severity is a property of the code unless a caller overrides it (--strict).
        if self.severity == "error" and CODES[self.code][0] == "warning":
            object.__setattr__(self, "severity", "warning")

    def as_error(self) -> "Diagnostic":
        """This diagnostic promoted to an error (``--strict``)."""
        d = Diagnostic(self.code, self.message, self.span, self.hint, self.subject)
        object.__setattr__(d, "severity", "error")
        return d

    def to_dict(self) -> dict:
        s = self.span
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": s.file if s else self.subject,
            "line": s.line if s else None,
            "column": s.column if s else None,
            "end_line": s.end_line if s else None,
            "end_column": s.end_column if s else None,
            "hint": self.hint,
        }


def sort_key(d: Diagnostic):
    s = d.span
    return (s.file, s.line, s.column, d.code) if s else ("", 0, 0, d.code)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in sorted(diagnostics, key=sort_key)], indent=2)


def source_window(src: str, column: int, end: int, width: int = SOURCE_WINDOW) -> tuple[str, int, int]:
    """The part of a source line a diagnostic shows: the whole line when it is short, else
    ``width`` characters around ``column`` with ``…`` marking the cut ends (so N diagnostics
    on a megabyte-long line cost N windows, not N copies of the line). Returns the text and
    the caret's start and end columns in it.

    >>> source_window("x = 1", 5, 6)
    ('x = 1', 5, 6)
    >>> text, col, end = source_window("a" * 500 + " bad " + "b" * 500, 502, 505, width=20)
    >>> text, text[col - 1:end - 1]
    ('…aaaaa bad bbbbbbbbbb…', 'bad')
    """
    if len(src) <= width:
        return src, column, end
    start = max(0, min(column - 1 - width // 3, len(src) - width))
    stop = start + width
    text = ("…" if start else "") + src[start:stop] + ("…" if stop < len(src) else "")
    shift = start - (1 if start else 0)
    return text, column - shift, min(end, stop + 1) - shift


def render_text(diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None) -> str:
    """Render like rustc: header, ``--> file:line:col``, the source line and a caret + hint.

    ``sources`` maps file names to their text; when a file's text is unknown, the source
    line is left out.
    """
    sources = sources or {}
    out: list[str] = []
    split: dict[str, list[str]] = {}  # each file split once: thousands of warnings stay linear
    for d in sorted(diagnostics, key=sort_key):
        out.append(f"{d.severity}[{d.code}]: {d.message}")
        s = d.span
        if s is None:
            if d.subject:
                out.append(f"  --> {d.subject}")
            if d.hint:
                out.append(f"  = hint: {d.hint}")
            out.append("")
            continue
        out.append(f"  --> {s.file}:{s.line}:{s.column}")
        lines = split.get(s.file)
        if lines is None:
            text = sources.get(s.file)
            lines = split[s.file] = text.splitlines() if text is not None else []
        if 1 <= s.line <= len(lines):
            src = lines[s.line - 1]
            gutter = " " * len(str(s.line))
            end = s.end_column if s.end_line == s.line else len(src) + 1
            shown, column, end = source_window(src, s.column, end)
            out.append(f"{gutter} |")
            out.append(f"{s.line} | {shown}")
            caret = " " * (column - 1) + "^" * max(1, end - column)
            out.append(f"{gutter} | {caret}" + (f" {d.hint}" if d.hint else ""))
        elif d.hint:
            out.append(f"  = hint: {d.hint}")
        out.append("")
    return "\n".join(out)
