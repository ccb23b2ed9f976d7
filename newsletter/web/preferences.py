"""The readers' choices on the web: which languages the newsletter offers, and the preferences form.

One function, `offered_languages`, says which languages a reader may choose, on the
subscribe form and on the preferences page alike: the newsletter's own language, then
every language that has a catalogue of the email's words (templates/locale/) or a
translation of an issue (`issues/<slug>.<lang>.md`). `preselected` picks one of them
from a browser's Accept-Language by BCP 47 lookup (`content.translations.best_language`).

`read_preferences` checks what the preferences page posts: a language must be one of
the offered ones, a name loses its control characters and is capped. Writing it, and
unsubscribing, are the store's and the lifecycle's (newsletter.web.subscription).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from newsletter.config import Settings
from newsletter.content.translations import best_language, split_translation_name
from newsletter.mail import locale
from newsletter.web.subscription import clean_name


def offered_languages(settings: Settings) -> list[str]:
    """The language tags a reader may choose: the newsletter's own first, then the others sorted."""
    found = set(locale.languages(settings.templates_dir))
    issues: Iterable[Path] = settings.issues_dir.glob("*.*.md") if settings.issues_dir.is_dir() else ()
    for path in issues:
        name = split_translation_name(path)
        if name is not None:
            found.add(name[1])
    own = settings.language
    return [own, *sorted(tag for tag in found if tag.lower() != own.lower())]


def language_names(languages: Iterable[str]) -> list[tuple[str, str]]:
    """(tag, the language's name in itself) for a select: `de` → Deutsch, `ar` → العربية."""
    named = []
    for tag in languages:
        try:
            name = locale.babel_locale(tag).get_display_name(locale.babel_locale(tag)) or tag
        except (ValueError, LookupError):
            name = tag
        named.append((tag, name[:1].upper() + name[1:]))
    return named


def preselected(offered: list[str], wanted: Iterable[str | None]) -> str:
    """The first offered language that serves one of `wanted` (best first), else the newsletter's own."""
    for tag in wanted:
        chosen = best_language(tag, offered, "")
        if chosen:
            return chosen
    return offered[0]


@dataclass(frozen=True)
class Choice:
    """What the preferences form asks for; `problem` is a web strings key when it cannot be taken."""

    language: str | None = None
    name: str | None = None
    problem: str | None = None


def read_preferences(form: dict[str, str], offered: list[str]) -> Choice:
    """The language and name a preferences form posts, checked (see the module docstring)."""
    raw_language = form.get("language", "").strip()
    by_lower = {tag.lower(): tag for tag in offered}
    language = by_lower.get(raw_language.lower())
    if language is None:
        return Choice(problem="preferences_language")
    return Choice(language=language, name=clean_name(form.get("name", "")))
