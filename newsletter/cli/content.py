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
    from newsletter.content.selection import empty_issue_problem, plan
    from newsletter.delivery.schedule import schedule_warnings
    from newsletter.mail.checks import CheckReport, check_issue

    library, targets = _targets(ctx, issues, all_issues)
    planned = plan(library)
    failed = 0
    for issue in targets:
        if planned[issue.slug]:
            report = check_issue(library, issue, spamassassin=not no_spam_score)
        else:  # nothing to render: say which rule matched nothing
            report = CheckReport(errors=[str(empty_issue_problem(library, issue))])
        report.warnings[:0] = _freeze_warnings(library, issue) + schedule_warnings(issue)
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


def _freeze_warnings(library, issue) -> list[str]:
    from newsletter.content.freeze import changed_since_frozen, freeze_path, translations_changed_since_frozen
    from newsletter.delivery.plan import translation_files

    translated = translations_changed_since_frozen(issue, translation_files(library, issue))
    if not changed_since_frozen(issue):
        return translated
    sent = issue.frozen.sent.strftime("%Y-%m-%d %H:%M UTC")
    return [
        *translated,
        f"{issue.path.name} changed since it was sent ({sent}): the archive page shows the edit, "
        f"but the papers stay the {len(issue.frozen.papers)} in {freeze_path(issue.path).name} "
        f"(`newsletter issue refreeze {issue.slug}` to review and record the change)",
    ]


@click.group()
def issue() -> None:
    """Create and list issues; change a sent issue's frozen paper list.

    \b
    Example:
        newsletter issue new tokenizers --tag tokenization
        newsletter issue refreeze 2026-03-17-multilingual-llms
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


@issue.command("refreeze")
@click.argument("issue_ref", metavar="ISSUE")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def issue_refreeze(ctx: Context, issue_ref: str, yes: bool) -> None:
    """Replace a sent issue's frozen papers with what its rules pick now.

    Shows the papers that would leave and join the issue (its archive page changes;
    mail already sent does not), then asks. Also records the issue file as it is now,
    so `check` stops warning that it changed.

    \b
    Example:
        newsletter issue refreeze 2026-03-17-multilingual-llms
    """
    import dataclasses

    from newsletter.content.freeze import (
        file_sha256,
        freeze_path,
        translation_hashes,
        translations_changed_since_frozen,
        write_freeze,
    )
    from newsletter.content.selection import rules_would_pick
    from newsletter.delivery.plan import translation_files

    library, issue = _frozen_issue(ctx, issue_ref)
    translations = translation_files(library, issue)
    translated = translations_changed_since_frozen(issue, translations)
    now = rules_would_pick(library, issue)
    ids = tuple(p.id for p in now)
    if not ids:
        raise click.ClickException(f"{issue.slug}: its rules pick no paper now; the record is kept")
    changed = _show_change(library, issue.frozen.papers, ids)
    for line in translated:
        click.echo(f"  {line}")
    if not changed and not translated and issue.frozen.source_sha256 == file_sha256(issue.path):
        click.echo(f"{issue.slug}: the papers and the issue file are as frozen; nothing to do")
        return
    if not changed:
        click.echo(f"{issue.slug}: the papers stay as they are; the record will note the edited issue file")
    if not yes:
        _ask(f"Rewrite {freeze_path(issue.path).name}?")
    record = dataclasses.replace(
        issue.frozen,
        papers=ids,
        by="issue refreeze",
        source_sha256=file_sha256(issue.path),
        translations=translation_hashes(translations),
    )
    path = write_freeze(issue, record)
    click.echo(f"Wrote {display_path(path)} ({_papers(len(ids))}); commit it, then rebuild the archive")


@issue.command("unfreeze")
@click.argument("issue_ref", metavar="ISSUE")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def issue_unfreeze(ctx: Context, issue_ref: str, yes: bool) -> None:
    """Remove a sent issue's freeze record: its rules pick its papers again at every build.

    Shows what the rules pick now against what was sent, then asks. The papers of
    other frozen issues stay out of its reach; the next real send freezes it again.

    \b
    Example:
        newsletter issue unfreeze 2026-03-17-multilingual-llms
    """
    from newsletter.content.freeze import freeze_path, unfreeze
    from newsletter.content.selection import rules_would_pick

    library, issue = _frozen_issue(ctx, issue_ref)
    now = tuple(p.id for p in rules_would_pick(library, issue))
    _show_change(library, issue.frozen.papers, now)
    click.echo(f"From now on its papers follow its rules at every build (today: {_papers(len(now))}).")
    if not yes:
        _ask(f"Remove {freeze_path(issue.path).name}?")
    unfreeze(issue)
    click.echo(f"Removed {display_path(freeze_path(issue.path))}; commit the removal")


def _frozen_issue(ctx: Context, ref: str):
    from newsletter.content.freeze import freeze_path
    from newsletter.content.library import load_library

    library = load_library(ctx.settings, only=ref)
    issue = library.issue(ref)
    if issue.frozen is None:
        raise click.ClickException(
            f"{issue.slug}: not frozen (no {freeze_path(issue.path).name}); its rules pick its papers at every build"
        )
    return library, issue


def _show_change(library, old: tuple[str, ...], new: tuple[str, ...]) -> bool:
    """Print the papers that leave and join; True if the list (or its order) changes."""

    def title(pid: str) -> str:
        paper = library.papers.get(pid)
        return f"{pid}  {paper.title}" if paper else f"{pid}  (no such paper now)"

    for pid in old:
        if pid not in new:
            click.echo(f"  - {title(pid)}")
    for pid in new:
        if pid not in old:
            click.echo(f"  + {title(pid)}")
    if old != new and set(old) == set(new):
        click.echo("  (same papers, new order)")
    if old != new:
        click.echo(f"{_papers(len(old))} frozen -> {_papers(len(new))} by the rules now")
    return old != new


def _ask(question: str) -> None:
    import sys

    if not sys.stdin.isatty():
        raise click.ClickException(f"{question} No terminal to ask on: pass --yes to confirm.")
    if not click.confirm(question, default=False):
        raise click.Abort()
