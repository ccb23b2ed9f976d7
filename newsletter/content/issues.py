"""Issues: `issues/<date>-<slug>.md` read into an `Issue`, with its paper selection rules.

The body is the editor's introduction; the front matter names papers (`include`,
`exclude`) and/or rules that pick them (`select`, see `newsletter.content.selection`),
and optionally the part of the list it goes to (`audience`: languages, tags).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.content import schema
from newsletter.content.freeze import Freeze
from newsletter.content.front_matter import check_unknown, error_count, read_front_matter
from newsletter.content.papers import clean_body
from newsletter.content.schema import FrontMatterFields
from newsletter.errors import Problem
from newsletter.text import MAX_TAG, fold_tag, is_language_tag

ISSUE_STEM = re.compile(r"^(\d{4}-\d{2}-\d{2})-([a-z0-9][a-z0-9-]*)$")
SORT_KEYS = ("upvotes", "rank", "published", "title", "id")
ISSUE_FIELDS = [
    "title",
    "subject",
    "date",
    "number",
    "preheader",
    "language",
    "status",
    "include",
    "exclude",
    "select",
    "send_at",
    "audience",
]
SELECT_FIELDS = ["tags", "since", "until", "min_upvotes", "has_code", "sort", "limit"]
AUDIENCE_FIELDS = ["languages", "tags"]


@dataclass(frozen=True)
class Selection:
    """An issue's `select` rules; every field optional."""

    tags: tuple[str, ...] = ()
    since: dt.date | None = None
    until: dt.date | None = None
    min_upvotes: int | None = None
    has_code: bool | None = None
    sort: str = "published"
    limit: int | None = None


@dataclass(frozen=True)
class Audience:
    """An issue's `audience`: the active readers it goes to. Either side may be empty (no condition).

    A reader is in it when their language matches one of `languages` by BCP 47 prefix
    (`ar` takes `ar-EG`; a reader without a language has the newsletter's) and, when
    `tags` are given, they carry at least one of them.
    """

    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.languages:
            parts.append("languages " + ", ".join(self.languages))
        if self.tags:
            parts.append("tags " + ", ".join(self.tags))
        return "; ".join(parts)


@dataclass(frozen=True)
class Issue:
    """One issue: `issues/<date>-<slug>.md`; the body is the editor's introduction."""

    slug: str  # the file stem, e.g. 2026-03-17-multilingual; used in every URL and output folder
    path: Path
    title: str
    subject: str
    date: dt.date
    number: int
    intro: str  # markdown
    language: str
    preheader: str = ""
    status: str = "draft"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    select: Selection | None = None  # None: no rules, only `include`
    frozen: Freeze | None = None  # what it was sent with (`<slug>.sent.toml`): its papers from then on
    audience: Audience | None = None  # None: every active reader
    # Set on a translation (`Translations.issue_in`): the language of the issue it translates.
    original_language: str | None = None
    send_at: dt.datetime | None = None  # aware: when `send --due` may mail it (once published)

    @property
    def published(self) -> bool:
        return self.status == "published"

    @property
    def is_translation(self) -> bool:
        return self.original_language is not None

    @property
    def web_path(self) -> str:
        """The issue's page in the archive, relative to the site root.

        An issue in its own language is at `issues/<slug>/`; a translation of it at
        `<lang>/issues/<slug>/` (language tags never clash with the site's own folders:
        they start with two or three letters, the folders with more).
        """
        if self.original_language is None:
            return f"issues/{self.slug}/"
        return f"{self.language}/issues/{self.slug}/"

    def web_url(self, settings: Settings) -> str:
        """The issue's page in the archive: the email's "view in browser" link (a translation's own page)."""
        return settings.url(self.web_path)


def zoned_datetime(v: Any) -> dt.datetime:
    """An ISO 8601 time with an explicit zone (`2026-12-01T08:00:00+01:00`, or `...Z` for UTC).

    A time without a zone is refused: the machine that runs `send --due` (a CI runner, a
    server in another country) would read it in its own zone, and send hours early or late.
    """
    wanted = "an ISO 8601 time with a zone, like 2026-12-01T08:00:00+01:00"
    if isinstance(v, dt.datetime):
        value = v
    elif isinstance(v, str):
        text = v.strip()
        text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise schema.Expected(wanted) from None
        if "T" not in text.upper() and " " not in text:
            raise schema.Expected(wanted)  # a bare date: which hour?
    else:
        raise schema.Expected(wanted)
    if value.tzinfo is None or value.utcoffset() is None:
        raise schema.Expected(wanted + " (this one has no zone)")
    return value


