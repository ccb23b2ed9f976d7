"""The archive site, its feeds, the local preview server and publishing to S3 (moto over HTTP)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from click.testing import CliRunner

from newsletter.archive.publish import PUBLISHED, PublishError, publish_site
from newsletter.archive.server import site_server
from newsletter.archive.site import MANIFEST, build_site
from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.content.library import Library, load_library
from tests.support.aws import moto_server  # noqa: F401  (a fixture)
from tests.support.golden import assert_golden
from tests.support.project import edit, make_newsletter
from tests.support.site import site_files

REPO = Path(__file__).resolve().parent.parent
GOLDEN_FILES = [
    "index.html",
    "issues/2024-01-10-first/index.html",
    "papers/cjk-tokenizers/index.html",
    "tags/tokenization/index.html",
    "feed.xml",
    "feed.json",
    "sitemap.xml",
    "robots.txt",
]
BASE = "https://example.org/digest/"
FIRST = "2024-01-10-first"
DRAFT = "2024-01-17-arabic"
PAPERS = {"2401.00001", "arabic-dialects", "cjk-tokenizers"}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def digest(tmp_path: Path) -> Path:
    """A copy of the fixture newsletter whose templates point at the repository's templates."""
    return make_newsletter(tmp_path)


def load(root: Path) -> Library:
    return load_library(load_settings(root))


def publish_draft(root: Path) -> None:
    edit(root / "issues" / f"{DRAFT}.md", "status: draft", "status: published")


@pytest.fixture
def built(digest: Path, tmp_path: Path) -> Path:
    out = tmp_path / "site"
    build_site(load(digest), out)
    return out


