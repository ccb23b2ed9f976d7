"""The content model: papers and issues read from markdown files with YAML front matter.

Reading is separated from checking (pelican's readers, mkdocs' validation): every file
is read, every field converted, and *every* problem collected — file, field, what was
expected, what was found — before anything is rendered. Unknown fields are warnings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.config import Settings
from newsletter.errors import ContentError, Problem, describe, raise_for

PAPER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
ISSUE_STEM = re.compile(r"^(\d{4}-\d{2}-\d{2})-([a-z0-9][a-z0-9-]*)$")
ARXIV_ID = re.compile(r"^\d{4}\.\d{4,5}$")
NOTE_HEADING = re.compile(r"^##\s+(editor'?s\s+)?note\s*$", re.IGNORECASE | re.MULTILINE)
# C0 controls except tab/newline, DEL, and C1 controls: invisible, and some trigger Gmail clipping
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SORT_KEYS = ("upvotes", "published", "title", "id")


@dataclass(frozen=True)
class Paper:
    """A candidate paper: `papers/<id>.md`."""

    id: str
    title: str
    abstract: str  # markdown, untrusted
    path: Path
    authors: tuple[str, ...] = ()
    published: dt.date | None = None
    url: str | None = None
    arxiv: str | None = None
    pdf: str | None = None
    code: str | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    thumbnail_alt: str | None = None
    upvotes: int | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None  # the editor's note (markdown), after "## Editor's note"

    @property
    def arxiv_url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None

    @property
    def pdf_url(self) -> str | None:
        return self.pdf or (f"https://arxiv.org/pdf/{self.arxiv}" if self.arxiv else None)

    def link(self, settings: Settings) -> str:
        """Where the title links: the paper's own page, else arXiv, else its archive page."""
        return self.url or self.arxiv_url or self.project_page or settings.url(f"papers/{self.id}/")


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

    @property
    def published(self) -> bool:
        return self.status == "published"

    def web_url(self, settings: Settings) -> str:
        """The issue's page in the archive: the email's "view in browser" link."""
        return settings.url(f"issues/{self.slug}/")


# ---------------------------------------------------------------------------
# Reading files


@dataclass
class _Fields:
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
        except _Expected as exc:
            self.problems.append(Problem.expected(self.where, key, exc.expected, self.data[key]))
            return default


class _Expected(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


def _text(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise _Expected("a non-empty string")
    return clean_text(v)


def _optional_text(v: Any) -> str:
    return "" if v == "" else _text(v)


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise _Expected("a date YYYY-MM-DD")


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _Expected("a whole number >= 0")
    return v


def _positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _Expected("a whole number >= 1")
    return v


def _url(v: Any) -> str:
    if isinstance(v, str):
        parts = urlsplit(v.strip())
        if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in v.strip()):
            return v.strip()
    raise _Expected("an absolute http(s) URL")


def _strings(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) for x in v):
        raise _Expected("a list of strings")
    return tuple(clean_text(str(x)) for x in v if str(x).strip())


def _tags(v: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.lower() for t in _strings(v)))


def _ids(v: Any) -> tuple[str, ...]:
    ids = _strings(v)
    bad = [i for i in ids if not PAPER_ID.match(i)]
    if bad:
        raise _Expected("a list of paper ids")
    return ids


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Expected("true or false")
    return v


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in choices:
            raise _Expected("one of " + ", ".join(choices))
        return v

    return convert


def clean_text(text: str) -> str:
    """Drop control characters (C0 except newline/tab, DEL, C1) and surrounding whitespace.

    Text such as '%%UNSUBSCRIBE_URL%%' stays as written: no content can produce the
    per-reader markers (see newsletter.mail.markers.Markers).
    """
    return CONTROL_CHARS.sub("", text).strip()


