"""One exception hierarchy for the whole package.

Every user-facing error carries either diagnostics (code + span) or a clear subject
(the setting, file or id it is about) and says what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from mlflowdsl.grammar.diagnostics import Diagnostic


class MlwError(Exception):
    """Base of every error mlflowdsl raises on purpose."""

    def __init__(self, message: str, *, subject: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.subject = subject
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}" if self.subject else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class CompileError(MlwError):
    """Compilation stopped; ``diagnostics`` holds every error (and warning) found."""

    def __init__(self, diagnostics: Sequence["Diagnostic"]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = f"{len(errors)} error(s)" + (f"; first: [{first.code}] {first.message}" if first else "")
        super().__init__(summary)


class ConfigError(MlwError):
    """A setting, flag or environment variable has a bad value."""


class RuntimeFailure(MlwError):
    """A workflow could not be executed (not a task failure: those are recorded as results)."""


class StateError(MlwError):
    """The state backend refused an operation (unknown execution, illegal transition...)."""
