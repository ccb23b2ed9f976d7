"""The archive in several languages: each issue's translations, the site's languages, the links between them.

An issue in its own language is at `issues/<slug>/`; each translation of it at
`<lang>/issues/<slug>/` (`Issue.web_path`, the one place the URL is made). Every
language other than the newsletter's own that a published issue is translated into
gets an index at `<lang>/` and feeds at `<lang>/feed.xml` and `<lang>/feed.json`,
listing the issues that can be read in it (translated or written in it).

The versions of one page point at each other with `<link rel="alternate" hreflang>`
(absolute URLs, the page itself included, `x-default` for the original) and with
visible links, each named in its own language ("English · العربية · Deutsch").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from newsletter.config import Settings
from newsletter.content.library import Issue, Library, Paper
from newsletter.mail.locale import Chrome, babel_locale

X_DEFAULT = "x-default"


@dataclass(frozen=True)
class Version:
    """An issue as one of its pages shows it: the original, or a translation with its papers' words."""

    issue: Issue
    papers: list[Paper]
    paper_languages: dict[str, str] = field(default_factory=dict)  # paper id -> its translation's language

    @property
    def path(self) -> str:
        return self.issue.web_path


@dataclass(frozen=True)
class LanguageLink:
    """One entry of a page's language links: the language, its own name, the page in it."""

    language: str
    name: str
    path: str  # relative to the site root
    current: bool


@lru_cache(maxsize=64)
def language_name(tag: str) -> str:
    """A language's name in that language (its autonym), as a language menu shows it: 'Deutsch', 'العربية'."""
    locale = babel_locale(tag)
    name = locale.get_display_name(locale) or tag
    return name[:1].upper() + name[1:]


class LocalWords:
    """A language's dates, numbers and plurals, each formatted once per build.

    Thousands of pages repeat the same few dates and counts, and Babel formats each anew.
    """

    def __init__(self, words: Chrome) -> None:
        self.date = functools.lru_cache(maxsize=None)(words.date)
        self.number = functools.lru_cache(maxsize=None)(words.number)
        self.papers = functools.lru_cache(maxsize=None)(words.papers)


def same_language(a: str, b: str) -> bool:
    """Whether text in `b` needs no `lang` of its own inside a page in `a` (same primary language)."""
    return a.split("-")[0].lower() == b.split("-")[0].lower()


class SiteLanguages:
    """Which versions each published issue has, and which languages the site has indexes for."""

    def __init__(self, library: Library, issues: list[Issue], papers_of: dict[str, list[Paper]]) -> None:
        self.settings: Settings = library.settings
        self.default = self.settings.language
        translations = library.translations
        # by slug once, rather than `languages_of` scanning every translation for each issue
        translated_into: dict[str, list[str]] = {}
        for slug, language in translations.issues:
            translated_into.setdefault(slug, []).append(language)
        self.versions: dict[str, list[Version]] = {}
        for issue in issues:
            papers = papers_of[issue.slug]
            found = [Version(issue, papers)]
            own = sorted(lang for lang in translated_into.get(issue.slug, ()) if lang != issue.language)
            for language in own:  # the order of `Translations.languages_of`
                translated = translations.issue_in(issue, language)
                shown, paper_languages = [], {}
                for paper in papers:
                    words, paper_language = translations.paper_in(paper, language)
                    shown.append(words)
                    if paper_language is not None:
                        paper_languages[paper.id] = paper_language
                found.append(Version(translated, shown, paper_languages))
            self.versions[issue.slug] = found
        self.issues = issues
        # A language has its own index once an issue is translated into it (an issue merely
        # written in another language is listed, marked, in the root index): a newsletter
        # without translations keeps the one index and feed it always had.
        translated = {v.issue.language for versions in self.versions.values() for v in versions[1:]}
        self.languages: list[str] = sorted(translated - {self.default}, key=str.lower)

    def has_editions(self) -> bool:
        return bool(self.languages)

    def version_in(self, issue: Issue, language: str) -> Version | None:
        """`issue` as written in `language` (its original or a translation), or None."""
        for version in self.versions[issue.slug]:
            if version.issue.language == language:
                return version
        return None

    def shown_in(self, issue: Issue, language: str) -> Version:
        """`issue` in `language` if it can be read in it, else the original."""
        return self.version_in(issue, language) or self.versions[issue.slug][0]

    def issues_in(self, language: str) -> list[Version]:
        """The published issues that can be read in `language`, oldest first."""
        found = (self.version_in(issue, language) for issue in self.issues)
        return [v for v in found if v is not None]

    def edition(self, language: str) -> tuple[Sequence[Issue], Sequence[str]]:
        """The issues `language`'s feeds carry (each in it: its original or a translation), oldest first, and their slugs."""
        issues = [v.issue for v in self.issues_in(language)]
        return issues, [i.slug for i in issues]

    # -- links between the versions of a page

    def name(self, language: str) -> str:
        """A language's name in its language links (`language_name`)."""
        return language_name(language)

    def index_path(self, language: str) -> str:
        """The index of `language` relative to the site root: '' for the newsletter's own language."""
        return "" if language == self.default else f"{language}/"

    def issue_links(self, issue: Issue, current: str) -> list[LanguageLink]:
        """The language links of an issue's pages (none when it has no translation)."""
        versions = self.versions[issue.slug]
        if len(versions) < 2:
            return []
        return [
            LanguageLink(v.issue.language, self.name(v.issue.language), v.path, v.issue.language == current)
            for v in versions
        ]

    def index_links(self, current: str) -> list[LanguageLink]:
        """The language links of the indexes (none when the site has one language)."""
        if not self.languages:
            return []
        return [
            LanguageLink(language, self.name(language), self.index_path(language), language == current)
            for language in [self.default, *self.languages]
        ]

    def alternates(self, links: list[LanguageLink]) -> list[tuple[str, str]]:
        """`(hreflang, absolute URL)` for a page's `<link rel="alternate">`, the first link as x-default."""
        if not links:
            return []
        found = [(link.language, self.settings.url(link.path)) for link in links]
        return [*found, (X_DEFAULT, found[0][1])]
