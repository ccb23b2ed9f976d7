"""The static archive site: issue, paper and tag pages, Atom and JSON feeds, sitemap.

Only published issues appear anywhere. The build is deterministic (dates come from
the issues, never from the clock) and incremental: every output file is recorded in
`.newsletter-manifest.json` with its content hash and a key of the inputs it was made
from, so a rebuild renders only the pages whose inputs changed, writes only files whose
bytes changed, and removes only files an earlier build created.

Links between pages are relative (the site works under any sub-path and from
`newsletter archive serve`); canonical links, feeds and the sitemap are absolute,
built from `settings.base_url`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from newsletter import __version__
from newsletter.atomic_files import replace_file
from newsletter.config import Settings, text_direction
from newsletter.content.library import Issue, Library, Paper
from newsletter.errors import NewsletterError

MANIFEST = ".newsletter-manifest.json"
MANIFEST_VERSION = 1
CSS_SOURCE = "site/site.css"
CSS_OUTPUT = "assets/site.{hash}.css"


# The site's own words that strings.toml may not have (yet) in every language: English
# defaults, overridden per key by the strings file.
class ArchiveError(NewsletterError):
    """The site cannot be built into the chosen folder."""


@dataclass
class BuildReport:
    """What a build did: files written, left as they were, removed (paths relative to `out`)."""

    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.written) + self.unchanged


@dataclass(frozen=True)
class _Page:
    path: str  # relative to the site folder, '/'-separated
    key: str | None  # fingerprint of the inputs; None: always render (cheap pages)
    render: Callable[[], str | bytes]


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:32]


class _Memo:
    """Markdown and fragments rendered once per text, kept in the manifest between builds.

    A one-issue rebuild still rebuilds the feeds from every issue; this memo makes that
    a matter of assembling stored fragments instead of re-rendering thousands of abstracts.
    """

    def __init__(self, stored: dict[str, str]) -> None:
        self.stored = stored
        self.used: dict[str, str] = {}

    # Kept between builds: what the feeds and the index need from every issue. Markdown
    # of abstracts is only memoised within a build: a rebuild renders just the changed pages.
    PERSISTENT = ("fragment", "excerpt")

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


def tag_segment(tag: str) -> str:
    """The folder name of a tag's page: letters, digits, '.', '_' and '-' only."""
    segment = re.sub(r"[^\w.-]+", "-", tag, flags=re.UNICODE).strip("-.")
    return segment or "tag-" + hashlib.sha256(tag.encode()).hexdigest()[:8]


def meta_description(html: str, limit: int = 160) -> str:
    """About `limit` characters of an HTML fragment's text, cut at a word, for <meta name=description>.

    Made from the already rendered (and memoised) HTML, so a paper's abstract is parsed once.
    """
    import html as html_module

    text = " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", html)).split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:.") + "…"


def published_issues(library: Library) -> list[Issue]:
    """Published issues, oldest first."""
    return [i for i in library.issues if i.published]