def read_issue(
    path: Path, settings: Settings, problems: list[Problem], where: str | None = None
) -> Issue | None:
    where = where or path.name
    match = ISSUE_STEM.match(path.stem)
    if not match:
        problems.append(
            Problem.expected(where, None, "a file name like issues/2026-03-17-some-slug.md", path.name)
        )
        return None
    split = read_front_matter(path, problems, where)
    if split is None:
        return None
    data, body = split
    before = error_count(problems)
    check_unknown(where, data, ISSUE_FIELDS, problems)
    f = FrontMatterFields(where, data, problems)
    title = f.get("title", schema.header_text, required=True)
    date = f.get("date", schema.date, required=True)
    if date is not None and date.isoformat() != match.group(1):
        problems.append(
            Problem(
                where, "date", f"must match the file name: expected {match.group(1)}, got {date.isoformat()}"
            )
        )
    select = None
    raw_select = data.get("select")
    if raw_select is not None:
        if not isinstance(raw_select, dict):
            problems.append(Problem.expected(where, "select", "a mapping of rules", raw_select))
        else:
            check_unknown(
                where,
                {f"select.{k}": v for k, v in raw_select.items()},
                [f"select.{k}" for k in SELECT_FIELDS],
                problems,
                strict=True,  # an ignored rule would send unrelated papers
            )
            s = FrontMatterFields(where, {f"select.{k}": v for k, v in raw_select.items()}, problems)
            select = Selection(
                tags=s.get("select.tags", schema.tags, default=()),
                since=s.get("select.since", schema.date),
                until=s.get("select.until", schema.date),
                min_upvotes=s.get("select.min_upvotes", schema.count),
                has_code=s.get("select.has_code", schema.boolean),
                sort=s.get("select.sort", schema.one_of(*SORT_KEYS), default="published"),
                limit=s.get("select.limit", schema.positive_int),
            )
            if select.since and select.until and select.since > select.until:
                problems.append(
                    Problem(where, "select.until", f"must not be before select.since ({select.since})")
                )
    audience = read_audience(where, data.get("audience"), problems)
    issue_kwargs = dict(
        subject=f.get("subject", schema.header_text, default=title),
        number=f.get("number", schema.positive_int, required=True),
        preheader=f.get("preheader", schema.optional_header_text, default=""),
        language=f.get("language", schema.language, default=settings.language),
        status=f.get("status", schema.one_of("draft", "published"), default="draft"),
        include=f.get("include", schema.paper_ids, default=()),
        exclude=f.get("exclude", schema.paper_ids, default=()),
        send_at=f.get("send_at", zoned_datetime),
    )
    if not issue_kwargs["include"] and select is None and "include" not in data:
        problems.append(
            Problem(where, "include", "expected paper ids in 'include' or rules in 'select', found neither")
        )
    if error_count(problems) > before:
        return None
    return Issue(
        slug=path.stem,
        path=path,
        title=title,
        date=date,
        intro=clean_body(body),
        select=select,
        audience=audience,
        **issue_kwargs,
    )


def _language_list(v: object) -> tuple[str, ...]:
    values = schema.strings(v)
    if not values or not all(is_language_tag(x) for x in values):
        raise schema.Expected("a list of language tags like [ar, de]")
    return tuple(dict.fromkeys(values))


def _tag_list(v: object) -> tuple[str, ...]:
    expected = f"a list of subscriber tags like [vip] (no commas, at most {MAX_TAG} characters each)"
    try:
        values = tuple(dict.fromkeys(fold_tag(t) for t in schema.strings(v)))
    except ValueError:
        raise schema.Expected(expected) from None
    if not values:
        raise schema.Expected(expected)
    return values


def read_audience(where: str, raw: object, problems: list[Problem]) -> Audience | None:
    """The `audience:` mapping, strictly: unknown keys and wrong types are errors (they would mail the wrong people)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        problems.append(Problem.expected(where, "audience", "a mapping with languages and/or tags", raw))
        return None
    fields = {f"audience.{k}": v for k, v in raw.items()}
    before = error_count(problems)
    check_unknown(where, fields, [f"audience.{k}" for k in AUDIENCE_FIELDS], problems, strict=True)
    a = FrontMatterFields(where, fields, problems)
    languages = a.get("audience.languages", _language_list, default=())
    tags = a.get("audience.tags", _tag_list, default=())
    if error_count(problems) > before:
        return None
    if not languages and not tags:
        problems.append(Problem.expected(where, "audience", "languages and/or tags", raw))
        return None
    return Audience(languages=languages, tags=tags)
