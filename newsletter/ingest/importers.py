"""Paper sources → paper files: plain listings, Hugging Face daily-papers JSON, arXiv Atom.

An import runs in two phases so that a failed import writes nothing:

1. read every source and parse every item (a source that cannot be used at all is an
   error; a single unusable item is *refused* with a reason and the rest go on);
2. plan what each item does to `papers/` (create, update, unchanged), then write every
   changed file to a temporary file and only then move them all into place.

Re-imports never overwrite what an editor owns. The rule is deliberately simple:
fields in `EDITOR_OWNED` (and the body: abstract and editor's note) are written only
when a file is created; `VOLATILE` fields follow the source; `FILL_IF_MISSING` fields
are added when the file lacks them (e.g. a listing paper gains its arXiv id).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import re
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from http.client import HTTPException, IncompleteRead
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from newsletter import __version__
from newsletter.atomic_files import stage_file
from newsletter.content.library import ARXIV_ID, NOTE_HEADING, split_note
from newsletter.content.library import _loader as content_yaml_loader
from newsletter.errors import NewsletterError, Problem

FORMATS = ("listing", "hf", "arxiv")
HF_DAILY_PAPERS = "https://huggingface.co/api/daily_papers"
ARXIV_API = "https://export.arxiv.org/api/query"
MAX_BODY_BYTES = 20 * 1024 * 1024  # a daily listing is ~100 kB; more means a wrong URL

# The front-matter order every written file uses (unknown keys an editor added follow, in their order).
KEY_ORDER = (
    "id", "title", "authors", "published", "url", "arxiv", "pdf", "code", "project_page",
    "thumbnail", "thumbnail_alt", "upvotes", "tags", "source", "imported",
)  # fmt: skip
EDITOR_OWNED = frozenset({"id", "title", "tags", "source", "imported"})  # and the body
VOLATILE = ("upvotes", "code", "project_page", "thumbnail")
FILL_IF_MISSING = ("authors", "published", "url", "arxiv", "pdf", "thumbnail_alt")

ARXIV_ABS = re.compile(r"arxiv\.org/abs/(?P<id>[^\s?#]+?)(?:v\d+)?$")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but \t \n, DEL, C1
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, start=1)}
DATE_LINE = re.compile(
    r"^(?:(?P<m1>[A-Za-z]{3,9})\.?\s+(?P<d1>\d{1,2})|(?P<d2>\d{1,2})\s+(?P<m2>[A-Za-z]{3,9})\.?)"
    r"(?:,?\s+(?P<y>\d{4}))?$"
)
SLUG_MAX = 60


def _user_agent() -> str:
    """'newsletter/VERSION', plus the project's home page when the installed package declares one."""
    from importlib import metadata

    try:
        meta = metadata.metadata("newsletter")
    except metadata.PackageNotFoundError:
        return f"newsletter/{__version__}"
    urls = [u.partition(",")[2].strip() for u in meta.get_all("Project-URL") or []]
    urls.append(meta.get("Home-page") or "")
    home = next((u for u in urls if u.startswith("https://")), None)
    return f"newsletter/{__version__}" + (f" (+{home})" if home else "")


USER_AGENT = _user_agent()
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