class _Site:
    """One build's shared state: the Jinja env, strings per language, memo, fingerprints."""

    def __init__(self, library: Library, memo: _Memo) -> None:
        from markupsafe import Markup

        from newsletter.content.selection import plan
        from newsletter.mail.render import MARKDOWN, excerpt, jinja_environment

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
        planned = plan(library)
        self.papers_of = {i.slug: planned.get(i.slug, []) for i in self.issues}
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
        self.paper_fp = {pid: _digest(p) for pid, p in self.papers.items()}
        self.issue_fp = {i.slug: _digest(i) for i in self.issues}
        self.chrome = self._chrome_key()
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
        from newsletter.mail import render

        # this module and render.py (markdown, excerpts, dates) decide every page's bytes
        code = Path(__file__).read_bytes() + Path(render.__file__).read_bytes()
        return _digest(
            MANIFEST_VERSION,
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
            from newsletter.mail.render import load_strings

            self._strings[language] = load_strings(self.settings, language)
        return self._strings[language]

    # -- contexts

    def base_context(self, *, depth: int | None, language: str, path: str) -> dict[str, Any]:
        """`root` is the relative way back to the site root; None (404 page): absolute URLs."""
        from newsletter.mail.render import format_date

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
        from newsletter.mail.render import render_template

        return render_template(self.env, f"site/{template}", context)

    # -- pages

    def pages(self) -> list[_Page]:
        pages = [
            _Page(self.css_path, "css", lambda: self.css_source),
            _Page(
                "index.html", self._key("index", [self._issue_summary(i) for i in self.issues]), self.index
            ),
            _Page("404.html", None, self.not_found),
            _Page("robots.txt", None, self.robots),
            _Page("sitemap.xml", None, self.sitemap),
            _Page("tags/index.html", None, self.tag_index),
        ]
        feed_key = self._key("feed", [self._issue_full(i) for i in self.issues])
        pages.append(_Page("feed.xml", feed_key, self.atom_feed))
        pages.append(_Page("feed.json", feed_key, self.json_feed))
        for n, issue in enumerate(self.issues):
            before = self.issues[n - 1] if n > 0 else None
            after = self.issues[n + 1] if n + 1 < len(self.issues) else None
            key = self._key(
                "issue",
                self._issue_full(issue),
                [(i.slug, i.title, i.subject, i.date) if i else None for i in (before, after)],
            )
            pages.append(
                _Page(
                    f"issues/{issue.slug}/index.html",
                    key,
                    lambda issue=issue, before=before, after=after: self.issue_page(issue, before, after),
                )
            )
        for pid, paper in self.papers.items():
            key = self._key("paper", self.paper_fp[pid], self._featured_summary(pid))
            pages.append(_Page(f"papers/{pid}/index.html", key, lambda paper=paper: self.paper_page(paper)))
        for tag, papers in self.tags.items():
            key = self._key(
                "tag",
                tag,
                self.tag_paths[tag],
                [(self.paper_fp[p.id], self._featured_summary(p.id)) for p in papers],
            )
            pages.append(_Page(self.tag_paths[tag] + "index.html", key, lambda tag=tag: self.tag_page(tag)))
        return pages

    def _key(self, *parts: object) -> str:
        return _digest(self.chrome, *parts)

    def keep_memo(self) -> None:
        """Keep what skipped pages would have asked the memo for, so the next build finds it."""
        for issue in self.issues:
            self.memo.keep("excerpt", issue.intro)
            self.memo.keep("fragment", self._key("feed-entry", self._issue_full(issue)))

    def _issue_summary(self, issue: Issue) -> tuple:
        return (self.issue_fp[issue.slug], len(self.papers_of[issue.slug]))

    def _issue_full(self, issue: Issue) -> str:
        """A fingerprint of the issue and its papers (cached: feeds and pages all ask)."""
        found = self._full.get(issue.slug)
        if found is None:
            papers = [self.paper_fp[p.id] for p in self.papers_of[issue.slug]]
            found = self._full[issue.slug] = _digest(self.issue_fp[issue.slug], papers)
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

    # -- feeds

    def feed_content(self, issue: Issue) -> str:
        """An issue's full content as an HTML fragment with absolute links (feed readers have no base)."""
        key = self._key("feed-entry", self._issue_full(issue))

        def compute() -> str:
            context = self.base_context(depth=None, language=issue.language, path=f"issues/{issue.slug}/")
            context.update(issue=issue, papers=self.papers_of[issue.slug])
            return self.render("feed_entry.html.j2", context).strip()

        return self.memo.get("fragment", key, compute)

    def feed_updated(self) -> dt.datetime:
        newest = self.issues[-1].date if self.issues else dt.date(1970, 1, 1)
        return dt.datetime.combine(newest, dt.time(), tzinfo=dt.UTC)

    def atom_feed(self) -> bytes:
        from feedgen.feed import FeedGenerator

        s = self.settings
        fg = FeedGenerator()
        fg.id(s.url())
        fg.title(s.name)
        fg.subtitle(s.description or s.name)
        fg.link(href=s.url(), rel="alternate", type="text/html")
        fg.link(href=s.url("feed.xml"), rel="self", type="application/atom+xml")
        fg.language(s.language)
        fg.author(name=s.name)  # Atom wants an author for the feed when entries have none
        fg.generator("newsletter")
        fg.updated(self.feed_updated())
        for issue in self.issues:  # feedgen prepends: the newest ends up first
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
            entry.content(self.feed_content(issue), type="html")
            for tag in sorted({t for p in self.papers_of[issue.slug] for t in p.tags}):
                entry.category(term=tag)
        return fg.atom_str(pretty=True)

    def json_feed(self) -> str:
        s = self.settings
        items = []
        for issue in reversed(self.issues):
            item: dict[str, Any] = {
                "id": issue.web_url(s),
                "url": issue.web_url(s),
                "title": issue.subject,
                "content_html": self.feed_content(issue),
                "date_published": self.feed_date(issue.date),
                "language": issue.language,
            }
            if issue.preheader:
                item["summary"] = issue.preheader
            tags = sorted({t for p in self.papers_of[issue.slug] for t in p.tags})
            if tags:
                item["tags"] = tags
            items.append(item)
        feed = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": s.name,
            "home_page_url": s.url(),
            "feed_url": s.url("feed.json"),
            "language": s.language,
            "authors": [{"name": s.name}],
            **({"description": s.description} if s.description else {}),
            "items": items,
        }
        return json.dumps(feed, ensure_ascii=False, indent=2) + "\n"

    @staticmethod
    def feed_date(date: dt.date) -> str:
        return f"{date.isoformat()}T00:00:00Z"


# ---------------------------------------------------------------------------
# Writing


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"version": MANIFEST_VERSION, "files": {}, "memo": {}}  # unreadable: rebuild everything
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {"version": MANIFEST_VERSION, "files": {}, "memo": {}}
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, data, mode=0o644)  # mkstemp makes 0600; the site is for a web server to read


def _on_disk(path: Path, record: dict[str, Any]) -> bool:
    try:
        return path.stat().st_size == record.get("size")
    except OSError:
        return False