def mtimes(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


# -- an HTML checker on html.parser (no html5lib, no tidy needed) -----------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageCheck(HTMLParser):
    """Collects problems: unbalanced tags, duplicate ids, missing alt, heading order, landmarks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.headings: list[int] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.doctype = False
        self.text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"] or "")
        if tag == "img" and "alt" not in attributes:
            self.problems.append(f"<img> without alt: {attributes}")
        if re.fullmatch(r"h[1-6]", tag):
            level = int(tag[1])
            if self.headings and level > self.headings[-1] + 1:
                self.problems.append(f"heading <{tag}> after <h{self.headings[-1]}>")
            self.headings.append(level)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"end tag for void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def check(self, html: str, *, fragment: bool = False) -> list[str]:
        self.feed(html)
        self.close()
        problems = list(self.problems)
        if self.stack:
            problems.append(f"unclosed: {self.stack}")
        duplicates = {i for i in self.ids if self.ids.count(i) > 1}
        if duplicates:
            problems.append(f"duplicate ids {duplicates}")
        if not fragment:
            names = [t for t, _ in self.tags]
            if not self.doctype:
                problems.append("no <!doctype html>")
            if names.count("h1") != 1:
                problems.append(f"{names.count('h1')} <h1> elements")
            for landmark in ("header", "main", "footer", "nav"):
                if landmark not in names:
                    problems.append(f"no <{landmark}>")
            html_attrs = self.tags[0][1] if self.tags and self.tags[0][0] == "html" else {}
            if not html_attrs.get("lang") or html_attrs.get("dir") not in ("ltr", "rtl"):
                problems.append(f"<html> lacks lang/dir: {html_attrs}")
        return problems


def parse_page(html: str) -> PageCheck:
    checker = PageCheck()
    problems = checker.check(html)
    assert not problems, problems
    return checker


def target_of(url: str, out: Path) -> Path | None:
    """The site file an absolute URL inside BASE names (None: outside the site)."""
    if not url.startswith(BASE):
        return None
    path = unquote(urlsplit(url).path[len(urlsplit(BASE).path) :])
    target = out / path
    return target / "index.html" if path == "" or path.endswith("/") else target


# -- the build ----------------------------------------------------------------------------------


def test_golden_output(built: Path) -> None:
    """Key files of the fixture site, byte for byte. Regenerate: NEWSLETTER_UPDATE_GOLDEN=1."""
    for name in GOLDEN_FILES:
        assert_golden(f"archive/{name}", (built / name).read_text(encoding="utf-8"))


def test_site_has_the_pages_the_email_links_to(built: Path) -> None:
    files = set(site_files(built))
    css = [f for f in files if f.startswith("assets/")]
    assert len(css) == 1 and re.fullmatch(r"assets/site\.[0-9a-f]{8}\.css", css[0])
    assert files == {
        MANIFEST,
        *css,
        "index.html",
        "404.html",
        "robots.txt",
        "sitemap.xml",
        "feed.xml",
        "feed.json",
        f"issues/{FIRST}/index.html",
        *(f"papers/{p}/index.html" for p in PAPERS),
        "tags/index.html",
        *(
            f"tags/{t}/index.html"
            for t in ("transfer", "evaluation", "arabic", "low-resource", "tokenization")
        ),
    }
    issue = (built / f"issues/{FIRST}/index.html").read_text()
    for pid in PAPERS:  # the email's "read more" anchors
        assert f'id="{pid}"' in issue
    # every page links the fingerprinted stylesheet by its fingerprinted name
    assert f'href="../../{css[0]}"' in issue
    assert f'href="{css[0]}"' in (built / "index.html").read_text()
    # a paper without its own URL links to its archive page, as the email does
    assert '<a href="../../papers/cjk-tokenizers/">中文分词' in issue


def test_issue_page_carries_the_full_content_and_nothing_personal(built: Path) -> None:
    page = (built / f"issues/{FIRST}/index.html").read_text()
    checker = parse_page(page)
    text = " ".join(" ".join(checker.text).split())
    # full abstract (the email only has an excerpt), authors, upvotes, tags, note, links
    assert "and smaller gains elsewhere." in text
    assert "Ada Lovelace, Alan Turing, Grace Hopper, Edsger Dijkstra, Barbara Liskov, Donald Knuth" in text
    assert "▲ 42 upvotes" in text
    assert "A clear baseline for anyone working on transfer." in text
    assert '<a href="https://github.com/example/xlt">Code</a>' in page
    assert '<a href="https://arxiv.org/pdf/2401.00001">PDF</a>' in page
    assert '<a class="tag" href="../../tags/transfer/" rel="tag">transfer</a>' in page
    assert (
        '<img class="thumb" src="https://example.org/img/arabic.png" alt="A map of Arabic dialect regions"'
        in page
    )
    assert "<strong>first issue</strong>" in page  # the intro's markdown, rendered
    # the sanitiser ran: no raw HTML from the abstract, no relative link
    assert "<img src=x" not in page and 'href="/etc/passwd"' not in page
    assert "A <a>relative link</a> and a" in page  # no rel without href (invalid HTML5)
    for word in ("%%GREETING", "nsubscribe", "Hi,"):
        assert word not in page
    assert "The placeholder %%UNSUBSCRIBE_URL%% must stay inert." in page  # the abstract, as written
    assert not re.search(r"%%\w+-[0-9a-f]{16}%%", page)  # no per-reader marker


def test_every_page_is_valid_and_every_link_resolves_under_a_sub_path(built: Path) -> None:
    settings = load_settings(built.parent / "digest")
    assert settings.base_url == BASE
    assert check_pages(built) == 12


def test_tags_with_spaces_symbols_and_other_scripts(digest: Path, tmp_path: Path) -> None:
    edit(
        digest / "papers" / "cjk-tokenizers.md",
        "tags: [tokenization]",
        "tags: [tokenization, 分词, c++ & rust]",
    )
    out = tmp_path / "out"
    build_site(load(digest), out)
    assert (out / "tags" / "分词" / "index.html").is_file()
    assert (out / "tags" / "c-rust" / "index.html").is_file()
    assert (
        "<loc>https://example.org/digest/tags/%E5%88%86%E8%AF%8D/</loc>" in (out / "sitemap.xml").read_text()
    )
    assert '“<span dir="auto">c++ &amp; rust</span>”' in (out / "tags/c-rust/index.html").read_text()
    check_pages(out)


def check_pages(built: Path) -> int:
    """Parse every page; follow every link into the site (relative, or absolute under BASE)."""
    pages = [p for p in site_files(built) if p.endswith(".html")]
    for name in pages:
        checker = parse_page((built / name).read_text(encoding="utf-8"))
        page_url = BASE + name.removesuffix("index.html")
        for tag, attrs in checker.tags:
            href = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag == "img" else None
            if tag == "form":
                assert attrs["action"] == "https://example.org/api/subscribe"
            if href == "" and tag == "a":
                pytest.fail(f'{name}: <a href=""> (tidy warns; link the root as ./)')
            if not href:
                continue
            if href.startswith("/"):
                pytest.fail(f"{name}: root-relative link {href!r} breaks under a sub-path")
            url = urljoin(page_url, href).split("#")[0]
            target = target_of(url, built)
            if target is not None:
                assert target.is_file(), f"{name}: {href!r} -> {url} has no file"
                if "#" in href and href.split("#")[1] not in ("issues", "subscribe", "main"):
                    assert f'id="{href.split("#")[1]}"' in target.read_text(encoding="utf-8")
    return len(pages)


def test_index_lists_issues_and_the_subscribe_form(built: Path) -> None:
    page = (built / "index.html").read_text()
    parse_page(page)
    assert '<form method="post" action="https://example.org/api/subscribe">' in page
    for field in ('name="email" type="email" required', 'name="name"', 'name="website"'):
        assert field in page
    assert (
        '<a href="issues/2024-01-10-first/">Test Digest #1 — transfer, dialects &amp; tokenizers</a>' in page
    )
    assert "10 January 2024 · Issue 1 · 3 papers" in " ".join(page.split()).replace("</time>", "").replace(
        '<time datetime="2024-01-10">', ""
    )
    assert "Welcome to the first issue." in page  # the intro excerpt, as plain text


def test_no_subscribe_form_without_a_web_url(digest: Path, tmp_path: Path) -> None:
    edit(digest / "newsletter.toml", '[web]\nurl = "https://example.org/api"\n', "")
    build_site(load(digest), tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    assert "<form" not in page and 'name="website"' not in page and "#subscribe" not in page
    parse_page(page)


def test_hostile_titles_are_escaped_everywhere(built: Path) -> None:
    for name, data in site_files(built).items():
        text = data.decode("utf-8")
        assert "<script" not in text, name
        assert "</mj-text>" not in text, name
        assert not re.search(r"%%\w+-[0-9a-f]{16}%%", text), name  # no per-reader marker
        assert "alert(1)</" not in text, name
    issue = (built / f"issues/{FIRST}/index.html").read_text()
    assert (
        "Cross-Lingual Transfer with &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} &lt;/mj-text&gt;"
        in issue
    )
    assert "with 49" not in issue  # template syntax in data is never evaluated


def test_a_paper_s_shared_blocks_keep_each_page_s_links_and_escaping(built: Path) -> None:
    """A paper's meta line and abstract are rendered once for its issue's page, the issue's feed
    entry and its own page; each keeps its own tag links, and what content holds stays escaped."""
    issue = (built / f"issues/{FIRST}/index.html").read_text(encoding="utf-8")
    paper = (built / "papers/2401.00001/index.html").read_text(encoding="utf-8")
    feed = json.loads((built / "feed.json").read_text(encoding="utf-8"))
    entry = next(item["content_html"] for item in feed["items"] if item["id"] == BASE + f"issues/{FIRST}/")

    def shown(html: str) -> tuple[str, str]:
        block = html.split('id="2401.00001"', 1)[1]
        links = block.index('<ul class="links">')
        return block[block.index('<p class="meta">') : links], block[links : block.index("</ul>", links)]

    (on_issue, in_feed, on_paper), (links_issue, links_feed, links_paper) = zip(
        *(shown(html) for html in (issue, entry, paper)), strict=True
    )
    assert on_issue == in_feed == on_paper
    assert "Ada Lovelace, Alan Turing" in on_issue and "<strong>cross-lingual transfer</strong>" in on_issue
    assert "&lt;img src=x onerror=alert(1)&gt;" in on_issue and "<img" not in on_issue
    assert 'href="/etc/passwd"' not in on_issue and 'href="https://example.com/x"' in on_issue
    assert links_issue == links_paper and 'href="../../tags/transfer/"' in links_issue
    assert f'href="{BASE}tags/transfer/"' in links_feed and 'href="../' not in links_feed


def test_the_page_frame_follows_each_page_s_place_and_language(digest: Path, tmp_path: Path) -> None:
    """The header and footer rendered once per place and language: the 404 page's links are
    absolute, a paper's page leads two folders up, an Arabic issue's page has its own words."""
    publish_draft(digest)
    out = tmp_path / "out"
    build_site(load(digest), out)
    missing = (out / "404.html").read_text(encoding="utf-8")
    paper = (out / "papers/2401.00001/index.html").read_text(encoding="utf-8")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f'<li><a href="{BASE}tags/">' in missing and f'<a href="{BASE}feed.xml">Atom</a>' in missing
    assert '<li><a href="../../tags/">' in paper and '<a href="../../feed.xml">Atom</a>' in paper
    assert '<li><a href="tags/">' in index and '<a href="feed.xml">Atom</a>' in index
    # the Arabic issue's page is as deep as the paper's: the same links, in Arabic words
    arabic = (out / f"issues/{DRAFT}/index.html").read_text(encoding="utf-8")
    header = {
        name: html.split('<header class="site-header">')[1].split("</header>")[0]
        for name, html in (("ar", arabic), ("en", paper))
    }
    assert header["ar"] != header["en"] and '<li><a href="../../tags/">' in header["ar"]
    assert header["ar"].count('href="../../') == header["en"].count('href="../../')


def test_feeds_carry_every_published_issue_in_full(digest: Path, tmp_path: Path) -> None:
    import feedparser

    publish_draft(digest)
    out = tmp_path / "out"
    build_site(load(digest), out)
    atom = feedparser.parse((out / "feed.xml").read_bytes())
    assert not atom.bozo, atom.get("bozo_exception")
    assert atom.version == "atom10"
    assert [e.link for e in atom.entries] == [BASE + f"issues/{DRAFT}/", BASE + f"issues/{FIRST}/"]
    assert atom.feed.updated == "2024-01-17T00:00:00+00:00"  # the newest issue, never "now"
    first = atom.entries[1]
    assert first.title == "Test Digest #1 — transfer, dialects & tokenizers"
    content = first.content[0].value
    assert "and smaller gains elsewhere." in content
    assert "<script" not in content and "&lt;script&gt;alert(1)" in content
    assert {t.term for t in first.tags} == {
        "transfer",
        "evaluation",
        "arabic",
        "low-resource",
        "tokenization",
    }
    assert 'href="https://example.org/digest/papers/cjk-tokenizers/"' in content  # absolute links only
    assert not re.search(r'href="(?!https?://)', content)
    assert not PageCheck().check(content, fragment=True)

    # JSON Feed 1.1 (feedparser 6.0 cannot read it): the spec's required fields, RFC 3339 dates
    feed = json.loads((out / "feed.json").read_text(encoding="utf-8"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "Test Digest"
    assert feed["feed_url"] == BASE + "feed.json" and feed["home_page_url"] == BASE
    assert [i["id"] for i in feed["items"]] == [BASE + f"issues/{DRAFT}/", BASE + f"issues/{FIRST}/"]
    for item in feed["items"]:
        assert set(item) >= {"id", "url", "title", "content_html", "date_published"}
        dt.datetime.fromisoformat(item["date_published"])
        assert not PageCheck().check(item["content_html"], fragment=True)
    arabic = feed["items"][0]
    assert arabic["language"] == "ar" and arabic["content_html"].startswith('<div lang="ar" dir="rtl">')
    assert "<script" not in feed["items"][1]["content_html"]


def test_a_site_without_published_issues(digest: Path, tmp_path: Path) -> None:
    import feedparser

    edit(digest / "issues" / f"{FIRST}.md", "status: published", "status: draft")
    out = tmp_path / "out"
    build_site(load(digest), out)
    files = [f for f in site_files(out) if f != MANIFEST and not f.startswith("assets/")]
    assert sorted(files) == [
        "404.html", "feed.json", "feed.xml", "index.html", "robots.txt", "sitemap.xml", "tags/index.html"
    ]  # fmt: skip
    assert "No issues yet." in (out / "index.html").read_text()
    atom = feedparser.parse((out / "feed.xml").read_bytes())
    assert not atom.bozo and atom.entries == []
    assert json.loads((out / "feed.json").read_text())["items"] == []


def test_drafts_never_appear(built: Path) -> None:
    draft = load(built.parent / "digest").issue(DRAFT)
    assert not draft.published
    for name, data in site_files(built).items():
        text = data.decode("utf-8")
        for leak in (DRAFT, draft.title, draft.subject, "أهلًا بكم"):
            assert leak not in text, f"{name} shows the draft ({leak!r})"


def test_right_to_left_issue_page(digest: Path, tmp_path: Path) -> None:
    publish_draft(digest)
    out = tmp_path / "out"
    build_site(load(digest), out)
    page = (out / f"issues/{DRAFT}/index.html").read_text()
    parse_page(page)
    assert '<html lang="ar" dir="rtl">' in page
    assert "العدد 2" in page and "الأرشيف" in page  # chrome in the issue's language
    assert '<article class="paper" id="arabic-dialects" lang="en" dir="auto">' in page
    # the site's words inside an English paper stay marked as Arabic (and isolated for bidi)
    assert re.search(r'<time datetime="[\d-]+" lang="ar" dir="rtl">[^<]*[\u0600-\u06ff]', page)
    assert '<a href="../../papers/arabic-dialects/" lang="ar" dir="rtl">' in page
    english = (out / f"issues/{FIRST}/index.html").read_text()
    assert '<p class="permalink"><a href="../../papers/cjk-tokenizers/" dir="ltr">' in english
    assert not re.search(r'<(time|li|span)[^>]* lang="ar"', english)
    # an Arabic-titled paper's block is right-to-left: the English date in it keeps its order
    assert '<time datetime="2024-01-05" dir="ltr">5 January 2024</time>' in english
    index = (out / "index.html").read_text()
    assert '<h3 lang="ar" dir="rtl">' in index and '<html lang="en" dir="ltr">' in index
    # the pages link each other, newest first in the index
    assert index.index(DRAFT) < index.index(FIRST)
    assert 'rel="prev"' in page and 'rel="next"' in (out / f"issues/{FIRST}/index.html").read_text()


def test_build_is_deterministic(digest: Path, tmp_path: Path) -> None:
    build_site(load(digest), tmp_path / "a")
    build_site(load(digest), tmp_path / "b")
    assert site_files(tmp_path / "a") == site_files(tmp_path / "b")


def test_markdown_is_rendered_once_across_builds_and_again_when_edited(
    digest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.archive import rendering
    from newsletter.content.fragments import FRAGMENTS_DIR

    build_site(load(digest), tmp_path / "cold")
    rendered: list[str] = []
    real = rendering.MARKDOWN.html

    def counted(text: str):
        rendered.append(text)
        return real(text)

    monkeypatch.setattr(rendering.MARKDOWN, "html", counted)
    build_site(load(digest), tmp_path / "warm")  # a new folder: every page rendered again
    assert rendered == []  # ...but no markdown parsed: it all came from the fragment cache
    assert site_files(tmp_path / "cold") == site_files(tmp_path / "warm")

    edit(
        digest / "papers" / "cjk-tokenizers.md",
        "tags: [tokenization]\n---\n",
        "tags: [tokenization]\n---\nNewly **edited**. ",
    )
    report = build_site(load(digest), tmp_path / "warm")
    assert [t for t in rendered if "Newly **edited**" in t] and all("Newly" in t for t in rendered)
    assert "Newly <strong>edited</strong>" in (tmp_path / "warm/papers/cjk-tokenizers/index.html").read_text()
    assert "papers/cjk-tokenizers/index.html" in report.written

    # a cache file that is not a dict of strings (tampered, truncated) is ignored, never trusted
    cache_files = sorted((digest / "build" / FRAGMENTS_DIR).glob("*/*.pickle"))
    assert cache_files
    for cache_file in cache_files:
        cache_file.write_bytes(b"\x80\x05cos\nsystem\n.")
    rendered.clear()
    build_site(load(digest), tmp_path / "again")
    assert rendered  # rendered afresh
    assert site_files(tmp_path / "again") == site_files(tmp_path / "warm")


def test_the_tag_index_and_404_page_follow_their_inputs(digest: Path, built: Path) -> None:
    edit(
        digest / "papers" / "cjk-tokenizers.md", "tags: [tokenization]", "tags: [tokenization, segmentation]"
    )
    report = build_site(load(digest), built)
    assert "tags/index.html" in report.written and "404.html" not in report.written
    assert "segmentation" in (built / "tags/index.html").read_text()
    assert site_files(built) == site_files(build_site(load(digest), built.parent / "fresh").out)


def test_incremental_rebuild(digest: Path, built: Path) -> None:
    before = mtimes(built)
    report = build_site(load(digest), built)
    assert report.written == [] and report.removed == [] and report.unchanged == 17
    assert mtimes(built) == before  # not even the manifest was rewritten

    # one issue's intro changes: its page, the index excerpt and the feeds, nothing else
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome, readers, to the")
    report = build_site(load(digest), built)
    assert sorted(report.written) == sorted(
        ["index.html", f"issues/{FIRST}/index.html", "feed.xml", "feed.json"]
    )
    assert "Welcome, readers, to the" in (built / f"issues/{FIRST}/index.html").read_text()

    # a paper changes: its pages and the pages showing it
    edit(digest / "papers" / "cjk-tokenizers.md", "upvotes: 7", "upvotes: 8")
    report = build_site(load(digest), built)
    assert sorted(report.written) == sorted(
        [f"issues/{FIRST}/index.html", "papers/cjk-tokenizers/index.html", "feed.xml", "feed.json"]
    )

    # an issue published, then set back to draft: its files go, and only files the build made
    publish_draft(digest)
    report = build_site(load(digest), built)
    assert f"issues/{DRAFT}/index.html" in report.written
    (built / "CNAME").write_text("digest.example.org\n")
    edit(digest / "issues" / f"{DRAFT}.md", "status: published", "status: draft")
    report = build_site(load(digest), built)
    assert report.removed == [f"issues/{DRAFT}/index.html"]
    assert not (built / "issues" / DRAFT).exists()  # the emptied folder too
    assert (built / "CNAME").read_text() == "digest.example.org\n"
    assert DRAFT not in (built / "index.html").read_text()
    manifest = json.loads((built / MANIFEST).read_text())
    assert f"issues/{DRAFT}/index.html" not in manifest["files"]


def test_a_template_change_rebuilds_pages(digest: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    edit(digest / "newsletter.toml", (REPO / "templates").as_posix(), templates.as_posix())
    out = tmp_path / "out"
    build_site(load(digest), out)
    old_css = next((out / "assets").iterdir()).name
    with (templates / "site" / "site.css").open("a") as css:
        css.write(".extra { color: red; }\n")
    report = build_site(load(digest), out)
    new_css = next((out / "assets").iterdir()).name
    assert new_css != old_css and report.removed == [f"assets/{old_css}"]
    assert f"../../assets/{new_css}" in (out / f"issues/{FIRST}/index.html").read_text()
    assert "index.html" in report.written and "robots.txt" not in report.written


def test_two_builds_at_once_into_one_folder(digest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_site(load(digest), out)
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome again to the")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(3):
                build_site(load(digest), out)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not [p for p in out.rglob("*.tmp")]
    assert (out / "index.html").stat().st_mode & 0o777 == 0o644
    assert build_site(load(digest), out).written == []
    assert check_pages(out) == 12


def test_a_settings_change_rebuilds_pages(digest: Path, built: Path) -> None:
    """Regression: the site's language was not part of the pages' keys, so the index kept lang="en"."""
    edit(digest / "newsletter.toml", 'language = "en"', 'language = "de"')
    report = build_site(load(digest), built)
    assert {"index.html", "tags/index.html", "feed.xml", "feed.json"} <= set(report.written)
    assert '<html lang="de" dir="ltr">' in (built / "index.html").read_text()
    assert json.loads((built / "feed.json").read_text())["language"] == "de"
    edit(digest / "newsletter.toml", 'name = "Test Digest"', 'name = "Renamed Digest"')
    report = build_site(load(digest), built)
    assert (
        f"issues/{FIRST}/index.html" in report.written
        and "Renamed Digest" in (built / "404.html").read_text()
    )


def test_refuses_a_folder_it_did_not_build(digest: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    for name in ("a.css", "b.js", "c.txt"):
        (out / name).write_text("mine")
    result = CliRunner().invoke(main, ["--root", str(digest), "archive", "build", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {out}: not a folder newsletter built (no {MANIFEST}), and not empty: "
        "a.css, b.js, c.txt and 1 more\n\n"
        "The build will not overwrite files it did not make. Build into a new or empty folder "
        "with --out DIR, or move these files out of the way first.\n"
    )
    assert (out / "index.html").read_text() == "my own page"
    assert sorted(p.name for p in out.iterdir()) == ["a.css", "b.js", "c.txt", "index.html"]


def test_builds_into_a_folder_with_only_hidden_entries(digest: Path, tmp_path: Path) -> None:
    """A GitHub Pages checkout (.git, .nojekyll) is not someone else's site; the build leaves them be."""
    out = tmp_path / "pages"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/gh-pages\n")
    (out / ".nojekyll").write_text("")
    report = build_site(load(digest), out)
    assert "index.html" in report.written
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/gh-pages\n" and (
        out / ".nojekyll"
    ).exists()
    edit(digest / "issues" / f"{FIRST}.md", "status: published", "status: draft")
    build_site(load(digest), out)  # everything the build made goes; hidden entries stay
    assert (out / ".git" / "HEAD").is_file() and (out / ".nojekyll").exists()


