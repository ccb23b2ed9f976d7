"""`newsletter digest`: the daily trending issue, from Hugging Face's daily papers to a checked draft or a scheduled issue."""

from __future__ import annotations

import datetime as dt

import click

from newsletter.cli import Context, display_path, pass_context
from newsletter.cli.papers import ISO_DATE


@click.command()
@click.option(
    "--hf-date",
    "day",
    type=ISO_DATE,
    help="The day of Hugging Face's daily papers [default: today in newsletter.timezone].",
)
@click.option(
    "--top", type=click.IntRange(1, 100), help="Feature this many papers [default: digest.top, 10]."
)
@click.option(
    "--now",
    "now_text",
    envvar="NEWSLETTER_NOW",
    hidden=True,
    help="The time taken as now (ISO 8601 with a zone); for tests.",
)
@click.option("--no-spam-score", is_flag=True, help="Skip the SpamAssassin check (it takes a few seconds).")
@pass_context
def digest(
    ctx: Context, day: dt.date | None, top: int | None, now_text: str | None, no_spam_score: bool
) -> None:
    """Make the day's trending issue: fetch Hugging Face's daily papers, import them, create, build and check the issue.

    The issue is issues/<date>-trending.md (the slug is digest.slug); its rules pick
    the --top papers with the most upvotes (`select: {sort: upvotes, limit: N}`), and
    its title, subject and preheader come from the [digest] templates. It is left as a
    draft for review, or, with `auto_publish = true` in [digest], published with a
    send_at at the next digest.send_time in newsletter.timezone, so that
    `newsletter send --due` mails it then.

    Safe to run from cron every day: a day already done prints one line and changes
    nothing; a day without papers creates nothing (exit 0); a failed fetch creates
    nothing (exit 1); an issue that fails its checks stays a draft (exit 1).

    \b
    Example:
        newsletter digest --hf-date 2026-03-17 --top 5
    """
    from newsletter.cli.schedule import parse_now
    from newsletter.content.library import load_issues
    from newsletter.errors import NewsletterError, Problem
    from newsletter.ingest.candidates import SourceError
    from newsletter.ingest.digest import digest_path, fetch_day, local_day, plan_digest

    settings = ctx.settings
    now = parse_now(now_text)
    day = day or local_day(settings, now)
    top = top or settings.digest.top
    path = digest_path(settings, day)
    if path.exists():
        click.echo(f"{display_path(path)}: the digest of {day} exists already; nothing to do")
        return
    try:
        parsed = fetch_day(settings, day)
    except SourceError as exc:
        raise NewsletterError(f"{exc.where}: {exc.reason}; nothing was created") from None
    for refusal in parsed.refused:
        click.echo(f"refused    {refusal.where}: {refusal.reason}", err=True)
    if not parsed.candidates:
        if parsed.refused:
            raise NewsletterError(
                f"{day}: every one of the {len(parsed.refused)} daily papers was refused; nothing was created"
            )
        click.echo(f"No papers on Hugging Face for {day}; nothing was created")
        return
    problems: list[Problem] = []  # a broken issue file only hides its number; `check` reports it
    number = max((i.number for i in load_issues(settings, problems)), default=0) + 1
    plan = plan_digest(settings, day, parsed, number=number, top=top, today=local_day(settings, now))
    _create_and_check(ctx, plan, now, spamassassin=not no_spam_score)


def _create_and_check(ctx: Context, plan, now: dt.datetime, *, spamassassin: bool) -> None:
    """Write the papers and the draft, build and check it, then publish it or leave it for review."""
    from newsletter.content.library import load_library
    from newsletter.errors import NewsletterError
    from newsletter.ingest.digest import issue_text, next_send_at, rewrite_digest, write_digest
    from newsletter.mail.build import build_message, write_build
    from newsletter.mail.checks import check_built

    settings = ctx.settings
    text = issue_text(settings, plan, count=plan.expected_count)
    write_digest(settings, plan, text)
    report = plan.imported.report
    shown = display_path(plan.path)
    click.echo(
        f"Imported the {plan.papers} papers of {plan.day}: {len(report.created)} created, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged"
    )
    slug = plan.path.stem
    library = load_library(settings, only=slug)
    built = build_message(library, library.issue(slug))
    count = len(built.rendered.papers)
    if count != plan.expected_count:  # other issues featured some of the day's papers already
        fixed = issue_text(settings, plan, count=count)
        rewrite_digest(plan, text, fixed)
        text = fixed
        library = load_library(settings, only=slug)
        built = build_message(library, library.issue(slug))
    write_build(built, settings.build_dir)
    click.echo(f"Created {shown} (issue {plan.number}, {count} papers) and built it")
    checks = check_built(built, spamassassin=spamassassin)
    for line in checks.warnings:
        click.echo(f"Warning: check: {line}", err=True)
    if checks.errors:
        lines = "\n".join(f"Error: check: {line}" for line in checks.errors)
        raise NewsletterError(
            f"{shown}: the checks failed; it stays a draft for review\n{lines}\n\n"
            f"Fix it, then `newsletter check {slug}`."
        )
    if not settings.digest.auto_publish:
        click.echo(
            f"Left {shown} as a draft for review: set 'status: published' and a send_at "
            "(or run `newsletter send`) when it is ready"
        )
        return
    send_at = next_send_at(settings, now)
    rewrite_digest(plan, text, issue_text(settings, plan, count=count, status="published", send_at=send_at))
    click.echo(f"Published {shown} with send_at {send_at.isoformat()}: `newsletter send --due` mails it then")
