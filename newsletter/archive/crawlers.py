"""The archive's files for crawlers: `robots.txt` and `sitemap.xml`, the sitemap keyed by the URLs it lists.

The sitemap lists every page (22,000 at 2,000 issues of 10 papers) with the date it last
changed: rendering it on every build would cost more than the rest of a one-issue
rebuild, so its key is made from what it lists (each page's path and date, the versions
of each page), in one pass over plain strings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from urllib.parse import quote, urlsplit

from newsletter.archive.languages import LanguageLink
from newsletter.archive.pages import Page, SitePages

__all__ = ["crawler_pages", "robots", "sitemap"]


def crawler_pages(site: SitePages) -> list[Page]:
    """`robots.txt` (always rendered: a line) and `sitemap.xml` (keyed by what it lists)."""
    urls = _urls(site)
    return [
        Page("robots.txt", None, lambda: robots(site)),
        Page("sitemap.xml", _key(site, urls), lambda: sitemap(site, urls)),
    ]


def xml_escape(text: str) -> str:
    """`&`, `<` and `>` as XML entities (xml.sax.saxutils.escape, which imports urllib.request)."""
    return html.escape(text, quote=False)


def robots(site: SitePages) -> str:
    """Allow everything and name the sitemap.

    Crawlers only read /robots.txt at the root of a host. Under a sub-path
    (base_url https://example.org/digest/) this file is published but ignored, so it
    says so and gives the line to add to the host's own robots.txt.
    """
    settings = site.settings
    line = f"Sitemap: {settings.url('sitemap.xml')}\n"
    path = urlsplit(settings.base_url).path
    if path in ("", "/"):
        return "User-agent: *\nAllow: /\n\n" + line
    return (
        f"# This site lives under {path}; crawlers only read /robots.txt at the root of the host,\n"
        "# so this file is ignored there. Add the Sitemap line below to the host's /robots.txt.\n" + line
    )


Url = tuple[str, "dt.date | None", list[LanguageLink]]


def _urls(site: SitePages) -> list[Url]:
    """Every page the sitemap lists: (path, date, its versions), indexes, issues, papers, tags."""
    languages = site.languages
    newest = site.issues[-1].date if site.issues else None
    urls: list[Url] = [
        (languages.index_path(lang), newest, languages.index_links(lang))
        for lang in [site.settings.language, *languages.languages]
    ]
    for issue in reversed(site.issues):
        urls += [
            (v.path, issue.date, languages.issue_links(issue, v.issue.language))
            for v in languages.versions[issue.slug]
        ]
    urls += [(f"papers/{pid}/", site.featured[pid][-1].date, []) for pid in sorted(site.papers)]
    if site.tags:
        urls.append(("tags/", newest, []))
    urls += [
        (quote(site.tag_paths[t]), site.featured[site.tags[t][0].id][-1].date, []) for t in sorted(site.tags)
    ]
    return urls


def _key(site: SitePages, urls: list[Url]) -> str:
    """The sitemap's key: every URL, date and version in one string, hashed once."""
    days: dict[dt.date | None, str] = {}  # thousands of pages share a few hundred dates
    parts = []
    for path, date, links in urls:
        day = days.get(date)
        if day is None:
            day = days[date] = date.isoformat() if date else ""
        parts.append(f"{path}\0{day}")
        parts += [f"\0{link.language}\0{link.path}" for link in links]
    listed = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return site.key("sitemap", site.languages.has_editions(), listed)


def sitemap(site: SitePages, urls: list[Url]) -> str:
    """Every page, with the other language versions of the indexes and issues as xhtml:link alternates."""
    settings, languages = site.settings, site.languages
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    if languages.has_editions():
        lines.append(
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:xhtml="http://www.w3.org/1999/xhtml">'
        )
    else:
        lines.append('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
    for path, date, links in urls:
        lastmod = f"<lastmod>{date.isoformat()}</lastmod>" if date else ""
        entry = f"  <url><loc>{xml_escape(settings.url(path))}</loc>{lastmod}"
        alternates = languages.alternates(links)
        if not alternates:
            lines.append(entry + "</url>")
            continue
        lines.append(entry)
        lines += [
            f'    <xhtml:link rel="alternate" hreflang="{xml_escape(lang)}" href="{xml_escape(url)}"/>'
            for lang, url in alternates
        ]
        lines.append("  </url>")
    lines.append("</urlset>")
    return "\n".join(lines) + "\n"
