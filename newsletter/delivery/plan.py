"""The send plan: everything a send decides once, before the first message leaves.

The library builds one :class:`SendPlan` (the unsubscribe secret, the encoded message
template, the transport, the rate, and how much of the recipient snapshot this run may
take); the command line, the sending loop and the worker processes all read it instead of
passing a dozen arguments along. The pre-flight checks run before a plan is made (see
``newsletter.mail.checks``); a plan is only made for an issue that may be sent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.content.selection import papers_for
from newsletter.delivery.transports import REAL_TRANSPORTS, Transport
from newsletter.errors import NewsletterError
from newsletter.mail.message import MessageTemplate
from newsletter.mail.render import render_issue
from newsletter.store import Audience

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.content.library import Issue, Library
    from newsletter.mail.render import Rendered
    from newsletter.store import Store

# Used by the local transports when NEWSLETTER_SECRET is unset, so `make demo` needs no set-up.
# Links signed with it are worthless outside a development machine, which is the point.
DEVELOPMENT_SECRET = b"newsletter-development-secret (not for real mail)"
TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class SendPlan:
    """One send of one issue, decided: what goes out, signed how, through what, how fast, to how many.

    Picklable except for `transport` (a transport holds clients and sockets): worker
    processes get the plan without it and make their own (see ``newsletter.delivery.workers``).
    """

    settings: Settings  # worker processes make their transport from it
    issue: str  # the issue's slug, the ledger's key
    template: MessageTemplate
    sender: str  # the bare envelope address
    secret: bytes  # signs each reader's unsubscribe link
    transport: Transport | None
    transport_name: str
    rate: float | None = None  # messages per second; None: the settings', else the provider's quota
    workers: int = 1
    threads: int = 8
    limit: int | None = None  # at most this many readers in this run (a canary)
    resend_uncertain: bool = False
    retry_failed: bool = False
    audience: Audience | None = None  # the issue's `audience:`; None: every active reader

    def without_transport(self) -> SendPlan:
        return dataclasses.replace(self, transport=None)


def plan_send(
    settings: Settings,
    library: Library,
    issue: Issue,
    *,
    transport: Transport,
    rate: float | None = None,
    workers: int = 1,
    threads: int = 8,
    limit: int | None = None,
    resend_uncertain: bool = False,
    retry_failed: bool = False,
    secret: bytes | None = None,
    template: MessageTemplate | None = None,
) -> SendPlan:
    """Check the options, choose the secret, render the issue once (unless `template` is given)."""
    if workers < 1 or threads < 1:
        raise NewsletterError(f"--workers/--threads: expected at least 1, got {workers}/{threads}")
    if limit is not None and limit < 0:
        raise NewsletterError(f"--limit: expected a number >= 0, got {limit}")
    if rate is not None and rate <= 0:
        raise NewsletterError(f"--rate: expected a positive number of messages per second, got {rate:g}")
    if workers > 1 and transport.name == "memory":
        raise NewsletterError(
            "--workers: the memory transport keeps messages inside one process; use --workers 1"
        )
    if secret is None:
        secret, _ = resolve_secret(settings, transport.name)
    if template is None:
        template = build_template(settings, library, issue)
    return SendPlan(
        settings=settings,
        issue=issue.slug,
        template=template,
        sender=settings.sender_address.addr_spec,
        secret=secret,
        transport=transport,
        transport_name=transport.name,
        rate=rate if rate is not None else settings.rate,
        workers=workers,
        threads=threads,
        limit=limit,
        resend_uncertain=resend_uncertain,
        retry_failed=retry_failed,
        audience=snapshot_audience(settings, issue),
    )


def snapshot_audience(settings: Settings, issue: Issue) -> Audience | None:
    """The recipient snapshot's filter for the issue's `audience:` (None: everyone active)."""
    if issue.audience is None:
        return None
    return Audience(
        languages=issue.audience.languages,
        tags=issue.audience.tags,  # folded when read
        default_language=settings.language,
    )


def resolve_secret(settings: Settings, transport_name: str) -> tuple[bytes, str | None]:
    """The HMAC key for unsubscribe tokens, and a warning when a development key stands in.

    A real transport refuses to run without NEWSLETTER_SECRET: links signed with a
    guessable key would let anyone unsubscribe anyone.
    """
    secret = settings.secret
    if secret:
        return secret, None
    if transport_name in REAL_TRANSPORTS:
        raise NewsletterError(
            f"NEWSLETTER_SECRET: not set; the {transport_name} transport needs it to sign unsubscribe links\n\n"
            "Export a long random value and keep it (changing it breaks the links in mail already sent):\n"
            "    export NEWSLETTER_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return DEVELOPMENT_SECRET, (
        f"NEWSLETTER_SECRET is not set: the {transport_name} transport signs unsubscribe links "
        "with a development key"
    )


def build_template(
    settings: Settings,
    library: Library,
    issue: Issue,
    *,
    subject_prefix: str = "",
    rendered: Rendered | None = None,
) -> MessageTemplate:
    """Render the issue once (unless `rendered` is given) and encode the message every copy is made from."""
    if rendered is None:
        rendered = render_issue(library, issue, papers_for(library, issue))
    return MessageTemplate.build(rendered, settings, subject_prefix=subject_prefix)


def eligible_count(
    store: Store, issue: str, limit: int | None = None, *, audience: Audience | None = None
) -> int:
    """How many readers a send would reach now (for prompts and --dry-run).

    After a complete snapshot only its queued rows of readers still active count (people
    who subscribe later get the next issue); before it, active subscribers not in it yet
    count too (those in `audience` only). `limit` caps it as `send --limit` caps a run.
    Nothing is written.
    """
    n = store.reachable(issue, audience=audience)
    return n if limit is None else min(n, limit)


def recipients_count(store: Store, plan: SendPlan) -> int:
    """How many messages `plan` would send now: the eligible readers, plus the rows it is asked to redo."""
    counts = store.ledger_counts(plan.issue)
    return (
        eligible_count(store, plan.issue, plan.limit, audience=plan.audience)
        + (counts["sending"] if plan.resend_uncertain else 0)
        + (counts["failed_temporary"] if plan.retry_failed else 0)
    )
