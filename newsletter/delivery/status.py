"""Issues' sends as the editor sees them: one issue's counts, failures, deliveries and complaints
(`status`), and every issue at a glance (`issues`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from newsletter.delivery.report import Failure

if TYPE_CHECKING:
    from newsletter.content.library import Library
    from newsletter.store import Delivery, Store

COMPLAINT_WARNING = 0.001  # SES reviews accounts whose complaint rate reaches 0.1 %


@dataclass
class Status:
    """The ledger of one issue, for `newsletter status`."""

    issue: str
    counts: dict[str, int]
    delivered: int
    failures: list[Failure]
    uncertain: list[str]
    events: dict[str, int]  # bounce (permanent), soft_bounce, complaint: matched to this issue's messages
    senders: dict[str, dict[str, int]] = field(default_factory=dict)  # "host pid start" -> rows by state
    # the translation each message went out in -> sent, failed, uncertain; None: no message made
    # (a reader who left before their row was claimed, or a row from before languages were recorded)
    languages: dict[str | None, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complaint_rate(self) -> float:
        sent = self.counts.get("sent", 0)
        return self.events.get("complaint", 0) / sent if sent else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "total": self.total,
            "queued": self.counts["queued"],
            "sending": self.counts["sending"],
            "uncertain": len(self.uncertain),
            "sent": self.counts["sent"],
            "failed_temporary": self.counts["failed_temporary"],
            "failed_permanent": self.counts["failed_permanent"],
            "delivered": self.delivered,
            "bounces": self.events.get("bounce", 0),
            "soft_bounces": self.events.get("soft_bounce", 0),
            "complaints": self.events.get("complaint", 0),
            "complaint_rate": round(self.complaint_rate, 6),
            "failures": [{"email": f.email, "outcome": f.outcome, "error": f.error} for f in self.failures],
            "uncertain_emails": self.uncertain,
            "senders": [{"sender": name, **counts} for name, counts in self.senders.items()],
            "languages": [{"language": lang, **counts} for lang, counts in self.languages.items()],
        }


def issue_status(store: Store, issue: str) -> Status:
    """Counts by state, failures with reasons, delivery and complaint figures for one issue."""
    rows = store.ledger(issue)
    counts = store.ledger_counts(issue)
    failures = [
        Failure(d.email, d.outcome or "permanent", d.error or "") for d in rows if d.state == "failed"
    ]
    # Events (bounces, complaints) are recorded by `newsletter events`; the store counts
    # the ones that answer this issue's messages.
    events = store.issue_event_counts(issue)
    uncertain = store.uncertain(issue)
    return Status(
        issue=issue,
        counts=counts,
        delivered=sum(1 for d in rows if d.delivered_at is not None),
        failures=failures,
        # rows in `sending` are in flight while their sender is at work, uncertain afterwards
        uncertain=[d.email for d in uncertain],
        events=events,
        senders=store.sender_counts(issue),
        languages=_by_language(rows, uncertain),
    )


def _by_language(rows: list[Delivery], uncertain: list[Delivery]) -> dict[str | None, dict[str, int]]:
    """Sent, failed and uncertain rows by the translation their message was made in."""
    found: dict[str | None, dict[str, int]] = {}

    def count(language: str | None, key: str) -> None:
        found.setdefault(language, dict.fromkeys(("sent", "failed", "uncertain"), 0))[key] += 1

    for d in rows:
        if d.state in ("sent", "failed"):
            count(d.sent_language, d.state)
    for d in uncertain:
        count(d.sent_language, "uncertain")
    return dict(sorted(found.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))


@dataclass(frozen=True)
class IssueSummary:
    """One row of `newsletter issues`: an issue's content and how far its send got."""

    number: int
    date: str
    slug: str
    title: str
    status: str  # draft, published, scheduled (send_at ahead), sending (a send began, readers left), sent
    papers: int
    recipients: int
    sent: int
    delivered: int
    bounces: int
    complaints: int
    opens: int | None = None  # readers who opened (machines left out); None: no engagement recorded
    clicks: int | None = None  # readers who clicked a link
    send_at: str | None = None  # ISO 8601 with its zone, as the front matter gives it

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def send_state(
    front_matter_status: str,
    counts: dict[str, int],
    send_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> str:
    """The issue's state: its front matter's until a send begins (`scheduled` while a
    published issue's send_at is ahead), then the ledger's."""
    if not sum(counts.values()):
        ahead = send_at is not None and send_at > (now or dt.datetime.now(dt.UTC))
        return "scheduled" if front_matter_status == "published" and ahead else front_matter_status
    return "sending" if counts["queued"] or counts["sending"] else "sent"


def issue_summaries(library: Library, store: Store, now: dt.datetime | None = None) -> list[IssueSummary]:
    """Every issue of the library, oldest first, with its paper count and ledger figures.

    `now` (default: the clock) tells a scheduled issue from one whose time has come.
    """
    from newsletter.content.selection import plan

    papers = plan(library)
    rows = []
    for issue in library.issues:
        status = issue_status(store, issue.slug)
        engagement = store.engagement_counts(issue.slug)
        rows.append(
            IssueSummary(
                number=issue.number,
                date=issue.date.isoformat(),
                slug=issue.slug,
                title=issue.title,
                status=send_state(issue.status, status.counts, issue.send_at, now),
                papers=len(papers[issue.slug]),
                recipients=status.total,
                sent=status.counts["sent"],
                delivered=status.delivered,
                bounces=status.events.get("bounce", 0),  # permanent: the ones SES's bounce rate counts
                complaints=status.events.get("complaint", 0),
                opens=engagement.get("opened"),
                clicks=engagement.get("clicked"),
                send_at=issue.send_at.isoformat() if issue.send_at else None,
            )
        )
    return rows