def _http_url(value: Any) -> str | None:
    """The value if it is an absolute http(s) URL, else None (a source may carry anything)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in value):
        return value
    return None


def _iso_date(value: Any) -> dt.date | None:
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


def _accept(parsed: Parsed, candidate: Candidate) -> None:
    reason = _check(candidate)
    if reason:
        parsed.refused.append(Refusal(candidate.where, candidate.title or None, reason))
    else:
        parsed.candidates.append(candidate)


def arxiv_links(arxiv_id: str) -> dict[str, str]:
    return {"arxiv": arxiv_id, "pdf": f"https://arxiv.org/pdf/{arxiv_id}"}


# ---------------------------------------------------------------------------
# Parsers


def _is_abstract(block: str) -> bool:
    """Abstracts are paragraphs of sentences; titles, dates and site boilerplate are short lines.

    Titles run up to ~20 words and rarely end with a full stop; a short final paragraph of an
    abstract still does.
    """
    words = len(block.split())
    return words >= 25 or (words >= 12 and block.endswith("."))


def _date_line(block: str) -> tuple[int, int] | None:
    match = DATE_LINE.match(block)
    if not match:
        return None
    month = MONTHS.get((match["m1"] or match["m2"])[:3].lower())
    day = int(match["d1"] or match["d2"])
    if month is None:
        return None
    try:
        dt.date(2000, month, day)  # a leap year, so Feb 29 passes
    except ValueError:
        return None
    return month, day


def most_recent(month: int, day: int, today: dt.date) -> dt.date:
    """The latest date with this month and day that is not after today."""
    year = today.year
    while True:
        try:
            candidate = dt.date(year, month, day)
        except ValueError:  # Feb 29 in a common year
            year -= 1
            continue
        if candidate <= today:
            return candidate
        year -= 1


def parse_listing(
    text: str, *, where: str, date: dt.date | None = None, today: dt.date | None = None
) -> Parsed:
    """A plain listing: header lines, a date line ("Mar 17"), then title / abstract paragraphs.

    The header is whatever comes before the first date line, or, without one, before the
    first short block that is followed by an abstract-like paragraph. A date line without
    a year takes `date` when given, else its most recent past occurrence.
    """
    today = today or dt.date.today()
    parsed = Parsed()
    text = CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).removeprefix("\ufeff")
    blocks: list[tuple[int, str, str]] = []  # (line number, one-line text, raw text)
    line_no = 1
    for raw in re.split(r"(\n[ \t]*\n)", text):
        if raw.strip() and not raw.startswith("\n"):
            offset = len(raw) - len(raw.lstrip("\n"))
            blocks.append((line_no + offset, " ".join(raw.split()), raw))
        line_no += raw.count("\n")

    start = next((i for i, (_, b, _) in enumerate(blocks) if _date_line(b)), None)
    if start is None:
        start = next(
            (
                i
                for i in range(len(blocks) - 1)
                if not _is_abstract(blocks[i][1]) and _is_abstract(blocks[i + 1][1])
            ),
            None,
        )
        if start is None:
            raise SourceError(
                where, "expected a listing of titles each followed by an abstract paragraph, found none"
            )
    header = [b for _, b, _ in blocks[:start]]
    if header:
        parsed.notes.append(f"{where}: skipped {len(header)} header line(s): " + ", ".join(map(repr, header)))

    current_date = date
    title: tuple[int, str] | None = None
    previous: Candidate | None = None
    for line, block, raw in blocks[start:]:
        day = _date_line(block)
        if day is not None:
            if title is not None:
                parsed.refused.append(
                    Refusal(f"{where}:{title[0]}", title[1], "no abstract follows the title")
                )
                title = None
            if date is not None:
                current_date = date
                if (date.month, date.day) != day:
                    parsed.notes.append(f"{where}:{line}: the listing says {block!r}; used --date {date}")
            else:
                current_date = most_recent(*day, today)
                parsed.notes.append(
                    f"{where}:{line}: {block!r} has no year; assumed {current_date} "
                    f"(its most recent past occurrence; pass --date to set it)"
                )
            previous = None
            continue
        if _is_abstract(block):
            if title is None and previous is not None:
                # a second paragraph of the previous abstract
                previous.abstract += "\n\n" + clean_paragraphs(raw)
                continue
            if title is None:
                parsed.refused.append(Refusal(f"{where}:{line}", None, "abstract without a title before it"))
                continue
            candidate = Candidate(
                title=clean_line(title[1]),
                abstract=clean_paragraphs(raw),
                source="listing",
                where=f"{where}:{title[0]}",
                published=current_date,
            )
            parsed.candidates.append(candidate)
            previous, title = candidate, None
        else:
            if title is not None:
                parsed.refused.append(
                    Refusal(f"{where}:{title[0]}", title[1], "no abstract follows the title")
                )
            title, previous = (line, block), None
    if title is not None:
        parsed.refused.append(Refusal(f"{where}:{title[0]}", title[1], "no abstract follows the title"))
    # Validate after multi-paragraph abstracts are complete.
    candidates, parsed.candidates = parsed.candidates, []
    for candidate in candidates:
        _accept(parsed, candidate)
    return parsed


def parse_hf(data: Any, *, where: str) -> Parsed:
    """Hugging Face daily-papers JSON (already decoded): a list of {paper: {...}, thumbnail, ...}."""
    if isinstance(data, dict) and isinstance(data.get("papers"), list):
        data = data["papers"]
    if not isinstance(data, list):
        raise SourceError(where, f"expected a JSON list of daily papers, got {_json_kind(data)}")
    parsed = Parsed()
    for index, item in enumerate(data):
        item_where = f"{where}[{index}]"
        if not isinstance(item, dict):
            parsed.refused.append(Refusal(item_where, None, f"expected an object, got {_json_kind(item)}"))
            continue
        paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
        raw_title = paper.get("title") or item.get("title")
        title = clean_line(raw_title) if isinstance(raw_title, str) else ""
        raw_id = paper.get("id")
        arxiv = raw_id.strip() if isinstance(raw_id, str) else None
        if raw_id is not None and (arxiv is None or not ARXIV_ID.match(arxiv)):
            # A JSON number cannot be an id: 2401.10010 arrives as 2401.1001.
            kind = "" if isinstance(raw_id, str) else f" ({_json_kind(raw_id)} in JSON, not a string)"
            parsed.refused.append(
                Refusal(
                    item_where, title or None, f"expected an arXiv id like 2412.04003, got {raw_id!r}{kind}"
                )
            )
            continue
        summary = paper.get("summary") or item.get("summary")
        authors = [
            clean_line(a["name"])
            for a in paper.get("authors") or []
            if isinstance(a, dict)
            and isinstance(a.get("name"), str)
            and a["name"].strip()
            and not a.get("hidden")
        ]
        upvotes = paper.get("upvotes")
        keywords = paper.get("ai_keywords") or []
        tags = list(dict.fromkeys(t for k in keywords if isinstance(k, str) and (t := normalise_tag(k))))
        thumbnail = _http_url(item.get("thumbnail"))
        candidate = Candidate(
            title=title,
            abstract=clean_paragraphs(summary) if isinstance(summary, str) else "",
            source="hf",
            where=item_where,
            authors=authors,
            published=_iso_date(paper.get("publishedAt")) or _iso_date(item.get("publishedAt")),
            url=f"https://huggingface.co/papers/{arxiv}" if arxiv else None,
            code=_http_url(paper.get("githubRepo")),
            project_page=_http_url(paper.get("projectPage")),
            thumbnail=thumbnail,
            thumbnail_alt=f"Thumbnail for {title}" if thumbnail and title else None,
            upvotes=_count(upvotes),
            tags=tags[:MAX_TAGS_FROM_SOURCE],
        )
        if arxiv:
            candidate.arxiv, candidate.pdf = arxiv, arxiv_links(arxiv)["pdf"]
        _accept(parsed, candidate)
    return parsed


def _count(value: Any) -> int | None:
    """A whole number >= 0 from JSON (a number, or digits in a string), else None."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _json_kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        type(None): "null",
        int: "a number",
        float: "a number",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)


