"""`newsletter events`: SES bounce, complaint and delivery notifications → subscriber status."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.audience.lifecycle import SOFT_BOUNCE_LIMIT
from newsletter.cli import Context, pass_context

if TYPE_CHECKING:
    from newsletter.audience.notifications import Trust
    from newsletter.config import Settings

_limit = click.option(
    "--soft-bounce-limit",
    default=SOFT_BOUNCE_LIMIT,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Transient bounces after which an address is suppressed as bounced.",
)


@click.group()
def events() -> None:
    """Process Amazon SES event notifications (bounces, complaints, deliveries)."""


@events.command()
@click.option(
    "--queue-url", required=True, envvar="NEWSLETTER_EVENTS_QUEUE_URL", help="The SQS queue to read."
)
@click.option("--once", is_flag=True, help="Process what the queue holds now, then exit.")
@click.option(
    "--endpoint-url",
    envvar="NEWSLETTER_SQS_ENDPOINT_URL",
    default=None,
    help="SQS endpoint (for tests and SQS-compatible services).",
)
@click.option("--region", default=None, help="AWS region of the queue [default: the [ses] region].")
@click.option(
    "--dead-letter-queue-url",
    default=None,
    help="Move malformed messages here; without it they stay for the queue's redrive policy.",
)
@click.option(
    "--wait-seconds",
    default=None,
    type=click.IntRange(0, 20),
    help="SQS long-poll wait in seconds [default: 20; 1 with --once].",
)
@_limit
@pass_context
def poll(
    obj: Context,
    queue_url: str,
    once: bool,
    endpoint_url: str | None,
    region: str | None,
    dead_letter_queue_url: str | None,
    wait_seconds: int | None,
    soft_bounce_limit: int,
) -> None:
    """Read SES notifications from SQS and apply them to the subscribers.

    Permanent bounces and complaints suppress the address at once; transient bounces
    do after --soft-bounce-limit of them; deliveries are noted in the ledger. A message
    is deleted only after its changes are saved. SNS confirmations, SES's topic
    validation notice and account events are ignored and deleted. Malformed messages,
    and envelopes from a topic or account not in [events] topic_arns / account_id, are
    moved to --dead-letter-queue-url (or left for the queue's redrive policy). Stop with
    Ctrl-C (a second one quits at once; the figures are printed either way).

    \b
    Example:
        newsletter events poll --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/ses-events
    """
    from newsletter.audience.events import EventSummary
    from newsletter.audience.sqs import PollResult, poll_queue
    from newsletter.interrupts import GracefulStop
    from newsletter.store import Store

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = obj.settings
    # Ctrl-C is ours from here, not only once the poll loop runs: starting (boto3, the queue's
    # attributes) takes seconds, and a Ctrl-C then must not end in a bare "Aborted!"
    stop = GracefulStop(on_first=_say_stopping)
    result = PollResult(EventSummary())
    try:
        with stop, Store.open(settings.database_url) as store:
            if not once:
                click.echo(f"Polling {queue_url} (Ctrl-C to stop)", err=True)
            result = poll_queue(
                store,
                queue_url,
                endpoint_url=endpoint_url,
                region=region or settings.ses.region,
                once=once,
                wait_seconds=wait_seconds,
                dead_letter_queue_url=dead_letter_queue_url,
                soft_bounce_limit=soft_bounce_limit,
                trust=_trust(settings),
                engagement=settings.ses.engagement,
                stop_event=stop.event,
            )
    except KeyboardInterrupt:  # the second Ctrl-C came before the poll loop started: nothing received
        result.interrupted = result.quit_at_once = True
    except Exception:
        if not stop.quit:
            raise
        result.interrupted = result.quit_at_once = True  # the second Ctrl-C, disguised by an import
    if result.quit_at_once:
        click.echo(
            "Quit at once. Messages not deleted stay in the queue; "
            "run `newsletter events poll` again to process them.",
            err=True,
        )
    elif result.interrupted:
        click.echo("Stopped.", err=True)
    s = result.summary
    click.echo(
        f"Received {result.received}, deleted {result.deleted}: {s.processed} processed, {s.bounced} bounced, "
        f"{s.complained} complained, {s.delivered} delivered, {s.ignored} ignored, {s.malformed} malformed"
        + (f", {s.refused} refused (not from an allowed topic or account)" if s.refused else "")
        + (f", {s.unsubscribed} unsubscribed" if s.unsubscribed else "")
        + (f", {s.opens} opens, {s.clicks} clicks ({s.machine} by machines)" if s.opens or s.clicks else "")
        + (f" ({result.dead_lettered} moved to the dead-letter queue)" if result.dead_lettered else "")
        + (f", {result.failed} failed and left in the queue" if result.failed else "")
        + "."
    )
    if result.quit_at_once:
        sys.exit(130)  # the shell's code for "ended by Ctrl-C"


def _say_stopping() -> None:
    click.echo("\nStopping after the batch in hand… (Ctrl-C again to quit at once)", err=True)


@events.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_limit
@pass_context
def import_(obj: Context, file: Path, soft_bounce_limit: int) -> None:
    """Process saved SES notifications from FILE (a JSON list, or one JSON object per line).

    Each entry may be an SNS envelope, a raw SES event, or an EventBridge event.
    Malformed entries are reported by position and skipped (exit code 1).

    \b
    Example:
        newsletter events import saved-bounces.json
    """
    from newsletter.audience.events import import_file
    from newsletter.errors import NewsletterError
    from newsletter.store import Store

    with Store.open(obj.settings.database_url) as store:
        s = import_file(
            store,
            file,
            soft_bounce_limit=soft_bounce_limit,
            trust=_trust(obj.settings),
            engagement=obj.settings.ses.engagement,
        )
    for error in s.errors:
        click.echo(f"Error: {error}", err=True)
    click.echo(s.line() + ".")
    if s.set_aside:
        raise NewsletterError(
            f"{file}: {s.set_aside} malformed or refused notification{'s' if s.set_aside != 1 else ''} skipped"
        )


def _trust(settings: Settings) -> Trust:
    """Where notifications may come from, as `[events]` in newsletter.toml says."""
    from newsletter.audience.notifications import Trust

    return Trust(frozenset(settings.events.topic_arns), settings.events.account_id)
