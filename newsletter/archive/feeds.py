"""The archive's feeds: Atom (RFC 4287) and JSON Feed 1.1, the newest issues first, older ones in archived pages.

`feed.xml` and `feed.json` carry the newest `archive.feed_size` issues (default 20), so
a feed stays small however long the newsletter runs. Older issues are in archived feed
pages (RFC 5005, section 4): `feeds/archive/<n>.xml`, numbered from the oldest, each
holding `feed_size` issues. Full pages never change when new issues are published; only
the newest page fills up as issues leave `feed.xml`. The subscription feed links its
newest archived page as `prev-archive`; every archived page links `current` (feed.xml),
`prev-archive` (older) and `next-archive` (newer) and carries `<fh:archive/>`.
The JSON pages (`feeds/archive/<n>.json`) chain the same issues with `next_url`,
JSON Feed's pagination, from the newest page to the oldest.

Every language with its own index (`newsletter.archive.languages`) has the same feeds
under its folder (`ar/feed.xml`, `ar/feed.json`, `ar/feeds/archive/<n>.xml`) carrying
the issues that can be read in it, marked with its language (`xml:lang`, `language`).

Entries carry an issue's full content with absolute links (feed readers have no base);
dates come from the issues, never from the clock.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from newsletter.archive.pages import Page, SitePages, lazy
from newsletter.content.library import Issue

ATOM_FEED = "feed.xml"
JSON_FEED = "feed.json"
ARCHIVE_PAGE = "feeds/archive/{number}.{ext}"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005's fh: namespace


class _ArchiveMarker:
    """Marks an Atom document as an archived feed page: `<fh:archive/>` (RFC 5005, section 4).

    A feedgen extension: the three methods of feedgen's BaseExtension, without importing
    feedgen (and lxml) before a feed is rendered, which a one-page rebuild may not do.
    """

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_rss(self, feed: Any) -> Any:
        return feed

    def extend_atom(self, feed: Any) -> Any:
        from lxml import etree  # feedgen's own XML library, loaded with it

        feed.insert(0, etree.Element(f"{{{HISTORY_NS}}}archive"))
        return feed


def archive_pages(issues: Sequence[Issue], size: int) -> list[Sequence[Issue]]:
    """The issues of each archived page, oldest page first: all but the newest `size`, in runs of `size`."""
    archived = issues[: max(len(issues) - size, 0)]
    return [archived[start : start + size] for start in range(0, len(archived), size)]


def feed_pages(site: SitePages, carrying: set[str] | None = None) -> list[Page]:
    """The feeds of the site's language and of every other language with an index.

    `carrying`: only the feed pages that carry one of these issues (slugs).
    """
    pages = _edition_feeds(site, "", site.issues, site.settings.language, carrying, site.slugs)
    for language in site.languages.languages:
        issues, slugs = site.languages.edition(language)
        pages += _edition_feeds(site, site.languages.index_path(language), issues, language, carrying, slugs)
    return pages


def _edition_feeds(
    site: SitePages,
    prefix: str,
    issues: Sequence[Issue],
    language: str,
    carrying: set[str] | None = None,
    slugs: Sequence[str] | None = None,
) -> list[Page]:
    """The subscription feeds and every archived page under `prefix`, each keyed by the issues it carries.

    `slugs`: the issues' slugs, when known without asking each issue.
    """
    size = site.settings.feed_size
    current = issues[-size:] if issues else []
    chunks = archive_pages(issues, size)
    writer = _FeedWriter(site, prefix, language)
    numbers = None
    if carrying is not None:  # by position: an issue is in one archived page or in the current feeds
        archived = max(len(issues) - size, 0)
        slugs = [i.slug for i in issues] if slugs is None else slugs
        numbers = {0 if n >= archived else n // size + 1 for n, slug in enumerate(slugs) if slug in carrying}
    pages: list[Page] = []
    for number in range(len(chunks) + 1):  # 0: the subscription feeds, then archived pages 1..n
        if numbers is not None and number not in numbers:
            continue
        chunk = current if number == 0 else chunks[number - 1]
        links = _history_links(number, len(chunks))  # so full pages keep their key as pages are added
        key = lazy(
            lambda number=number, chunk=chunk, links=links: site.key(
                "feed", prefix, language, number, links, [site.issue_full(i) for i in chunk]
            )
        )
        for ext in ("xml", "json"):
            path = prefix + _page_path(number, ext)
            pages.append(
                Page(
                    path,
                    key,
                    lambda number=number, chunk=chunk, ext=ext: writer.render(
                        number, chunk, len(chunks), ext
                    ),
                )
            )
    return pages


def _page_path(number: int, ext: str) -> str:
    if number == 0:
        return ATOM_FEED if ext == "xml" else JSON_FEED
    return ARCHIVE_PAGE.format(number=number, ext=ext)


class _FeedWriter:
    """Renders one feed page, Atom or JSON; entry contents are rendered once and kept between builds."""

    def __init__(self, site: SitePages, prefix: str, language: str) -> None:
        self.site = site
        self.settings = site.settings
        self.prefix = prefix  # '' or '<lang>/'
        self.language = language

    def render(self, number: int, issues: list[Issue], pages: int, ext: str) -> str | bytes:
        return self.atom(number, issues, pages) if ext == "xml" else self.json(number, issues, pages)

    def content(self, issue: Issue) -> str:
        """An issue's full content as an HTML fragment with absolute links."""
        site = self.site

        def compute() -> str:
            version = site.version_at[issue.web_path]
            context = site.base_context(
                depth=None,
                language=issue.language,
                path=issue.web_path,
                paper_languages=version.paper_languages,
            )
            context.update(issue=issue, papers=version.papers)
            return site.render("feed_entry.html.j2", context).strip()

        # kept between builds: a one-issue rebuild renders the feed pages carrying that issue,
        # and each of their other entries would otherwise be rendered again
        return site.fragments.get("feed-entry", site.key("feed-entry", site.issue_full(issue)), compute)

    def tags(self, issue: Issue) -> list[str]:
        return self.site.issue_tags(issue)

    @staticmethod
    def updated(issues: list[Issue]) -> dt.datetime:
        """As new as the page's newest issue (never the clock)."""
        newest = issues[-1].date if issues else dt.date(1970, 1, 1)
        return dt.datetime.combine(newest, dt.time(), tzinfo=dt.UTC)

    def atom(self, number: int, issues: list[Issue], pages: int) -> bytes:
        from feedgen.feed import FeedGenerator  # with lxml and dateutil: only when a feed is rendered

        s = self.settings
        fg = FeedGenerator()
        home = s.url(self.prefix)
        fg.id(home)
        fg.title(s.name)
        fg.subtitle(s.description or s.name)
        fg.link(href=home, rel="alternate", type="text/html")
        fg.link(href=s.url(self.prefix + _page_path(number, "xml")), rel="self", type="application/atom+xml")
        for rel, other in _history_links(number, pages):
            fg.link(href=s.url(self.prefix + _page_path(other, "xml")), rel=rel, type="application/atom+xml")
        if number:
            fg.register_extension("fh", _ArchiveMarker, atom=True, rss=False)
        fg.language(self.language)  # the feed's xml:lang
        fg.author(name=s.name)  # Atom wants an author for the feed when entries have none
        fg.generator("newsletter")
        fg.updated(self.updated(issues))
        for issue in issues:  # feedgen prepends: the newest ends up first
            entry = fg.add_entry()
            url = issue.web_url(s)
            when = dt.datetime.combine(issue.date, dt.time(), tzinfo=dt.UTC)
            entry.id(url)
            entry.title(issue.subject)
            entry.link(href=url, rel="alternate", type="text/html")
            entry.published(when)
            entry.updated(when)
            if issue.preheader:
                entry.summary(issue.preheader)
            entry.content(self.content(issue), type="html")
            for tag in self.tags(issue):
                entry.category(term=tag)
        return fg.atom_str(pretty=True)

    def json(self, number: int, issues: list[Issue], pages: int) -> str:
        s = self.settings
        items = []
        for issue in reversed(issues):
            item: dict[str, Any] = {
                "id": issue.web_url(s),
                "url": issue.web_url(s),
                "title": issue.subject,
                "content_html": self.content(issue),
                "date_published": f"{issue.date.isoformat()}T00:00:00Z",
                "language": issue.language,
            }
            if issue.preheader:
                item["summary"] = issue.preheader
            if tags := self.tags(issue):
                item["tags"] = tags
            items.append(item)
        older = dict(_history_links(number, pages)).get("prev-archive")
        feed = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": s.name,
            "home_page_url": s.url(self.prefix),
            "feed_url": s.url(self.prefix + JSON_FEED),
            **({"next_url": s.url(self.prefix + _page_path(older, "json"))} if older else {}),
            "language": self.language,
            "authors": [{"name": s.name}],
            **({"description": s.description} if s.description else {}),
            "items": items,
        }
        return json.dumps(feed, ensure_ascii=False, indent=2) + "\n"


def _history_links(number: int, pages: int) -> list[tuple[str, int]]:
    """RFC 5005 links of feed page `number` (0: the subscription feed) among `pages` archived pages."""
    if number == 0:
        return [("prev-archive", pages)] if pages else []
    links = [("current", 0)]
    if number > 1:
        links.append(("prev-archive", number - 1))
    if number < pages:
        links.append(("next-archive", number + 1))
    return links
