"""The archive's pages: what each page of the site is, the inputs it is made from, and how it renders.

`SitePages` holds one build's shared state (the Jinja environment, strings per
language, the memo, fingerprints of every paper and issue) and lists the site's files as
`Page`s: a path, a key of the inputs and a render function. How a page renders, and what
many pages share, is `newsletter.archive.rendering`. `newsletter.archive.site` decides
which of them to render and write; `newsletter.archive.feeds` adds the feeds.

Links between pages are relative (the site works under any sub-path and from
`newsletter archive serve`); canonical links and the sitemap are absolute, built from
`settings.base_url`.

Each published issue has a page per version (its original and every translation, see
`newsletter.archive.languages`); the newsletter's language has the root index, every
other language a translation is in has its own index at `<lang>/`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from newsletter import __version__
from newsletter.archive import ArchiveError
from newsletter.archive.keys import PACKAGE, Memo, fingerprint, renderer_version, source_digest
from newsletter.archive.languages import (
    LanguageLink,
    SiteLanguages,
    Version,
)
from newsletter.archive.rendering import PageRendering
from newsletter.config import Settings
from newsletter.content.fragments import FragmentCache
from newsletter.content.library import Issue, Library, Paper
from newsletter.content.selection import plan
from newsletter.mail.render import excerpt

PAGES_VERSION = 3  # bump when a change here changes pages in a way the code hash would not show
CSS_SOURCE = "site/site.css"
CSS_OUTPUT = "assets/site.{hash}.css"


@dataclass(frozen=True)
class Page:
    """One file of the site.

    `key` is the fingerprint of the page's inputs, None for a page always rendered (a
    cheap one), or a function that makes the fingerprint when it is first asked for
    (`lazy`): a build into an empty folder asks only once the page is written, in the
    worker process that renders it, instead of keying 20,000 pages before forking.
    """

    path: str  # relative to the site folder, '/'-separated
    key: str | Callable[[], str] | None
    render: Callable[[], str | bytes]

    def keyed(self) -> str | None:
        """The page's key, made now if it was lazy."""
        return self.key() if callable(self.key) else self.key


def lazy(make: Callable[[], str]) -> Callable[[], str]:
    """A page's key made the first time it is asked for, then kept."""
    return functools.cache(make)


def tag_segment(tag: str) -> str:
    """The folder name of a tag's page: letters, digits, '.', '_' and '-' only."""
    segment = re.sub(r"[^\w.-]+", "-", tag, flags=re.UNICODE).strip("-.")
    return segment or "tag-" + hashlib.sha256(tag.encode()).hexdigest()[:8]


def published_issues(library: Library) -> list[Issue]:
    """Published issues, oldest first."""
    return [i for i in library.issues if i.published]


def issue_papers(library: Library, issues: Iterable[Issue]) -> dict[str, list[Paper]]:
    """The papers each issue features: the one place the archive asks for an issue's papers."""
    planned = plan(library)
    return {i.slug: planned.get(i.slug, []) for i in issues}


def chrome_key(settings: Settings) -> str:
    """Everything every page depends on: templates, strings, settings, this code."""
    site_templates = settings.templates_dir / "site"
    files = sorted(site_templates.rglob("*")) if site_templates.is_dir() else []
    blobs = [(str(f.relative_to(site_templates)), f.read_bytes()) for f in files if f.is_file()]
    catalogues = sorted((settings.templates_dir / "locale").rglob("*.po"))
    strings = b"".join(path.read_bytes() for path in catalogues)
    s = settings
    return fingerprint(
        PAGES_VERSION,
        __version__,
        source_digest(PACKAGE),
        blobs,
        strings,
        s.name,
        s.description,
        s.language,
        s.base_url,
        s.web_url,
    )


