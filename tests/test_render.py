"""Render: golden text part and HTML fragments, determinism, escaping, RTL, CSS inlining, wrapping.

Golden files live in tests/golden/; regenerate them with NEWSLETTER_UPDATE_GOLDEN=1 and
review the diff before committing.
"""

from __future__ import annotations

import email
import html
import os
import re
import subprocess
import sys
import unicodedata
from email import policy
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.content.selection import papers_for
from newsletter.mail.build import build_message, write_build
from newsletter.mail.render import (
    MARKDOWN,
    TEXT_WIDTH,
    excerpt,
    personalise_preview,
    render_issue,
    short_authors,
    wrap_text,
)
from tests.support.golden import assert_golden
from tests.support.project import GOOD, copy_newsletter, run

HOSTILE_TITLE = "Cross-Lingual Transfer with <script>alert(1)</script> {{ 7*7 }} </mj-text>"


def nonce_masked(built, text: str) -> str:
    """`text` with this build's marker nonce written as NONCE: golden files outlive a nonce."""
    return text.replace(built.rendered.markers.nonce, "NONCE")


def reviewable(fragment: str) -> str:
    """One tag per line, so a golden diff shows what changed."""
    return fragment.replace("><", ">\n<") + "\n"


@pytest.fixture(scope="module")
def library():
    return load_library(load_settings(GOOD))


@pytest.fixture(scope="module")
def english(library):
    return build_message(library, library.issue("2024-01-10-first"))


@pytest.fixture(scope="module")
def arabic(library):
    return build_message(library, library.issue("2024-01-17-arabic"))


def paper_block(document: str, pid: str) -> str:
    match = re.search(rf'<div id="{re.escape(pid)}".*?(?=<div id="|</div></div></td>)', document, re.DOTALL)
    assert match, f"no paper block for {pid}"
    return match.group(0)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def named(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == name]


# ---------------------------------------------------------------------------
# Golden outputs


def test_golden_text_part(english):
    assert_golden("first.email.txt", nonce_masked(english, english.rendered.text))


def test_golden_arabic_text_part(arabic):
    assert_golden("arabic.email.txt", nonce_masked(arabic, arabic.rendered.text))


def test_golden_paper_block(english):
    block = paper_block(english.rendered.html, "2401.00001")
    assert_golden("first.paper-2401.00001.html", reviewable(nonce_masked(english, block)))


def test_golden_footer(english):
    match = re.search(r"<div[^>]*>(?:(?!<div).)*Springfield</p></div>", english.rendered.html, re.DOTALL)
    assert match
    assert_golden("first.footer.html", reviewable(nonce_masked(english, match.group(0))))


def test_golden_arabic_masthead_and_intro(arabic):
    start = arabic.rendered.html.index("<body")
    end = arabic.rendered.html.index('<div id="arabic-dialects"')
    divs = re.findall(r'<div dir="rtl"[^>]*>.*?</div>', arabic.rendered.html[start:end], re.DOTALL)
    assert_golden("arabic.rtl-blocks.html", reviewable(nonce_masked(arabic, "".join(divs))))


# ---------------------------------------------------------------------------
# Determinism


def test_two_renders_are_byte_identical(library, english):
    again = build_message(library, library.issue("2024-01-10-first"))
    assert again.rendered.html == english.rendered.html
    assert again.rendered.text == english.rendered.text
    assert again.preview == english.preview


def test_a_fresh_process_builds_the_same_bytes(tmp_path, english):
    ours = write_build(english, tmp_path / "ours").folder
    command = [str(Path(sys.executable).parent / "newsletter"), "--root", str(GOOD)]
    command += ["build", "2024-01-10-first", "--out", str(tmp_path / "theirs")]
    # another hash seed: set or dict ordering must not leak into the output
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    theirs = tmp_path / "theirs" / "2024-01-10-first"
    for name in ("email.html", "email.txt", "preview.eml"):
        assert (theirs / name).read_bytes() == (ours / name).read_bytes(), name


# ---------------------------------------------------------------------------
# Untrusted content stays text


