"""Message: the MIME message re-parsed by the email package, headers, encoding, personalisation."""

from __future__ import annotations

import dataclasses
import email
import html
import itertools
import re
from email import policy, quoprimime
from email.header import decode_header, make_header
from email.utils import formataddr
from html.parser import HTMLParser

import pytest

from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.mail.build import SAMPLE_READER, build_message
from newsletter.mail.message import MessageTemplate, Recipient, _qp, _to_header, unsubscribe_url
from tests.support.project import GOOD, REPO

SINGLE = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Archive",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
)


@pytest.fixture(scope="module")
def library():
    return load_library(load_settings(GOOD))


@pytest.fixture(scope="module")
def english(library):
    return build_message(library, library.issue("2024-01-10-first"))


@pytest.fixture(scope="module")
def arabic(library):
    return build_message(library, library.issue("2024-01-17-arabic"))


@pytest.fixture(scope="module")
def example():
    library = load_library(load_settings(REPO))
    return build_message(library, library.issue("2026-03-17-multilingual-llms"))


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


def raw_header(raw: bytes, name: str) -> list[str]:
    """Every occurrence of header `name`, unfolded, as it travels."""
    unfolded = re.sub(r"\r\n[ \t]", " ", header_block(raw))
    return [
        line.split(":", 1)[1].strip()
        for line in unfolded.split("\r\n")
        if line.lower().startswith(name.lower() + ":")
    ]


def decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


def parts(msg) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


class Anchors(HTMLParser):
    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.hrefs.append(dict(attrs)["href"])


# ---------------------------------------------------------------------------
# Structure


@pytest.mark.parametrize("which", ["english", "arabic"])
def test_preview_reparses_without_defects_in_the_right_shape(which, request):
    built = request.getfixturevalue(which)
    msg = parse(built.preview)
    assert [(part.get_content_type(), list(part.defects)) for part in msg.walk()] == [
        ("multipart/alternative", []),
        ("text/plain", []),
        ("text/html", []),
    ]
    for part in msg.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part["Content-Language"] == built.rendered.language
    assert msg["MIME-Version"] == "1.0"


def test_lines_are_short_and_quoted_printable_is_clean(english, example):
    for built in (english, example):
        lines = built.preview.split(b"\r\n")
        assert max(len(line) for line in lines) <= 998
        body = built.preview.split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable's own limit
        assert b"\n" not in built.preview.replace(b"\r\n", b"")  # CRLF only
        assert all(byte < 128 for byte in built.preview)


def test_bodies_decode_to_the_rendered_parts(english):
    text, html_part = parts(parse(english.preview))
    url = "https://example.org/api/u/preview-token"
    preferences = "https://example.org/api/p/preview-token"
    markers = english.rendered.markers
    assert text.replace("\r\n", "\n") == english.rendered.text.replace(
        markers.greeting, "Hi Ada Lovelace,"
    ).replace(markers.unsubscribe_url, url).replace(markers.preferences_url, preferences)
    assert html_part.replace("\r\n", "\n") == english.rendered.html.replace(
        markers.greeting, "Hi Ada Lovelace,"
    ).replace(markers.unsubscribe_url, url).replace(markers.preferences_url, preferences)
    assert f'<a href="{preferences}"' in html_part and f"name: {preferences}" in text


# ---------------------------------------------------------------------------
# Headers


