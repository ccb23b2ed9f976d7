"""Translations of content: `issues/<slug>.<lang>.md` and `papers/<id>.<lang>.md`, and choosing one.

A translation sits next to its original and carries only the words: an issue's
`subject`, `preheader`, `title` and introduction (its body); a paper's `title`,
abstract and editor's note. Everything else — papers, number, date, status, links —
is the original's, and whatever a translation leaves out falls back to the original.

A file is a translation when its name ends in a BCP 47 tag *and* the original exists
(`papers/2401.10010.md` is a paper, not a translation of `papers/2401.md`).

`translated_from:` records the first 12 hex digits of the SHA-256 of the original file
the translation was made from. A checkout sets every mtime to the checkout time, so
only a hash tells, without git, that the original changed after it was translated.

`best_language` picks the translation for a reader by BCP 47 lookup (RFC 4647 §3.4):
`pt-BR` → `pt` → the default; a script subtag is never dropped into another script,
so `zh-Hant` does not fall back to `zh-Hans`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.config import Settings
from newsletter.content import schema
from newsletter.content.front_matter import closest, error_count, read_front_matter
from newsletter.content.issues import Issue
from newsletter.content.papers import Paper, clean_body, split_note
from newsletter.content.schema import FrontMatterFields
from newsletter.errors import Problem
from newsletter.text import is_language_tag

ISSUE_TRANSLATION_FIELDS = ("title", "subject", "preheader", "translated_from")
PAPER_TRANSLATION_FIELDS = ("title", "translated_from")
HASH_DIGITS = 12


@dataclass(frozen=True)
class Translation:
    """One translation file: the words it sets (None: the original's) and where it came from."""

    original: str  # the issue's slug or the paper's id
    language: str
    path: Path
    words: dict[str, str]  # field -> translated text; only the fields the file sets
    translated_from: str | None = None


@dataclass(frozen=True)
class Translations:
    """Every translation of a newsletter folder, by (original, language)."""

    issues: dict[tuple[str, str], Translation] = field(default_factory=dict)
    papers: dict[tuple[str, str], Translation] = field(default_factory=dict)

    def languages_of(self, issue: Issue) -> list[str]:
        """The languages `issue` can be read in: its own first, then its translations."""
        own = [lang for slug, lang in self.issues if slug == issue.slug and lang != issue.language]
        return [issue.language, *sorted(own)]

    def issue_in(self, issue: Issue, language: str) -> Issue:
        """`issue` in `language`: its translation's words over the original's (the original if none).

        A translation knows it is one (`original_language`), so its `web_url` is its own page.
        """
        if language == issue.language:
            return issue
        found = self.issues.get((issue.slug, language))
        if found is None:
            return issue
        return dataclasses.replace(issue, language=language, original_language=issue.language, **found.words)

    def paper_in(self, paper: Paper, language: str) -> tuple[Paper, str | None]:
        """(`paper` in `language`, that language) — or (the paper, None) when it has no such translation."""
        found = self.papers.get((paper.id, language))
        if found is None:
            return paper, None
        return dataclasses.replace(paper, **found.words), language

    def for_readers_of(
        self, language: str, issue: Issue, papers: list[Paper]
    ) -> tuple[Issue, list[Paper], dict[str, str]]:
        """`issue` and its papers in the translation that best serves readers of `language`.

        Falls back by BCP 47 lookup (see `best_language`) to the issue's own language;
        a paper without a translation in the chosen language stays as written. The third
        value names the language of each translated paper, by id.
        """
        chosen = best_language(language, self.languages_of(issue), issue.language)
        shown, languages = [], {}
        for paper in papers:
            translated, paper_language = self.paper_in(paper, chosen)
            shown.append(translated)
            if paper_language is not None:
                languages[paper.id] = paper_language
        return self.issue_in(issue, chosen), shown, languages


# ---------------------------------------------------------------------------
# Choosing a language


def best_language(wanted: str | None, available: Iterable[str], default: str) -> str:
    """The available language tag that best serves a reader who wants `wanted`.

    Lookup as in RFC 4647 §3.4: try the tag, then drop subtags from the end
    (`pt-BR` → `pt`), comparing case-insensitively; a single-letter subtag goes with
    the one after it. A script subtag (`Hant`, `Latn`: four letters) is never dropped,
    so `zh-Hant` never reaches `zh` or `zh-Hans`. Nothing found: `default`.
    """
    by_lower = {tag.lower(): tag for tag in available}
    if not wanted:
        return default
    subtags = wanted.lower().split("-")
    while subtags:
        found = by_lower.get("-".join(subtags))
        if found is not None:
            return found
        if len(subtags[-1]) == 4 and subtags[-1].isalpha() and len(subtags) == 2:
            break  # language-Script: dropping the script would change the writing system
        subtags.pop()
        if len(subtags) > 1 and len(subtags[-1]) == 1:
            subtags.pop()
    return default


# ---------------------------------------------------------------------------
# Reading


def original_hash(path: Path) -> str:
    """What `translated_from:` records: the start of the SHA-256 of the original file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:HASH_DIGITS]


def split_translation_name(path: Path) -> tuple[str, str] | None:
    """(original stem, language) when `path` names a translation of an existing original, else None."""
    stem, dot, language = path.stem.rpartition(".")
    if not dot or not is_language_tag(language) or not (path.parent / f"{stem}.md").is_file():
        return None
    return stem, language


def is_translation(path: Path) -> bool:
    return split_translation_name(path) is not None


def load_translations(settings: Settings, problems: list[Problem]) -> Translations:
    """Read every issue and paper translation; problems (and stale-translation warnings) go to `problems`."""
    issues: dict[tuple[str, str], Translation] = {}
    papers: dict[tuple[str, str], Translation] = {}
    for directory, found in ((settings.issues_dir, issues), (settings.papers_dir, papers)):
        for path in _named_translations(directory):
            translation = read_translation(settings, path, problems)
            if translation is not None:
                found[(translation.original, translation.language)] = translation
    return Translations(issues=issues, papers=papers)


def read_translation(settings: Settings, path: Path, problems: list[Problem]) -> Translation | None:
    """One translation file, with its stale-translation warning: what `load_translations`
    reads for each, and what a caller that knows which files changed (the archive's quick
    rebuild) reads alone. None when `path` is not a translation or has errors (in `problems`).
    """
    name = split_translation_name(path)
    if name is None:
        return None
    read = _read_issue_translation if path.parent == settings.issues_dir else _read_paper_translation
    where = _relative(path, settings)
    translation = read(path, name, where, problems)
    if translation is not None:
        _warn_if_stale(translation, where, problems)
    return translation


def _named_translations(directory: Path) -> list[Path]:
    """The files of a folder named like a translation (`<stem>.<lang>.md`), sorted.

    From the folder's listing, not a glob: at 20,000 papers, matching every name with
    fnmatch and making a Path of it costs more than the rest of reading the translations.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [
        directory / name
        for name in sorted(names)
        if name.endswith(".md") and "." in name[:-3] and not name.startswith(".")
    ]


def _read_translation(
    path: Path,
    name: tuple[str, str],
    where: str,
    problems: list[Problem],
    known: tuple[str, ...],
    words_of: Callable[[FrontMatterFields, str], dict[str, str]],
) -> Translation | None:
    """One translation file: its front matter checked against `known`, its words from `words_of`."""
    split = read_front_matter(path, problems, where)
    if split is None:
        return None
    data, body = split
    before = error_count(problems)
    _check_fields(where, data, known, problems)
    f = FrontMatterFields(where, data, problems)
    words = words_of(f, body)
    translated_from = f.get("translated_from", schema.text)
    if error_count(problems) > before:
        return None
    return Translation(name[0], name[1], path, words, translated_from)


def _issue_words(f: FrontMatterFields, body: str) -> dict[str, str]:
    words = {
        key: value
        for key in ("title", "subject", "preheader")
        if (value := f.get(key, schema.optional_text)) is not None
    }
    if intro := clean_body(body):
        words["intro"] = intro
    return words


def _paper_words(f: FrontMatterFields, body: str) -> dict[str, str]:
    words: dict[str, str] = {}
    if (title := f.get("title", schema.text)) is not None:
        words["title"] = title
    abstract, note = split_note(clean_body(body))
    if abstract:
        words["abstract"] = abstract
    if note:
        words["note"] = note
    return words


def _read_issue_translation(
    path: Path, name: tuple[str, str], where: str, problems: list[Problem]
) -> Translation | None:
    return _read_translation(path, name, where, problems, ISSUE_TRANSLATION_FIELDS, _issue_words)


def _read_paper_translation(
    path: Path, name: tuple[str, str], where: str, problems: list[Problem]
) -> Translation | None:
    return _read_translation(path, name, where, problems, PAPER_TRANSLATION_FIELDS, _paper_words)


def _check_fields(where: str, data: dict, known: tuple[str, ...], problems: list[Problem]) -> None:
    # A translation carries words only: a `date` or `include` here would silently do nothing.
    for key in data:
        if key in known:
            continue
        close = closest(str(key), known)
        problems.append(
            Problem(
                where,
                str(key),
                f"unknown field in a translation (expected one of {', '.join(known)})",
                hint=f"Did you mean {close!r}?"
                if close
                else "Papers, number, date and status come from the original.",
            )
        )


def _warn_if_stale(translation: Translation, where: str, problems: list[Problem]) -> None:
    original = translation.path.parent / f"{translation.original}.md"
    current = original_hash(original)
    if translation.translated_from == current:
        return
    if translation.translated_from is None:
        message = f"no record of the original it was made from (expected {current}, got nothing)"
    else:
        message = (
            f"the original changed since this translation (expected {current}, "
            f"got {translation.translated_from})"
        )
    problems.append(
        Problem(
            where,
            "translated_from",
            message,
            hint=f"Review it against {original.name}, then set 'translated_from: {current}'.",
            warning=True,
        )
    )


def _relative(path: Path, settings: Settings) -> str:
    try:
        return str(path.relative_to(settings.root))
    except ValueError:
        return str(path)
