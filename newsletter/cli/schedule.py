"""`newsletter send --due`: the scheduled sends, as the command line runs and reports them."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from newsletter.config import Settings
from newsletter.delivery.schedule import DueOptions, DueRun, DueSend
from newsletter.interrupts import GracefulStop


def parse_now(text: str | None) -> dt.datetime:
    """The time `--due` takes as now: `--now` / NEWSLETTER_NOW (ISO 8601 with a zone), else the clock."""
    from newsletter.content.issues import zoned_datetime
    from newsletter.content.schema import Expected

    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        return zoned_datetime(text)
    except Expected as exc:
        raise click.BadParameter(f"expected {exc.expected}, got {text!r}", param_hint="--now") from None


def _when(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="minutes")


def send_due_command(
    settings: Settings,
    now_text: str | None,
    run_options: dict[str, Any],
    *,
    dry_run: bool,
    no_spam_score: bool,
    refused: bool,
) -> None:
    """Run `send --due` (or, with --dry-run, only say what is due) and exit with the run's code.

    `run_options` are `send`'s options that apply to every due issue (transport, outbox,
    rate, workers, threads); `refused`: options for a single issue were given too.
    """
    from newsletter.delivery.schedule import due_issues, load_for_schedule, next_scheduled, send_due
    from newsletter.store import Store

    if refused:
        raise click.UsageError(
            "--due sends the issues that are due, checked: it takes no ISSUE, --test, --limit, "
            "--resend-uncertain, --retry-failed or --skip-checks"
        )
    options = DueOptions(**run_options, spamassassin=not no_spam_score)
    now = parse_now(now_text)
    with Store.open(settings.database_url) as store:
        if dry_run:
            library, problems = load_for_schedule(settings)
            _problems(problems)
            due = due_issues(library.issues, store, now)
            for issue in due:
                click.echo(
                    f"Due:    {issue.slug} (send_at {_when(issue.send_at)}, {store.reachable(issue.slug)} readers)"
                )
            if not due:
                _nothing_due(now, next_scheduled(library.issues, now))
            click.echo("Dry run: nothing was sent.")
            sys.exit(1 if any(not p.warning for p in problems) else 0)
        stop = GracefulStop(on_first=_say_stopping)
        try:
            with stop:
                run = send_due(
                    settings, store, now=now, options=options, stop_event=stop.event, on_start=_started
                )
        except KeyboardInterrupt:
            click.echo(
                "\nQuit at once. Run `newsletter send --due` again to send the rest; it never reaches "
                "a reader twice (see `newsletter status ISSUE` for what is uncertain).",
                err=True,
            )
            sys.exit(130)
    _report(run)
    sys.exit(run.exit_code)


def _report(run: DueRun) -> None:
    from newsletter.cli.send import show_report

    _problems(run.problems)
    if run.warning and any(s.report for s in run.sends):
        click.echo(f"Warning: {run.warning}", err=True)
    if run.held_by is not None:
        lease = run.held_by
        click.echo(
            f"send --due: another run is sending: {lease.holder}, since {_when(lease.acquired_at)} "
            f"(its lease runs to {_when(lease.expires_at)} unless renewed); nothing sent here"
        )
        return
    if not run.sends:
        _nothing_due(run.now, run.next)
        return
    for due in run.sends:
        for line in due.warnings:
            click.echo(f"Warning: check: {due.issue.slug}: {line}", err=True)
        if due.skipped:
            click.echo(f"Error: {due.issue.slug}: skipped, nothing was sent: {due.skipped}", err=True)
        elif due.report is not None:
            show_report(due.report)
    if run.lost_lease:
        click.echo(
            "Error: the send --due lease ran out while this run was sending (the process stalled); "
            "it stopped so that another run can go on",
            err=True,
        )


def _problems(problems) -> None:
    for problem in problems:
        if not problem.warning:
            click.echo(f"Error: {problem} (left out; see `newsletter check`)", err=True)


def _nothing_due(now: dt.datetime, following) -> None:
    later = f"; next: {following.slug} at {_when(following.send_at)}" if following is not None else ""
    click.echo(f"Nothing due at {_when(now)}{later}")


def _started(due: DueSend) -> None:
    click.echo(f"Sending {due.issue.slug} (send_at {_when(due.issue.send_at)})")


def _say_stopping() -> None:
    click.echo("\nStopping after the messages in flight… (Ctrl-C again to quit at once)", err=True)
