"""The site as the archive's index knows it: `SitePages` whose papers and issues are looked up only when a page needs them.

A quick rebuild (`newsletter.archive.rebuild`) keys a few pages of a site of 22,000: the
structure a full build works out from every paper and issue (which papers each issue
features, each tag's papers, the fingerprints of both) comes from the index instead, and
a paper or an issue is read from the content cache the first time a page asks for it.
Everything else is `SitePages` itself, so a page is keyed and rendered by the same code
either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from newsletter.archive.keys import Memo, fingerprint, renderer_version
from newsletter.archive.languages import SiteLanguages, Version
from newsletter.archive.pages import CSS_OUTPUT, CSS_SOURCE, SitePages
from newsletter.config import Settings
from newsletter.content.cache import FragmentCache
from newsletter.content.issues import Issue
from newsletter.content.papers import Paper

__all__ = ["IndexedSite", "Lazy"]


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
    it is not the file's digest) and `chrome`; `digest(pid)` is a paper file's digest,
    `paper(pid)` and `issue(slug)` look them up. `edited`: the slugs of issues read in
    this run, whose fingerprints are made again. A site in one language only.
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
        self.languages = _one_language(settings, self.slugs, self.by_slug, self.papers_of)
        # an issue in its own language is at issues/<slug>/ (Issue.web_path)
        self._slug_at = {f"issues/{slug}/": slug for slug in self.slugs}
        self.version_at = Lazy(self._slug_at, lambda path: self.languages.versions[self._slug_at[path]][0])
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

    def issue_full(self, issue: Issue) -> str:
        found = self._full.get(issue.web_path)
        if found is None:  # as SitePages.issue_full for a site in one language
            papers = [self.paper_fp[pid] for pid in self.ids_of[issue.slug]]
            found = self._full[issue.web_path] = fingerprint(self.issue_fp[issue.slug], papers)
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


def _one_language(
    settings: Settings, slugs: list[str], issues: Mapping[str, Issue], papers_of: Mapping
) -> SiteLanguages:
    """The languages of a site without translations: each issue its one version, one index."""
    languages = object.__new__(SiteLanguages)
    languages.settings = settings
    languages.default = settings.language
    languages.versions = Lazy(slugs, lambda slug: [Version(issues[slug], papers_of[slug])])
    languages.issues = _Named(slugs, issues)
    languages.languages = []
    return languages