def test_headers_of_the_preview(english):
    raw = english.preview
    msg = parse(raw)
    assert msg["From"] == "Test Digest <digest@example.org>"
    assert msg["To"] == "Ada Lovelace <reader@example.org>"
    assert str(msg["Subject"]) == "Test Digest #1 — transfer, dialects & tokenizers"
    assert msg["Date"] == "Wed, 10 Jan 2024 08:00:00 +0000"
    assert msg["Reply-To"] == "editor@example.org"
    assert msg["List-Id"] == "Test Digest <test.digest.example.org>"
    assert raw_header(raw, "List-Unsubscribe") == [
        "<https://example.org/api/u/preview-token>, <mailto:unsubscribe@example.org?subject=unsubscribe%20preview-token>"
    ]
    assert raw_header(raw, "List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    assert raw_header(raw, "Feedback-ID") == ["newsletter:test.digest.example.org:digest:newsletter"]
    assert raw_header(raw, "List-Archive") == ["<https://example.org/digest/>"]
    assert msg["Message-ID"] == english.template.message_id(SAMPLE_READER)
    assert re.fullmatch(r"<2024-01-10-first\.[0-9a-f]{20}@example\.org>", msg["Message-ID"])


def test_every_single_instance_header_appears_once(english, arabic):
    for built in (english, arabic):
        for name in SINGLE:
            assert len(raw_header(built.preview, name)) == 1, name


def test_subject_is_rfc2047_and_decodes_exactly(arabic, english):
    for built, subject in (
        (arabic, "النشرة ٢ — اللهجات العربية"),
        (english, "Test Digest #1 — transfer, dialects & tokenizers"),
    ):
        [raw_subject] = raw_header(built.preview, "Subject")
        assert raw_subject.isascii() and "=?utf-8?" in raw_subject
        assert decoded(raw_subject) == subject
        assert str(parse(built.preview)["Subject"]) == subject


def test_subject_prefix(library):
    built = build_message(library, library.issue("2024-01-10-first"), subject_prefix="[Test] ")
    assert str(parse(built.preview)["Subject"]) == "[Test] Test Digest #1 — transfer, dialects & tokenizers"


def test_non_ascii_display_name_is_encoded_and_decodes(english):
    raw = english.template.personalise(Recipient("zoe@example.org", "Zoë Ångström", "t1"))
    [to] = raw_header(raw, "To")
    assert to.isascii() and "=?utf-8?" in to and to.endswith(" <zoe@example.org>")
    [address] = parse(raw)["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Zoë Ångström", "zoe@example.org")


def test_message_id_is_stable_per_issue_and_address(library, english, arabic):
    again = build_message(library, library.issue("2024-01-10-first"))
    ada, bob = Recipient("ada@example.org"), Recipient("bob@example.org")
    assert english.template.message_id(ada) == again.template.message_id(ada)
    assert english.template.message_id(ada) == english.template.message_id(
        Recipient("ADA@example.org", "Ada")
    )
    assert english.template.message_id(ada) != english.template.message_id(bob)
    assert english.template.message_id(ada) != arabic.template.message_id(ada)
    assert parse(english.template.personalise(bob))["Message-ID"] == english.template.message_id(bob)


# ---------------------------------------------------------------------------
# Personalisation


def test_two_recipients_differ_only_where_expected(english):
    a = Recipient("ada@example.org", "Ada", "tok-A_1")
    b = Recipient("bob@example.org", None, "tok-B_2")
    msg_a, msg_b = parse(english.template.personalise(a)), parse(english.template.personalise(b))
    differing = {name for name in dict(msg_a.items()) if str(msg_a[name]) != str(msg_b[name])}
    assert differing == {"To", "Message-ID", "List-Unsubscribe"}
    assert msg_b["To"] == "bob@example.org"

    def neutral(msg, recipient: Recipient, greeting: str) -> tuple[str, str]:
        url = f"https://example.org/api/u/{recipient.token}"
        text, html_part = parts(msg)
        return text.replace(url, "URL").replace(greeting, "GREETING"), html_part.replace(url, "URL").replace(
            greeting, "GREETING"
        )

    assert neutral(msg_a, a, "Hi Ada,") == neutral(msg_b, b, "Hi,")
    text_a, html_a = parts(msg_a)
    assert text_a.count("https://example.org/api/u/tok-A_1") == 1
    assert html_a.count("https://example.org/api/u/tok-A_1") == 2
    assert "tok-B_2" not in text_a + html_a


@pytest.mark.parametrize(
    "name",
    ['O\'Brien, Pat "the Brain"', "Eve\r\nBcc: attacker@evil.example", "<b>x</b>", "Zoë; <zoe@evil.example>"],
)
def test_hostile_names_are_safe_in_to_and_escaped_in_the_body(english, name):
    raw = english.template.personalise(Recipient("reader@example.org", name, "t"))
    msg = parse(raw)
    assert [d for part in msg.walk() for d in part.defects] == []
    assert [a.addr_spec for a in msg["To"].addresses] == ["reader@example.org"]
    assert msg["Bcc"] is None and len(raw_header(raw, "To")) == 1
    text, html_part = parts(msg)
    shown = " ".join(name.split())
    assert f"Hi {shown}," in text or f"Hi {name}," in text
    if "<" in name:
        assert name not in html_part
        assert name.replace("<", "&lt;").replace(">", "&gt;") in html_part


def test_html_name_shows_as_text(english):
    msg = parse(english.template.personalise(Recipient("reader@example.org", "<b>x</b>", "t")))
    text, html_part = parts(msg)
    assert '<p style="margin:0 0 12px">Hi &lt;b&gt;x&lt;/b&gt;,</p>' in html_part
    assert "<b>x</b>" not in html_part
    assert "\nHi <b>x</b>,\r\n" in text


def test_a_long_non_ascii_name_is_folded_into_short_encoded_words(english):
    """Regression: formataddr put a long name in one RFC 2047 word on one ~1200-octet line."""
    name = " ".join(["محمد"] * 100)
    raw = english.template.personalise(Recipient("reader@example.org", name, "t"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    head = header_block(raw).split("\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith("To:"))
    to_lines = [head[start], *itertools.takewhile(lambda line: line[:1] in (" ", "\t"), head[start + 1 :])]
    assert len(to_lines) > 3 and all(len(line) <= 78 for line in to_lines)  # folded, not one long word
    [address] = parse(raw)["To"].addresses
    assert address.addr_spec == "reader@example.org"
    # CPython's parser may add spaces between folded encoded words, and a fix may cap long names
    assert name.replace(" ", "").startswith(address.display_name.replace(" ", "")[:150])


def test_an_absurdly_long_name_keeps_lines_under_998_octets(english):
    raw = english.template.personalise(Recipient("reader@example.org", "A" * 1200, "t"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_token_with_dash_and_underscore_survives(english):
    token = "dTpzdWItMTIz.Ab-_cD_-eF"
    raw = english.template.personalise(Recipient("reader@example.org", "Ada", token))
    url = f"https://example.org/api/u/{token}"
    assert raw_header(raw, "List-Unsubscribe") == [
        f"<{url}>, <mailto:unsubscribe@example.org?subject=unsubscribe%20{token}>"
    ]
    text, html_part = parts(parse(raw))
    assert f"Unsubscribe with one click: {url}\r\n" in text
    assert Anchors(html_part).hrefs.count(url) == 2


def test_marker_like_subject_and_a_long_mailto_stay_as_written(library, english):
    settings = dataclasses.replace(
        library.settings, unsubscribe_mailto="leave-this-digest-for-good@lists.unsubscribe.example.org"
    )
    subject = "%%TO%% %%TOKEN%% list-unsubscribe-links %%UNSUBSCRIBE_URL%%"
    rendered = dataclasses.replace(english.rendered, subject=subject)
    raw = MessageTemplate.build(rendered, settings).personalise(Recipient("reader@example.org", None, "tok"))
    msg = parse(raw)
    assert msg["Subject"] == subject and msg["To"] == "reader@example.org"
    assert raw_header(raw, "List-Unsubscribe") == [
        "<https://example.org/api/u/tok>, "
        "<mailto:leave-this-digest-for-good@lists.unsubscribe.example.org?subject=unsubscribe%20tok>"
    ]  # plain links, never RFC 2047 words


def test_without_a_web_endpoint_unsubscribe_falls_back_to_mailto(library, english):
    settings = dataclasses.replace(library.settings, web_url=None)
    template = MessageTemplate.build(english.rendered, settings)
    raw = template.personalise(Recipient("reader@example.org", None, "tok"))
    mailto = "mailto:unsubscribe@example.org?subject=unsubscribe%20tok"
    assert raw_header(raw, "List-Unsubscribe") == [f"<{mailto}>"]
    assert raw_header(raw, "List-Unsubscribe-Post") == []
    assert unsubscribe_url(settings, "tok") == mailto
    text, html_part = parts(parse(raw))
    assert mailto in Anchors(html_part).hrefs
    assert f"Unsubscribe with one click: {mailto}" in text


def test_arabic_greeting_and_language(arabic):
    msg = parse(arabic.template.personalise(Recipient("r@example.org", "ليلى", "t")))
    text, html_part = parts(msg)
    assert "مرحبًا ليلى،" in text and "مرحبًا ليلى،" in html_part
    assert msg["Content-Language"] == "ar"
    anonymous = parse(arabic.template.personalise(Recipient("r@example.org", None, "t")))
    assert "\nمرحبًا،\r\n" in parts(anonymous)[0]


# ---------------------------------------------------------------------------
# The real example issue: 45 papers


def test_example_issue_fits_under_gmail_clipping_with_every_title(example):
    raw = example.preview
    boundary = parse(raw).get_boundary().encode()
    start = raw.index(b"Content-Type: text/html")
    body = raw.index(b"\r\n\r\n", start) + 4
    encoded_html = raw[body : raw.index(b"\r\n--" + boundary, body)]
    assert len(encoded_html) < 95 * 1024, len(encoded_html)
    text, html_part = parts(parse(raw))
    assert len(example.rendered.papers) == 45
    flat_text = " ".join(text.split())
    visible_html = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_part)).split())
    for paper in example.rendered.papers:
        title = " ".join(paper.title.split())
        assert title in flat_text, title
        assert title in visible_html, title


@pytest.mark.parametrize(
    "value",
    [
        "Hi Ada,",
        "https://digest.example.org/api/u/dTox.jti-sfFzaBLawaHXYjJacA",
        " leading space",
        "trailing space ",
        "tab\tinside",
        "a=b",
        "x" * 76,
        "x" * 77,
        "Hallo Zoë,",
        "",
    ],
)
def test_per_reader_values_are_encoded_as_the_email_package_encodes_them(value: str) -> None:
    """The quoted-printable shortcut for plain values gives the email package's bytes exactly."""
    latin = value.encode("utf-8").decode("latin-1")
    expected = quoprimime.body_encode(latin, maxlinelen=76, eol="\r\n").encode("ascii")
    assert _qp(value) == expected


@pytest.mark.parametrize(
    "name",
    [
        "Ada",
        "Ada Lovelace",
        "O'Brien-Smith",
        "J. R. R.",
        "Doe, Jane",
        'Say "hi"',
        "a\\b",
        "Zoë",
        "x" * 45,
        "x" * 46,
    ],
)
def test_the_to_header_is_what_the_email_package_writes_for_a_short_name(name: str) -> None:
    recipient = Recipient("reader@example.org", name, "t")
    expected = formataddr((name, "reader@example.org"), charset="utf-8") if len(name) <= 45 else None
    if expected is not None:
        assert _to_header(recipient) == expected
    else:
        assert _to_header(recipient).endswith(" <reader@example.org>")
