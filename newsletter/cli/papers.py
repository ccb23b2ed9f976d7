"""`newsletter papers`: import candidate papers from listings, Hugging Face and arXiv; list, tag and annotate them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import click

from newsletter.cli import Context, pass_context


class IsoDate(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"expected YYYY-MM-DD, got {str(value)!r}", param, ctx)


ISO_DATE = IsoDate()


@click.group()
def papers() -> None:
    """Import candidate papers into papers/, list them, tag them and write notes.

    \b
    Example:
        newsletter papers list --untagged
    """


def _import_options(command: click.Command) -> click.Command:
    for option in reversed(
        [
            click.option(
                "--tag",
                "tags",
                multiple=True,
                metavar="TAG",
                help="Add this tag to every newly created paper (repeatable).",
            ),
            click.option("--dry-run", is_flag=True, help="Show what would change; write nothing."),
        ]
    ):
        command = option(command)
    return command


def _run(
    obj: Context, sources: Sequence[str], fmt: str, date: dt.date | None, tags: Sequence[str], dry_run: bool
) -> None:
    from newsletter.ingest.plan import import_papers

    settings = obj.settings
    report = import_papers(sources, settings.papers_dir, fmt=fmt, date=date, tags=tags, dry_run=dry_run)
    for note in report.notes:
        click.echo(f"note       {note}")
    for change in report.created:
        click.echo(f"created    {change.id}  {change.title}")
    for change in report.updated:
        click.echo(f"updated    {change.id}  {', '.join(change.fields)}")
    for change in report.unchanged:
        click.echo(f"unchanged  {change.id}")
    for refusal in report.refused:
        title = f" {refusal.title!r}" if refusal.title else ""
        click.echo(f"refused    {refusal.where}{title}: {refusal.reason}")
    click.echo(report.summary())


@papers.command("import")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "listing", "hf", "arxiv"]),
    default="auto",
    show_default=True,
    help="listing: plain title/abstract text; hf: Hugging Face daily-papers JSON; arxiv: arXiv API Atom.",
)
@click.option(
    "--date",
    type=ISO_DATE,
    help="The date of a listing whose date line has no year (default: its most recent past occurrence).",
)
@_import_options
@pass_context
def import_(
    obj: Context,
    sources: tuple[str, ...],
    fmt: str,
    date: dt.date | None,
    tags: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Import papers from files or http(s) URLs into papers/.

    New papers get a file; papers already there (same arXiv id, or the same title) only
    get their upvotes, code and project links refreshed: titles, tags, abstracts and
    editor's notes are never overwritten. Items that cannot be used are refused with a
    reason and the rest are imported; if a source cannot be read at all, nothing is written.

    \b
    Example:
        newsletter papers import ../shared/data/papers-listing-multilingual.txt --date 2026-03-17
    """
    _run(obj, sources, fmt, date, tags, dry_run)