class SitePages(PageRendering):
    """One build's shared state: the Jinja env, strings per language, memo, fingerprints."""

    def __init__(self, library: Library, memo: Memo, fragments: FragmentCache | None = None) -> None:
        self.library = library
        self.settings: Settings = library.settings
        self.memo = memo
        # markdown as HTML, kept between builds: a full build with a warm cache parses none
        self.fragments = fragments or FragmentCache.for_settings(self.settings, renderer_version)
        self._start_rendering()
        self.issues = published_issues(library)
        self.slugs = [i.slug for i in self.issues]
        self.papers_of = issue_papers(library, self.issues)
        self.languages = SiteLanguages(library, self.issues, self.papers_of)
        self.version_at: dict[str, Version] = {
            v.path: v for versions in self.languages.versions.values() for v in versions
        }
        self.featured: dict[str, list[Issue]] = {}  # paper id -> published issues featuring it
        for issue in self.issues:
            for paper in self.papers_of[issue.slug]:
                self.featured.setdefault(paper.id, []).append(issue)
        self.papers: dict[str, Paper] = {p.id: p for issue in self.issues for p in self.papers_of[issue.slug]}
        self.tags: dict[str, list[Paper]] = {}
        for paper in sorted(self.papers.values(), key=self._paper_order):
            for tag in paper.tags:
                self.tags.setdefault(tag, []).append(paper)
        self.tag_paths = self._tag_paths(self.tags)
        self.css_source = self._read_template_file(CSS_SOURCE)
        self.css_path = CSS_OUTPUT.format(hash=hashlib.sha256(self.css_source).hexdigest()[:8])
        # a paper's digest from the content cache when there is one: hashing the repr of
        # 20,000 papers would cost more than the rest of a one-issue rebuild
        digests = library.digests
        self.paper_fp = {pid: digests.get(pid) or fingerprint(p) for pid, p in self.papers.items()}
        self.issue_fp = {i.slug: fingerprint(i) for i in self.issues}
        self._listed: dict[str, str] = {}
        self._featured_lines: dict[str, str] = {}
        # every page may link to a tag: one whose folder another tag took moves all links
        self.chrome = fingerprint(chrome_key(self.settings), self._moved_tags())
        self._full: dict[str, str] = {}

    # -- inputs

    def paper_count(self, issue: Issue) -> int:
        """How many papers an issue features (the index shows it)."""
        return len(self.papers_of[issue.slug])

    def issue_tags(self, issue: Issue) -> list[str]:
        """The tags of the papers of one version of an issue, sorted (its feed entries' categories)."""
        return sorted({t for p in self.papers_shown(issue) for t in p.tags})

    def _paper_order(self, paper: Paper) -> tuple:
        first = self.featured[paper.id][-1]
        return (-first.date.toordinal(), -first.number, paper.title.casefold(), paper.id)

    @staticmethod
    def _tag_paths(tags: Iterable[str]) -> dict[str, str]:
        paths: dict[str, str] = {}
        taken: set[str] = set()
        for tag in sorted(tags):
            segment = tag_segment(tag)
            if segment.casefold() in taken:  # "a b" and "a-b"; also case-insensitive file systems
                segment = f"{segment}-{hashlib.sha256(tag.encode()).hexdigest()[:6]}"
            taken.add(segment.casefold())
            paths[tag] = f"tags/{segment}/"
        return paths

    def _moved_tags(self) -> list[tuple[str, str]]:
        """The tags whose folder is not their own segment (it clashed): they depend on the other tags."""
        return [
            (tag, path) for tag, path in sorted(self.tag_paths.items()) if path != f"tags/{tag_segment(tag)}/"
        ]

    def _read_template_file(self, name: str) -> bytes:
        path = self.settings.templates_dir / name
        try:
            return path.read_bytes()
        except OSError:
            raise ArchiveError(f"templates/{name}: missing (the archive site needs it)") from None

    # -- pages

    def pages(self) -> list[Page]:
        pages = [
            Page(self.css_path, "css", lambda: self.css_source),
            *self.index_pages(),
            Page("404.html", self.key("404", self._home(self.settings.language)), self.not_found),
            Page(
                "tags/index.html",
                self.key("tags", self._home(self.settings.language), self._tag_list()),
                self.tag_index,
            ),
        ]
        for n, issue in enumerate(self.issues):
            for version in self.languages.versions[issue.slug]:
                pages.append(self.issue_version_page(version, n))
        pages += [self.paper_entry(pid) for pid in self.papers]
        pages += [self.tag_entry(tag) for tag in self.tags]
        return pages

    def paper_entry(self, pid: str) -> Page:
        """The page of one paper."""
        key = lazy(lambda: self.key("paper", self.listed(pid)))
        return Page(f"papers/{pid}/index.html", key, lambda: self.paper_page(self.papers[pid]))

    def tag_entry(self, tag: str) -> Page:
        """The page of one tag."""
        key = lazy(
            lambda: self.key("tag", tag, self.tag_paths[tag], [self.listed(p.id) for p in self.tags[tag]])
        )
        return Page(self.tag_paths[tag] + "index.html", key, lambda: self.tag_page(tag))

    def key(self, *parts: object) -> str:
        """The key of a page made from `parts` and what every page depends on."""
        return fingerprint(self.chrome, *parts)

    def listed(self, pid: str) -> str:
        """A fingerprint of a paper and the issues featuring it: what its page and its tags' pages show of it."""
        found = self._listed.get(pid)
        if found is None:
            lines = [self.paper_fp[pid], *(self._featured_line(i) for i in self.featured[pid])]
            found = self._listed[pid] = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]
        return found

    def _featured_line(self, issue: Issue) -> str:
        """What a paper's page and its tags' pages show of an issue featuring it, as one line (cached).

        Strings, not a fingerprint of tuples: 20,000 papers ask, and `repr` of dates costs.
        """
        found = self._featured_lines.get(issue.slug)
        if found is None:
            shown = (issue.slug, issue.web_path, issue.subject, issue.title, issue.number, issue.language)
            found = self._featured_lines[issue.slug] = repr((*shown, issue.date.isoformat()))
        return found

    def keep_memo(self) -> None:
        """Keep what skipped pages would have asked the memo for, so the next build finds it."""
        for version in self.version_at.values():
            self.memo.keep("excerpt", version.issue.intro)

    def _index_entry(self, issue: Issue) -> tuple:
        """What an index shows of an issue: an edit to its papers or past its excerpt leaves the index alone."""
        shown = (
            self.memo.get("excerpt", issue.intro, lambda: excerpt(issue.intro)[0]) if issue.intro else None
        )
        count = self.paper_count(issue)
        return (issue.web_path, issue.subject, issue.language, issue.date, issue.number, count, shown)

    def issue_full(self, issue: Issue) -> str:
        """A fingerprint of one version of an issue and its papers (cached: feeds and pages all ask).

        A translation's is made from its own words and its papers' translations, so a change
        to its translation file changes the key of its pages alone.
        """
        found = self._full.get(issue.web_path)
        if found is None:
            version = self.version_at[issue.web_path]
            own = fingerprint(issue) if issue.is_translation else self.issue_fp[issue.slug]
            papers = [
                fingerprint(p) if p.id in version.paper_languages else self.paper_fp[p.id]
                for p in version.papers
            ]
            found = self._full[issue.web_path] = fingerprint(own, papers)
        return found

    def papers_shown(self, issue: Issue) -> list[Paper]:
        """The papers of one version of an issue, in its words."""
        return self.version_at[issue.web_path].papers

    def index_pages(self, only: set[str] | None = None) -> list[Page]:
        """The root index (the newsletter's language) and one index per other language (`only` these)."""
        pages = []
        for language in [self.settings.language, *self.languages.languages]:
            if only is not None and language not in only:
                continue
            shown = [self.languages.shown_in(i, language).issue for i in self.issues]
            links = self.languages.index_links(language)
            key = lazy(
                lambda language=language, shown=shown, links=links: self.key(
                    "index", language, [self._index_entry(i) for i in shown], links, self.tag_paths
                )
            )
            path = self.languages.index_path(language) + "index.html"
            pages.append(Page(path, key, lambda language=language, shown=shown: self.index(language, shown)))
        return pages

    def index(self, language: str, shown: list[Issue]) -> str:
        """An index: every published issue, in `language` where it can be read in it, newest first."""
        path = self.languages.index_path(language)
        context = self.base_context(
            depth=path.count("/"), language=language, path=path, links=self.languages.index_links(language)
        )
        context["issues"] = [(i, self.paper_count(i)) for i in reversed(shown)]
        context["tag_list"] = sorted(self.tags)
        return self.render("index.html.j2", context)

    def issue_version_page(self, version: Version, n: int) -> Page:
        """The page of one version of the issue `n` (oldest first), its neighbours in its language."""
        issue, language = version.issue, version.issue.language
        neighbours = [
            self.languages.shown_in(self.issues[m], language).issue if 0 <= m < len(self.issues) else None
            for m in (n - 1, n + 1)
        ]
        links = self.languages.issue_links(issue, language)
        key = lazy(
            lambda: self.key(
                "issue",
                self.issue_full(issue),
                [(i.web_path, i.title, i.subject, i.date, i.language) if i else None for i in neighbours],
                links,
            )
        )
        return Page(
            version.path + "index.html",
            key,
            lambda: self.issue_page(version, neighbours[0], neighbours[1], links),
        )

    def issue_page(
        self, version: Version, before: Issue | None, after: Issue | None, links: list[LanguageLink]
    ) -> str:
        issue = version.issue
        context = self.base_context(
            depth=version.path.count("/"),
            language=issue.language,
            path=version.path,
            links=links,
            paper_languages=version.paper_languages,
        )
        context.update(issue=issue, papers=version.papers, previous=before, next=after)
        return self.render("issue.html.j2", context)

    def paper_page(self, paper: Paper) -> str:
        context = self.base_context(depth=2, language=self.settings.language, path=f"papers/{paper.id}/")
        context["paper"] = paper
        return self.render("paper.html.j2", context)

    def tag_page(self, tag: str) -> str:
        path = self.tag_paths[tag]
        context = self.base_context(depth=path.count("/"), language=self.settings.language, path=path)
        context.update(tag=tag, papers=self.tags[tag])
        return self.render("tag.html.j2", context)

    def _home(self, language: str) -> tuple:
        """What a page's chrome shows of the site's languages: whether `language` has its own index, and where."""
        edition = language in self.languages.languages
        return (edition, self.languages.index_path(language) if edition else None)

    def _tag_list(self) -> list[tuple[str, str, int]]:
        return [(tag, self.tag_paths[tag], len(self.tags[tag])) for tag in sorted(self.tags)]

    def tag_index(self) -> str:
        context = self.base_context(depth=1, language=self.settings.language, path="tags/")
        context["tag_counts"] = [(tag, len(self.tags[tag])) for tag in sorted(self.tags)]
        return self.render("tags.html.j2", context)

    def not_found(self) -> str:
        context = self.base_context(depth=None, language=self.settings.language, path="404.html")
        return self.render("404.html.j2", context)
