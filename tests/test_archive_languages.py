"""The archive per language: translation pages, hreflang alternates, per-language indexes and feeds.

Alternates follow Google's rules for localized versions
(https://developers.google.com/search/docs/specialty/international/localized-versions):
every version lists every version, itself included, with absolute URLs, and
`x-default` names the page for readers whose language has none. Sitemaps carry the
same links as `xhtml:link` elements. The CLDR plural forms are those of
https://www.unicode.org/cldr/charts/latest/supplemental/language_plural_rules.html
(Arabic: few for 3–10).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from lxml import etree

from newsletter.archive.site import build_site
from newsletter.config import load_settings
from newsletter.content.library import Library, load_library
from newsletter.content.selection import papers_for
from newsletter.mail.render import render_issue
from tests.support.project import GOOD, REPO, copy_newsletter, translate

BASE = "https://example.org/digest/"
FIRST = "2024-01-10-first"
ARABIC = "2024-01-17-arabic"  # written in Arabic; no translation
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
XHTML = "{http://www.w3.org/1999/xhtml}"


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def digest(tmp_path: Path) -> Path:
    """The fixture newsletter with issue #1 in German and Arabic, one paper in German, #2 published."""
    root = copy_newsletter(GOOD, tmp_path / "digest")
    translate(
        root,
        FIRST,
        "de",
        'subject: "Erste Ausgabe: Sprachmodelle"\ntitle: "Die erste Ausgabe"\n',
        "Willkommen! Drei **Artikel** diese Woche.\n",
    )
    translate(
        root,
        FIRST,
        "ar",
        'subject: "العدد الأول"\ntitle: "العدد الأول من النشرة"\n',
        "أهلًا بكم في العدد الأول.\n",
    )
    write(
        root / "papers" / "2401.00001.de.md",
        '---\ntitle: "Ein übersetzter Titel"\n---\nEine übersetzte Zusammenfassung.\n',
    )
    second = root / "issues" / f"{ARABIC}.md"
    write(second, second.read_text(encoding="utf-8").replace("status: draft", "status: published"))
    return root


def load(root: Path) -> Library:
    return load_library(load_settings(root))


@pytest.fixture
def site(digest: Path, tmp_path: Path) -> Path:
    out = tmp_path / "site"
    build_site(load(digest), out)
    return out


