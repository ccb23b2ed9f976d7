"""The library: every paper and issue of a newsletter folder, read and checked together.

Reading is separated from checking (pelican's readers, mkdocs' validation): every file
is read, every field converted, and *every* problem collected — file, field, what was
expected, what was found — before anything is rendered. Unknown fields are warnings.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.config import Settings
from newsletter.content.freeze import FREEZE_SUFFIX, freeze_path, read_freeze
from newsletter.content.issue_refs import issue_stems, resolve_slug
from newsletter.content.issues import Issue, read_issue
from newsletter.content.papers import Paper, read_paper
from newsletter.content.translations import Translations, is_translation, load_translations
from newsletter.errors import ContentError, Problem, describe, raise_for

if TYPE_CHECKING:
    from newsletter.content.cache import ContentCache

__all__ = [
    "Issue",
    "Library",
    "Paper",
    "check_references",
    "load_issues",
    "load_library",
    "load_papers",
    "read_content",
]


def _relative(path: Path, settings: Settings) -> str:
    try:
        return str(path.relative_to(settings.root))
    except ValueError:
        return str(path)


def _children(directory: Path) -> dict[str, Path]:
    """The entries of a folder by name; none when it is missing.

    `Path.iterdir` makes each child from its parent's parts, without parsing a string:
    at 20,000 papers, `directory / name` costs more than finding them in the content cache.
    """
    try:
        return {path.name: path for path in directory.iterdir()}
    except OSError:
        return {}


def _content_files(directory: Path, children: dict[str, Path] | None = None) -> list[Path]:
    """The `*.md` files of a folder, sorted by name, translations (`<stem>.<lang>.md`) left out."""
    children = _children(directory) if children is None else children
    paths = []
    for name in sorted(children):
        if not name.endswith(".md") or name.startswith("."):
            continue
        path = children[name]
        # only a name with a dot before .md can be a translation (read by load_translations)
        if "." in name[:-3] and is_translation(path):
            continue
        paths.append(path)
    return paths


def _where(directory: Path, settings: Settings) -> Callable[[Path], str]:
    """`_relative` for the files of one folder, with the folder's part worked out once."""
    folder = _relative(directory, settings)
    if folder == str(directory):  # outside the newsletter folder: the whole path
        return str
    return lambda path: os.path.join(folder, path.name) if folder != "." else path.name


def _read(
    cache: ContentCache | None, path: Path, problems: list[Problem], reader: Callable[[list[Problem]], Any]
) -> Any:
    # through the content cache when there is one: only changed files are parsed again
    return reader(problems) if cache is None else cache.read(path, problems, reader)


def load_papers(
    settings: Settings,
    problems: list[Problem] | None = None,
    broken: set[str] | None = None,
    cache: ContentCache | None = None,
) -> list[Paper]:
    """Read every `papers/*.md`; raise listing every problem unless a list is passed to collect them.

    `broken` collects the ids (file stems) of papers that failed to load, so an issue that
    includes one says so instead of calling the id unknown.
    """
    own = problems is None
    problems = [] if problems is None else problems
    papers: list[Paper] = []
    directory = settings.papers_dir
    if not directory.is_dir():
        problems.append(
            Problem(_relative(directory, settings), None, "expected a folder of paper files, found none")
        )
    where = _where(directory, settings)
    for path in _content_files(directory):
        paper = _read(cache, path, problems, lambda found, path=path: read_paper(path, found, where(path)))
        if paper is not None:  # ids are unique: each must equal its file's name
            papers.append(paper)
        elif broken is not None:
            broken.add(path.stem)
    if own:
        raise_for(problems)
    return papers


def load_issues(
    settings: Settings, problems: list[Problem] | None = None, cache: ContentCache | None = None
) -> list[Issue]:
    """Read every `issues/*.md`, oldest first."""
    own = problems is None
    problems = [] if problems is None else problems
    issues = []
    directory = settings.issues_dir
    where = _where(directory, settings)
    children = _children(directory)
    records = children.keys()  # freeze records are looked up in the listing: one stat less per issue
    for path in _content_files(directory, children):
        issue = _read(
            cache, path, problems, lambda found, path=path: read_issue(path, settings, found, where(path))
        )
        if issue is not None and freeze_path(path).name in records:
            frozen = read_freeze(path, problems, where(path))
            issues.append(dataclasses.replace(issue, frozen=frozen) if frozen else issue)
        elif issue is not None:
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


