"""An import, planned then written: which paper files a set of sources creates or updates.

An import runs in two phases so that a failed import writes nothing:

1. read every source and parse every item (a source that cannot be used at all is an
   error; a single unusable item is *refused* with a reason and the rest go on);
2. plan what each item does to `papers/` (create, update, unchanged), then write every
   changed file to a temporary file and only then move them all into place.

Re-imports never overwrite what an editor owns. Each field's rule is a row of the paper
schema (`newsletter.content.schema`): KEEP fields (and the body: abstract and editor's
note) are written only when a file is created; FOLLOW fields follow the source; FILL
fields are added when the file lacks them (e.g. a listing paper gains its arXiv id).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from newsletter.atomic_files import stage_file
from newsletter.content.schema import ARXIV_ID, FILL, FOLLOW, fields_with
from newsletter.errors import NewsletterError, Problem, ProblemsError
from newsletter.ingest.candidates import (
    Candidate,
    Parsed,
    Refusal,
    SourceError,
    markdown_escaped,
    normalise_tag,
    normalise_title,
    slugify,
)
from newsletter.ingest.fetch import read_source
from newsletter.ingest.paper_files import PaperFile, load_paper_files, render_paper, updated_text
from newsletter.ingest.sources import parse_source

# The count first: it changes on nearly every re-import, so a report leads with it.
FOLLOWED = tuple(sorted(fields_with(FOLLOW), key=lambda name: name != "upvotes"))
FILLED = fields_with(FILL)


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
    """Apply the schema's FOLLOW and FILL rules to an existing paper; return the changed keys."""
    incoming = candidate.fields()
    changed: list[str] = []
    for key in FOLLOWED:
        if key in incoming and existing.meta.get(key) != incoming[key]:
            existing.meta[key] = incoming[key]
            changed.append(key)
    for key in FILLED:
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


class _PaperIndex:
    """The paper files known so far, by arXiv id, by title and by abstract (first one wins)."""

    def __init__(self, files: Iterable[PaperFile]) -> None:
        self.by_arxiv: dict[str, PaperFile] = {}
        self.by_title: dict[str, PaperFile] = {}
        self.by_abstract: dict[str, PaperFile] = {}
        for f in files:
            self.add(f)

    def add(self, f: PaperFile) -> None:
        if f.arxiv:
            self.by_arxiv.setdefault(f.arxiv, f)
        if f.title:
            self.by_title.setdefault(normalise_title(f.title), f)
        if key := _abstract_key(f.abstract):
            self.by_abstract.setdefault(key, f)

    def match(self, candidate: Candidate) -> PaperFile | None:
        """The file that is the candidate's paper: same arXiv id, else title, else abstract."""
        match = self.by_arxiv.get(candidate.arxiv) if candidate.arxiv else None
        if match is not None:
            return match
        match = self.by_title.get(normalise_title(candidate.title))
        if match is None and not candidate.arxiv and (key := _abstract_key(candidate.abstract)):
            match = self.by_abstract.get(key)
        if match is not None and candidate.arxiv and match.arxiv and match.arxiv != candidate.arxiv:
            return None  # same title, different papers
        return match


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
    known = _PaperIndex(files)
    taken = {f.id for f in files}
    created: dict[Path, tuple[PaperFile, Change]] = {}
    touched: dict[Path, tuple[PaperFile, list[str], Change]] = {}
    for source in parsed:
        report.refused.extend(source.refused)
        report.notes.extend(source.notes)
        for candidate in source.candidates:
            match = known.match(candidate)
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
                known.add(new)
                created[new.path] = (new, Change(new.id, new.title, where=candidate.where))
                continue
            changed = _merge(match, candidate)
            known.add(match)  # it may have gained an arXiv id
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


def write_atomically(
    writes: dict[Path, str], expected: dict[Path, str | None] | None = None, *, command: str = "the import"
) -> None:
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
                f"{path.parent.name}/{path.name}: {what} while {command} ran; nothing was written\n\n"
                f"Run {command} again: it will keep those changes."
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
