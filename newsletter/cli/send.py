"""`newsletter send` and `newsletter status`: thin wiring over newsletter.delivery (plan, sending, status)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli import Context, pass_context
from newsletter.delivery.transports.registry import COMMAND_LINE_TRANSPORTS
from newsletter.interrupts import GracefulStop

if TYPE_CHECKING:
    from newsletter.delivery.report import SendReport


@click.command()
@click.argument("issue_ref", metavar="[ISSUE]", required=False)
@click.option(
    "--due",
    is_flag=True,
    help="Send every published issue whose send_at has come (for cron); no ISSUE.",
)
@click.option(
    "--now",
    "now_text",
    envvar="NEWSLETTER_NOW",
    hidden=True,
    help="The time --due takes as now (ISO 8601 with a zone); for tests.",
)
@click.option(
    "--transport",
    "transport_name",
    type=click.Choice(COMMAND_LINE_TRANSPORTS),
    help="How messages leave [default: send.transport in newsletter.toml].",
)
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the file transport; messages go to OUTBOX/<slug>/ [default: outbox/].",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Messages per second [default: send.rate, else the SES quota, else unlimited].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Sending processes (each gets rate/N), for when one CPU cannot keep up.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 128),
    default=8,
    show_default=True,
    help="Concurrent sends per process.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help="Send to at most N readers now (a canary); a later run continues with the rest.",
)
@click.option(
    "--resend-uncertain",
    is_flag=True,
    help="Resend the messages that may or may not have arrived (answer lost, send killed).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Retry readers whose message failed temporarily (never the uncertain ones).",
)
@click.option("--dry-run", is_flag=True, help="Count the readers and run the checks; send nothing.")
@click.option(
    "--test",
    "test_addresses",
    multiple=True,
    metavar="ADDR",
    help='Send only to ADDR (repeatable), subject prefixed "[TEST] ", not recorded.',
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--skip-checks", is_flag=True, help="Send even if the pre-flight checks find errors.")
@click.option("--no-spam-score", is_flag=True, help="Skip the SpamAssassin check (it takes a few seconds).")
@pass_context
def send(
    ctx: Context,
    issue_ref: str | None,
    due: bool,
    now_text: str | None,
    transport_name: str | None,
    outbox: Path | None,
    rate: float | None,
    workers: int,
    threads: int,
    limit: int | None,
    resend_uncertain: bool,
    retry_failed: bool,
    dry_run: bool,
    test_addresses: tuple[str, ...],
    yes: bool,
    skip_checks: bool,
    no_spam_score: bool,
) -> None:
    """Send ISSUE to every active subscriber, once, recorded in the ledger.

    ISSUE is a path or a slug; it must be published (drafts work with --test and
    --dry-run). The first real send freezes its papers in issues/<slug>.sent.toml
    (commit it). Re-running continues an interrupted send and never reaches a reader
    twice. Messages the provider may have taken without our knowing (its answer was
    lost, or a send was killed while they were in flight) are listed as uncertain and
    resent only with --resend-uncertain; --retry-failed resends only messages known
    not to have left. The send paces itself at the provider's quota and slows down to
    the rate it really allows. Ctrl-C stops after the messages in flight are recorded.

    Each reader gets the issue in their language when it has a translation
    (issues/<slug>.<lang>.md; pt-BR falls back to pt, then to the original); the issue
    is rendered and checked once per language. --dry-run shows who gets which.

    With --due instead of ISSUE, every published issue whose `send_at` has come and that
    has readers left is checked and sent, oldest send_at first, without asking: run it
    every minute from cron, a systemd timer or a CI schedule. Nothing due prints one line
    and exits 0; while one run sends, another says who holds the send and since when.
    An issue whose checks fail is skipped with the reason, and the run exits 1.

    \b
    Example:
        newsletter send 2026-03-17-multilingual-llms --test me@example.org
        newsletter send 2026-03-17-multilingual-llms --limit 50
        newsletter send 2026-03-17-multilingual-llms
        newsletter send --due
    """
    from newsletter.content.freeze import require_sendable
    from newsletter.content.library import load_library
    from newsletter.delivery.plan import plan_send, recipients_count, resolve_secret, send_languages
    from newsletter.delivery.sending import send_issue, send_test
    from newsletter.delivery.transports import make_transport
    from newsletter.errors import NewsletterError
    from newsletter.mail.build import build_message
    from newsletter.mail.message import MessageTemplate
    from newsletter.store import Store

    settings = ctx.settings
    if due:
        from newsletter.cli.schedule import send_due_command

        single = issue_ref or test_addresses or limit is not None or resend_uncertain or retry_failed
        run = dict(transport=transport_name, outbox=outbox, rate=rate, workers=workers, threads=threads)
        send_due_command(settings, now_text, run, dry_run=dry_run, no_spam_score=no_spam_score,
                         refused=bool(single or skip_checks))  # fmt: skip
        return
    if issue_ref is None:
        raise click.UsageError("expected an ISSUE (a path or a slug), or --due")
    name = transport_name or settings.transport
    # A real transport without a secret stops here; the development-key warning waits
    # until messages are about to be signed, so it never precedes an unrelated error.
    secret, warning = resolve_secret(settings, name)
    library = load_library(settings, only=issue_ref)
    issue = library.issue(issue_ref)
    if not (test_addresses or dry_run):
        require_sendable(issue)  # a draft may be tried (--test, --dry-run), never sent to the list
    # rendered once per language: every reader's message is a substitution into one of these
    builds = {lang: build_message(library, issue, language=lang) for lang in send_languages(library, issue)}
    built = builds[issue.language]
    for language in sorted(set(library.translations.languages_of(issue)) - set(builds)):
        click.echo(
            f"Warning: {_source(library, issue, language)}: not sent: {issue.slug} was first sent before "
            f"it existed, so its readers get what the first readers got "
            f"(`newsletter issue refreeze {issue.slug}` records it)",
            err=True,
        )
    if not skip_checks:
        for language, each in builds.items():
            _preflight(
                each,
                spamassassin=not no_spam_score,
                where=issue.slug if language == issue.language else _source(library, issue, language),
                original=language == issue.language,
            )

    from newsletter.delivery.transports.file import issue_outbox

    outbox = issue_outbox(outbox or settings.outbox_dir, issue.slug, test=bool(test_addresses))
    transport = make_transport(settings, name, outbox=outbox, concurrency=threads)
    transport.check()

    if test_addresses:
        addresses = [_address(a) for a in test_addresses]
        _warn(warning)
        with Store.open(settings.database_url) as store:
            results = send_test(
                settings,
                library,
                issue,
                addresses,
                transport=transport,
                store=store,
                secret=secret,
                renders={lang: b.rendered for lang, b in builds.items()},
            )
        for r in results:
            click.echo(f"{r.email}: {r.outcome} ({r.language})" + (f" ({r.error})" if r.error else ""))
        failed = [r for r in results if r.outcome != "sent"]
        if failed:
            raise NewsletterError(f"{len(failed)} of {len(results)} test message(s) were not sent")
        click.echo(
            f"Sent {len(results)} test message(s) of {issue.slug}; nothing was recorded in the ledger."
        )
        return

    plan = plan_send(
        settings,
        library,
        issue,
        transport=transport,
        rate=rate,
        workers=workers,
        threads=threads,
        limit=limit,
        resend_uncertain=resend_uncertain,
        retry_failed=retry_failed,
        secret=secret,
        templates={lang: MessageTemplate.build(b.rendered, settings) for lang, b in builds.items()},
    )
    with Store.open(settings.database_url) as store:
        to_send = recipients_count(store, plan)
        papers = len(built.rendered.papers)
        if dry_run:
            _describe_dry_run(store, plan, library, issue, papers, checked=not skip_checks, to_send=to_send)
            return
        if to_send > 0 and not yes:
            _confirm(issue, papers, to_send, name, limit)
        if to_send > 0:
            _warn(warning)
            _freeze(issue, built.rendered.papers, {lang: _path(library, issue, lang) for lang in builds})
        stop = GracefulStop(on_first=_say_stopping)
        try:
            with _progress(to_send) as progress, stop:
                report = send_issue(plan, store, progress=progress, stop_event=stop.event)
        except KeyboardInterrupt:
            _quit_at_once(store, issue.slug)
    _finish(report)


def _warn(warning: str | None) -> None:
    if warning:
        click.echo(f"Warning: {warning}", err=True)


def _freeze(issue, papers, sources: dict[str, Path]) -> None:
    """The first real send records the papers and translations it sends: they stay the issue's."""
    import datetime as dt

    from newsletter.content.freeze import freeze, freeze_path

    if issue.frozen is None:
        translations = {lang: path for lang, path in sources.items() if lang != issue.language}
        freeze(issue, papers, issue.subject, dt.datetime.now(dt.UTC), translations=translations)
        click.echo(f"Froze {freeze_path(issue.path).name}: these papers stay the issue's (commit the file)")


