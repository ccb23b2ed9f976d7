"""`newsletter report`: one issue's send, or every issue over time, as a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli import Context, display_path, pass_context


@click.command()
@click.argument("issue_ref", metavar="ISSUE", required=False)
@click.option("--all", "all_issues", is_flag=True, help="Every sent issue over time instead of one issue.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page  [default: build/<issue>/report.html, or build/report.html with --all].",
)
@pass_context
def report(ctx: Context, issue_ref: str | None, all_issues: bool, out: Path | None) -> None:
    """Write an HTML report of ISSUE's send, or of every issue with --all.

    One issue: messages sent per minute, delivery, bounce and complaint rates against
    SES's review thresholds (5 % and 0.1 %), opens and clicks (readers only; machine
    opens and link scanners counted apart), clicks per paper, the split per language,
    and the failed and uncertain recipients. --all: open and click rates, list size and
    unsubscribes per issue. The page is one file that loads nothing from the network:
    open it in a browser, or attach it.

    \b
    Example:
        newsletter report 2026-03-17-multilingual-llms --out report.html
    """
    from newsletter.atomic_files import replace_file
    from newsletter.content.library import load_library
    from newsletter.errors import NewsletterError
    from newsletter.reports.figures import all_issues as every_issue
    from newsletter.reports.figures import issue_figures
    from newsletter.reports.page import all_page, issue_page
    from newsletter.store import Store

    if all_issues == (issue_ref is not None):
        raise click.UsageError("name one ISSUE, or pass --all (not both)")
    settings = ctx.settings
    library = load_library(settings, only=issue_ref)
    with Store.open(settings.database_url) as store:
        if all_issues:
            page = all_page(every_issue(library, store))
            target = out or settings.build_dir / "report.html"
        else:
            issue = library.issue(issue_ref)
            figures = issue_figures(library, store, issue)
            if figures.recipients == 0:
                raise NewsletterError(
                    f"{issue_ref}: no send recorded for this issue; "
                    f"send it first (`newsletter send {issue.slug}`)"
                )
            page = issue_page(figures)
            target = out or settings.build_dir / issue.slug / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_file(target, page.encode("utf-8"))
    click.echo(f"Wrote {display_path(target)}")
