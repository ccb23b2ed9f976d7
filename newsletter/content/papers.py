"""Papers: `papers/<id>.md` read into a `Paper`, with the fields the paper schema declares.

The front matter is converted by `newsletter.content.schema.PAPER_SCHEMA`; the body is the
abstract, optionally followed by an editor's note under a '## Editor's note' heading.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from newsletter.config import Settings
from newsletter.content.front_matter import check_unknown, error_count, read_front_matter
from newsletter.content.schema import KEY_ORDER, PAPER_SCHEMA, FrontMatterFields, clean_text
from newsletter.errors import Problem

NOTE_HEADING = re.compile(r"^##\s+(editor'?s\s+)?note\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Paper:
    """A candidate paper: `papers/<id>.md`. Its front-matter attributes are PAPER_SCHEMA's rows."""

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


def read_paper(path: Path, problems: list[Problem], where: str | None = None) -> Paper | None:
    """Read one paper file; on any error record the problems and return None."""
    where = where or path.name
    split = read_front_matter(path, problems, where)
    if split is None:
        return None
    data, body = split
    before = error_count(problems)
    check_unknown(where, data, KEY_ORDER, problems)
    values = FrontMatterFields(where, data, problems).read(PAPER_SCHEMA)
    pid = values["id"]
    if pid is not None and pid != path.stem:
        problems.append(
            Problem(where, "id", f"must match the file name: expected {path.stem!r}, got {pid!r}")
        )
    abstract, note = split_note(clean_body(body))
    if not abstract:  # only id and title are required: the paper goes out without an excerpt
        problems.append(
            Problem(where, None, "no abstract (the body after the front matter is empty)", warning=True)
        )
    if error_count(problems) > before:
        return None
    return Paper(abstract=abstract, note=note, path=path, **values)


def clean_body(body: str) -> str:
    return clean_text(body)


def split_note(body: str) -> tuple[str, str | None]:
    """Split a paper body into (abstract, editor's note) at a '## Editor's note' heading."""
    match = NOTE_HEADING.search(body)
    if not match:
        return body, None
    return body[: match.start()].strip(), body[match.end() :].strip() or None
