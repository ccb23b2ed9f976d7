"""The paper schema, declared once: one row per front-matter field of `papers/<id>.md`.

As pelican's metadata processors, each row says how a field is read (its converter,
whether it is required), and the table's order is the key order every written paper
file uses. Each row also says what a re-import may do to the field, so the importer
reads its rules from here rather than keeping its own lists. The converters are shared
with the issue reader.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from newsletter.errors import Problem
from newsletter.text import ALL_CONTROL_CHARS, CONTROL_CHARS, http_url, is_language_tag

PAPER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
ARXIV_ID = re.compile(r"^\d{4}\.\d{4,5}$")

# What a re-import does to a field of an existing paper file (the body is always kept):
KEEP = "keep"  # the editor owns it: written only when the file is created
FOLLOW = "follow"  # the source's value replaces the file's (counts and links that change)
FILL = "fill"  # added when the file lacks it (e.g. a listing paper gains its arXiv id)


class Expected(Exception):
    """Raised by a converter: the value is not what the field expects (e.g. 'a date YYYY-MM-DD')."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def clean_text(text: str) -> str:
    """Drop control characters (C0 except newline/tab, DEL, C1) and surrounding whitespace.

    Text such as '%%UNSUBSCRIBE_URL%%' stays as written: no content can produce the
    per-reader markers (see newsletter.mail.markers.Markers).
    """
    return CONTROL_CHARS.sub("", text).strip()


# ---------------------------------------------------------------------------
# Converters: each returns the typed value or raises Expected("<what was expected>").


def text(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise Expected("a non-empty string")
    return clean_text(v)


def optional_text(v: Any) -> str:
    return "" if v == "" else text(v)


def header_text(v: Any) -> str:
    """One line for a mail header or a page title (subject, title, preheader): no CR/LF, no controls."""
    if isinstance(v, str) and ALL_CONTROL_CHARS.search(v.strip()):
        raise Expected("one line of text (no line breaks, tabs or other control characters)")
    return text(v)


def optional_header_text(v: Any) -> str:
    return "" if v == "" else header_text(v)


def date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise Expected("a date YYYY-MM-DD")


def count(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise Expected("a whole number >= 0")
    return v


def positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise Expected("a whole number >= 1")
    return v


def url(v: Any) -> str:
    value = http_url(v)
    if value is None:
        raise Expected("an absolute http(s) URL")
    return value


def strings(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        # "Alice, Bob" would silently be one author; show the list form the editor meant
        items = [x.strip() for x in v.split(",") if x.strip()] or [v]
        raise Expected("a list like [" + ", ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]")
    if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) for x in v):
        raise Expected("a list of strings")
    return tuple(clean_text(str(x)) for x in v if str(x).strip())


def tags(v: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.lower() for t in strings(v)))


def paper_id(v: Any) -> str:
    value = text(v)
    if not PAPER_ID.match(value):
        raise Expected("lowercase letters, digits, '.', '_' or '-'")
    return value


def paper_ids(v: Any) -> tuple[str, ...]:
    ids = strings(v)
    if any(not PAPER_ID.match(i) for i in ids):
        raise Expected("a list of paper ids")
    return ids


def arxiv_id(v: Any) -> str:
    value = text(v)
    if not ARXIV_ID.match(value):
        raise Expected("an arXiv id like 2412.04003")
    return value


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Expected("true or false")
    return v


def language(v: Any) -> str:
    if not is_language_tag(v):
        raise Expected("a language tag like 'en' or 'ar'")
    return v


def one_of(*choices: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in choices:
            raise Expected("one of " + ", ".join(choices))
        return v

    return convert


# ---------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Field:
    """One front-matter field of a paper file."""

    name: str
    convert: Callable[[Any], Any] | None  # None: kept in the file, not read onto the Paper
    reimport: str = KEEP
    required: bool = False
    default: Any = None


PAPER_SCHEMA: tuple[Field, ...] = (
    Field("id", paper_id, required=True),
    Field("title", text, required=True),
    Field("authors", strings, FILL, default=()),
    Field("published", date, FILL),
    Field("url", url, FILL),
    Field("arxiv", arxiv_id, FILL),
    Field("pdf", url, FILL),
    Field("code", url, FOLLOW),
    Field("project_page", url, FOLLOW),
    Field("thumbnail", url, FOLLOW),
    Field("thumbnail_alt", text, FILL),
    Field("upvotes", count, FOLLOW),
    Field("tags", tags, default=()),
    Field("source", None),  # where the import found it: listing, hf, arxiv
    Field("imported", None),  # the day of the import
)
KEY_ORDER = tuple(f.name for f in PAPER_SCHEMA)  # written files' front matter, in this order


def fields_with(rule: str) -> tuple[str, ...]:
    """The names of the fields a re-import treats by `rule` (KEEP, FOLLOW or FILL), in table order."""
    return tuple(f.name for f in PAPER_SCHEMA if f.reimport == rule)


# ---------------------------------------------------------------------------
# Converting one file's front matter


@dataclass
class FrontMatterFields:
    """Front matter of one file being converted, collecting problems as it goes."""

    where: str
    data: dict[str, Any]
    problems: list[Problem]

    def get(self, key: str, convert: Callable[[Any], Any], *, required: bool = False, default: Any = None):
        if key not in self.data or self.data[key] is None:
            if required:
                self.problems.append(Problem(self.where, key, "missing (required)"))
            return default
        try:
            return convert(self.data[key])
        except Expected as exc:
            self.problems.append(Problem.expected(self.where, key, exc.expected, self.data[key]))
            return default

    def read(self, schema: tuple[Field, ...]) -> dict[str, Any]:
        """Every field the schema reads, converted; a field that fails becomes its default."""
        return {
            f.name: self.get(f.name, f.convert, required=f.required, default=f.default)
            for f in schema
            if f.convert is not None
        }