ATOM = "{http://www.w3.org/2005/Atom}"


def parse_arxiv(body: bytes, *, where: str) -> Parsed:
    """An arXiv API Atom feed."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        root = SafeET.fromstring(body)
    except DefusedXmlException as exc:
        raise SourceError(where, f"refused unsafe XML ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise SourceError(where, f"not valid XML: {exc}") from None
    if root.tag != f"{ATOM}feed":
        raise SourceError(where, f"expected an Atom <feed> (arXiv API), got <{root.tag.rpartition('}')[2]}>")
    parsed = Parsed()
    for index, entry in enumerate(root.findall(f"{ATOM}entry")):
        item_where = f"{where}:entry[{index}]"
        entry_id = (entry.findtext(f"{ATOM}id") or "").strip()
        title = clean_line(entry.findtext(f"{ATOM}title") or "")
        summary = entry.findtext(f"{ATOM}summary") or ""
        if "/api/errors" in entry_id:  # how the arXiv API reports a bad query
            raise SourceError(where, f"the arXiv API reported an error: {clean_line(summary) or title}")
        match = ARXIV_ABS.search(entry_id)
        if not match:
            parsed.refused.append(
                Refusal(item_where, title or None, f"expected an arXiv abs URL as <id>, got {entry_id!r}")
            )
            continue
        arxiv = match["id"]
        links = {
            (link.get("title") or link.get("rel") or ""): _http_url(link.get("href"))
            for link in entry.findall(f"{ATOM}link")
        }
        # An abstract from the arXiv API wraps lines at ~80 columns: one paragraph.
        abstract = " ".join(CONTROL_CHARS.sub("", summary).split())
        candidate = Candidate(
            title=title,
            abstract=abstract,
            source="arxiv",
            where=item_where,
            authors=[
                name
                for a in entry.findall(f"{ATOM}author")
                if (name := clean_line(a.findtext(f"{ATOM}name") or ""))
            ],
            published=_iso_date((entry.findtext(f"{ATOM}published") or "").strip()),
            tags=list(
                dict.fromkeys(
                    t for c in entry.findall(f"{ATOM}category") if (t := normalise_tag(c.get("term") or ""))
                )
            )[:MAX_TAGS_FROM_SOURCE],
        )
        if ARXIV_ID.match(arxiv):
            candidate.arxiv = arxiv
            candidate.url = f"https://arxiv.org/abs/{arxiv}"
            candidate.pdf = f"https://arxiv.org/pdf/{arxiv}"
        else:  # old-style ids (hep-th/9901001) are not paper ids; keep the links only
            candidate.url = f"https://arxiv.org/abs/{arxiv}"
            candidate.pdf = links.get("pdf") or f"https://arxiv.org/pdf/{arxiv}"
        _accept(parsed, candidate)
    return parsed


def detect_format(body: bytes) -> str:
    """'hf' for a JSON list, 'arxiv' for Atom XML, else 'listing'; HTML pages are refused."""
    head = body[:512].lstrip().lower()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith((b"[", b"{")):
        return "hf"
    if head.startswith((b"<!doctype html", b"<html")):
        raise SourceError(
            "", "got an HTML page; expected Hugging Face JSON, arXiv Atom XML or a plain-text listing"
        )
    if head.startswith(b"<?xml") or head.startswith(b"<feed"):
        return "arxiv"
    return "listing"


def parse_source(
    body: bytes,
    fmt: str,
    *,
    where: str,
    content_type: str | None = None,
    date: dt.date | None = None,
    today: dt.date | None = None,
) -> Parsed:
    """Decode and parse one source's bytes in the given format ('auto' detects it)."""
    if fmt == "auto":
        try:
            fmt = detect_format(body)
        except SourceError as exc:
            raise SourceError(where, exc.reason) from None
    looks_html = body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))
    if fmt == "arxiv":
        if looks_html:
            raise SourceError(where, f"expected arXiv Atom XML, got an HTML page{_ctype(content_type)}")
        return _date_ignored(parse_arxiv(body, where=where), where, date)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(where, f"expected UTF-8 text, got an invalid byte at offset {exc.start}") from None
    if fmt == "hf":
        if looks_html:
            raise SourceError(
                where, f"expected JSON (Hugging Face daily papers), got an HTML page{_ctype(content_type)}"
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(
                where, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        return _date_ignored(parse_hf(data, where=where), where, date)
    if fmt == "listing":
        if looks_html:
            raise SourceError(where, f"expected a plain-text listing, got an HTML page{_ctype(content_type)}")
        return parse_listing(text, where=where, date=date, today=today)
    raise SourceError(where, f"expected a format among {', '.join(FORMATS)} or auto, got {fmt!r}")


def _date_ignored(parsed: Parsed, where: str, date: dt.date | None) -> Parsed:
    if date is not None:
        parsed.notes.append(f"{where}: --date {date} ignored: its items carry their own dates")
    return parsed


def _ctype(content_type: str | None) -> str:
    return f" (Content-Type: {content_type})" if content_type else ""


# ---------------------------------------------------------------------------
# Reading sources


@dataclass(frozen=True)
class Fetched:
    body: bytes
    content_type: str | None = None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib also follows them to ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise SourceError(req.full_url, f"expected a redirect to an http(s) URL, got one to {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is ignored)."""
    if value and value.strip().isascii() and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    return None


def fetch(
    url: str,
    *,
    timeout: float = 30.0,
    deadline: float = 120.0,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """GET a URL; retry 429, 5xx, connection errors and truncated bodies `retries` times with backoff.

    `timeout` bounds each connect and read; `deadline` bounds one whole attempt, so a
    server that trickles bytes cannot hold the import forever. Raises SourceError naming
    the URL, what was expected and what came back.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    attempts = retries + 1
    last = ""
    for attempt in range(1, attempts + 1):
        wait = backoff * 2 ** (attempt - 1)
        try:
            with opener.open(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                body, last = _read_body(response, time.monotonic() + deadline, deadline)
                if len(body) > MAX_BODY_BYTES:
                    raise SourceError(
                        url, f"response larger than {MAX_BODY_BYTES // 2**20} MB; expected a paper listing"
                    )
                if not last and length is not None and length.isdigit() and int(length) != len(body):
                    last = (
                        f"truncated response: expected {int(length)} bytes (Content-Length), got {len(body)}"
                    )
                if not last:
                    return Fetched(body, response.headers.get("Content-Type"))
        except urllib.error.HTTPError as exc:
            status = f"HTTP {exc.code} {exc.reason}"
            exc.close()
            if exc.code not in RETRY_STATUSES:
                raise SourceError(url, f"expected HTTP 200, got {status}") from None
            last = f"expected HTTP 200, got {status}"
            wait = max(wait, _retry_after(exc.headers.get("Retry-After")) or 0.0)
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                last = f"no answer within {timeout:g} s (timeout)"
            else:
                last = f"cannot connect: {reason}"
        if attempt < attempts:
            sleep(wait)
    raise SourceError(url, f"{last} (after {attempts} attempts)")


def _read_body(response: Any, until: float, deadline: float) -> tuple[bytes, str]:
    """The body (at most MAX_BODY_BYTES + 1 bytes) and why it is incomplete ('' when it is not)."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        if time.monotonic() > until:
            return b"".join(chunks), f"the response took longer than {deadline:g} s"
        try:
            chunk = response.read1(min(64 * 1024, MAX_BODY_BYTES + 1 - size))  # one recv: see `until`
        except IncompleteRead as exc:  # the connection closed early (also without Content-Length)
            got = size + len(exc.partial)
            return b"".join(
                chunks
            ) + exc.partial, f"truncated response: the connection closed after {got} bytes"
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), ""


def read_source(source: str, **fetch_options: Any) -> Fetched:
    """The bytes of a file path or an http(s) URL."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return fetch(source, **fetch_options)
    if "://" in source:
        raise SourceError(source, f"expected a file or an http(s) URL, got a {scheme}: URL")
    path = Path(source)
    try:
        return Fetched(path.read_bytes())
    except FileNotFoundError:
        raise SourceError(source, "no such file") from None
    except IsADirectoryError:
        raise SourceError(source, "expected a file, got a folder") from None
    except OSError as exc:
        raise SourceError(source, f"cannot read: {exc.strerror}") from None


def hf_url(day: dt.date) -> str:
    return f"{HF_DAILY_PAPERS}?date={day.isoformat()}"


def arxiv_url(query: str, max_results: int = 50) -> str:
    return (
        f"{ARXIV_API}?search_query={quote(query, safe=':')}&start=0&max_results={max_results}"
        "&sortBy=submittedDate&sortOrder=descending"
    )


# ---------------------------------------------------------------------------
# Paper files


@dataclass
class PaperFile:
    """A paper file as found on disk (or planned): front matter and body.

    For a file read from disk, `text` is its exact text and `front` locates the front
    matter in it, so that an update rewrites only the lines of the keys it changes.
    """

    path: Path
    meta: dict[str, Any]
    body: str
    text: str | None = None  # None: planned in this import
    front: FrontMatter | None = None

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def title(self) -> str:
        value = self.meta.get("title")
        return value if isinstance(value, str) else ""

    @property
    def arxiv(self) -> str | None:
        value = self.meta.get("arxiv")
        if isinstance(value, str) and ARXIV_ID.match(value):
            return value
        return self.id if ARXIV_ID.match(self.id) else None

    @property
    def abstract(self) -> str:
        return split_note(self.body)[0]


@dataclass(frozen=True)
class FrontMatter:
    """Where the front matter sits in a file's text, and where each top-level key's lines are."""

    start: int  # offset of the first front-matter line
    end: int  # offset of the closing '---' line
    spans: dict[str, tuple[int, int, str]]  # key -> (first line, last line, comment kept after the value)


def render_paper(meta: dict[str, Any], body: str) -> str:
    """The file text: front matter in KEY_ORDER (then any other keys), a blank line, the body."""
    ordered = {k: meta[k] for k in KEY_ORDER if k in meta}
    ordered.update((k, v) for k, v in meta.items() if k not in ordered)
    return f"---\n{_dump(ordered)}---\n\n{body.strip()}\n"


def _dump(mapping: dict[str, Any]) -> str:
    import yaml

    # not libyaml's dumper: it writes emoji as \U escapes, which editors then read in titles
    return yaml.safe_dump(mapping, allow_unicode=True, sort_keys=False, width=2**30, default_flow_style=False)


def updated_text(paper: PaperFile, changed: Sequence[str]) -> str:
    """The file's text with only the `changed` keys rewritten (or added before the closing '---').

    Everything else an editor wrote stays byte for byte: comments, quoting, flow lists,
    key order, the body. A front matter that is not a block mapping is written anew.
    """
    if paper.text is None or paper.front is None:
        return render_paper(paper.meta, paper.body)
    front = paper.text[paper.front.start : paper.front.end]
    lines = front.splitlines(keepends=True)
    newline = "\r\n" if front.endswith("\r\n") or "\r\n" in front[:200] else "\n"
    added: list[str] = []
    for key in sorted(changed, key=lambda k: paper.front.spans.get(k, (-1, -1, ""))[0], reverse=True):
        new = _dump({key: paper.meta[key]}).replace("\n", newline)
        span = paper.front.spans.get(key)
        if span is None:
            added.append(new)
            continue
        first, last, comment = span
        if comment and new.count("\n") == 1:
            new = f"{new.rstrip()}  {comment}{newline}"
        lines[first : last + 1] = [new]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    return paper.text[: paper.front.start] + "".join(lines + added) + paper.text[paper.front.end :]


@functools.lru_cache(maxsize=1)
def _yaml_loader() -> type:
    """The content module's loader (ids and dates stay text), on libyaml when it is installed.

    Re-imports read every paper file; the pure-Python parser takes ~7 ms a file.
    """
    import yaml

    base = content_yaml_loader()
    if not getattr(yaml, "__with_libyaml__", False):
        return base

    class FastLoader(yaml.CSafeLoader):
        yaml_implicit_resolvers = base.yaml_implicit_resolvers

    return FastLoader


FRONT_BOUNDARY = re.compile(r"^-{3,}[ \t\r]*$", re.MULTILINE)


def read_paper_file(path: Path) -> PaperFile:
    """Read an existing paper file the way `newsletter.content.library` reads it (ids and dates stay text)."""
    import yaml

    where = path.name
    try:
        text = path.read_bytes().decode("utf-8")  # as is: an update keeps the file's line endings
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(where, f"cannot read an existing paper file: {exc}") from None
    bom = len(text) - len(text.removeprefix("\ufeff"))
    opening = FRONT_BOUNDARY.match(text, bom)
    closing = FRONT_BOUNDARY.search(text, opening.end()) if opening else None
    meta = node = None
    if opening and closing:
        start = opening.end() + 1 if text[opening.end() : opening.end() + 1] == "\n" else opening.end()
        raw = text[start : closing.start()]
        loader = _yaml_loader()(raw)
        try:
            node = loader.get_single_node()
            meta = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError:
            meta = None
        finally:
            loader.dispose()
    if not isinstance(meta, dict):
        raise SourceError(
            where, "expected front matter between '---' lines; fix this file first (`newsletter check`) "
            "so the import can tell whether it already has these papers"
        )  # fmt: skip
    front = None
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        front = FrontMatter(start, closing.start(), _key_spans(raw, node))
    body = text[closing.end() :].lstrip("\r\n")
    return PaperFile(path, meta, body.strip(), text=text, front=front)


def _key_spans(raw: str, node: Any) -> dict[str, tuple[int, int, str]]:
    """Each top-level key's line range in the front matter, and a comment after a one-line value."""
    import yaml

    lines = raw.splitlines()
    spans: dict[str, tuple[int, int, str]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        first = key.start_mark.line
        last, column = value.end_mark.line, value.end_mark.column
        comment = ""
        if column == 0 or last >= len(lines):  # a block value ends where the next line starts
            last -= 1
            while last > first and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
                last -= 1  # comments and blank lines after a block belong to what follows
        else:
            rest = lines[last][column:].strip()
            comment = rest if rest.startswith("#") else ""
        spans[str(key.value)] = (first, max(first, last), comment)
    return spans


def load_paper_files(papers_dir: Path) -> list[PaperFile]:
    if not papers_dir.is_dir():
        return []
    return [read_paper_file(p) for p in sorted(papers_dir.glob("*.md"))]


# ---------------------------------------------------------------------------
# Planning and writing


@dataclass(frozen=True)
class Change:
    id: str
    title: str
    fields: tuple[str, ...] = ()  # what changed (for updates)
    where: str = ""  # the source item


@dataclass
class ImportReport:
    created: list[Change] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        text = (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.refused)} refused"
        )
        return text + (" (dry run: nothing written)" if self.dry_run else "")


def _merge(existing: PaperFile, candidate: Candidate) -> list[str]:
    """Bring the source's volatile fields into an existing paper; return the changed keys."""
    incoming = candidate.fields()
    changed: list[str] = []
    for key in VOLATILE:
        if key in incoming and existing.meta.get(key) != incoming[key]:
            existing.meta[key] = incoming[key]
            changed.append(key)
    for key in FILL_IF_MISSING:
        if key in incoming and existing.meta.get(key) in (None, "", []):
            if key == "arxiv" and ARXIV_ID.match(existing.id) and existing.id != incoming[key]:
                continue  # an arXiv-named file keeps its own id
            if key == "thumbnail_alt":
                if not existing.meta.get("thumbnail"):
                    continue
                value = f"Thumbnail for {existing.title}" if existing.title else incoming[key]
            else:
                value = incoming[key]
            existing.meta[key] = value
            changed.append(key)
    return changed


def _new_file(
    papers_dir: Path, candidate: Candidate, taken: set[str], tags: Sequence[str], today: dt.date
) -> PaperFile:
    if candidate.arxiv:
        pid = candidate.arxiv
    else:
        base = slugify(candidate.title)
        pid, n = base, 2
        while pid in taken:
            pid, n = f"{base}-{n}", n + 1
    meta = {"id": pid, **candidate.fields()}
    meta.pop("tags", None)
    all_tags = list(dict.fromkeys([*candidate.tags, *(normalise_tag(t) for t in tags)]))
    if all_tags:
        meta["tags"] = [t for t in all_tags if t]
    meta["source"] = candidate.source
    meta["imported"] = today
    return PaperFile(papers_dir / f"{pid}.md", meta, markdown_escaped(candidate.abstract))


@dataclass
class ImportPlan:
    report: ImportReport
    writes: dict[Path, str]  # path -> new text
    expected: dict[Path, str | None] = field(default_factory=dict)  # path -> text read (None: new file)


MIN_ABSTRACT_KEY = 200  # shorter abstracts are too generic to identify a paper


def _abstract_key(abstract: str) -> str | None:
    key = normalise_title(abstract)
    return key if len(key) >= MIN_ABSTRACT_KEY else None


def plan_import(
    papers_dir: Path,
    parsed: Iterable[Parsed],
    *,
    tags: Sequence[str] = (),
    today: dt.date | None = None,
) -> ImportPlan:
    """Match every candidate to an existing or earlier-planned paper; decide each file's new text.

    A candidate is the same paper as a file with its arXiv id, else with its title (case,
    spacing and punctuation aside), else — for a source without ids, after an editor
    changed the title — with its abstract.
    """
    today = today or dt.date.today()
    report = ImportReport()
    files = load_paper_files(papers_dir)
    by_arxiv: dict[str, PaperFile] = {}
    by_title: dict[str, PaperFile] = {}
    by_abstract: dict[str, PaperFile] = {}
    taken = {f.id for f in files}

    def index(f: PaperFile) -> None:
        if f.arxiv:
            by_arxiv.setdefault(f.arxiv, f)
        if f.title:
            by_title.setdefault(normalise_title(f.title), f)
        if key := _abstract_key(f.abstract):
            by_abstract.setdefault(key, f)

    for f in files:
        index(f)
    created: dict[Path, tuple[PaperFile, Change]] = {}
    touched: dict[Path, tuple[PaperFile, list[str], Change]] = {}
    for source in parsed:
        report.refused.extend(source.refused)
        report.notes.extend(source.notes)
        for candidate in source.candidates:
            match = by_arxiv.get(candidate.arxiv) if candidate.arxiv else None
            if match is None:
                match = by_title.get(normalise_title(candidate.title))
                if match is None and not candidate.arxiv and (key := _abstract_key(candidate.abstract)):
                    match = by_abstract.get(key)
                if match is not None and candidate.arxiv and match.arxiv and match.arxiv != candidate.arxiv:
                    match = None  # same title, different papers
            if match is None:
                new = _new_file(papers_dir, candidate, taken, tags, today)
                if new.id in taken:  # an arXiv id whose file exists but could not be matched
                    report.refused.append(
                        Refusal(
                            candidate.where, candidate.title, f"papers/{new.id}.md exists with another title"
                        )
                    )
                    continue
                taken.add(new.id)
                index(new)
                created[new.path] = (new, Change(new.id, new.title, where=candidate.where))
                continue
            changed = _merge(match, candidate)
            index(match)  # it may have gained an arXiv id
            if match.path in created:
                continue  # a second source for a paper created in this import
            if match.path in touched:
                touched[match.path][1].extend(k for k in changed if k not in touched[match.path][1])
            else:
                touched[match.path] = (match, changed, Change(match.id, match.title, where=candidate.where))

    plan = ImportPlan(report, {})
    for path, (f, change) in created.items():
        plan.writes[path] = render_paper(f.meta, f.body)
        plan.expected[path] = None
        report.created.append(change)
    for path, (f, changed, change) in touched.items():
        text = updated_text(f, changed) if changed else f.text
        if text != f.text:
            plan.writes[path] = text
            plan.expected[path] = f.text
            report.updated.append(replace(change, fields=tuple(changed)))
        else:
            report.unchanged.append(change)
    return plan


def write_atomically(writes: dict[Path, str], expected: dict[Path, str | None] | None = None) -> None:
    """Write every file to a temporary sibling first, then move them all into place.

    If any temporary write fails, every temporary file is removed and nothing changes.
    With `expected` (each path's text when the import read it; None for a new file), a
    file that an editor saved or another import created meanwhile stops the whole write:
    moving ours into place would silently undo their work.
    """
    staged: list[tuple[str, Path]] = []

    def discard() -> None:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)

    try:
        for path, text in writes.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append((stage_file(path, text.encode("utf-8"), fsync=True), path))
    except OSError as exc:
        discard()
        raise NewsletterError(
            f"{exc.filename or 'papers'}: cannot write: {exc.strerror}; nothing was written"
        ) from None
    for path, before in (expected or {}).items():
        try:
            now: str | None = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            now = None
        except (OSError, UnicodeDecodeError):
            now = ""
        if now != before:
            discard()
            what = "was created" if before is None else "changed"
            raise NewsletterError(
                f"{path.parent.name}/{path.name}: {what} while the import ran; nothing was written\n\n"
                "Run the import again: it will keep those changes."
            )
    for tmp, path in staged:
        os.replace(tmp, path)


def import_papers(
    sources: Sequence[str],
    papers_dir: Path,
    *,
    fmt: str = "auto",
    date: dt.date | None = None,
    tags: Sequence[str] = (),
    dry_run: bool = False,
    today: dt.date | None = None,
    fetch_options: dict[str, Any] | None = None,
) -> ImportReport:
    """Import papers from files and URLs into `papers_dir`.

    Every source is read and parsed before anything is written; if any source cannot be
    used, raises ProblemsError listing each and writes nothing.
    """
    from newsletter.errors import ProblemsError

    parsed: list[Parsed] = []
    problems: list[Problem] = []
    for source in sources:
        try:
            fetched = read_source(source, **(fetch_options or {}))
            parsed.append(
                parse_source(
                    fetched.body, fmt, where=source, content_type=fetched.content_type, date=date, today=today
                )
            )
        except SourceError as exc:
            problems.append(Problem(exc.where, None, exc.reason))
    if problems:
        raise ProblemsError(problems)
    try:
        plan = plan_import(papers_dir, parsed, tags=tags, today=today)
    except SourceError as exc:
        raise ProblemsError([Problem(f"{papers_dir.name}/{exc.where}", None, exc.reason)]) from None
    plan.report.dry_run = dry_run
    if not dry_run:
        write_atomically(plan.writes, plan.expected)
    return plan.report
