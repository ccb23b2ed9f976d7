"""What a source says: candidate papers, refused items, and the cleaning of untrusted text.

Every parser (listing, Hugging Face, arXiv) turns a source into `Parsed`: candidates,
already cleaned and checked, plus refusals that say why an item cannot become a paper.
A source that cannot be used at all raises `SourceError`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from newsletter.content.papers import NOTE_HEADING
from newsletter.content.schema import KEY_ORDER
from newsletter.errors import NewsletterError
from newsletter.text import CONTROL_CHARS

SLUG_MAX = 60
MAX_TITLE = 500
MAX_TAGS_FROM_SOURCE = 5


class SourceError(NewsletterError):
    """A source cannot be used at all (unreachable, not the expected format)."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------------------
# What sources say


@dataclass
class Candidate:
    """One paper as a source describes it, already cleaned; `where` locates it for messages."""

    title: str
    abstract: str
    source: str
    where: str
    arxiv: str | None = None
    authors: list[str] = field(default_factory=list)
    published: dt.date | None = None
    url: str | None = None
    pdf: str | None = None
    code: str | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    thumbnail_alt: str | None = None
    upvotes: int | None = None
    rank: int | None = None
    tags: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """The front-matter values this candidate would write (empty ones left out)."""
        values = {k: getattr(self, k) for k in KEY_ORDER if hasattr(self, k)}
        return {k: v for k, v in values.items() if v not in (None, [], "")}


@dataclass(frozen=True)
class Refusal:
    where: str
    title: str | None
    reason: str


@dataclass
class Parsed:
    candidates: list[Candidate] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Cleaning untrusted text


def clean_line(text: str) -> str:
    """A title or name: control characters dropped, whitespace runs collapsed to one space."""
    return " ".join(CONTROL_CHARS.sub("", text).split())


def clean_paragraphs(text: str) -> str:
    """An abstract: control characters dropped, each paragraph on one line, one blank line between."""
    text = CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


# Characters that start Markdown's inline syntax (emphasis, code, links, autolinks and raw
# HTML, entities, escapes), and the starts of a paragraph that make it a block (heading,
# list, rule, code fence): an imported abstract is text, and shows as exactly that text.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>&])")
_MARKDOWN_BLOCK_START = re.compile(r"^([#+\-~=])|^(\d+)([.)])", re.MULTILINE)


def markdown_escaped(text: str) -> str:
    """`text` written as Markdown that renders back to exactly `text` (backslash escapes)."""
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", text)
    return _MARKDOWN_BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", escaped)


def normalise_title(title: str) -> str:
    """The dedupe key of a title: case, punctuation and spacing do not count."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return "".join(c for c in folded if c.isalnum())


def slugify(title: str, max_length: int = SLUG_MAX) -> str:
    """An ASCII slug from a title, cut at a word boundary; titles without Latin letters get a hash."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word
        if len(longer) > max_length:
            break
        slug = longer
    if not slug and words:  # one very long word
        slug = words[0][:max_length]
    if not slug:
        slug = "paper-" + hashlib.sha1(normalise_title(title).encode()).hexdigest()[:10]
    return slug


def normalise_tag(tag: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode().lower()
    return "-".join(re.findall(r"[a-z0-9.+]+", ascii_text))[:40].strip("-.")


def iso_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _check(candidate: Candidate) -> str | None:
    """Why a candidate cannot become a paper file, or None."""
    if not candidate.title:
        return "no title"
    if len(candidate.title) > MAX_TITLE:
        return f"title longer than {MAX_TITLE} characters ({len(candidate.title)})"
    if not candidate.abstract:
        return "no abstract"
    if NOTE_HEADING.search(candidate.abstract):
        return "the abstract contains a line that reads as the '## Editor's note' heading"
    return None


def accept(parsed: Parsed, candidate: Candidate) -> None:
    reason = _check(candidate)
    if reason:
        parsed.refused.append(Refusal(candidate.where, candidate.title or None, reason))
    else:
        parsed.candidates.append(candidate)


def arxiv_links(arxiv_id: str) -> dict[str, str]:
    return {"arxiv": arxiv_id, "pdf": f"https://arxiv.org/pdf/{arxiv_id}"}
