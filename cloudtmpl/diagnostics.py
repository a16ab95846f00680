"""Diagnostics: the one way a user error is reported.

A diagnostic has a stable kebab-case ``code``, a message, a source location
(``file:line:col``, 1-based) and a hint that says how to fix it.  Errors
accumulate in a list so ``validate`` reports every problem in one run; code that
cannot continue raises :class:`DiagnosticError` carrying all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


NOWHERE = Loc("<command line>")


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    loc: Loc = NOWHERE
    hint: str = ""
    severity: Severity = "error"

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.loc.file,
            "line": self.loc.line,
            "column": self.loc.column,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        text = f"{self.loc}: {self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DiagnosticError(Exception):
    """Raised when work cannot go on; carries every diagnostic found so far."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def error(code: str, message: str, loc: Loc = NOWHERE, hint: str = "") -> DiagnosticError:
    """Shorthand for raising a single diagnostic: ``raise error(...)``."""
    return DiagnosticError([Diagnostic(code, message, loc, hint)])


def errors_only(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "error"]