def read_front_matter(path: Path, problems: list[Problem], where: str) -> tuple[dict[str, Any], str] | None:
    """Split a file into (front matter, body); on failure record a problem with the line."""
    import frontmatter
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(where, None, f"not UTF-8 text (byte {exc.start})"))
        return None
    except OSError as exc:
        problems.append(Problem(where, None, f"cannot read: {exc.strerror}"))
        return None
    text = text.removeprefix("\ufeff")
    handler = frontmatter.YAMLHandler()
    if not handler.detect(text):
        problems.append(
            Problem(where, None, "expected front matter between '---' lines at the top, found none")
        )
        return None
    try:
        raw, body = handler.split(text)
    except ValueError:
        problems.append(Problem(where, None, "front matter is not closed by a '---' line"))
        return None
    try:
        data = yaml.load(raw, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # the split keeps the newline after the opening '---', so the mark counts that line already
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(f"{where}{line}", None, f"front matter is not valid YAML: {reason}"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem.expected(where, None, "front matter as 'key: value' lines", data))
        return None
    return data, body


@lru_cache(maxsize=1)
def _loader() -> type:
    """A YAML SafeLoader that leaves floats and timestamps as text, and booleans to true/false.

    An unquoted arXiv id like 2401.10010 must not become the float 2401.1001, and
    an impossible date like 2024-01-32 must reach the date converter as text (with a
    clear error) instead of failing inside YAML. Dates are parsed by `_date`. As in
    YAML 1.2, only true/false are booleans: a tag `yes` or `on` stays a word.
    """
    import yaml

    class ContentLoader(yaml.SafeLoader):
        pass

    dropped = {"tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
    ContentLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in dropped]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    ContentLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return ContentLoader


def _error_count(problems: list[Problem]) -> int:
    # a reader compares the count before and after one file: did this file add errors?
    return sum(not p.warning for p in problems)


def _warn_unknown(where: str, data: dict[str, Any], known: Iterable[str], problems: list[Problem]) -> None:
    for key in data:
        if key not in known:
            problems.append(Problem(where, str(key), "unknown field (ignored)", warning=True))


PAPER_FIELDS = [
    "id",
    "title",
    "authors",
    "published",
    "url",
    "arxiv",
    "pdf",
    "code",
    "project_page",
    "thumbnail",
    "thumbnail_alt",
    "upvotes",
    "tags",
    "source",
    "imported",
]
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
]
SELECT_FIELDS = ["tags", "since", "until", "min_upvotes", "has_code", "sort", "limit"]


def read_paper(path: Path, problems: list[Problem], where: str | None = None) -> Paper | None:
    where = where or path.name
    split = read_front_matter(path, problems, where)
    if split is None:
        return None
    data, body = split
    before = _error_count(problems)
    _warn_unknown(where, data, PAPER_FIELDS, problems)
    f = _Fields(where, data, problems)
    pid = f.get("id", _text, required=True)
    if pid is not None and not PAPER_ID.match(pid):
        problems.append(Problem.expected(where, "id", "lowercase letters, digits, '.', '_' or '-'", pid))
    elif pid is not None and pid != path.stem:
        problems.append(
            Problem(where, "id", f"must match the file name: expected {path.stem!r}, got {pid!r}")
        )
    title = f.get("title", _text, required=True)
    abstract, note = split_note(clean_body(body))
    arxiv = f.get("arxiv", _text)
    if arxiv is not None and not ARXIV_ID.match(arxiv):
        problems.append(Problem.expected(where, "arxiv", "an arXiv id like 2412.04003", arxiv))
        arxiv = None
    paper_kwargs = dict(
        authors=f.get("authors", _strings, default=()),
        published=f.get("published", _date),
        url=f.get("url", _url),
        arxiv=arxiv,
        pdf=f.get("pdf", _url),
        code=f.get("code", _url),
        project_page=f.get("project_page", _url),
        thumbnail=f.get("thumbnail", _url),
        thumbnail_alt=f.get("thumbnail_alt", _text),
        upvotes=f.get("upvotes", _int),
        tags=f.get("tags", _tags, default=()),
    )
    if not abstract:
        problems.append(
            Problem(where, None, "expected the abstract as the body after the front matter, found none")
        )
    if _error_count(problems) > before:
        return None
    return Paper(id=pid, title=title, abstract=abstract, note=note, path=path, **paper_kwargs)


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
    before = _error_count(problems)
    _warn_unknown(where, data, ISSUE_FIELDS, problems)
    f = _Fields(where, data, problems)
    title = f.get("title", _text, required=True)
    date = f.get("date", _date, required=True)
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
            _warn_unknown(
                f"{where}",
                {f"select.{k}": v for k, v in raw_select.items()},
                [f"select.{k}" for k in SELECT_FIELDS],
                problems,
            )
            s = _Fields(where, {f"select.{k}": v for k, v in raw_select.items()}, problems)
            select = Selection(
                tags=s.get("select.tags", _tags, default=()),
                since=s.get("select.since", _date),
                until=s.get("select.until", _date),
                min_upvotes=s.get("select.min_upvotes", _int),
                has_code=s.get("select.has_code", _bool),
                sort=s.get("select.sort", _one_of(*SORT_KEYS), default="published"),
                limit=s.get("select.limit", _positive_int),
            )
            if select.since and select.until and select.since > select.until:
                problems.append(
                    Problem(where, "select.until", f"must not be before select.since ({select.since})")
                )
    issue_kwargs = dict(
        subject=f.get("subject", _text, default=title),
        number=f.get("number", _positive_int, required=True),
        preheader=f.get("preheader", _optional_text, default=""),
        language=f.get("language", _language, default=settings.language),
        status=f.get("status", _one_of("draft", "published"), default="draft"),
        include=f.get("include", _ids, default=()),
        exclude=f.get("exclude", _ids, default=()),
    )
    if not issue_kwargs["include"] and select is None and "include" not in data:
        problems.append(
            Problem(where, "include", "expected paper ids in 'include' or rules in 'select', found neither")
        )
    if _error_count(problems) > before:
        return None
    return Issue(
        slug=path.stem,
        path=path,
        title=title,
        date=date,
        intro=clean_body(body),
        select=select,
        **issue_kwargs,
    )