class Links(HTMLParser):
    """A page's <html> attributes, its alternates, its language links and every href."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.html: dict[str, str | None] = {}
        self.alternates: list[tuple[str, str]] = []  # (hreflang, href) of <link rel=alternate hreflang>
        self.language_links: list[dict[str, str | None]] = []  # <a hreflang>
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html = a
        if tag == "link" and a.get("rel") == "alternate" and a.get("hreflang"):
            self.alternates.append((a["hreflang"] or "", a["href"] or ""))
        if tag == "a" and a.get("hreflang"):
            self.language_links.append(a)
        if tag in ("a", "link") and a.get("href"):
            self.hrefs.append(a["href"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def links_of(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def page_url(name: str) -> str:
    return BASE + name.removesuffix("index.html")


def file_of(url: str, out: Path) -> Path:
    assert url.startswith(BASE), url
    path = unquote(urlsplit(url).path[len(urlsplit(BASE).path) :])
    return out / path / "index.html" if path == "" or path.endswith("/") else out / path


def html_pages(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))


# -- pages and URLs -------------------------------------------------------------------------


def test_one_page_per_issue_and_translation(site: Path) -> None:
    pages = set(html_pages(site))
    assert {
        "index.html",
        "ar/index.html",
        "de/index.html",
        f"issues/{FIRST}/index.html",
        f"ar/issues/{FIRST}/index.html",
        f"de/issues/{FIRST}/index.html",
        f"issues/{ARABIC}/index.html",
    } <= pages
    # an issue written in Arabic has one page, at the original's place; nothing else is doubled
    assert not {p for p in pages if p.startswith(("ar/", "de/"))} - {
        "ar/index.html",
        "de/index.html",
        f"ar/issues/{FIRST}/index.html",
        f"de/issues/{FIRST}/index.html",
    }
    for name in ("ar/feed.xml", "ar/feed.json", "de/feed.xml", "de/feed.json"):
        assert (site / name).is_file(), name


def test_web_url_of_a_translation_is_its_page(digest: Path) -> None:
    library = load(digest)
    original = library.issue(FIRST)
    settings = library.settings
    german = library.translations.issue_in(original, "de")
    assert german.is_translation and german.original_language == "en"
    assert not original.is_translation
    assert original.web_url(settings) == f"{BASE}issues/{FIRST}/"
    assert german.web_url(settings) == f"{BASE}de/issues/{FIRST}/"
    # no translation in French: the original, which stays an original
    assert library.translations.issue_in(original, "fr").web_url(settings) == f"{BASE}issues/{FIRST}/"


def test_the_arabic_email_of_the_example_issue_links_its_arabic_page(tmp_path: Path) -> None:
    library = load_library(load_settings(REPO))
    slug = "2026-03-17-multilingual-llms"
    issue = library.issue(slug)
    rendered = render_issue(library, issue, papers_for(library, issue), language="ar")
    arabic_page = library.settings.url(f"ar/issues/{slug}/")
    assert f'href="{arabic_page}"' in rendered.html  # "view in browser"
    assert f'href="{arabic_page}#' in rendered.html  # each paper's "read more"
    assert library.settings.url(f"issues/{slug}/") not in rendered.html + rendered.text
    # and the archive has that page, in Arabic
    out = tmp_path / "site"
    build_site(library, out)
    page = links_of(out / "ar" / "issues" / slug / "index.html")
    assert (page.html["lang"], page.html["dir"]) == ("ar", "rtl")
    assert ("ar", arabic_page) in page.alternates


# -- alternates ---------------------------------------------------------------------------------


def test_every_alternate_resolves_to_a_page_in_its_language(site: Path) -> None:
    """Each hreflang (in <head> and on the page) names a built page whose <html lang> is that language."""
    groups = 0
    for name in html_pages(site):
        page = links_of(site / name)
        if not page.alternates:
            assert not page.language_links, name
            continue
        groups += 1
        hreflangs = [lang for lang, _ in page.alternates]
        assert len(hreflangs) == len(set(hreflangs)), name
        assert hreflangs.count("x-default") == 1, name
        own = dict(page.alternates)
        assert own[page.html["lang"]] == page_url(name), f"{name} does not list itself"
        for hreflang, href in page.alternates:
            assert href.startswith(BASE), f"{name}: {href} is not absolute"
            target = file_of(href, site)
            assert target.is_file(), f"{name}: {href} has no page"
            other = links_of(target)
            if hreflang == "x-default":
                assert href == page.alternates[0][1], f"{name}: x-default is not the original"
                assert not target.relative_to(site).as_posix().startswith(("ar/", "de/"))
            else:
                assert other.html["lang"] == hreflang, f"{name}: {href} is in {other.html['lang']}"
                # alternates are mutual: the other version lists the same set
                assert dict(other.alternates) == own, f"{name} and {href} disagree"
        # the visible links name the same pages, each marked with its own language
        assert [(a["hreflang"], urljoin(page_url(name), a["href"] or "")) for a in page.language_links] == [
            (lang, url) for lang, url in page.alternates if lang != "x-default"
        ]
        for link in page.language_links:
            assert link["lang"] == link["hreflang"]
            assert link["dir"] == ("rtl" if link["lang"] == "ar" else "ltr")
        assert [a for a in page.language_links if a.get("aria-current") == "page"] == [
            a for a in page.language_links if a["hreflang"] == page.html["lang"]
        ]
    # the three versions of issue #1 and the three indexes
    assert groups == 6


def test_every_relative_link_resolves(site: Path) -> None:
    for name in html_pages(site):
        for href in links_of(site / name).hrefs:
            url = urljoin(page_url(name), href).split("#")[0]
            if url.startswith(BASE):
                assert file_of(url, site).is_file(), f"{name}: {href} -> {url}"
            else:
                assert urlsplit(url).scheme == "https", f"{name}: {href}"


def test_pages_without_translations_have_no_alternates(site: Path) -> None:
    for name in (f"issues/{ARABIC}/index.html", "papers/2401.00001/index.html", "tags/index.html"):
        page = links_of(site / name)
        assert page.alternates == [] and page.language_links == [], name


# -- each page in its language ----------------------------------------------------------------------


def text_of(path: Path) -> str:
    return " ".join(" ".join(links_of(path).text).split())


def test_the_arabic_page_is_arabic_and_right_to_left(site: Path) -> None:
    path = site / f"ar/issues/{FIRST}/index.html"
    page = path.read_text(encoding="utf-8")
    assert '<html lang="ar" dir="rtl">' in page
    assert "<title>العدد الأول · Test Digest</title>" in page
    assert "<h1>العدد الأول من النشرة</h1>" in page
    text = text_of(path)
    # chrome from the Arabic catalogue, the date in Arabic (CLDR), three papers in Arabic's "few" form
    assert "العدد 1" in text and "الأرشيف" in text
    assert "10 يناير 2024" in text
    assert "3 أوراق" in text
    assert "اقرأ بلغة: English · العربية · Deutsch" in text
    # untranslated papers are marked English; the site's words inside them stay Arabic
    assert '<article class="paper" id="2401.00001" lang="en" dir="auto">' in page
    assert re.search(r'<time datetime="[\d-]+" lang="ar" dir="rtl">', page)
    # the pages around it in the same language; paper pages are shared
    assert 'href="../../../papers/2401.00001/"' in page
    assert f'<a href="../../../issues/{ARABIC}/" rel="next">' in page  # written in Arabic
    assert 'href="../../#issues"' in page  # "Archive": the Arabic index
    assert 'href="../../feed.xml"' in page


def test_every_arabic_page_is_right_to_left(site: Path) -> None:
    arabic = 0
    for name in html_pages(site):
        html = links_of(site / name).html
        if html["lang"] == "ar":
            arabic += 1
            assert html["dir"] == "rtl", name
        else:
            assert html["dir"] == "ltr", name
    assert arabic == 3  # the Arabic index, issue #1 in Arabic, issue #2


def test_the_german_page_shows_the_translated_paper_as_german(site: Path) -> None:
    path = site / f"de/issues/{FIRST}/index.html"
    page = path.read_text(encoding="utf-8")
    assert '<html lang="de" dir="ltr">' in page
    text = text_of(path)
    assert "Die erste Ausgabe" in text and "Willkommen! Drei Artikel diese Woche." in text
    assert "Ausgabe 1" in text and "10. Januar 2024" in text and "3 Artikel" in text
    assert "Lesen auf: English · العربية · Deutsch" in text
    # the translated paper is German (no lang of its own); the others are marked English
    assert '<article class="paper" id="2401.00001" dir="auto">' in page
    assert "Ein übersetzter Titel" in page and "Eine übersetzte Zusammenfassung." in page
    assert '<article class="paper" id="cjk-tokenizers" lang="en" dir="auto">' in page
    # the original is untouched by the paper's translation
    original = (site / f"issues/{FIRST}/index.html").read_text(encoding="utf-8")
    assert "Ein übersetzter Titel" not in original
    assert "Read in: English · العربية · Deutsch" in text_of(site / f"issues/{FIRST}/index.html")


# -- indexes and feeds ------------------------------------------------------------------------


def test_per_language_indexes(site: Path) -> None:
    german = (site / "de/index.html").read_text(encoding="utf-8")
    assert '<html lang="de" dir="ltr">' in german
    # issue #1 in German; issue #2 (Arabic only) in Arabic, marked as such
    assert f'<a href="../de/issues/{FIRST}/">Erste Ausgabe: Sprachmodelle</a>' in german
    assert re.search(
        rf'<h3 lang="ar" dir="rtl"><a href="../issues/{ARABIC}/">[^<]+</a> '
        r'<span class="in-language">\(العربية\)</span></h3>',
        german,
    )
    assert '<input type="hidden" name="language" value="de">' in german
    # its feeds, linked from its head
    assert (
        '<link rel="alternate" type="application/atom+xml" title="Test Digest (Atom)" href="feed.xml">'
        in german
    )
    arabic = (site / "ar/index.html").read_text(encoding="utf-8")
    assert f'<a href="../ar/issues/{FIRST}/">العدد الأول</a>' in arabic
    assert f'<h3 lang="ar" dir="rtl"><a href="../issues/{ARABIC}/">' in arabic
    assert "in-language" not in arabic  # every issue can be read in Arabic
    root = (site / "index.html").read_text(encoding="utf-8")
    assert 'name="language"' not in root
    assert f'<a href="issues/{FIRST}/">' in root and "Read in: English · العربية · Deutsch" in text_of(
        site / "index.html"
    )


def test_per_language_feeds(site: Path) -> None:
    import feedparser

    for language, entries in {
        "ar": [f"{BASE}issues/{ARABIC}/", f"{BASE}ar/issues/{FIRST}/"],
        "de": [f"{BASE}de/issues/{FIRST}/"],
        "en": [f"{BASE}issues/{ARABIC}/", f"{BASE}issues/{FIRST}/"],  # the root feed: the originals
    }.items():
        prefix = "" if language == "en" else f"{language}/"
        data = (site / f"{prefix}feed.xml").read_bytes()
        atom = feedparser.parse(data)
        assert not atom.bozo, atom.bozo_exception
        assert [e.link for e in atom.entries] == entries
        assert etree.fromstring(data).get(XML_LANG) == language
        assert atom.feed.link == BASE + prefix
        feed = json.loads((site / f"{prefix}feed.json").read_text(encoding="utf-8"))
        assert feed["language"] == language
        assert feed["home_page_url"] == BASE + prefix and feed["feed_url"] == f"{BASE}{prefix}feed.json"
        assert [item["url"] for item in feed["items"]] == entries
    german = feedparser.parse((site / "de/feed.xml").read_bytes()).entries[0]
    assert german.title == "Erste Ausgabe: Sprachmodelle"
    assert "Ein übersetzter Titel" in german.content[0].value
    assert 'lang="en"' not in german.content[0].value.split('id="2401.00001"')[1].split(">")[0]


def test_sitemap_lists_translations_with_their_alternates(site: Path) -> None:
    sitemap = etree.fromstring((site / "sitemap.xml").read_bytes())
    urls = {u.findtext(f"{SITEMAP}loc"): u for u in sitemap.iter(f"{SITEMAP}url")}
    versions = [f"{BASE}issues/{FIRST}/", f"{BASE}ar/issues/{FIRST}/", f"{BASE}de/issues/{FIRST}/"]
    assert {*versions, BASE, f"{BASE}ar/", f"{BASE}de/", f"{BASE}issues/{ARABIC}/"} <= set(urls)
    for url in versions:
        alternates = [(x.get("hreflang"), x.get("href")) for x in urls[url].iter(f"{XHTML}link")]
        assert alternates == [
            ("en", versions[0]),
            ("ar", versions[1]),
            ("de", versions[2]),
            ("x-default", versions[0]),
        ]
    assert list(urls[f"{BASE}issues/{ARABIC}/"].iter(f"{XHTML}link")) == []


# -- incremental builds ---------------------------------------------------------------------------


def test_a_changed_translation_rebuilds_its_pages_only(digest: Path, site: Path) -> None:
    translation = digest / "issues" / f"{FIRST}.ar.md"
    write(translation, translation.read_text(encoding="utf-8").replace('العدد الأول"', 'العدد الأول المنقح"'))
    report = build_site(load(digest), site)
    assert f"ar/issues/{FIRST}/index.html" in report.written
    assert "العدد الأول المنقح" in (site / f"ar/issues/{FIRST}/index.html").read_text(encoding="utf-8")
    assert {"ar/index.html", "ar/feed.xml", "ar/feed.json"} <= set(report.written)
    untouched = {f"issues/{FIRST}/index.html", f"de/issues/{FIRST}/index.html", "de/index.html", "index.html"}
    assert not untouched & set(report.written), report.written


def test_a_new_translation_adds_its_pages_and_links_the_others(digest: Path, site: Path) -> None:
    write(digest / "issues" / f"{FIRST}.zh.md", '---\nsubject: "第一期"\n---\n欢迎。\n')
    report = build_site(load(digest), site)
    assert {f"zh/issues/{FIRST}/index.html", "zh/index.html", "zh/feed.xml"} <= set(report.written)
    for name in (
        f"issues/{FIRST}/index.html",
        f"ar/issues/{FIRST}/index.html",
        f"de/issues/{FIRST}/index.html",
    ):
        assert ("zh", f"{BASE}zh/issues/{FIRST}/") in links_of(site / name).alternates, name
    # and removing it takes them away again
    (digest / "issues" / f"{FIRST}.zh.md").unlink()
    report = build_site(load(digest), site)
    assert f"zh/issues/{FIRST}/index.html" in report.removed
    assert not (site / "zh").exists()


# -- in real tools -----------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("tidy") is None, reason="Debian tidy not installed (apt-get install tidy)")
def test_tidy_finds_nothing_in_the_translated_pages(site: Path) -> None:
    for name in ("ar/index.html", f"ar/issues/{FIRST}/index.html", f"de/issues/{FIRST}/index.html"):
        result = subprocess.run(["tidy", "-q", "-e", str(site / name)], capture_output=True, text=True)
        # tidy 5.6 predates the standard `loading` attribute of <img> and ARIA 1.1's aria-current
        problems = [
            line
            for line in result.stderr.splitlines()
            if "loading" not in line and "aria-current" not in line
        ]
        assert not problems, (name, problems)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_the_arabic_index_does_not_scroll_sideways_on_a_phone(site: Path, tmp_path: Path) -> None:
    """In a right-to-left page, anything pushed past the left edge makes the page scroll sideways."""
    page = site / "ar/index.html"
    probe = page.with_name("probe.html")
    html = page.read_text(encoding="utf-8").replace(
        "</body>",
        "<script>document.body.setAttribute('data-overflow', "
        "String(document.documentElement.scrollWidth - document.documentElement.clientWidth));</script></body>",
    )
    probe.write_text(html, encoding="utf-8")
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=375,800", "--virtual-time-budget=3000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'data-overflow="(-?\d+)"', result.stdout)
    assert found, result.stdout[-2000:]
    assert int(found.group(1)) <= 0


def test_a_translation_into_the_newsletters_own_language(digest: Path, tmp_path: Path) -> None:
    """Issue #2 is written in Arabic; its English translation is what the (English) root index lists."""
    write(digest / "issues" / f"{ARABIC}.en.md", '---\nsubject: "Issue 2 in English"\n---\nWelcome.\n')
    out = tmp_path / "out"
    build_site(load(digest), out)
    page = links_of(out / f"en/issues/{ARABIC}/index.html")
    assert (page.html["lang"], page.html["dir"]) == ("en", "ltr")
    assert page.alternates == [
        ("ar", f"{BASE}issues/{ARABIC}/"),
        ("en", f"{BASE}en/issues/{ARABIC}/"),
        ("x-default", f"{BASE}issues/{ARABIC}/"),
    ]
    assert not (out / "en" / "index.html").exists()  # the root index is the English one
    root = (out / "index.html").read_text(encoding="utf-8")
    assert f'<a href="en/issues/{ARABIC}/">Issue 2 in English</a>' in root
