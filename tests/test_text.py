"""The shared text rules: control characters, URLs and language tags, and that every layer uses them."""

from __future__ import annotations

import pytest

from newsletter.text import ALL_CONTROL_CHARS, CONTROL_CHARS, http_url, is_language_tag


def test_control_chars_keep_line_structure_but_drop_the_invisible() -> None:
    text = "a\tb\nc\r\nd\x00e\x0bf\x1bg\x7fh\x85i\x9fj"
    assert CONTROL_CHARS.sub("", text) == "a\tb\nc\r\ndefghij"


def test_all_control_chars_leave_one_line() -> None:
    assert ALL_CONTROL_CHARS.sub("", "Ada\tLove\r\nlace\x00\x85") == "AdaLovelace"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://example.org/a", "https://example.org/a"),
        ("  http://example.org  ", "http://example.org"),
        ("example.org/bad", None),
        ("ftp://example.org/", None),
        ("https://", None),
        ("https://example.org/a b", None),
        (42, None),
        (None, None),
    ],
)
def test_http_url(value: object, expected: str | None) -> None:
    assert http_url(value) == expected


@pytest.mark.parametrize("tag", ["en", "ar", "pt-BR", "zh-Hant-TW", "gsw", "es-419"])
def test_language_tags_accepted(tag: str) -> None:
    assert is_language_tag(tag)


@pytest.mark.parametrize("tag", ["", "e", "en gb", "English", "en_GB", "en-", "-en", "日本", "en\n", 7, None])
def test_language_tags_refused(tag: object) -> None:
    assert not is_language_tag(tag)


def test_every_layer_takes_the_rules_from_one_module() -> None:
    """Settings, content, import, mail and the subscription form share one object per rule."""
    from newsletter.mail import checks, render
    from newsletter.web import app, subscription

    assert render.CONTROL_CHARS is CONTROL_CHARS
    assert checks.CONTROL_CHARS is CONTROL_CHARS
    assert subscription.ALL_CONTROL_CHARS is ALL_CONTROL_CHARS
    assert app.is_language_tag is is_language_tag