def build_site(library: Library, out: Path | str | None = None) -> BuildReport:
    """Build the archive site into `out` (default settings.site_dir), writing only what changed."""
    out = Path(out) if out is not None else library.settings.site_dir
    if out.exists() and not out.is_dir():
        raise ArchiveError(f"{out}: expected a folder for the site, found a file")
    manifest = _read_manifest(out)
    if manifest is None:
        # Hidden entries (.git of a GitHub Pages checkout, .nojekyll, .DS_Store) are never
        # written by a build, so they do not make the folder someone else's.
        foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ArchiveError(
                f"{out}: not a folder newsletter built (no {MANIFEST}), and not empty: {shown}\n\n"
                "The build will not overwrite files it did not make. Build into a new or empty folder "
                "with --out DIR, or move these files out of the way first."
            )
        manifest = {"version": MANIFEST_VERSION, "files": {}, "memo": {}}
    files = manifest.get("files")
    # The manifest says what an earlier build may remove: only plain relative paths inside
    # the folder, whatever a hand-edited or hostile manifest claims.
    old_files: dict[str, dict[str, Any]] = {
        path: record
        for path, record in (files.items() if isinstance(files, dict) else ())
        if _safe_site_path(path) and isinstance(record, dict)
    }
    stored_memo = manifest.get("memo")
    memo = _Memo(
        {k: v for k, v in stored_memo.items() if isinstance(v, str)} if isinstance(stored_memo, dict) else {}
    )
    site = _Site(library, memo)
    report = BuildReport(out=out)
    new_files: dict[str, dict[str, Any]] = {}
    try:
        for page in site.pages():
            target = out / page.path
            before = old_files.get(page.path)
            if page.key is not None and before and before.get("key") == page.key and _on_disk(target, before):
                new_files[page.path] = before
                report.unchanged += 1
                continue
            content = page.render()
            data = content.encode("utf-8") if isinstance(content, str) else content
            sha = hashlib.sha256(data).hexdigest()
            record = {"sha256": sha, "size": len(data), "key": page.key}
            if before and before.get("sha256") == sha and _on_disk(target, before):
                new_files[page.path] = record
                report.unchanged += 1
                continue
            _write_atomic(target, data)
            new_files[page.path] = record
            report.written.append(page.path)
    except BaseException:
        # A template error or Ctrl-C halfway: record what is on disk now (the files written
        # so far and the earlier build's), so the next build knows the folder and its files
        # as its own instead of refusing a "non-empty folder it did not build".
        if report.written:
            partial = {
                "version": MANIFEST_VERSION,
                "generator": "newsletter",
                "files": dict(sorted({**old_files, **new_files}.items())),
                "memo": dict(sorted({**memo.stored, **memo.kept()}.items())),
            }
            _write_atomic(out / MANIFEST, json.dumps(partial, ensure_ascii=False, sort_keys=True).encode())
        raise
    site.keep_memo()
    for path in sorted(set(old_files) - set(new_files)):
        target = out / path
        if target.is_file():
            target.unlink()
            report.removed.append(path)
        _remove_empty_parents(target.parent, out)
    new_manifest = {
        "version": MANIFEST_VERSION,
        "generator": "newsletter",
        "files": dict(sorted(new_files.items())),
        "memo": dict(sorted(memo.kept().items())),
    }
    encoded = json.dumps(new_manifest, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    manifest_path = out / MANIFEST
    if not manifest_path.is_file() or manifest_path.read_bytes() != encoded:
        _write_atomic(manifest_path, encoded)
    return report


def _safe_site_path(path: object) -> bool:
    """A '/'-separated relative path with no '..', '.', empty or absolute part (a manifest entry)."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        return False
    parts = path.split("/")
    return (
        not (
            path.startswith("/") or re.match(r"^[A-Za-z]:", path) or any(p in ("", ".", "..") for p in parts)
        )
        and parts[-1] != MANIFEST
    )


def _remove_empty_parents(folder: Path, out: Path) -> None:
    out = out.resolve()
    folder = folder.resolve()
    while folder != out and out in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent


# ---------------------------------------------------------------------------
# Local preview


def site_server(out: Path | str, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False):
    """An HTTP server for a built site: folders answer with index.html, misses with 404.html.

    Returns a started-but-not-serving `ThreadingHTTPServer`; call `serve_forever()`.
    """
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = Path(out)
    if not (root / "index.html").is_file():
        raise ArchiveError(
            f"{root}: no built site here (no index.html)\n\nRun `newsletter archive build` first."
        )

    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {
            **SimpleHTTPRequestHandler.extensions_map,
            ".html": "text/html; charset=utf-8",
            ".css": "text/css; charset=utf-8",
            ".json": "application/json; charset=utf-8",
            ".xml": "application/xml; charset=utf-8",
            ".txt": "text/plain; charset=utf-8",
        }

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            page = root / "404.html"
            if code != 404 or not page.is_file():
                super().send_error(code, message, explain)
                return
            body = page.read_bytes()
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

    try:
        server = ThreadingHTTPServer((host, port), partial(Handler, directory=str(root)))
    except OSError as exc:
        raise ArchiveError(f"{host}:{port}: cannot listen there: {exc.strerror}") from None
    server.daemon_threads = True
    return server