def _status(issue) -> str:
    return issue.status + ("" if issue.published else " (a real send is refused until it is published)")


def _audience(issue) -> str:
    return issue.audience.describe() if issue.audience else "every active subscriber"


def _path(library, issue, language: str) -> Path:
    """The file a language's words come from: the issue's, or its translation's."""
    found = library.translations.issues.get((issue.slug, language))
    return issue.path if found is None else found.path


def _source(library, issue, language: str) -> str:
    return f"issues/{_path(library, issue, language).name}"


def _describe_dry_run(store, plan, library, issue, papers: int, *, checked: bool, to_send: int) -> None:
    from newsletter.delivery.plan import language_groups

    uncertain = len(store.uncertain(plan.issue))  # rows of senders still at work are in flight
    click.echo(f"Issue:      {plan.issue}")
    click.echo(f"Status:     {_status(issue)}")
    click.echo(f"Subject:    {issue.subject}")
    click.echo(f"Papers:     {papers}")
    click.echo(f"Transport:  {plan.transport_name}")
    click.echo(f"Audience:   {_audience(issue)}")
    click.echo(f"Recipients: {to_send}")
    click.echo(
        "Languages:  (readers by the translation they get" + (", before --limit)" if plan.limit else ")")
    )
    for group in language_groups(store, plan):
        tags = ", ".join(
            f"{tag or 'no language'} {n}" if len(group.readers) > 1 else tag or "no language"
            for tag, n in group.readers.items()
        )
        readers = f"{group.total} reader{'' if group.total == 1 else 's'}" + (f": {tags}" if tags else "")
        source = _source(library, issue, group.language)
        what = f"the original, {source}" if group.language == plan.language else source
        click.echo(f"  {group.language} ({readers}) → {what}")
    if uncertain:
        click.echo(f"Uncertain:  {uncertain} (resent only with --resend-uncertain)")
    click.echo("Checks:     " + ("passed" if checked else "skipped") + "\nDry run: nothing was sent.")


