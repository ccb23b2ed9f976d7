"""Commands for an editor's content: build, check, issue new."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click

from newsletter.cli import Context, display_path, pass_context
from newsletter.cli.issues import issues as issues_command


def _targets(ctx: Context, issues: tuple[str, ...], all_issues: bool):
    """The library and the issues a command names (or all of them with --all)."""
    from newsletter.content.library import load_library

    if not issues and not all_issues:
        raise click.UsageError("name an ISSUE (a path or slug), or pass --all")
    # With one issue named, problems in other issue files are only warnings.
    library = load_library(ctx.settings, only=issues[0] if len(issues) == 1 else None)
    return library, library.issues if all_issues else [library.issue(ref) for ref in issues]


@click.command()
@click.argument("issues", nargs=-1, metavar="ISSUE...")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder [default: build/]."
)
@click.option("--all", "all_issues", is_flag=True, help="Build every issue.")
@pass_context
def build(ctx: Context, issues: tuple[str, ...], out: Path | None, all_issues: bool) -> None:
    """Render issues to OUT/<slug>/email.html, email.txt and preview.eml.

    ISSUE is a path or a slug. email.html and email.txt keep the per-reader
    placeholders; preview.eml is the complete message a sample reader receives.

    \b
    Example:
        newsletter build 2026-03-17-multilingual-llms
    """
    from newsletter.mail.build import build_message, write_build

    library, targets = _targets(ctx, issues, all_issues)
    out = out or ctx.settings.build_dir
    for issue in targets:
        built = write_build(build_message(library, issue), out)
        html_kb = len(built.rendered.html.encode()) / 1024
        click.echo(
            f"{issue.slug}: {_papers(len(built.rendered.papers))}, HTML {html_kb:.1f} KB "
            f"-> {display_path(built.folder)}/"
        )


def _papers(n: int) -> str:
    return "1 paper" if n == 1 else f"{n} papers"


@click.command()
@click.argument("issues", nargs=-1, metavar="ISSUE...")
@click.option("--all", "all_issues", is_flag=True, help="Check every issue.")
@click.option("--no-spam-score", is_flag=True, help="Skip the SpamAssassin score (it takes a few seconds).")
@pass_context
def check(ctx: Context, issues: tuple[str, ...], all_issues: bool, no_spam_score: bool) -> None:
    """Check an issue before sending: content, size, links, headers, unsubscribe, spam score.

    Errors exit with status 1; warnings are printed and do not fail the check.

    \b
    Example:
        newsletter check 2026-03-17-multilingual-llms
    """
    from newsletter.mail.checks import check_issue

    library, targets = _targets(ctx, issues, all_issues)
    failed = 0
    for issue in targets:
        report = check_issue(library, issue, spamassassin=not no_spam_score)
        click.echo(f"{issue.slug}")
        for line in report.passed:
            click.echo(f"  ok    {line}")
        for line in report.warnings:
            click.echo(f"  warn  {line}")
        for line in report.errors:
            click.echo(f"  FAIL  {line}")
        failed += bool(report.errors)
    if failed:
        raise click.ClickException(f"{failed} issue(s) failed the checks") from None


@click.group()
def issue() -> None:
    """Create and list issues.

    \b
    Example:
        newsletter issue new tokenizers --tag tokenization
    """


issue.add_command(issues_command, "list")


@issue.command("new")
@click.argument("slug")
@click.option("--title", help="The issue's title [default: from the slug].")
@click.option("--date", "date_", type=click.DateTime(["%Y-%m-%d"]), help="Issue date [default: today].")
@click.option("--language", help="The issue's language [default: from settings].")
@click.option("--tag", "tags", multiple=True, help="Select papers with this tag (repeatable).")
@click.option(
    "--limit", type=click.IntRange(1), default=10, show_default=True, help="At most this many papers."
)
@pass_context
def issue_new(
    ctx: Context,
    slug: str,
    title: str | None,
    date_: dt.datetime | None,
    language: str | None,
    tags: tuple[str, ...],
    limit: int,
) -> None:
    """Start a new draft issue: issues/<date>-<SLUG>.md with selection rules.

    The next number follows the highest existing one. Edit the file, then build it.

    \b
    Example:
        newsletter issue new tokenizers --tag tokenization --limit 8
    """
    from newsletter.content.issue_files import new_issue_file
    from newsletter.content.library import load_issues

    settings = ctx.settings
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", slug):
        raise click.BadParameter(
            f"expected lowercase letters, digits and '-', got {slug!r}", param_hint="SLUG"
        )
    date = (date_ or dt.datetime.now()).date()
    number = max((i.number for i in load_issues(settings)), default=0) + 1
    path = new_issue_file(
        settings, slug=slug, date=date, number=number, title=title, language=language, tags=tags, limit=limit
    )
    click.echo(f"Created {display_path(path)} (issue {number}, draft)")
