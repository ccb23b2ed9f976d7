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
import hashlib
import json
import os
import re
import tempfile
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

from . import __version__
from .content import ARXIV_ID, NOTE_HEADING
from .errors import NewsletterError, Problem

FORMATS = ("listing", "hf", "arxiv")
PROJECT_URL = "https://github.com/newsletter-digest/newsletter"
USER_AGENT = f"newsletter/{__version__} (+{PROJECT_URL})"
HF_DAILY_PAPERS = "https://huggingface.co/api/daily_papers"
ARXIV_API = "http://export.arxiv.org/api/query"
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
        if arxiv is not None and not ARXIV_ID.match(arxiv):
            parsed.refused.append(
                Refusal(item_where, title or None, f"expected an arXiv id like 2412.04003, got {raw_id!r}")
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
            upvotes=upvotes
            if isinstance(upvotes, int) and not isinstance(upvotes, bool) and upvotes >= 0
            else None,
            tags=tags[:MAX_TAGS_FROM_SOURCE],
        )
        if arxiv:
            candidate.arxiv, candidate.pdf = arxiv, arxiv_links(arxiv)["pdf"]
        _accept(parsed, candidate)
    return parsed


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


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
        return parse_arxiv(body, where=where)
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
        return parse_hf(data, where=where)
    if fmt == "listing":
        if looks_html:
            raise SourceError(where, f"expected a plain-text listing, got an HTML page{_ctype(content_type)}")
        return parse_listing(text, where=where, date=date, today=today)
    raise SourceError(where, f"expected a format among {', '.join(FORMATS)} or auto, got {fmt!r}")


def _ctype(content_type: str | None) -> str:
    return f" (Content-Type: {content_type})" if content_type else ""


# ---------------------------------------------------------------------------
# Reading sources


@dataclass(frozen=True)
class Fetched:
    body: bytes
    content_type: str | None = None


def fetch(
    url: str,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """GET a URL; retry 5xx, connection errors and truncated bodies `retries` times with backoff.

    Raises SourceError naming the URL, what was expected and what came back.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    attempts = retries + 1
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                try:
                    body = response.read(MAX_BODY_BYTES + 1)
                except IncompleteRead as exc:
                    body = exc.partial
                if len(body) > MAX_BODY_BYTES:
                    raise SourceError(
                        url, f"response larger than {MAX_BODY_BYTES // 2**20} MB; expected a paper listing"
                    )
                if length is not None and length.isdigit() and int(length) != len(body):
                    last = (
                        f"truncated response: expected {int(length)} bytes (Content-Length), got {len(body)}"
                    )
                else:
                    return Fetched(body, response.headers.get("Content-Type"))
        except urllib.error.HTTPError as exc:
            status = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500:
                raise SourceError(url, f"expected HTTP 200, got {status}") from None
            last = f"expected HTTP 200, got {status}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"cannot connect: {reason}"
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1))
    raise SourceError(url, f"{last} (after {attempts} attempts)")


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
    """A paper file as found on disk (or planned): front matter and body."""

    path: Path
    meta: dict[str, Any]
    body: str

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def title(self) -> str:
        return str(self.meta.get("title") or "")

    @property
    def arxiv(self) -> str | None:
        value = self.meta.get("arxiv")
        if isinstance(value, str) and ARXIV_ID.match(value):
            return value
        return self.id if ARXIV_ID.match(self.id) else None


def render_paper(meta: dict[str, Any], body: str) -> str:
    """The file text: front matter in KEY_ORDER (then any other keys), a blank line, the body."""
    import yaml

    ordered = {k: meta[k] for k in KEY_ORDER if k in meta}
    ordered.update((k, v) for k, v in meta.items() if k not in ordered)
    front = yaml.safe_dump(
        ordered, allow_unicode=True, sort_keys=False, width=2**30, default_flow_style=False
    )
    return f"---\n{front}---\n\n{body.strip()}\n"


def read_paper_file(path: Path) -> PaperFile:
    import frontmatter
    import yaml

    where = path.name
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(where, f"cannot read an existing paper file: {exc}") from None
    handler = frontmatter.YAMLHandler()
    try:
        if not handler.detect(text):
            raise ValueError
        raw, body = handler.split(text)
        meta = yaml.safe_load(raw) or {}
    except (ValueError, yaml.YAMLError):
        meta = None
    if not isinstance(meta, dict):
        raise SourceError(
            where, "expected front matter between '---' lines; fix this file first (`newsletter check`) "
            "so the import can tell whether it already has these papers"
        )  # fmt: skip
    return PaperFile(path, meta, body.strip())


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
    return PaperFile(papers_dir / f"{pid}.md", meta, candidate.abstract)


@dataclass
class ImportPlan:
    report: ImportReport
    writes: dict[Path, str]  # path -> new text


def plan_import(
    papers_dir: Path,
    parsed: Iterable[Parsed],
    *,
    tags: Sequence[str] = (),
    today: dt.date | None = None,
) -> ImportPlan:
    """Match every candidate to an existing or earlier-planned paper; decide each file's new text."""
    today = today or dt.date.today()
    report = ImportReport()
    files = load_paper_files(papers_dir)
    originals = {f.path: render_paper(f.meta, f.body) for f in files}
    by_arxiv: dict[str, PaperFile] = {}
    by_title: dict[str, PaperFile] = {}
    taken = {f.id for f in files}

    def index(f: PaperFile) -> None:
        if f.arxiv:
            by_arxiv.setdefault(f.arxiv, f)
        if f.title:
            by_title.setdefault(normalise_title(f.title), f)

    for f in files:
        index(f)
    created: dict[Path, Change] = {}
    touched: dict[Path, tuple[PaperFile, list[str], Change]] = {}
    for source in parsed:
        report.refused.extend(source.refused)
        report.notes.extend(source.notes)
        for candidate in source.candidates:
            match = by_arxiv.get(candidate.arxiv) if candidate.arxiv else None
            if match is None:
                match = by_title.get(normalise_title(candidate.title))
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
                files.append(new)
                created[new.path] = Change(new.id, new.title, where=candidate.where)
                continue
            changed = _merge(match, candidate)
            if match.path in created:
                continue  # a second source for a paper created in this import
            if match.path in touched:
                touched[match.path][1].extend(k for k in changed if k not in touched[match.path][1])
            else:
                touched[match.path] = (match, changed, Change(match.id, match.title, where=candidate.where))
            index(match)  # it may have gained an arXiv id

    writes: dict[Path, str] = {}
    for path, change in created.items():
        f = next(f for f in files if f.path == path)
        writes[path] = render_paper(f.meta, f.body)
        report.created.append(change)
    for path, (f, changed, change) in touched.items():
        text = render_paper(f.meta, f.body)
        if changed and text != originals.get(path):
            writes[path] = text
            report.updated.append(replace(change, fields=tuple(changed)))
        else:
            report.unchanged.append(change)
    return ImportPlan(report, writes)


def write_atomically(writes: dict[Path, str]) -> None:
    """Write every file to a temporary sibling first, then move them all into place.

    If any temporary write fails, every temporary file is removed and nothing changes.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in writes.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise NewsletterError(
            f"{exc.filename or 'papers'}: cannot write: {exc.strerror}; nothing was written"
        ) from None
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
    from .errors import ProblemsError

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
        write_atomically(plan.writes)
    return plan.report