def _language(v: Any) -> str:
    if not isinstance(v, str) or not v or not all(p.isalnum() and p.isascii() for p in v.split("-")):
        raise _Expected("a language tag like 'en' or 'ar'")
    return v


def clean_body(body: str) -> str:
    return clean_text(body)


def split_note(body: str) -> tuple[str, str | None]:
    """Split a paper body into (abstract, editor's note) at a '## Editor's note' heading."""
    match = NOTE_HEADING.search(body)
    if not match:
        return body, None
    return body[: match.start()].strip(), body[match.end() :].strip() or None


# ---------------------------------------------------------------------------
# The collection


def _relative(path: Path, settings: Settings) -> str:
    try:
        return str(path.relative_to(settings.root))
    except ValueError:
        return str(path)


def load_papers(settings: Settings, problems: list[Problem] | None = None) -> list[Paper]:
    """Read every `papers/*.md`; raise listing every problem unless a list is passed to collect them."""
    own = problems is None
    problems = [] if problems is None else problems
    papers: list[Paper] = []
    directory = settings.papers_dir
    if not directory.is_dir():
        problems.append(
            Problem(_relative(directory, settings), None, "expected a folder of paper files, found none")
        )
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else ():
        paper = read_paper(path, problems, _relative(path, settings))
        if paper is not None:  # ids are unique: each must equal its file's name
            papers.append(paper)
    if own:
        raise_for(problems)
    return papers


def load_issues(settings: Settings, problems: list[Problem] | None = None) -> list[Issue]:
    """Read every `issues/*.md`, oldest first."""
    own = problems is None
    problems = [] if problems is None else problems
    issues = []
    directory = settings.issues_dir
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else ():
        issue = read_issue(path, settings, problems, _relative(path, settings))
        if issue is not None:
            issues.append(issue)
    numbers: dict[int, Issue] = {}
    for issue in issues:
        if issue.number in numbers:
            problems.append(
                Problem(
                    _relative(issue.path, settings),
                    "number",
                    f"duplicate issue number {issue.number} (also in {numbers[issue.number].slug})",
                )
            )
        numbers.setdefault(issue.number, issue)
    if own:
        raise_for(problems)
    return sorted(issues, key=lambda i: (i.date, i.number))


@dataclass(frozen=True)
class Library:
    """Everything the content folders hold, read and checked together."""

    settings: Settings
    papers: dict[str, Paper]
    issues: list[Issue]

    def issue(self, ref: str) -> Issue:
        """Find an issue by slug, file name or path."""
        name = Path(ref).name.removesuffix(".md")
        for issue in self.issues:
            if issue.slug == name or issue.path == Path(ref).resolve():
                return issue
        known = ", ".join(i.slug for i in self.issues) or "none"
        raise ContentError(f"{ref}: no such issue (expected a path or slug; known issues: {known})")

    def earlier(self, issue: Issue) -> list[Issue]:
        return [i for i in self.issues if (i.date, i.number) < (issue.date, issue.number)]


def check_references(settings: Settings, papers: dict[str, Paper], issues: list[Issue]) -> list[Problem]:
    """Problems that need both papers and issues: unknown ids in include/exclude."""
    problems = []
    for issue in issues:
        where = _relative(issue.path, settings)
        for key in ("include", "exclude"):
            for pid in getattr(issue, key):
                if pid not in papers:
                    hint = _close_match(pid, papers)
                    problems.append(
                        Problem(
                            where,
                            key,
                            f"unknown paper id {pid!r} (no papers/{pid}.md)",
                            hint=f"Did you mean {hint!r}?" if hint else None,
                        )
                    )
        if dupes := sorted({p for p in issue.include if issue.include.count(p) > 1}):
            problems.append(Problem(where, "include", f"lists {describe(dupes[0])} more than once"))
    return problems


def _close_match(pid: str, papers: dict[str, Paper]) -> str | None:
    import difflib

    found = difflib.get_close_matches(pid, list(papers), n=1, cutoff=0.75)
    return found[0] if found else None


def load_library(settings: Settings, *, only: str | None = None) -> Library:
    """Read and check all papers and issues, reporting every problem at once.

    With `only` (an issue ref), problems in *other* issue files are warnings: one
    broken draft must not block building another issue.
    """
    problems: list[Problem] = []
    papers = load_papers(settings, problems)
    issue_problems: list[Problem] = []
    issues = load_issues(settings, issue_problems)
    by_id = {p.id: p for p in papers}
    issue_problems += check_references(settings, by_id, issues)
    if only is not None:
        target = Path(only).name.removesuffix(".md")
        for p in issue_problems:
            mine = Path(p.where.split(":")[0]).stem == target or p.warning
            problems.append(p if mine else Problem(p.where, p.field, p.message, p.hint, warning=True))
    else:
        problems += issue_problems
    raise_for(problems)
    return Library(settings=settings, papers=by_id, issues=issues)
