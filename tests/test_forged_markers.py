"""Marker-like text in content reaches the reader exactly as written: build, `send --test`, archive.

Each form that once turned into a per-reader placeholder — the literal text, a Markdown
escape, decimal and hex HTML entities, a guessed marker and the header placeholders —
sits in a paper's title, abstract and editor's note and in the issue's introduction,
mixed with the template's real markers. The reader's own unsubscribe URL and greeting
must appear exactly where the template puts them, and nowhere else.
"""

from __future__ import annotations

import email
import json
import re
from email import policy
from pathlib import Path

import pytest

from tests.support.golden import assert_golden
from tests.support.project import GOOD, copy_newsletter, run

SLUG = "2024-02-01-forged"
FORMS = [
    "%%UNSUBSCRIBE_URL%%",
    r"\%\%UNSUBSCRIBE_URL\%\%",
    "&#37;&#37;GREETING&#37;&#37;",
    "&#x25;&#x25;TO&#x25;&#x25;",
    "%%MESSAGE_ID%% %%TOKEN%% %%GREETING%%",
    "%%UNSUBSCRIBE_URL-0123456789abcdef%%",
]
# What a reader sees of FORMS in Markdown (abstract, note, introduction): escapes and entities resolved
SEEN_IN_MARKDOWN = [
    "%%UNSUBSCRIBE_URL%%",
    "%%UNSUBSCRIBE_URL%%",
    "%%GREETING%%",
    "%%TO%%",
    "%%MESSAGE_ID%% %%TOKEN%% %%GREETING%%",
    "%%UNSUBSCRIBE_URL-0123456789abcdef%%",
]
EVIL = "https://evil.example/c?u=%%UNSUBSCRIBE_URL%%"
TITLE = "Forged " + " ".join(FORMS)  # a title is plain text: every character shown as typed
PAPER = f"""---
id: forged
title: {json.dumps(TITLE)}
authors: [Mallory]
published: 2024-01-30
url: https://example.net/forged
tags: [nlp]
---
Abstract: {" | ".join(FORMS)}.

## Editor's note
Note: {" | ".join(FORMS)}. [Click]({EVIL.replace("%%", "&#37;&#37;")}).
"""
ISSUE = f"""---
title: Forged
subject: "Forged %%GREETING%% &#37;&#37;TO&#37;&#37;"
date: 2024-02-01
number: 3
preheader: "Nothing here is personal"
status: published
include: [forged]
---
Intro: {" | ".join(FORMS)}. See [this]({EVIL}).
"""
READER = "me@example.net"


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_newsletter(GOOD, tmp_path_factory.mktemp("forged") / "digest")
    (root / "papers" / "forged.md").write_text(PAPER, encoding="utf-8")
    (root / "issues" / f"{SLUG}.md").write_text(ISSUE, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def sent(forged: Path, tmp_path_factory: pytest.TempPathFactory) -> email.message.EmailMessage:
    """The message `send --test` writes to the file transport's outbox."""
    outbox = tmp_path_factory.mktemp("outbox")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSLETTER_SECRET", "forged-markers-test-secret-0123456789")
        result = run(
            forged, "send", SLUG, "--transport", "file", "--outbox", str(outbox), "--no-spam-score",
            "--test", READER,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    [eml] = sorted((outbox / SLUG / "test").glob("*.eml"))  # test messages: OUTBOX/<slug>/test/
    return email.message_from_bytes(eml.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def unsubscribe_link(message: email.message.EmailMessage) -> str:
    [link] = re.findall(r"<(https://example\.org/api/u/[^>]+)>", message["List-Unsubscribe"])
    return link


def test_sent_message_personalises_only_the_template_markers(sent) -> None:
    url = unsubscribe_link(sent)
    text = sent.get_body(("plain",)).get_content()
    html = sent.get_body(("html",)).get_content()
    assert text.count(url) == 1 and html.count(url) == 2  # the template's own places, no more
    token = url.rsplit("/", 1)[1]
    assert text.count(token) == 1 and html.count(token) == 2
    assert text.count("Hi Me,") + text.count("Hi,") == 1  # the greeting, once
    # no marker is left, and the guessed one is shown as the text it is
    assert set(re.findall(r"%%\w+-([0-9a-f]{16})%%", text + html)) == {"0123456789abcdef"}
    evil_links = re.findall(r'href="(https://evil\.example/[^"]*)"', html)
    assert len(evil_links) == 2 and not any("example.org" in link for link in evil_links)
    assert sent["To"].addresses[0].addr_spec == READER
    assert sent["Subject"] == "[TEST] Forged %%GREETING%% &#37;&#37;TO&#37;&#37;"


def test_sent_message_shows_each_form_as_written(sent) -> None:
    # one line of words: no wrapping, no "> " that starts each line of the note
    text = " ".join(re.sub(r"(?m)^\s*> ?", "", sent.get_body(("plain",)).get_content()).split())
    html = sent.get_body(("html",)).get_content()
    assert f"Intro: {' | '.join(SEEN_IN_MARKDOWN)}." in text
    assert f"Abstract: {' | '.join(SEEN_IN_MARKDOWN)}." in text
    assert f"Note: {' | '.join(SEEN_IN_MARKDOWN)}." in text
    assert TITLE in text
    escaped = [form.replace("&", "&amp;") for form in SEEN_IN_MARKDOWN]
    assert f"Intro: {' | '.join(escaped)}." in html
    assert f"Abstract: {' | '.join(escaped)}." in html
    assert f"Note: {' | '.join(escaped)}." in html
    assert TITLE.replace("&", "&amp;") in html


def test_sent_text_part_golden(sent) -> None:
    text = sent.get_body(("plain",)).get_content().replace("\r\n", "\n")
    text = text.replace(unsubscribe_link(sent), "https://example.org/api/u/<reader's token>")
    text = re.sub(r"https://example\.org/api/p/\S+", "https://example.org/api/p/<reader's token>", text)
    assert_golden("forged.sent.txt", text)


def test_build_keeps_one_marker_per_template_place(forged: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    result = run(forged, "build", SLUG, "--out", str(out))
    assert result.exit_code == 0, result.output
    html = (out / SLUG / "email.html").read_text(encoding="utf-8")
    text = (out / SLUG / "email.txt").read_text(encoding="utf-8")
    nonces = set(re.findall(r"%%(?:UNSUBSCRIBE_URL|GREETING)-([0-9a-f]{16})%%", html + text)) - {
        "0123456789abcdef"
    }
    [nonce] = nonces
    assert html.count(f"%%UNSUBSCRIBE_URL-{nonce}%%") == 2 and html.count(f"%%GREETING-{nonce}%%") == 1
    assert text.count(f"%%UNSUBSCRIBE_URL-{nonce}%%") == 1 and text.count(f"%%GREETING-{nonce}%%") == 1
    again = tmp_path / "again"
    run(forged, "build", SLUG, "--out", str(again))
    for name in ("email.html", "email.txt", "preview.eml"):
        assert (again / SLUG / name).read_bytes() == (out / SLUG / name).read_bytes(), name


def test_check_passes_and_counts_the_markers(forged: Path) -> None:
    result = run(forged, "check", SLUG, "--no-spam-score")
    assert result.exit_code == 0, result.output
    assert "  ok    every per-reader marker personalised (7 placed by the templates)" in result.output


def test_archive_page_shows_each_form_as_written(forged: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = run(forged, "archive", "build", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = (out / "issues" / SLUG / "index.html").read_text(encoding="utf-8")
    escaped = [form.replace("&", "&amp;") for form in SEEN_IN_MARKDOWN]
    assert f"Intro: {' | '.join(escaped)}." in page
    assert f"Abstract: {' | '.join(escaped)}." in page
    assert f"Note: {' | '.join(escaped)}." in page
    assert TITLE.replace("&", "&amp;") in page
    assert "\u2060" not in page
    start = page.index('id="forged"')
    block = page[page.rindex("<article", 0, start) : page.index("</article>", start) + len("</article>")]
    assert_golden("forged.archive-paper.html", block.replace("><", ">\n<") + "\n")