def test_hostile_title_and_abstract_are_escaped_in_html(english):
    document = english.rendered.html
    parsed = Tags(document)
    assert parsed.named("script") == []
    assert all("onerror" not in attrs for _, attrs in parsed.tags)
    assert not any(tag.startswith("mj-") for tag, _ in parsed.tags)
    assert [attrs.get("src") for attrs in parsed.named("img")] == ["https://example.org/img/arabic.png"]
    visible = "".join(parsed.text)
    assert HOSTILE_TITLE in visible
    assert "<img src=x onerror=alert(1)>" in visible
    # {{ 7*7 }} was never evaluated (the markers' nonce is a hash, which may hold any digits)
    assert "49" not in visible.replace(english.rendered.markers.nonce, "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} &lt;/mj-text&gt;" in document
    # the intro's raw HTML is text too
    assert "Reply to this email with &lt;b&gt;feedback&lt;/b&gt;." in document


def test_hostile_title_and_abstract_are_verbatim_in_text(english):
    text = english.rendered.text
    assert f"1. {HOSTILE_TITLE}\n" in text
    assert "<img src=x\n   onerror=alert(1)>" in text
    assert "49" not in text.replace(english.rendered.markers.nonce, "")


def test_relative_links_lose_their_href():
    rendered = MARKDOWN.html("[rel](/etc/passwd), [js](javascript:alert(1)) and [ok](https://e.com/y)")
    parsed = Tags(rendered)
    assert [a.get("href") for a in parsed.named("a")] == [None, "https://e.com/y"]
    assert "".join(parsed.text).startswith("rel, ")
    assert "javascript:alert(1)" not in [a.get("href") for a in parsed.named("a")]


def test_relative_link_in_an_intro_keeps_only_its_text(tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    path = root / "issues" / "2024-01-10-first.md"
    path.write_text(
        path.read_text() + "\nSee [our notes](/notes/) and [the site](https://example.com/site).\n"
    )
    library = load_library(load_settings(root))
    issue = library.issue("2024-01-10-first")
    document = render_issue(library, issue, papers_for(library, issue)).html
    assert re.search(r"See <a[^>]*>our notes</a> and <a href=\"https://example\.com/site\"", document)
    assert '"/notes/"' not in document


def test_intro_and_note_links_keep_their_url_in_the_text_part(tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest")
    path = root / "issues" / "2024-01-10-first.md"
    path.write_text(
        path.read_text()
        + '\nSee [our notes](/notes/), [the *site*](https://example.com/site?a=1&b=2 "Site"), '
        "<https://example.com/auto> and <editor@example.com>.\n"
    )
    paper = root / "papers" / "2401.00001.md"
    paper.write_text(
        paper.read_text().replace("A clear baseline", "A [clear](https://example.com/b) baseline")
    )
    library = load_library(load_settings(root))
    issue = library.issue("2024-01-10-first")
    text = " ".join(render_issue(library, issue, papers_for(library, issue)).text.split())
    assert (
        "See our notes, the site (https://example.com/site?a=1&b=2), https://example.com/auto and "
        "editor@example.com." in text
    )
    assert "> A clear (https://example.com/b) baseline" in text


def test_placeholder_text_inside_content_is_not_personalised(english):
    url = "https://example.org/api/u/TOKEN-1"
    html_part, text_part = personalise_preview(english.rendered, name="Ada", unsubscribe_url=url)
    assert html_part.count(url) == 2  # top line and footer, not the abstract
    assert text_part.count(url) == 1
    # the abstract's own text, exactly as written
    assert "The placeholder %%UNSUBSCRIBE_URL%% must stay inert." in html_part
    assert "The placeholder %%UNSUBSCRIBE_URL%% must stay inert." in " ".join(text_part.split())
    assert english.rendered.markers.nonce not in html_part + text_part


# ---------------------------------------------------------------------------
# Direction, CSS, structure


def test_rtl_issue(arabic, english):
    document = arabic.rendered.html
    assert '<html lang="ar" dir="rtl"' in document
    assert '<div id="arabic-dialects" lang="en" dir="ltr" style="' in document
    assert '<div dir="rtl"><p class="brand"' in document
    assert arabic.rendered.direction == "rtl"
    assert '<html lang="en" dir="ltr"' in english.rendered.html


def test_premailer_keeps_media_rules_and_inlines_titles(english):
    document = english.rendered.html
    styles = re.findall(r"<style[^>]*>(.*?)</style>", document, re.DOTALL)
    media = [s for s in styles if "@media only screen and (max-width: 480px)" in s]
    assert len(media) == 1
    assert ".paper-title { font-size: 16px !important; }" in media[0]
    titles = re.findall(r'<h2 class="paper-title" style="([^"]*)"', document)
    assert len(titles) == 3
    assert all("font-size:17px" in t and "font-weight:700" in t for t in titles)
    assert "<link" not in document
    assert "fonts.googleapis" not in document
    assert "data-premailer" not in document
    assert "/* inline */" not in document  # the inlined block itself is gone
    assert document.startswith("<!doctype html>\n")
    assert "\r" not in document


def test_layout_tables_are_presentational(english):
    tables = Tags(english.rendered.html).named("table")
    assert tables and all(t.get("role") == "presentation" for t in tables)


def test_thumbnail_keeps_its_pixel_width(english):
    """Regression: premailer copied CSS width/height onto <img> (width=\"100%\", height=\"auto\")."""
    [img] = Tags(english.rendered.html).named("img")
    assert img.get("width") == "536"
    assert "height" not in img


def test_preheader_is_hidden_right_after_body(english):
    after_body = english.rendered.html.split("<body", 1)[1].split(">", 1)[1]
    assert after_body.startswith('<div style="display:none;')
    assert after_body.split(">", 1)[1].startswith(
        "Three papers on cross-lingual transfer, Arabic dialects and CJK tokenizers.</div>"
    )


# ---------------------------------------------------------------------------
# Excerpts and the plain-text part


LONG = (
    "Large language models are trained mostly on English. "
    "We measure how far their abilities carry to other languages. "
    "We find a steep drop for low-resource languages, especially those written in non-Latin scripts. "
    "A small amount of continued pretraining recovers most of the gap. "
    "We release code, data and checkpoints for forty languages. "
    "Further experiments on translation confirm the trend across model sizes and architectures."
)


def test_excerpt_cuts_at_a_sentence_end():
    short, truncated = excerpt(LONG)
    assert truncated
    assert short == LONG[: LONG.index(" We release code")]
    assert 150 <= len(short) <= 300


def test_excerpt_cuts_at_a_word_when_no_sentence_ends():
    text = " ".join(["multilingual"] * 40)
    short, truncated = excerpt(text)
    assert truncated
    assert short.endswith("multilingual…")
    assert len(short) <= 301
    assert excerpt("Short and sweet.") == ("Short and sweet.", False)


def test_excerpt_strips_markdown():
    assert excerpt("We **study** [links](https://x.org) and `code`.") == ("We study links and code.", False)


def test_cjk_excerpt_ends_at_a_full_stop():
    """Regression: sentence ends needed a following space, which Chinese and Japanese do not use."""
    sentence = "大型语言模型的分词器对中文、日文和韩文的效率差异很大。"
    short, truncated = excerpt(sentence * 20)
    assert truncated
    assert short.endswith("。")


def _display_width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def test_text_part_wraps_under_78_columns(english, arabic):
    for rendered in (english.rendered, arabic.rendered):
        too_wide = [
            line
            for line in rendered.text.splitlines()
            if _display_width(line) > TEXT_WIDTH and not re.fullmatch(r"\s*(\S+ )?https?://\S+", line)
        ]
        assert too_wide == []
    cjk_lines = [
        line
        for line in english.rendered.text.splitlines()
        if line.startswith("   ") and sum(unicodedata.east_asian_width(c) == "W" for c in line) >= 10
    ]
    assert len(cjk_lines) >= 3  # the CJK abstract really was wrapped, not left on one line
    assert all(70 <= _display_width(line) <= TEXT_WIDTH for line in cjk_lines[:-1])


def test_wrap_never_breaks_urls_and_keeps_cjk_punctuation_attached():
    url = "https://example.org/" + "a" * 100
    assert wrap_text(f"see {url} now", width=40) == f"see\n{url}\nnow"
    wrapped = wrap_text("我们" * 38 + "。", width=78)
    assert not any(line.startswith("。") for line in wrapped.splitlines())


def test_short_authors():
    assert short_authors(["A", "B", "C", "D", "E", "F", "G", "H"]) == "A, B, C +5"
    assert short_authors(["A", "B", "C", "D"]) == "A, B, C, D"
    assert short_authors([]) == ""


def test_eml_part_equals_rendered_text_after_personalisation(english):
    msg = email.message_from_bytes(english.preview, policy=policy.default)
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # MIME text lines end in CRLF
    markers = english.rendered.markers
    expected = (
        english.rendered.text.replace(markers.greeting, "Hi Ada Lovelace,")
        .replace(markers.unsubscribe_url, "https://example.org/api/u/preview-token")
        .replace(markers.preferences_url, "https://example.org/api/p/preview-token")
    )
    assert text == expected
    assert html.escape("Hi Ada Lovelace,") in msg.get_body(("html",)).get_content()


def test_imported_html_markdown_and_entities_show_as_text(tmp_path):
    """An imported abstract is text: its stars, brackets, tags and entities are shown, not obeyed."""
    import json

    root = tmp_path / "digest"
    assert run(root.parent, "init", str(root)).exit_code == 0
    for path in [*(root / "papers").glob("*.md"), *(root / "issues").glob("*.md")]:
        path.unlink()
    abstract = (
        "We compare A* search and B* trees; x &amp; y &#37; z; **not bold**; <b>tag</b>; "
        "[link](https://x.example), <https://auto.example>, _under_ and `code` \\* \\& %%UNSUBSCRIBE_URL%%."
    )
    blocks = ["# Not a heading", "1. not a list", "- not a list either", "---", "~~~"]
    source = tmp_path / "hf.json"
    summary = "\n\n".join([abstract, *blocks])
    paper = {"id": "2406.30001", "title": "Stars *and* <b>tags</b> &amp; co", "summary": summary}
    source.write_text(json.dumps([{"paper": {**paper, "authors": [{"name": "A"}]}}]), encoding="utf-8")
    assert run(root, "papers", "import", str(source)).output.endswith(
        "1 created, 0 updated, 0 unchanged, 0 refused\n"
    )
    again = run(root, "papers", "import", str(source))
    assert again.output.endswith("0 created, 0 updated, 1 unchanged, 0 refused\n")  # escaping is stable
    (root / "issues" / "2026-06-20-t.md").write_text(
        "---\ntitle: T\ndate: 2026-06-20\nnumber: 1\nselect: {sort: id}\n---\nHi.\n", encoding="utf-8"
    )
    library = load_library(load_settings(root))
    issue = library.issue("2026-06-20-t")
    [imported] = papers_for(library, issue)
    rendered = render_issue(library, issue, [imported])
    shown = " ".join([abstract, *blocks])
    assert excerpt(imported.abstract, 10_000) == (shown, False)
    assert shown[:150] in " ".join(rendered.text.split())  # the email shows an excerpt
    assert html.escape(shown[:150], quote=False) in rendered.html
    assert html.escape("Stars *and* <b>tags</b> &amp; co", quote=False) in rendered.html


def test_a_template_that_alters_a_marker_is_a_clear_error(tmp_path):
    root = copy_newsletter(GOOD, tmp_path / "digest", copy_templates=True)
    template = root / "templates" / "email" / "issue.txt.j2"
    template.write_text(template.read_text().replace("{{ greeting }}", "{{ greeting|lower }}"))
    result = run(root, "build", "2024-01-10-first", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert (
        "templates/email/issue.txt.j2: the per-reader values greeting, unsubscribe_url and preferences_url "
        "must be output as they are (no filters or tests on them)" in result.output
    )
