"""The archive's pages: what each page of the site is, the inputs it is made from, and how it renders.

`SitePages` holds one build's shared state (the Jinja environment, strings per
language, the memo, fingerprints of every paper and issue) and lists the site's files as
`Page`s: a path, a key of the inputs and a render function. `newsletter.archive.site`
decides which of them to render and write; `newsletter.archive.feeds` adds the feeds.

Links between pages are relative (the site works under any sub-path and from
`newsletter archive serve`); canonical links and the sitemap are absolute, built from
`settings.base_url`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html as html_module
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup

from newsletter import __version__
from newsletter.archive import ArchiveError
from newsletter.config import Settings, text_direction
from newsletter.content.library import Issue, Library, Paper
from newsletter.content.selection import plan
from newsletter.mail import render as mail_render
from newsletter.mail.render import (
    MARKDOWN,
    excerpt,
    format_date,
    jinja_environment,
    load_strings,
    render_template,
)

PAGES_VERSION = 2  # bump when a change here changes pages in a way the code hash would not show
CSS_SOURCE = "site/site.css"
CSS_OUTPUT = "assets/site.{hash}.css"


@dataclass(frozen=True)
class Page:
    """One file of the site."""

    path: str  # relative to the site folder, '/'-separated
    key: str | None  # fingerprint of the inputs; None: always render (cheap pages)
    render: Callable[[], str | bytes]


def fingerprint(*parts: object) -> str:
    """A short hash of the parts' reprs: the key of a page's inputs."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:32]


class Memo:
    """Markdown and fragments rendered once per text, kept in the manifest between builds.

    The index lists every issue with an excerpt of its introduction: the excerpts are kept,
    so a one-issue rebuild does not parse thousands of introductions again. Feed entries
    and abstracts are only memoised within a build (feeds carry a few issues per page).
    """

    def __init__(self, stored: dict[str, str]) -> None:
        self.stored = stored
        self.used: dict[str, str] = {}

    PERSISTENT = ("excerpt",)  # kept between builds; everything else within one build

    def kept(self) -> dict[str, str]:
        return {k: v for k, v in self.used.items() if k.startswith(self.PERSISTENT)}

    @staticmethod
    def _key(kind: str, source: str) -> str:
        return kind + ":" + hashlib.sha256(f"{kind}\0{source}".encode()).hexdigest()[:32]

    def keep(self, kind: str, source: str) -> None:
        """Carry a stored entry over to the next build although no page asked for it this time."""
        key = self._key(kind, source)
        if key not in self.used and key in self.stored:
            self.used[key] = self.stored[key]

    def get(self, kind: str, source: str, compute: Callable[[], str]) -> str:
        key = self._key(kind, source)
        value = self.used.get(key)
        if value is None:
            value = self.stored.get(key)
            if value is None:
                value = compute()
            self.used[key] = value
        return value


def xml_escape(text: str) -> str:
    """`&`, `<` and `>` as XML entities (xml.sax.saxutils.escape, which imports urllib.request)."""
    return html_module.escape(text, quote=False)


def tag_segment(tag: str) -> str:
    """The folder name of a tag's page: letters, digits, '.', '_' and '-' only."""
    segment = re.sub(r"[^\w.-]+", "-", tag, flags=re.UNICODE).strip("-.")
    return segment or "tag-" + hashlib.sha256(tag.encode()).hexdigest()[:8]


def meta_description(html: str, limit: int = 160) -> str:
    """About `limit` characters of an HTML fragment's text, cut at a word, for <meta name=description>.

    Made from the already rendered (and memoised) HTML, so a paper's abstract is parsed once.
    """
    text = " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", html)).split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:.") + "…"


def published_issues(library: Library) -> list[Issue]:
    """Published issues, oldest first."""
    return [i for i in library.issues if i.published]


def issue_papers(library: Library, issues: Iterable[Issue]) -> dict[str, list[Paper]]:
    """The papers each issue features: the one place the archive asks for an issue's papers."""
    planned = plan(library)
    return {i.slug: planned.get(i.slug, []) for i in issues}