def _address(text: str) -> str:
    from newsletter.errors import NewsletterError
    from newsletter.store import normalize_email

    try:
        return normalize_email(text)
    except ValueError as exc:
        raise NewsletterError(f"--test: expected an email address, got {text!r}: {exc}") from None


def _preflight(built, *, spamassassin: bool, where: str, original: bool = True) -> None:
    """Check one language's build; `where` names the issue or the translation's file."""
    from newsletter.errors import NewsletterError
    from newsletter.mail.checks import check_built

    report = check_built(built, spamassassin=spamassassin)
    # a translation's findings name its language: the original's stay as they always were
    language = "" if original else f"{built.rendered.language}: "
    for line in report.warnings:
        click.echo(f"Warning: check: {language}{line}", err=True)
    if report.errors:
        lines = "\n".join(f"Error: check: {language}{line}" for line in report.errors)
        raise NewsletterError(
            f"{where}: the pre-flight checks failed; nothing was sent\n{lines}\n\n"
            "Fix the issue (see `newsletter check`), or pass --skip-checks to send anyway."
        )


def _confirm(issue, papers: int, count: int, transport: str, limit: int | None) -> None:
    from newsletter.errors import NewsletterError

    if not sys.stdin.isatty():
        raise NewsletterError(
            "send: refusing to send without confirmation (no terminal to ask on)\n\n"
            "Pass --yes to send non-interactively."
        )
    canary = " (canary, --limit)" if limit is not None else ""
    click.echo(f"Issue:      {issue.slug}", err=True)
    click.echo(f"Status:     {_status(issue)}", err=True)
    click.echo(f"Subject:    {issue.subject}", err=True)
    click.echo(f"Papers:     {papers}", err=True)
    click.echo(f"Audience:   {_audience(issue)}", err=True)
    click.echo(f"Recipients: {count}{canary}", err=True)
    click.echo(f"Transport:  {transport}", err=True)
    if not click.confirm("Send now?", default=False, err=True):
        raise click.Abort()