def read_content(
    settings: Settings, path: Path, problems: list[Problem], cache: ContentCache | None = None
) -> Paper | Issue | None:
    """One file of `papers/` or `issues/` read as `load_library` reads it, an issue with its freeze record.

    For a caller that knows which files changed (the archive's quick rebuild); the checks
    that need every file (duplicate numbers, unknown ids) are the caller's to make.
    """
    where = _where(path.parent, settings)
    if path.parent == settings.papers_dir:
        return _read(cache, path, problems, lambda found: read_paper(path, found, where(path)))
    issue = _read(cache, path, problems, lambda found: read_issue(path, settings, found, where(path)))
    if issue is not None and freeze_path(path).is_file():
        frozen = read_freeze(path, problems, where(path))
        return dataclasses.replace(issue, frozen=frozen) if frozen else issue
    return issue


@dataclass(frozen=True)
class Library:
    """Everything the content folders hold, read and checked together."""

    settings: Settings
    papers: dict[str, Paper]
    issues: list[Issue]
    translations: Translations = field(default_factory=Translations)
    # paper id -> the content cache's digest of its file as read (`ContentCache.digest`);
    # empty when read without the cache. Equal digests, equal papers.
    digests: dict[str, str] = field(default_factory=dict, compare=False)

    def issue(self, ref: str) -> Issue:
        """Find an issue by slug, short name, unique prefix, file name or path."""
        slug = resolve_slug(ref, [i.slug for i in self.issues])
        return next(i for i in self.issues if i.slug == slug)

    def earlier(self, issue: Issue) -> list[Issue]:
        return [i for i in self.issues if (i.date, i.number) < (issue.date, issue.number)]


def check_references(
    settings: Settings, papers: dict[str, Paper], issues: list[Issue], broken: Iterable[str] = ()
) -> list[Problem]:
    """Problems that need both papers and issues: unknown ids in include/exclude and freeze records.

    A paper in `broken` exists but failed to load; its own errors are reported already.
    """
    problems = []
    broken = set(broken)
    for issue in issues:
        where = _relative(issue.path, settings)
        lists = [("include", issue.include), ("exclude", issue.exclude)]
        if issue.frozen is not None:
            lists.append(("papers", issue.frozen.papers))
        for key, ids in lists:
            field_where = freeze_path(Path(where)).as_posix() if key == "papers" else where
            for pid in ids:
                if pid in broken:
                    problems.append(Problem(field_where, key, f"paper {pid!r} has errors, see above"))
                elif pid not in papers:
                    hint = _close_match(pid, papers)
                    problems.append(
                        Problem(
                            field_where,
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


def load_library(
    settings: Settings, *, only: str | None = None, cache: ContentCache | None = None
) -> Library:
    """Read and check all papers and issues, reporting every problem at once.

    With `only` (an issue ref), problems in *other* issue files are warnings: one
    broken draft must not block building another issue. With a `cache`
    (`newsletter.content.cache`), only files changed since the last read are parsed.
    """
    problems: list[Problem] = []
    broken: set[str] = set()
    papers = load_papers(settings, problems, broken, cache)
    issue_problems: list[Problem] = []
    issues = load_issues(settings, issue_problems, cache)
    translations = load_translations(settings, issue_problems)
    if cache is not None:
        cache.save()
    by_id = {p.id: p for p in papers}
    issue_problems += check_references(settings, by_id, issues, broken)
    if only is not None:
        try:
            target = resolve_slug(only, issue_stems(settings.issues_dir))
        except ContentError:
            target = Path(only).name.removesuffix(".md")  # Library.issue() reports it
        issues_folder = Path(_relative(settings.issues_dir, settings))
        for p in issue_problems:
            file = Path(p.where.split(":")[0])
            # an issue's own file, its freeze record and its translations (`<slug>.<lang>.md`)
            # are the issue: a broken one must stop it, not send readers the wrong language;
            # a paper's translation is content like the paper itself
            stem = file.name.removesuffix(FREEZE_SUFFIX).removesuffix(".md").split(".")[0]
            mine = stem == target or p.warning or file.parent != issues_folder
            problems.append(p if mine else Problem(p.where, p.field, p.message, p.hint, warning=True))
    else:
        problems += issue_problems
    raise_for(problems)
    digests = {}
    if cache is not None:
        digests = {pid: found for pid, paper in by_id.items() if (found := cache.digest(paper.path))}
    return Library(settings=settings, papers=by_id, issues=issues, translations=translations, digests=digests)
