"""The errors users see: one ClickException family, never a traceback.

Every user mistake is reported as a :class:`Problem` — where, what, expected,
got — and a command that finds problems reports *all* of them, then aborts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input."""

    where: str  # a file (optionally with :line) or a row, e.g. "issues/x.md" or "import.csv:12"
    field: str | None  # the front-matter key, setting or column, if any
    message: str  # what is wrong, e.g. "expected YYYY-MM-DD, got '17/3'"
    hint: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.where}: {self.field}" if self.field else self.where
        return f"{where}: {self.message}"

    @classmethod
    def expected(
        cls, where: str, field: str | None, expected: str, got: object, hint: str | None = None
    ) -> Problem:
        return cls(where, field, f"expected {expected}, got {describe(got)}", hint)


def describe(value: object) -> str:
    """A short, quoted rendering of a found value for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (list, tuple)):
        return f"a list ({describe_short(value)})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    return f"{value!r} (a {type(value).__name__})"


def describe_short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class NewsletterError(click.ClickException):
    """Base of every error a user can cause; printed as `Error: …`, exit code 1."""

    exit_code = 1


class ConfigError(NewsletterError):
    """Settings are missing or invalid."""


class ContentError(NewsletterError):
    """A paper or issue file is missing, malformed or invalid."""


class RenderError(NewsletterError):
    """A template or the MJML compiler failed."""


class TransportError(NewsletterError):
    """A transport cannot be opened or used at all (credentials, identity, settings)."""


class ProblemsError(NewsletterError):
    """Several problems found at once: print each, then abort once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = list(problems)  # read twice below: a generator would leave no warnings
        self.problems = [p for p in problems if not p.warning]
        self.warnings = [p for p in problems if p.warning]
        super().__init__(format_problems(self.problems))

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)

    def format_message(self) -> str:
        lines = [f"Error: {p}" for p in self.problems]
        hints = [p.hint for p in self.problems if p.hint]
        text = "\n".join(lines)
        if hints:
            text += "\n\n" + "\n".join(dict.fromkeys(hints))
        n = len(self.problems)
        return text + f"\n\nAborted with {n} error{'s' if n != 1 else ''}."


def format_problems(problems: Iterable[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def raise_for(problems: Iterable[Problem]) -> None:
    """Print warnings and raise one error listing every non-warning problem."""
    problems = list(problems)
    for p in problems:
        if p.warning:
            click.echo(f"Warning: {p}", err=True)
    if any(not p.warning for p in problems):
        raise ProblemsError(problems)