def test_a_first_build_that_fails_halfway_can_be_run_again(digest: Path, tmp_path: Path) -> None:
    """Regression: a template error after some pages were written left a folder without a
    manifest, and every later build refused it as "not empty and not built by newsletter"."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    edit(digest / "newsletter.toml", (REPO / "templates").as_posix(), templates.as_posix())
    tag_template = templates / "site" / "tag.html.j2"
    good = tag_template.read_text(encoding="utf-8")
    tag_template.write_text(good.replace("{% block main %}", '{% block main %}{% include "site/nope.j2" %}'))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--root", str(digest), "archive", "build", "--out", str(out)])
    assert result.exit_code == 1 and result.output == "Error: templates/site/nope.j2: template not found\n"
    assert (out / f"issues/{FIRST}/index.html").is_file() and not (out / "tags" / "transfer").exists()
    recorded = json.loads((out / MANIFEST).read_text())["files"]
    assert f"issues/{FIRST}/index.html" in recorded and "tags/transfer/index.html" not in recorded

    tag_template.write_text(good, encoding="utf-8")
    report = build_site(load(digest), out)
    tags = ("transfer", "evaluation", "arabic", "low-resource", "tokenization")
    assert sorted(report.written) == sorted(f"tags/{t}/index.html" for t in tags)  # only what was missing
    assert report.total == 17 and check_pages(out) == 12
    assert f"issues/{FIRST}/index.html" not in report.written  # kept from the failed run


def test_a_hostile_manifest_cannot_remove_files_outside_the_site(digest: Path, built: Path) -> None:
    victim = built.parent / "victim.txt"
    victim.write_text("keep me")
    inside = built / "notes.txt"
    inside.write_text("mine, not the build's")
    manifest = json.loads((built / MANIFEST).read_text())
    record = {"sha256": "0" * 64, "size": 1, "key": None}
    for path in ("../victim.txt", str(victim), "./notes.txt", "a/../notes.txt", "a//b", "", MANIFEST):
        manifest["files"][path] = record
    manifest["memo"] = ["not", "a", "dict"]
    (built / MANIFEST).write_text(json.dumps(manifest))
    report = build_site(load(digest), built)
    assert report.removed == []
    assert victim.read_text() == "keep me" and inside.read_text() == "mine, not the build's"
    assert (built / MANIFEST).is_file() and (built / "index.html").is_file()
    cleaned = json.loads((built / MANIFEST).read_text())
    assert not any(".." in p or p.startswith("/") or p.startswith("./") for p in cleaned["files"])


def test_robots_txt_at_the_root_and_under_a_sub_path(digest: Path, built: Path, tmp_path: Path) -> None:
    # under /digest/ crawlers never read it: it says so and names the sitemap for the host's file
    robots = (built / "robots.txt").read_text()
    assert "crawlers only read /robots.txt at the root of the host" in robots
    assert robots.endswith("Sitemap: https://example.org/digest/sitemap.xml\n")
    assert "User-agent" not in robots  # nothing to paste into the host's rules by mistake
    edit(digest / "newsletter.toml", '"https://example.org/digest"', '"https://digest.example.org"')
    build_site(load(digest), tmp_path / "root")
    assert (tmp_path / "root" / "robots.txt").read_text() == (
        "User-agent: *\nAllow: /\n\nSitemap: https://digest.example.org/sitemap.xml\n"
    )


def test_cli_build(digest: Path) -> None:
    result = CliRunner().invoke(main, ["--root", str(digest), "archive", "build"])
    assert result.exit_code == 0, result.output
    # one line, however many files: `newsletter demo` prints it among its other steps
    assert result.output == f"{digest / 'site'}: 17 written, 0 unchanged, 0 removed\n"
    assert (digest / "site" / f"issues/{FIRST}/index.html").is_file()
    again = CliRunner().invoke(main, ["--root", str(digest), "archive", "build"])
    assert again.output == f"{digest / 'site'}: 0 written, 17 unchanged, 0 removed\n"

    edit(digest / "issues" / f"{FIRST}.md", "status: published", "status: draft")
    verbose = CliRunner().invoke(main, ["--root", str(digest), "archive", "build", "-v"])
    assert verbose.exit_code == 0, verbose.output
    lines = verbose.output.splitlines()
    assert lines[-1] == f"{digest / 'site'}: 5 written, 3 unchanged, 9 removed"
    assert "wrote      index.html" in lines and f"removed    issues/{FIRST}/index.html" in lines
    assert len(lines) == 5 + 9 + 1


# -- serve -----------------------------------------------------------------------------------


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_serve(built: Path) -> None:
    server = site_server(built, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        base = f"http://{host}:{port}/"
        status, kind, body = fetch(base)
        assert (status, kind) == (200, "text/html; charset=utf-8") and "<h1>Test Digest</h1>" in body
        status, _, body = fetch(base + f"issues/{FIRST}")  # redirected to the folder, then index.html
        assert status == 200 and 'id="cjk-tokenizers"' in body
        status, kind, body = fetch(base + "no/such/page/")
        assert (status, kind) == (404, "text/html; charset=utf-8")
        assert "This page does not exist." in body
    finally:
        server.shutdown()
        server.server_close()


# -- publish (moto S3 in server mode, over HTTP) -------------------------------------------------


@pytest.fixture
def bucket(moto_server: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:  # noqa: F811
    import boto3

    name = "site-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield moto_server, name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


def s3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def keys(endpoint: str, name: str) -> set[str]:
    pages = s3(endpoint).get_paginator("list_objects_v2").paginate(Bucket=name)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_publish_uploads_once_with_headers(built: Path, bucket: tuple[str, str]) -> None:
    endpoint, name = bucket
    report = publish_site(built, name, endpoint_url=endpoint)
    expected = set(site_files(built)) - {MANIFEST}
    assert set(report.uploaded) == expected and report.unchanged == []
    assert keys(endpoint, name) == expected | {PUBLISHED}  # the build manifest stays local
    record = json.loads(s3(endpoint).get_object(Bucket=name, Key=PUBLISHED)["Body"].read())
    assert record["keys"] == sorted(expected)

    client = s3(endpoint)
    css = next(k for k in expected if k.startswith("assets/"))
    want = {
        "index.html": ("text/html; charset=utf-8", "public, max-age=300"),
        f"issues/{FIRST}/index.html": ("text/html; charset=utf-8", "public, max-age=300"),
        "feed.xml": ("application/atom+xml; charset=utf-8", "public, max-age=300"),
        "feed.json": ("application/feed+json; charset=utf-8", "public, max-age=300"),
        "sitemap.xml": ("application/xml; charset=utf-8", "public, max-age=300"),
        "robots.txt": ("text/plain; charset=utf-8", "public, max-age=300"),
        css: ("text/css; charset=utf-8", "public, max-age=31536000, immutable"),
    }
    for key, (kind, cache) in want.items():
        head = client.head_object(Bucket=name, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (kind, cache), key
    body = client.get_object(Bucket=name, Key="index.html")["Body"].read()
    assert body == (built / "index.html").read_bytes()

    again = publish_site(built, name, endpoint_url=endpoint)
    assert again.uploaded == [] and set(again.unchanged) == expected


def test_publish_changed_files_prefix_delete_and_dry_run(
    digest: Path, built: Path, bucket: tuple[str, str]
) -> None:
    endpoint, name = bucket
    client = s3(endpoint)
    client.put_object(Bucket=name, Key="outside.txt", Body=b"not ours")
    first = publish_site(built, name, prefix="/digest", endpoint_url=endpoint)
    assert first.prefix == "digest/" and "digest/index.html" in first.uploaded

    client.put_object(Bucket=name, Key="digest/old/page.html", Body=b"stale")
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    build_site(load(digest), built)

    dry = publish_site(built, name, prefix="digest", delete=True, dry_run=True, endpoint_url=endpoint)
    assert sorted(dry.uploaded) == [
        f"digest/{k}" for k in sorted(["feed.json", "feed.xml", "index.html", f"issues/{FIRST}/index.html"])
    ]
    # put there by someone else, not by a publish: --delete keeps it
    assert dry.deleted == [] and dry.foreign == ["digest/old/page.html"]
    assert b"Welcome back" not in client.get_object(Bucket=name, Key="digest/index.html")["Body"].read()

    kept = publish_site(built, name, prefix="digest", endpoint_url=endpoint)
    assert len(kept.uploaded) == 4 and kept.stale == [] and kept.foreign == ["digest/old/page.html"]
    assert "digest/old/page.html" in keys(endpoint, name)

    result = CliRunner().invoke(
        main,
        [
            "--root",
            str(digest),
            "archive",
            "publish",
            "--bucket",
            name,
            "--prefix",
            "digest",
            "--delete",
            "--out",
            str(built),
        ],
        env={"NEWSLETTER_S3_ENDPOINT_URL": endpoint},
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"1 object(s) under s3://{name}/digest/ were not published from here (kept)",
        f"s3://{name}/digest/: 0 uploaded, 17 unchanged, 0 deleted",
        f"froze      {FIRST}.sent.toml (published; commit it)",  # public now: its papers stay
    ]
    assert "digest/old/page.html" in keys(endpoint, name)
    assert "outside.txt" in keys(endpoint, name)  # outside the prefix: never touched


def test_publish_sends_only_what_the_build_made_and_deletes_only_what_it_published(
    digest: Path, tmp_path: Path, bucket: tuple[str, str]
) -> None:
    endpoint, name = bucket
    client = s3(endpoint)
    for key in ("logs/2026-01-01.log", "backups/db.sqlite", "other-site/index.html"):
        client.put_object(Bucket=name, Key=key, Body=b"someone else's")
    publish_draft(digest)
    out = tmp_path / "site"
    build_site(load(digest), out)
    built_files = set(site_files(out)) - {MANIFEST}
    # what a site folder that is also a git checkout holds, and two things an attacker would love
    (out / ".git").mkdir()
    (out / ".git" / "config").write_text('[remote "origin"]\n\turl = https://token@example.org/x\n')
    (out / ".env").write_text("NEWSLETTER_SECRET=do-not-publish\n")
    (out / "assets" / ".DS_Store").write_bytes(b"\0")
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0\n")
    (out / "passwd.txt").symlink_to(secret)
    (out / "notes.html").write_text("an editor's draft, not built")

    first = publish_site(out, name, endpoint_url=endpoint)
    assert set(first.uploaded) == built_files
    foreign = {"logs/2026-01-01.log", "backups/db.sqlite", "other-site/index.html"}
    assert keys(endpoint, name) == built_files | foreign | {PUBLISHED}
    assert first.foreign == sorted(foreign)

    # the draft goes back: its pages are stale, and --delete without a prefix is refused
    edit(digest / "issues" / f"{DRAFT}.md", "status: published", "status: draft")
    build_site(load(digest), out)
    now_built = set(json.loads((out / MANIFEST).read_text())["files"])
    assert now_built < built_files
    gone = built_files - now_built
    assert f"issues/{DRAFT}/index.html" in gone
    with pytest.raises(PublishError) as err:
        publish_site(out, name, delete=True, endpoint_url=endpoint)
    assert err.value.message == (
        f"s3://{name}/: --delete: the bucket holds 3 object(s) no publish of this site made: "
        "backups/db.sqlite, logs/2026-01-01.log, other-site/index.html\n\n"
        "Nothing was changed. Publish under a --prefix of its own, drop --delete, or add "
        "--yes-delete-foreign to delete them too."
    )
    assert keys(endpoint, name) == built_files | foreign | {PUBLISHED}

    kept = publish_site(out, name, endpoint_url=endpoint)  # without --delete: stale ones stay recorded
    assert kept.stale == sorted(gone) and kept.deleted == []
    cli = CliRunner().invoke(
        main,
        ["--root", str(digest), "archive", "publish", "--bucket", name, "--out", str(out), "--delete"],
        env={"NEWSLETTER_S3_ENDPOINT_URL": endpoint},
    )
    assert cli.exit_code == 1 and "--yes-delete-foreign" in cli.output and "Traceback" not in cli.output
    forced = CliRunner().invoke(
        main,
        [
            "--root",
            str(digest),
            "archive",
            "publish",
            "--bucket",
            name,
            "--out",
            str(out),
            "--delete",
            "--yes-delete-foreign",
        ],
        env={"NEWSLETTER_S3_ENDPOINT_URL": endpoint},
    )
    assert forced.exit_code == 0, forced.output
    assert keys(endpoint, name) == now_built | {PUBLISHED}
    for key in sorted(gone | foreign):
        assert f"delete     s3://{name}/{key}" in forced.output


def test_publish_deletes_under_a_prefix_only_what_it_published(
    digest: Path, tmp_path: Path, bucket: tuple[str, str]
) -> None:
    endpoint, name = bucket
    client = s3(endpoint)
    client.put_object(Bucket=name, Key="digest/uploaded-by-hand.pdf", Body=b"keep me")
    publish_draft(digest)
    out = tmp_path / "site"
    build_site(load(digest), out)
    publish_site(out, name, prefix="digest", endpoint_url=endpoint)
    edit(digest / "issues" / f"{DRAFT}.md", "status: published", "status: draft")
    build_site(load(digest), out)
    report = publish_site(out, name, prefix="digest", delete=True, endpoint_url=endpoint)
    assert f"digest/issues/{DRAFT}/index.html" in report.deleted
    assert report.foreign == ["digest/uploaded-by-hand.pdf"]
    assert keys(endpoint, name) == {f"digest/{k}" for k in set(site_files(out)) - {MANIFEST}} | {
        "digest/uploaded-by-hand.pdf",
        f"digest/{PUBLISHED}",
    }


def test_publish_refuses_a_listed_file_that_became_a_symlink_or_changed(
    built: Path, bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, name = bucket
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0\n")
    (built / "robots.txt").unlink()
    (built / "robots.txt").symlink_to(secret)
    with pytest.raises(PublishError) as err:
        publish_site(built, name, endpoint_url=endpoint)
    assert err.value.message.startswith(f"{built}/robots.txt: expected a plain file the build wrote")
    (built / "robots.txt").unlink()
    (built / "robots.txt").write_text("User-agent: *\nDisallow: /\n")
    with pytest.raises(PublishError) as err:
        publish_site(built, name, endpoint_url=endpoint)
    assert err.value.message.startswith(f"{built}/robots.txt: changed since the build")
    assert keys(endpoint, name) == set()


def test_cli_publish_output(digest: Path, built: Path, bucket: tuple[str, str]) -> None:
    endpoint, name = bucket
    args = ["--root", str(digest), "archive", "publish", "--bucket", name, "--out", str(built)]
    env = {"NEWSLETTER_S3_ENDPOINT_URL": endpoint}
    dry = CliRunner().invoke(main, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert len(lines) == 17 + 1 and f"would upload     s3://{name}/index.html" in lines
    assert lines[-1] == f"s3://{name}/: 17 to upload, 0 unchanged, 0 to delete (dry run: nothing changed)"
    assert keys(endpoint, name) == set()

    first = CliRunner().invoke(main, args, env=env)  # one line, however many files
    assert (first.exit_code, first.output) == (
        0,
        f"s3://{name}/: 17 uploaded, 0 unchanged, 0 deleted\nfroze      {FIRST}.sent.toml (published; commit it)\n",
    )
    assert (digest / "issues" / f"{FIRST}.sent.toml").is_file()
    assert not (digest / "issues" / f"{DRAFT}.sent.toml").exists()  # drafts are not public: not frozen
    edit(digest / "issues" / f"{FIRST}.md", "Welcome to the", "Welcome back to the")
    build_site(load(digest), built)
    verbose = CliRunner().invoke(main, [*args, "-v"], env=env)
    assert verbose.output.splitlines() == [
        *(
            f"upload     s3://{name}/{k}"
            for k in ("feed.json", "feed.xml", "index.html", f"issues/{FIRST}/index.html")
        ),
        f"s3://{name}/: 4 uploaded, 13 unchanged, 0 deleted",
    ]


@pytest.mark.parametrize("prefix", ["../x", "a/../b", "a//b", "./a", "a\\b", "a\nb"])
def test_publish_refuses_a_prefix_no_browser_can_reach(digest: Path, built: Path, prefix: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "--root",
            str(digest),
            "archive",
            "publish",
            "--bucket",
            "b",
            "--prefix",
            prefix,
            "--out",
            str(built),
        ],
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --prefix {prefix!r}: expected folder names separated by '/'")


def test_publish_missing_bucket_is_a_clear_error(built: Path, digest: Path, moto_server: str) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main,
        [
            "--root",
            str(digest),
            "archive",
            "publish",
            "--bucket",
            "no-such-bucket",
            "--out",
            str(built),
            "--endpoint-url",
            moto_server,
        ],
    )
    assert result.exit_code == 1
    assert result.output == (
        "Error: s3://no-such-bucket: no such bucket\n\n"
        "Check --bucket and the endpoint or region; the bucket must exist before publishing.\n"
    )


def test_publish_without_credentials(built: Path, monkeypatch: pytest.MonkeyPatch, moto_server: str) -> None:  # noqa: F811
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(built / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(built / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PublishError, match=r"s3://b/: no AWS credentials found"):
        publish_site(built, "b", endpoint_url=moto_server)


class _Refuse(BaseHTTPRequestHandler):
    """Answers every S3 request the way S3 answers a caller without permission."""

    def _deny(self) -> None:
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = _deny

    def log_message(self, *args: object) -> None:
        pass


def test_publish_access_denied(built: Path, moto_server: str) -> None:  # noqa: F811  (for its credentials)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(PublishError, match=r"^s3://private/site/: access denied"):
            publish_site(built, "private", prefix="site", endpoint_url=endpoint)
    finally:
        server.shutdown()
        server.server_close()


def test_publish_needs_a_built_site(digest: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["--root", str(digest), "archive", "publish", "--bucket", "b", "--out", str(tmp_path / "nothing")],
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path / 'nothing'}: no built site here")
    assert "newsletter archive build" in result.output


# -- the stylesheet: contrast in light and dark mode (WCAG 2.x AA) ------------------------------


def _palettes(css: str) -> dict[str, dict[str, str]]:
    light_part, dark_part = css.split("@media (prefers-color-scheme: dark)", 1)
    light = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\b", light_part))
    dark = {**light, **dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\b", dark_part.split("}\n}", 1)[0]))}
    return {"light": light, "dark": dark}


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# (foreground, background, minimum): text 4.5:1; focus ring and input borders 3:1 (WCAG 1.4.11)
CONTRAST_PAIRS = [
    ("fg", "bg", 4.5), ("muted", "bg", 4.5), ("accent", "bg", 4.5),  # body text, meta, links
    ("fg", "soft", 4.5), ("muted", "soft", 4.5), ("accent", "soft", 4.5),  # subscribe box, notes
    ("tag-fg", "tag-bg", 4.5), ("accent-fg", "accent", 4.5), ("header-fg", "header-bg", 4.5),
    ("focus", "bg", 3.0), ("focus", "soft", 3.0), ("muted", "bg", 3.0),
]  # fmt: skip


def test_colour_contrast_in_light_and_dark_mode() -> None:
    css = (REPO / "templates" / "site" / "site.css").read_text(encoding="utf-8")
    palettes = _palettes(css)
    assert palettes["dark"]["bg"] != palettes["light"]["bg"]  # the dark block was read
    low = [
        f"{mode}: {fg} {palette[fg]} on {bg} {palette[bg]} = {_contrast(palette[fg], palette[bg]):.2f} < {need}"
        for mode, palette in palettes.items()
        for fg, bg, need in CONTRAST_PAIRS
        if _contrast(palette[fg], palette[bg]) < need
    ]
    assert not low, low
    # the header's own focus colour, on the header in both modes
    ring = re.search(r"\.site-header :focus-visible \{ outline-color: (#[0-9a-fA-F]{6})", css)
    assert ring and all(_contrast(ring[1], p["header-bg"]) >= 3 for p in palettes.values())
    assert round(_contrast("#777777", "#ffffff"), 2) == 4.48  # the formula itself (WebAIM's figure)


@pytest.mark.skipif(shutil.which("tidy") is None, reason="Debian tidy not installed (apt-get install tidy)")
def test_tidy_finds_nothing(digest: Path, tmp_path: Path) -> None:
    import subprocess

    publish_draft(digest)  # the right-to-left issue too
    out = tmp_path / "out"
    build_site(load(digest), out)
    for name in (n for n in site_files(out) if n.endswith(".html")):
        result = subprocess.run(["tidy", "-q", "-e", str(out / name)], capture_output=True, text=True)
        # tidy 5.6 predates the standard `loading` attribute of <img>
        warnings = [w for w in result.stderr.splitlines() if 'proprietary attribute "loading"' not in w]
        assert not warnings, (name, warnings)
