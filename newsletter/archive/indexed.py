"""The site as the archive's index knows it: `SitePages` whose papers and issues are looked up only when a page needs them.

A quick rebuild (`newsletter.archive.rebuild`) keys a few pages of a site of 22,000: the
structure a full build works out from every paper and issue (which papers each issue
features, each tag's papers, the fingerprints of both) comes from the index instead, and
a paper or an issue is read from the content cache the first time a page asks for it.
Everything else is `SitePages` itself, so a page is keyed and rendered by the same code
either way.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from newsletter.archive.keys import Memo, fingerprint, renderer_version
from newsletter.archive.languages import SiteLanguages, Version
from newsletter.archive.pages import CSS_OUTPUT, CSS_SOURCE, SitePages
from newsletter.archive.source_files import Stale
from newsletter.config import Settings
from newsletter.content.fragments import FragmentCache
from newsletter.content.issues import Issue
from newsletter.content.papers import Paper
from newsletter.content.translations import Translation, Translations

__all__ = ["IndexedSite", "Lazy", "indexed_translations"]


class Lazy(Mapping):
    """A mapping whose keys are known and whose values are made on first use (then kept)."""

    def __init__(self, keys: Iterable, make: Callable[[Any], Any]) -> None:
        self._keys = dict.fromkeys(keys)
        self._made: dict[Any, Any] = {}
        self._make = make

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._made[key]
        except KeyError:
            if key not in self._keys:
                raise
        value = self._made[key] = self._make(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _Whole(Mapping):
    """A mapping made whole on first use: most rebuilds never ask."""

    def __init__(self, make: Callable[[], dict]) -> None:
        self._make = make
        self._made: dict | None = None

    @property
    def made(self) -> dict:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getitem__(self, key: Any) -> Any:
        return self.made[key]

    def __contains__(self, key: object) -> bool:
        return key in self.made

    def __iter__(self) -> Iterator:
        return iter(self.made)

    def __len__(self) -> int:
        return len(self.made)


class _Named(Sequence):
    """Papers or issues named by their ids, each looked up when first used; a slice is another view."""

    def __init__(self, names: Sequence[str], lookup: Mapping[str, Any]) -> None:
        self._names = names
        self._lookup = lookup

    def __getitem__(self, n: Any) -> Any:
        if isinstance(n, slice):
            return _Named(self._names[n], self._lookup)
        return self._lookup[self._names[n]]

    def __len__(self) -> int:
        return len(self._names)


class IndexedSite(SitePages):
    """`SitePages` made from the index: the structure as recorded, papers and issues looked up when needed.

    `index` holds `papers_of` (each published issue's paper ids, oldest issue first),
    `tags` (each tag's paper ids in order), `issue_fp`, `issue_tags`, `paper_fp` (where
    it is not the file's digest), `chrome` and the languages (`languages`, `versions`,
    `editions`); `digest(pid)` is a paper file's digest,
    `paper(pid)` and `issue(slug)` look them up. `edited`: the slugs of issues read in
    this run, whose fingerprints are made again. `translations`: every translation, as
    recorded or read again.
    """

    def __init__(
        self,
        settings: Settings,
        index: dict[str, Any],
        memo: Memo,
        *,
        issue: Callable[[str], Issue],
        paper: Callable[[str], Paper],
        digest: Callable[[str], str],
        edited: set[str],
        translations: Translations,
        original: Callable[[Issue], Issue],
    ) -> None:
        self.library = None
        self.settings = settings
        self.memo = memo
        self.fragments = FragmentCache.for_settings(settings, renderer_version)
        self._start_rendering()
        papers_of: dict[str, tuple[str, ...]] = index["papers_of"]
        self.slugs = list(papers_of)
        self.ids_of = papers_of
        self.by_slug = Lazy(self.slugs, issue)
        self.issues = _Named(self.slugs, self.by_slug)
        self.papers = Lazy((pid for pids in papers_of.values() for pid in pids), paper)
        self.papers_of = Lazy(papers_of, lambda slug: _Named(papers_of[slug], self.papers))
        self.languages = _IndexedLanguages(
            settings, index, self.slugs, self.by_slug, self.papers, translations, original
        )
        # an issue in its own language is at issues/<slug>/, a translation at
        # <lang>/issues/<slug>/ (Issue.web_path): each version's place in `versions`
        self._version_at: dict[str, tuple[str, int]] = {}
        for slug in self.slugs:
            self._version_at[f"issues/{slug}/"] = (slug, 0)
            for n, language in enumerate(self.languages.translated[slug], 1):
                self._version_at[f"{language}/issues/{slug}/"] = (slug, n)
        self.version_at = Lazy(self._version_at, self._version)
        self.featured = _Whole(lambda: _featured(self.slugs, papers_of, self.by_slug))
        tags: dict[str, tuple[str, ...]] = index["tags"]
        self.tags = Lazy(tags, lambda tag: _Named(tags[tag], self.papers))
        self.tag_paths = self._tag_paths(self.tags)
        self.css_source = self._read_template_file(CSS_SOURCE)
        self.css_path = CSS_OUTPUT.format(hash=hashlib.sha256(self.css_source).hexdigest()[:8])
        fps = index["paper_fp"]
        self.paper_fp = Lazy(self.papers, lambda pid: fps[pid] if pid in fps else digest(pid))
        stored = index["issue_fp"]
        self.issue_fp = Lazy(
            self.slugs, lambda slug: fingerprint(self.by_slug[slug]) if slug in edited else stored[slug]
        )
        self._issue_tags: dict[str, tuple[str, ...]] = index["issue_tags"]
        self._listed = {}
        self._featured_lines = {}
        self.chrome = index["chrome"]
        self._full = {}

    # What the index knows without looking a paper up: a page that does not show a paper
    # never reads it from the cache.

    def paper_count(self, issue: Issue) -> int:
        return len(self.ids_of[issue.slug])

    def issue_tags(self, issue: Issue) -> list[str]:
        return list(self._issue_tags[issue.slug])

    def _version(self, path: str) -> Version:
        slug, n = self._version_at[path]
        return self.languages.versions[slug][n]

    def issue_full(self, issue: Issue) -> str:
        found = self._full.get(issue.web_path)
        if found is None:  # as SitePages.issue_full, a paper looked up only when translated
            ids = self.ids_of[issue.slug]
            if issue.is_translation:
                version = self.version_at[issue.web_path]
                translated = version.paper_languages
                papers = [
                    fingerprint(version.papers[n]) if pid in translated else self.paper_fp[pid]
                    for n, pid in enumerate(ids)
                ]
                own = fingerprint(issue)
            else:
                papers = [self.paper_fp[pid] for pid in ids]
                own = self.issue_fp[issue.slug]
            found = self._full[issue.web_path] = fingerprint(own, papers)
        return found

    def keep_memo(self) -> None:
        raise NotImplementedError("the quick rebuild keeps the memo from the index")


def _featured(
    slugs: list[str], papers_of: dict[str, tuple[str, ...]], issues: Mapping[str, Issue]
) -> dict[str, list[Issue]]:
    """Paper id -> the published issues featuring it, oldest first (as `SitePages.featured`)."""
    featured: dict[str, list[Issue]] = {}
    for slug in slugs:
        for pid in papers_of[slug]:
            featured.setdefault(pid, []).append(issues[slug])
    return featured


def indexed_translations(
    records: dict[str, tuple], fresh: dict[str, tuple], folders: dict[str, Path]
) -> Translations:
    """Every translation as the index records it (`fresh`: the edited ones as read now), each made when first asked."""
    keys: dict[str, dict[tuple[str, str], str]] = {kind: {} for kind in folders}
    for key, record in records.items():
        keys[key.split("/", 1)[0]][record[0], record[1]] = key

    def make(kind: str, found: tuple[str, str]) -> Translation:
        key = keys[kind][found]
        original, language, words, translated_from = fresh.get(key, records[key])
        return Translation(original, language, folders[kind] / key.split("/", 1)[1], words, translated_from)

    issues, papers = (Lazy(keys[kind], functools.partial(make, kind)) for kind in ("issues", "papers"))
    return Translations(issues=issues, papers=papers)


class _IndexedLanguages(SiteLanguages):
    """`SiteLanguages` from the index: which translations each issue has is recorded, each version made when first asked.

    `translated`: slug -> the languages of its translations, in the order of
    `SiteLanguages.versions`; `editions`: each language with an index -> the slugs of the
    issues that can be read in it. A translated issue is made from its original with its
    freeze record (`original(issue)`), as the full build's is, so its fingerprint is the same.
    """

    def __init__(
        self,
        settings: Settings,
        index: dict[str, Any],
        slugs: list[str],
        issues: Mapping[str, Issue],
        papers: Mapping[str, Paper],
        translations: Translations,
        original: Callable[[Issue], Issue],
    ) -> None:
        self.settings = settings
        self.default = settings.language
        self.issues = _Named(slugs, issues)
        self.languages = list(index["languages"])
        versions: dict[str, tuple[str, ...]] = index["versions"]
        self.translated = {slug: versions.get(slug, ()) for slug in slugs}
        self.editions: dict[str, tuple[str, ...]] = index["editions"]
        self._issues = issues
        self._papers = papers
        self._ids: dict[str, tuple[str, ...]] = index["papers_of"]
        self._translations = translations
        self._original = original
        self._names: dict[str, str] = index["names"]
        self._made: dict[tuple[str, int], Version] = {}
        self.versions = Lazy(slugs, self._versions)

    def _versions(self, slug: str) -> list[Version]:
        return [self._version(slug, n) for n in range(len(self.translated[slug]) + 1)]

    def _version(self, slug: str, n: int) -> Version:
        """Version `n` of an issue (0: its original, then its translations in order), made once."""
        found = self._made.get((slug, n))
        if found is not None:
            return found
        issue = self._issues[slug]
        ids = self._ids[slug]
        if n == 0:
            found = Version(issue, _Named(ids, self._papers))
        else:
            language = self.translated[slug][n - 1]
            translated = self._translations.issue_in(self._original(issue), language)
            if translated.language != language:
                raise Stale  # the index and the translations disagree
            shown = Lazy(ids, lambda pid: self._translations.paper_in(self._papers[pid], language)[0])
            paper_languages = {pid: language for pid in ids if (pid, language) in self._translations.papers}
            found = Version(translated, _Named(ids, shown), paper_languages)
        self._made[slug, n] = found
        return found

    def version_in(self, issue: Issue, language: str) -> Version | None:
        """As `SiteLanguages.version_in`, making only the version asked for."""
        slug = issue.slug
        if self._issues[slug].language == language:
            return self._version(slug, 0)
        translated = self.translated[slug]
        return self._version(slug, translated.index(language) + 1) if language in translated else None

    def name(self, language: str) -> str:
        return self._names[language] if language in self._names else super().name(language)

    def edition(self, language: str) -> tuple[Sequence[Issue], Sequence[str]]:
        slugs = self.editions[language]
        shown = Lazy(slugs, lambda slug: self.shown_in(self._issues[slug], language).issue)
        return _Named(slugs, shown), slugs