@contextmanager
def _progress(total: int) -> Iterator:
    """A rich progress bar on stderr with rate and ETA; silent when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.0f}/s" if task.speed else "–/s")

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("Sending"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = bar.add_task("send", total=total or None)

    def update(done: int, todo: int) -> None:
        bar.update(task, completed=done, total=todo or None)

    with bar:
        yield update


def _say_stopping() -> None:
    click.echo("\nStopping after the messages in flight… (Ctrl-C again to quit at once)", err=True)


def _quit_at_once(store, slug: str) -> None:
    """After a second Ctrl-C: what the ledger holds now and how to go on (not a bare "Aborted!")."""
    c = store.ledger_counts(slug)
    click.echo(
        f"\nQuit at once: {c['sent']} sent, {c['queued']} still queued, {c['sending']} uncertain "
        f"(in flight when you pressed Ctrl-C; maybe delivered).\n"
        f"Run `newsletter send {slug}` again to send the rest; it never reaches a reader twice.\n"
        f"The uncertain ones are resent only with --resend-uncertain (see `newsletter status {slug}`).",
        err=True,
    )
    sys.exit(130)  # the shell's code for "ended by Ctrl-C"


def _finish(report: SendReport) -> None:
    show_report(report)
    if report.exit_code:
        sys.exit(report.exit_code)


def show_report(report: SendReport) -> None:
    """A send's summary and its failures, as the editor reads them."""
    click.echo(report.summary())
    if report.tally.failures:
        click.echo("Failures:")
        for f in report.tally.failures[:20]:
            click.echo(f"  {f.email}: {f.outcome}: {f.error}")
    if report.stopped:
        click.echo(f"Error: {report.stopped}", err=True)
    if report.tally.crashed:
        click.echo(f"Error: the send stopped on an unexpected error:\n{report.tally.crashed}", err=True)


@click.command()
@click.argument("issue_ref", metavar="ISSUE")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON (for scripts).")
@pass_context
def status(ctx: Context, issue_ref: str, as_json: bool) -> None:
    """Show how the send of ISSUE went: counts by state, failures, deliveries, complaints.

    \b
    Example:
        newsletter status 2026-03-17-multilingual-llms --json
    """
    from newsletter.content.issue_refs import issue_stems, resolve_slug
    from newsletter.delivery.status import COMPLAINT_WARNING, issue_status
    from newsletter.errors import NewsletterError
    from newsletter.store import Store

    with Store.open(ctx.settings.database_url) as store:
        # an issue file may be gone while its ledger stays: both name issues
        slug = resolve_slug(issue_ref, issue_stems(ctx.settings.issues_dir) + store.issues_sent())
        result = issue_status(store, slug)
        if result.total == 0:
            known = ", ".join(store.issues_sent()) or "none"
            raise NewsletterError(
                f"{issue_ref}: no send recorded for this issue (issues with a send: {known})"
            )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        c = result.counts
        click.echo(f"Issue:      {slug}")
        click.echo(f"Recipients: {result.total}")
        click.echo(f"Sent:       {c['sent']}")
        click.echo(f"Delivered:  {result.delivered}")
        click.echo(f"Queued:     {c['queued']}")
        click.echo(f"Uncertain:  {len(result.uncertain)}")
        in_flight = c["sending"] - len(result.uncertain)
        if in_flight:
            click.echo(f"In flight:  {in_flight} (senders at work)")
        click.echo(f"Failed:     {c['failed_permanent']} permanent, {c['failed_temporary']} temporary")
        if result.events:
            click.echo(
                f"Bounces:    {result.events.get('bounce', 0)} permanent, "
                f"{result.events.get('soft_bounce', 0)} transient\n"
                f"Complaints: {result.events.get('complaint', 0)} ({result.complaint_rate:.2%} of sent)"
            )
        if len(result.languages) > 1 or any(lang is not None for lang in result.languages):
            click.echo("Languages:")
            for language, by_state in result.languages.items():
                parts = ", ".join(f"{by_state[k]} {k}" for k in ("sent", "failed", "uncertain"))
                click.echo(f"  {language or 'none (no message made)'}: {parts}")
        if result.senders:
            click.echo("Senders:")
            for name, by_state in result.senders.items():
                parts = ", ".join(f"{by_state.get(k, 0)} {k}" for k in ("sent", "failed", "sending"))
                click.echo(f"  {name}: {parts}")
        if result.failures:
            click.echo("Failures:")
            for f in result.failures:
                click.echo(f"  {f.email}: {f.outcome}: {f.error}")
        if result.uncertain:
            click.echo("Uncertain (maybe delivered; resend with `newsletter send --resend-uncertain`):")
            for address in result.uncertain:
                click.echo(f"  {address}")
    if result.complaint_rate > COMPLAINT_WARNING:
        click.echo(
            f"Warning: complaint rate {result.complaint_rate:.2%} is above {COMPLAINT_WARNING:.1%}; "
            "SES reviews accounts at this level",
            err=True,
        )
