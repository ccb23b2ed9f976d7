"""The send plan: everything a send decides once, before the first message leaves.

The library builds one :class:`SendPlan` (the unsubscribe secret, one encoded message
template per language the issue has, the transport, the rate, and how much of the
recipient snapshot this run may take); the command line, the sending loop and the worker
processes all read it instead of passing a dozen arguments along.

Each reader gets the template of `best_language(reader's language, the issue's
languages, the issue's own language)`: `pt-BR` → `pt` → the original. The issue is
rendered once per language, never per reader. The pre-flight checks run before a plan is made (see
``newsletter.mail.checks``); a plan is only made for an issue that may be sent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.content.selection import papers_for
from newsletter.content.translations import best_language
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
    templates: dict[str, MessageTemplate]  # by language: the original's and each translation's
    language: str  # the issue's own language: readers no translation serves get its template
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
    _chosen: dict[str | None, str] = field(default_factory=dict, compare=False, repr=False)

    def without_transport(self) -> SendPlan:
        return dataclasses.replace(self, transport=None, _chosen={})

    @property
    def template(self) -> MessageTemplate:
        """The original's template (the issue in its own language)."""
        return self.templates[self.language]

    def language_for(self, reader_language: str | None) -> str:
        """The language of the template a reader of `reader_language` gets (None: no language).

        Cached per distinct reader language, so the per-reader cost is a dict lookup
        however many languages the issue has. Threads may fill the cache together: they
        write the same value.
        """
        chosen = self._chosen.get(reader_language)
        if chosen is None:
            chosen = best_language(reader_language, self.templates, self.language)
            self._chosen[reader_language] = chosen
        return chosen

    def template_for(self, reader_language: str | None) -> MessageTemplate:
        return self.templates[self.language_for(reader_language)]


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
    templates: dict[str, MessageTemplate] | None = None,
) -> SendPlan:
    """Check the options, choose the secret, render the issue once per language.

    `templates` (by language) are used as given; a single `template` stands for an issue
    sent in its own language only.
    """
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
    if templates is None:
        templates = (
            {issue.language: template} if template is not None else build_templates(settings, library, issue)
        )
    if issue.language not in templates:
        raise NewsletterError(
            f"{issue.slug}: expected a template in the issue's own language {issue.language!r}, "
            f"got {', '.join(templates) or 'none'}"
        )
    return SendPlan(
        settings=settings,
        issue=issue.slug,
        templates=templates,
        language=issue.language,
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


def send_languages(library: Library, issue: Issue) -> list[str]:
    """The languages a send of `issue` renders it in: its own first, then its translations'.

    Once the issue is frozen with its translations (its first send recorded them), only
    those: a translation added later is left out, so a send that goes on after a crash or
    a canary gives every reader of a language the same translation. A recorded
    translation that is gone stops the send (its readers would silently get another).
    """
    available = library.translations.languages_of(issue)
    recorded = issue.frozen.translations if issue.frozen is not None else None
    if recorded is None:
        return available
    missing = sorted(set(recorded) - set(available))
    if missing:
        name = f"{issue.path.stem}.{missing[0]}.md"
        raise NewsletterError(
            f"issues/{name}: expected the {missing[0]} translation {issue.slug} was first sent in "
            f"(recorded in {issue.path.stem}.sent.toml), got no such file\n\n"
            f"Restore it (e.g. `git checkout issues/{name}`), or run `newsletter issue refreeze "
            f"{issue.slug}` to send the remaining readers without it."
        )
    return [lang for lang in available if lang == issue.language or lang in recorded]


def translation_files(library: Library, issue: Issue) -> dict[str, Path]:
    """The issue's translation files by language (the original not included)."""
    return {lang: t.path for (slug, lang), t in library.translations.issues.items() if slug == issue.slug}


def build_templates(
    settings: Settings,
    library: Library,
    issue: Issue,
    *,
    subject_prefix: str = "",
    renders: dict[str, Rendered] | None = None,
) -> dict[str, MessageTemplate]:
    """One message template per language of the issue (rendered once each, unless `renders` has it)."""
    renders = renders or {}
    templates = {}
    for language in send_languages(library, issue):
        rendered = renders.get(language) or render_issue(
            library, issue, papers_for(library, issue), language=language
        )
        templates[language] = MessageTemplate.build(rendered, settings, subject_prefix=subject_prefix)
    return templates


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


@dataclass(frozen=True)
class LanguageGroup:
    """The readers one template serves: its language, and how many readers of each stored language."""

    language: str
    readers: dict[str | None, int]  # reader's language (None: none stored) -> readers

    @property
    def total(self) -> int:
        return sum(self.readers.values())


def language_groups(store: Store, plan: SendPlan) -> list[LanguageGroup]:
    """The readers a send would reach now, grouped by the template each gets (for --dry-run).

    Every language of the plan is listed, the issue's own first, even when no reader gets it.
    """
    groups: dict[str, dict[str | None, int]] = {language: {} for language in plan.templates}
    for reader_language, n in store.reachable_languages(plan.issue, audience=plan.audience).items():
        groups[plan.language_for(reader_language)][reader_language] = n
    order = [plan.language, *sorted(lang for lang in groups if lang != plan.language)]
    return [
        LanguageGroup(lang, dict(sorted(groups[lang].items(), key=lambda kv: (kv[0] is None, kv[0] or ""))))
        for lang in order
    ]


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