def _query(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("expected a search query like 'abs:multilingual', got an empty one")
    return value.strip() if value is not None else None


@papers.command()
@click.option("--hf-date", type=ISO_DATE, help="Import Hugging Face daily papers of this day.")
@click.option(
    "--arxiv-query",
    metavar="QUERY",
    callback=_query,
    help="Import the newest arXiv results for an API search query.",
)
@click.option("--max", "max_results", type=click.IntRange(1, 500), default=50, show_default=True,
              help="How many arXiv results to ask for.")  # fmt: skip
@_import_options
@pass_context
def fetch(
    obj: Context,
    hf_date: dt.date | None,
    arxiv_query: str | None,
    max_results: int,
    tags: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Fetch papers from Hugging Face or arXiv and import them.

    \b
    Examples:
        newsletter papers fetch --hf-date 2026-03-17
        newsletter papers fetch --arxiv-query 'cat:cs.CL AND abs:multilingual' --max 20
    """
    from newsletter.ingest.fetch import arxiv_url, hf_url

    if (hf_date is None) == (arxiv_query is None):
        raise click.UsageError("expected exactly one of --hf-date or --arxiv-query")
    if hf_date is not None:
        _run(obj, [hf_url(hf_date)], "hf", None, tags, dry_run)
    else:
        _run(obj, [arxiv_url(arxiv_query or "", max_results)], "arxiv", None, tags, dry_run)


@papers.command("list")
@click.option(
    "--tag", "tags", multiple=True, metavar="TAG", help="Only papers with this tag (repeatable: any)."
)
@click.option("--since", type=ISO_DATE, help="Only papers published on or after this date.")
@click.option("--until", type=ISO_DATE, help="Only papers published on or before this date.")
@click.option(
    "--min-upvotes", type=click.IntRange(min=0), help="Only papers with at least this many upvotes."
)
@click.option("--untagged", is_flag=True, help="Only papers without tags.")
@click.option("--not-featured", is_flag=True, help="Only papers that no issue features yet.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@pass_context
def list_(
    obj: Context,
    tags: tuple[str, ...],
    since: dt.date | None,
    until: dt.date | None,
    min_upvotes: int | None,
    untagged: bool,
    not_featured: bool,
    as_json: bool,
) -> None:
    """List the candidate papers in papers/, newest first (then by rank on the page).

    Blank upvotes or rank: the source did not say.

    \b
    Example:
        newsletter papers list --untagged --not-featured --since 2026-03-01
    """
    from newsletter.content.library import load_papers

    wanted = {t.lower() for t in tags}
    featured = _featured(obj) if not_featured else set()
    found = [
        p
        for p in load_papers(obj.settings)
        if (not wanted or wanted & set(p.tags))
        and (since is None or (p.published is not None and p.published >= since))
        and (until is None or (p.published is not None and p.published <= until))
        and (min_upvotes is None or (p.upvotes or 0) >= min_upvotes)
        and (not untagged or not p.tags)
        and p.id not in featured
    ]
    found.sort(
        key=lambda p: (-(p.published or dt.date.min).toordinal(), p.rank or 10**9, -(p.upvotes or 0), p.id)
    )
    if as_json:
        rows = [
            {
                "id": p.id,
                "title": p.title,
                "authors": list(p.authors),
                "published": p.published.isoformat() if p.published else None,
                "rank": p.rank,
                "upvotes": p.upvotes,
                "tags": list(p.tags),
                "path": str(p.path),
            }
            for p in found
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = [("id", "published", "rank", "upvotes", "tags", "title")]
    table += [
        (
            p.id,
            p.published.isoformat() if p.published else "",
            "" if p.rank is None else str(p.rank),
            "" if p.upvotes is None else str(p.upvotes),
            ", ".join(p.tags),
            p.title,
        )
        for p in found
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [
            cell.rjust(w) if i in (2, 3) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row[:5], widths, strict=True))
        ]
        click.echo("  ".join([*cells, row[5]]))
    click.echo(f"{len(found)} paper{'s' if len(found) != 1 else ''}")


def _featured(obj: Context) -> set[str]:
    """Ids of the papers some issue features (issue files with errors are skipped here)."""
    from newsletter.content.library import Library, load_issues, load_papers
    from newsletter.content.selection import plan
    from newsletter.errors import Problem

    problems: list[Problem] = []
    papers = {p.id: p for p in load_papers(obj.settings, problems)}
    library = Library(obj.settings, papers, load_issues(obj.settings, problems))
    return {p.id for chosen in plan(library).values() for p in chosen}


def _paper_files(obj: Context, refs: Sequence[str]) -> list:
    """The paper files that `refs` name (ids or unique prefixes of them), all found or none."""
    from newsletter.content.issue_refs import resolve_slug
    from newsletter.ingest.paper_files import read_paper_file

    directory = obj.settings.papers_dir
    ids = sorted(p.stem for p in directory.glob("*.md")) if directory.is_dir() else []
    return [read_paper_file(directory / f"{resolve_slug(ref, ids, kind='paper')}.md") for ref in refs]


def _tag_list(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    from newsletter.content.schema import Expected, tags

    try:
        return list(tags(list(values)))
    except Expected as exc:
        raise click.BadParameter(f"expected {exc.expected}, got {values!r}") from None


@papers.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--add", "add", multiple=True, metavar="TAG", callback=_tag_list, help="Add this tag (repeatable)."
)
@click.option(
    "--remove",
    "remove",
    multiple=True,
    metavar="TAG",
    callback=_tag_list,
    help="Remove this tag (repeatable).",
)
@pass_context
def tag(obj: Context, ids: tuple[str, ...], add: list[str], remove: list[str]) -> None:
    """Add or remove tags on papers, rewriting only their `tags:` line.

    ID is a paper id or a unique prefix of one. Comments, key order and the rest
    of each file stay as they were. If any ID is unknown, no file changes.

    \b
    Example:
        newsletter papers tag 2503.07604 multilingual-tokenizers --add tokenization --remove misc
    """
    from newsletter.ingest.paper_files import retagged_text
    from newsletter.ingest.plan import write_atomically

    if not add and not remove:
        raise click.UsageError("expected --add TAG or --remove TAG")
    files = _paper_files(obj, ids)
    writes, expected = {}, {}
    for f in dict((f.path, f) for f in files).values():
        text = retagged_text(f, add, remove)
        if text != f.text:
            writes[f.path], expected[f.path] = text, f.text
    write_atomically(writes, expected, command="`newsletter papers tag`")
    for f in dict((f.path, f) for f in files).values():
        state = "updated  " if f.path in writes else "unchanged"
        click.echo(f"{state}  {f.id}  tags: {', '.join(f.meta.get('tags') or []) or '(none)'}")


@papers.command()
@click.argument("paper_id", metavar="ID")
@pass_context
def note(obj: Context, paper_id: str) -> None:
    """Write the editor's note of a paper in $EDITOR (saved under '## Editor's note').

    An empty note removes the section; the front matter and abstract are kept as they are.

    \b
    Example:
        EDITOR=nano newsletter papers note 2503.07604
    """
    from newsletter.content.papers import split_note
    from newsletter.ingest.paper_files import with_note
    from newsletter.ingest.plan import write_atomically

    (paper,) = _paper_files(obj, [paper_id])
    current = split_note(paper.body)[1] or ""
    edited = click.edit(current + "\n", extension=".md", require_save=True)
    if edited is None or edited.strip() == current.strip():
        click.echo(f"{paper.id}: note unchanged")
        return
    write_atomically(
        {paper.path: with_note(paper, edited)}, {paper.path: paper.text}, command="`newsletter papers note`"
    )
    click.echo(f"{paper.id}: note {'saved' if edited.strip() else 'removed'}")
