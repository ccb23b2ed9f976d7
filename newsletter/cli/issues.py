"""`newsletter issues` (also `newsletter issue list`): every issue at a glance."""

from __future__ import annotations

import json

import click

from newsletter.cli import Context, pass_context

# column heading -> IssueSummary field; ledger figures stay blank until a send begins
COLUMNS = (
    ("#", "number"),
    ("date", "date"),
    ("slug", "slug"),
    ("status", "status"),
    ("papers", "papers"),
    ("recipients", "recipients"),
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("bounces", "bounces"),
    ("complaints", "complaints"),
    ("opens", "opens"),
    ("clicks", "clicks"),
)
LEDGER_FIELDS = {"recipients", "sent", "delivered", "bounces", "complaints", "opens", "clicks"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--now",
    "now_text",
    envvar="NEWSLETTER_NOW",
    hidden=True,
    help="The time taken as now (ISO 8601 with a zone); for tests.",
)
@pass_context
def issues(ctx: Context, as_json: bool, now_text: str | None) -> None:
    """List every issue: number, date, slug, status, papers and how its send went.

    Status is the front matter's (draft, published) until a send begins, then
    sending (readers left, e.g. after Ctrl-C) or sent; a published issue whose
    send_at is still ahead is scheduled, with its time. Opens and clicks count
    readers (machine opens and link scanners left out), and are blank unless
    engagement tracking is on (`ses.engagement`). An issue file with errors is
    left out with a warning; `newsletter check` says what is wrong with it.

    \b
    Example:
        newsletter issues --json
    """
    from newsletter.content.library import Library, load_issues, load_papers
    from newsletter.delivery.status import issue_summaries
    from newsletter.errors import Problem
    from newsletter.store import Store

    settings = ctx.settings
    problems: list[Problem] = []
    papers = {p.id: p for p in load_papers(settings, problems)}
    library = Library(settings=settings, papers=papers, issues=load_issues(settings, problems))
    for problem in problems:
        if not problem.warning and problem.where.startswith("issues"):
            click.echo(f"Warning: {problem} (left out)", err=True)
    from newsletter.cli.schedule import parse_now

    with Store.open(settings.database_url) as store:
        rows = issue_summaries(library, store, parse_now(now_text))
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    table = [[head for head, _ in COLUMNS]]
    for row in rows:
        values = row.as_dict()
        started = row.recipients > 0
        if row.status == "scheduled":
            values["status"] = f"scheduled {row.send_at}"
        table.append(
            [
                "" if (f in LEDGER_FIELDS and not started) or values[f] is None else str(values[f])
                for _, f in COLUMNS
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        cells = [
            cell.rjust(width) if COLUMNS[i][1] in LEDGER_FIELDS | {"number", "papers"} else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())
    click.echo(f"{len(rows)} issue{'s' if len(rows) != 1 else ''}")
