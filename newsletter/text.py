"""Text rules every layer shares: which characters are dropped, what counts as a URL, a language tag or a subscriber tag.

Content, imported papers, settings, rendered mail and the subscription form all take text
from people or from other sites. Each rule is declared here once so that a paper file, a
settings file and a web form cannot disagree about what, say, a language tag is.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

# C0 controls except tab, newline and carriage return, DEL, and C1 controls: invisible in
# mail and on the web, and some trigger Gmail clipping. Text that keeps its lines (markdown
# bodies, abstracts, rendered mail) drops these.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Every C0 control, DEL and C1: for a one-line value (a reader's name from a form), where a
# tab or a line break is as unwanted as any other control character.
ALL_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A BCP 47 shaped tag: a 2-3 letter language, then subtags of 1-8 letters or digits
# ('en', 'ar', 'pt-BR', 'zh-Hant-TW'). Whether the language exists is not checked.
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


def http_url(value: Any) -> str | None:
    """The value, stripped, if it is an absolute http(s) URL without spaces inside; else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in value):
        return value
    return None


def is_language_tag(value: Any) -> bool:
    """Whether `value` is a language tag such as 'en' or 'pt-BR' (see LANGUAGE_TAG)."""
    return isinstance(value, str) and LANGUAGE_TAG.fullmatch(value) is not None


MAX_TAG = 100


def fold_tag(text: str) -> str:
    """A subscriber tag as it is stored and matched: lowercase, spaces collapsed, no commas.

    Raises ValueError with what was expected. Platforms spell tags as their users typed
    them (`VIP`, `Early adopter`); folding makes `vip` find both spellings, and the
    comma is the separator of every list that shows tags (export, `subscribers list`).
    """
    folded = " ".join(ALL_CONTROL_CHARS.sub(" ", text).split()).lower()
    if not folded:
        raise ValueError("expected a tag, got an empty one")
    if "," in folded:
        raise ValueError(f"expected a tag without commas, got {text!r}")
    if len(folded) > MAX_TAG:
        raise ValueError(f"expected a tag of at most {MAX_TAG} characters, got {len(folded)}")
    return folded
