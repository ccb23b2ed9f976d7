"""Sending an issue: carry out a send plan against the ledger, or send test copies outside it.

The ledger (see docs/architecture.md, "Ledger states") makes a send resumable and safe to repeat:
the first run snapshots the active subscribers into ``queued`` rows; a re-run continues
with the queued rows and never touches ``sent`` or uncertain rows unless the plan asks to
(``resend_uncertain``, ``retry_failed``). The loop itself is in ``newsletter.delivery.loop``,
the processes that share it in ``newsletter.delivery.workers``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.content.translations import best_language
from newsletter.delivery.loop import SendLoop
from newsletter.delivery.plan import TEST_PREFIX, SendPlan, build_templates, resolve_secret
from newsletter.delivery.report import SendReport
from newsletter.delivery.workers import run_workers
from newsletter.mail.message import Recipient
from newsletter.tokens import make_token, preferences_token, unsubscribe_token

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.content.library import Issue, Library
    from newsletter.delivery.transports import Transport
    from newsletter.mail.render import Rendered
    from newsletter.store import Store

Progress = Callable[[int, int], None]  # (done in this run, to do in this run)


def send_issue(
    plan: SendPlan,
    store: Store,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
) -> SendReport:
    """Send the planned issue to every eligible subscriber exactly once, recording each message in the ledger.

    Resumable: a re-run continues where the last one stopped; rows left uncertain by a
    crash are reported, and resent only with `plan.resend_uncertain`. `progress` is called
    with (done, total) as messages are recorded; setting `stop_event` stops claiming new
    rows, lets messages in flight finish, and returns.
    """
    transport = plan.transport
    assert transport is not None, "a plan without its transport is for worker processes only"
    slug = plan.issue
    started = time.monotonic()
    report = SendReport(
        issue=slug, transport=transport.name, rate=plan.rate, workers=plan.workers, threads=plan.threads
    )
    with transport:
        # the provider's quota is known only once the transport is open
        report.rate = rate = plan.rate if plan.rate is not None else transport.max_rate()
        before = store.ledger_counts(slug)
        # --limit N: at most N readers in this run; the ledger grows by what that needs
        settled = sum(before.values()) - before["queued"]
        report.added = store.create_ledger(
            slug, limit=None if plan.limit is None else settled + plan.limit, audience=plan.audience
        )
        if plan.resend_uncertain:
            report.requeued_uncertain = store.requeue_uncertain(slug)
        if plan.retry_failed:
            report.requeued_failed = store.requeue_temporary(slug)
        queued = store.ledger_counts(slug)["queued"]
        total = queued if plan.limit is None else min(queued, plan.limit)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        if plan.workers == 1:
            loop = SendLoop(
                plan,
                transport,
                store,
                rate=rate,
                quota=rate,
                max_rows=plan.limit,
                halt=threading.Event(),
                user_stop=stop_event,
                progress=advance,
            )
            report.tally = loop.run()
            report.interrupted = loop.interrupted
        else:
            report.tally, report.interrupted = run_workers(
                plan, store, rate=rate, stop_event=stop_event, progress=advance
            )
    report.counts = store.ledger_counts(slug)
    report.uncertain = store.uncertain(slug)
    permanent_now = report.counts["failed_permanent"] - before["failed_permanent"]
    # rows claim_batch dropped as unsubscribed/bounced are permanent failures we did not record
    report.skipped = max(0, permanent_now - report.tally.failed_permanent)
    report.elapsed = time.monotonic() - started
    return report


@dataclass(frozen=True)
class TestSend:
    email: str
    outcome: str
    error: str | None = None
    language: str | None = None  # the translation it was sent in


def send_test(
    settings: Settings,
    library: Library,
    issue: Issue,
    addresses: list[str],
    *,
    transport: Transport,
    store: Store | None = None,
    secret: bytes | None = None,
    rendered: Rendered | None = None,
    renders: dict[str, Rendered] | None = None,
) -> list[TestSend]:
    """Send the issue to `addresses` only, subject prefixed "[TEST] ", without touching the ledger.

    An address that is a subscriber gets that subscriber's own unsubscribe link (so the
    link can be tried) and the translation a real send would give them; any other
    address gets the original, with a link signed for no one. `renders` (by language)
    or `rendered` (the original's) spare a render.
    """
    if secret is None:
        secret, _ = resolve_secret(settings, transport.name)
    if renders is None and rendered is not None:
        renders = {rendered.language: rendered}
    templates = build_templates(settings, library, issue, subject_prefix=TEST_PREFIX, renders=renders)
    sender = settings.sender_address.addr_spec
    results: list[TestSend] = []
    with transport:
        for address in addresses:
            subscriber = store.get_subscriber(address) if store is not None else None
            language = issue.language
            if subscriber is not None:
                recipient = Recipient(
                    address,
                    subscriber.name,
                    unsubscribe_token(secret, subscriber.id),
                    preferences_token(secret, subscriber.id),
                )
                language = best_language(subscriber.language, templates, issue.language)
            else:
                recipient = Recipient(
                    address,
                    None,
                    make_token(secret, "test", address),
                    make_token(secret, "test", f"p {address}"),
                )
            result = transport.send(sender, address, templates[language].personalise(recipient))
            results.append(TestSend(address, result.outcome.value, result.error, language))
    return results