class SitePages:
    """One build's shared state: the Jinja env, strings per language, memo, fingerprints."""

    def __init__(self, library: Library, memo: Memo) -> None:
        self.library = library
        self.settings: Settings = library.settings
        self.memo = memo
        self.env = jinja_environment(self.settings.templates_dir)
        self.env.filters["markdown"] = lambda text: Markup(
            memo.get("html", text, lambda: str(MARKDOWN.html(text)))
        )
        self.env.filters["excerpt"] = lambda text: memo.get("excerpt", text, lambda: excerpt(text)[0])
        self.env.filters["description"] = lambda text: meta_description(self.env.filters["markdown"](text))
        self._strings: dict[str, dict[str, Any]] = {}
        self.issues = published_issues(library)
        self.papers_of = issue_papers(library, self.issues)
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
        # every page may link to a tag: one whose folder another tag took moves all links
        self.chrome = fingerprint(self._chrome_key(), self._moved_tags())
        self._full: dict[str, str] = {}

    # -- inputs

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

    def _chrome_key(self) -> str:
        """Everything every page depends on: templates, strings, settings, this code."""
        site_templates = self.settings.templates_dir / "site"
        files = sorted(site_templates.rglob("*")) if site_templates.is_dir() else []
        blobs = [(str(f.relative_to(site_templates)), f.read_bytes()) for f in files if f.is_file()]
        catalogues = sorted((self.settings.templates_dir / "locale").rglob("*.po"))
        strings = b"".join(path.read_bytes() for path in catalogues)
        s = self.settings
        # the archive's modules and render.py (markdown, excerpts, dates) decide every page's bytes
        code = b"".join(Path(f).read_bytes() for f in sorted(Path(__file__).parent.glob("*.py")))
        code += Path(mail_render.__file__).read_bytes()
        return fingerprint(
            PAGES_VERSION,
            __version__,
            code,
            blobs,
            strings,
            s.name,
            s.description,
            s.language,
            s.base_url,
            s.web_url,
        )

    def strings(self, language: str) -> dict[str, Any]:
        if language not in self._strings:
            self._strings[language] = load_strings(self.settings, language)
        return self._strings[language]

    # -- contexts

    def base_context(self, *, depth: int | None, language: str, path: str) -> dict[str, Any]:
        """`root` is the relative way back to the site root; None (404 page): absolute URLs."""
        root = self.settings.base_url if depth is None else "../" * depth
        strings = self.strings(language)
        subscribe = self.settings.web("subscribe")
        return {
            "settings": self.settings,
            "newsletter": self.settings.name,
            "s": strings,
            "lang": language,
            "dir": text_direction(language),
            "root": root,
            "css": root + self.css_path,
            "canonical": self.settings.url(path),
            "subscribe_url": subscribe,
            "format_date": lambda d: format_date(d, strings),
            "count_label": lambda n: (
                strings["paper_count_one"] if n == 1 else strings["papers_count"].format(count=n)
            ),
            "issue_href": lambda issue: f"{root}issues/{issue.slug}/",
            "paper_href": lambda paper: f"{root}papers/{paper.id}/",
            "tag_href": lambda tag: root + quote(self.tag_paths[tag]),
            "paper_link": lambda paper: (
                paper.url or paper.arxiv_url or paper.project_page or f"{root}papers/{paper.id}/"
            ),
            "featured": self.featured,
            "direction": text_direction,
        }

    def render(self, template: str, context: dict[str, Any]) -> str:
        return render_template(self.env, f"site/{template}", context)

    # -- pages

    def pages(self) -> list[Page]:
        pages = [
            Page(self.css_path, "css", lambda: self.css_source),
            Page("index.html", self.key("index", [self._issue_summary(i) for i in self.issues]), self.index),
            Page("404.html", None, self.not_found),
            Page("robots.txt", None, self.robots),
            Page("sitemap.xml", None, self.sitemap),
            Page("tags/index.html", None, self.tag_index),
        ]
        for n, issue in enumerate(self.issues):
            before = self.issues[n - 1] if n > 0 else None
            after = self.issues[n + 1] if n + 1 < len(self.issues) else None
            key = self.key(
                "issue",
                self.issue_full(issue),
                [(i.slug, i.title, i.subject, i.date) if i else None for i in (before, after)],
            )
            pages.append(
                Page(
                    f"issues/{issue.slug}/index.html",
                    key,
                    lambda issue=issue, before=before, after=after: self.issue_page(issue, before, after),
                )
            )
        for pid, paper in self.papers.items():
            key = self.key("paper", self.listed(pid))
            pages.append(Page(f"papers/{pid}/index.html", key, lambda paper=paper: self.paper_page(paper)))
        for tag, papers in self.tags.items():
            key = self.key(
                "tag",
                tag,
                self.tag_paths[tag],
                [self.listed(p.id) for p in papers],
            )
            pages.append(Page(self.tag_paths[tag] + "index.html", key, lambda tag=tag: self.tag_page(tag)))
        return pages

    def key(self, *parts: object) -> str:
        """The key of a page made from `parts` and what every page depends on."""
        return fingerprint(self.chrome, *parts)

    def listed(self, pid: str) -> str:
        """A fingerprint of a paper and the issues featuring it: what its page and its tags' pages show of it."""
        found = self._listed.get(pid)
        if found is None:
            found = self._listed[pid] = fingerprint(self.paper_fp[pid], self._featured_summary(pid))
        return found

    def keep_memo(self) -> None:
        """Keep what skipped pages would have asked the memo for, so the next build finds it."""
        for issue in self.issues:
            self.memo.keep("excerpt", issue.intro)

    def _issue_summary(self, issue: Issue) -> tuple:
        return (self.issue_fp[issue.slug], len(self.papers_of[issue.slug]))

    def issue_full(self, issue: Issue) -> str:
        """A fingerprint of the issue and its papers (cached: feeds and pages all ask)."""
        found = self._full.get(issue.slug)
        if found is None:
            papers = [self.paper_fp[p.id] for p in self.papers_of[issue.slug]]
            found = self._full[issue.slug] = fingerprint(self.issue_fp[issue.slug], papers)
        return found

    def _featured_summary(self, pid: str) -> list[tuple]:
        return [(i.slug, i.title, i.number, i.date) for i in self.featured[pid]]

    def index(self) -> str:
        context = self.base_context(depth=0, language=self.settings.language, path="")
        context["issues"] = [(i, len(self.papers_of[i.slug])) for i in reversed(self.issues)]
        context["tag_list"] = sorted(self.tags)
        return self.render("index.html.j2", context)

    def issue_page(self, issue: Issue, before: Issue | None, after: Issue | None) -> str:
        context = self.base_context(depth=2, language=issue.language, path=f"issues/{issue.slug}/")
        context.update(issue=issue, papers=self.papers_of[issue.slug], previous=before, next=after)
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

    def tag_index(self) -> str:
        context = self.base_context(depth=1, language=self.settings.language, path="tags/")
        context["tag_counts"] = [(tag, len(self.tags[tag])) for tag in sorted(self.tags)]
        return self.render("tags.html.j2", context)

    def not_found(self) -> str:
        context = self.base_context(depth=None, language=self.settings.language, path="404.html")
        return self.render("404.html.j2", context)

    def robots(self) -> str:
        """Allow everything and name the sitemap.

        Crawlers only read /robots.txt at the root of a host. Under a sub-path
        (base_url https://example.org/digest/) this file is published but ignored, so it
        says so and gives the line to add to the host's own robots.txt.
        """
        sitemap = f"Sitemap: {self.settings.url('sitemap.xml')}\n"
        path = urlsplit(self.settings.base_url).path
        if path in ("", "/"):
            return "User-agent: *\nAllow: /\n\n" + sitemap
        return (
            f"# This site lives under {path}; crawlers only read /robots.txt at the root of the host,\n"
            "# so this file is ignored there. Add the Sitemap line below to the host's /robots.txt.\n"
            + sitemap
        )

    def sitemap(self) -> str:
        urls: list[tuple[str, dt.date | None]] = [("", self.issues[-1].date if self.issues else None)]
        urls += [(f"issues/{i.slug}/", i.date) for i in reversed(self.issues)]
        urls += [(f"papers/{pid}/", self.featured[pid][-1].date) for pid in sorted(self.papers)]
        if self.tags:
            urls.append(("tags/", self.issues[-1].date))
        urls += [
            (quote(self.tag_paths[t]), self.featured[self.tags[t][0].id][-1].date) for t in sorted(self.tags)
        ]
        lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        lines.append('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
        for path, date in urls:
            lastmod = f"<lastmod>{date.isoformat()}</lastmod>" if date else ""
            lines.append(f"  <url><loc>{xml_escape(self.settings.url(path))}</loc>{lastmod}</url>")
        lines.append("</urlset>")
        return "\n".join(lines) + "\n"
