"""Engagement: opens and clicks of the ledger's messages, stored per message, counted per issue.

What an event means is decided above (`newsletter.audience.engagement`): this module
writes the row it is given, refuses events of messages that are not in the ledger
(another application's mail on the same configuration set), and skips a redelivered
event. Nothing here names a reader: rows are joined to the ledger by SES message id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.store.engine import Database
from newsletter.store.schema import UtcDateTime, deliveries, engagement, subscribers, utc_now

TYPES = ("open", "click")
# Built once: each event runs these with its own values (no statement built per event).
_ISSUE_OF = (
    sa.select(deliveries.c.issue).where(deliveries.c.message_id == sa.bindparam("message_id")).limit(1)
)
_SEEN = sa.select(engagement.c.id).where(
    engagement.c.message_id == sa.bindparam("message_id"),
    engagement.c.type == sa.bindparam("type"),
    engagement.c.at == sa.bindparam("at", type_=UtcDateTime()),
    engagement.c.link == sa.bindparam("link"),
)
_INSERT = engagement.insert()


@dataclass(frozen=True)
class Observation:
    """One SES Open or Click event, as the store keeps it."""

    type: str  # "open" or "click"
    message_id: str
    at: datetime  # when it happened (the event's own timestamp), UTC
    link: str = ""  # the clicked URL; "" for an open
    paper: str | None = None  # the link tag's paper (a click on a paper's link)
    machine: str | None = None  # why it looks like a machine's, or None: a reader's
    synthetic: bool = False  # made up (the demo's), not reported by SES


@dataclass(frozen=True)
class Burst:
    """Clicks on `links` or more different links of one message within `seconds`: a link scanner."""

    seconds: float
    links: int
    reason: str


class Engagement:
    """The engagement rows of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_engagement(self, observation: Observation, *, burst: Burst | None = None) -> str:
        """Store one open or click: "stored", "duplicate" (already stored) or "unknown" (not our message).

        With `burst`, a click that makes `burst.links` different links of its message
        clicked within `burst.seconds` flags all of them as a machine's (`burst.reason`).
        """
        if observation.type not in TYPES:
            raise ValueError(f"type: expected one of {', '.join(TYPES)}, got {observation.type!r}")
        key = {
            "message_id": observation.message_id,
            "type": observation.type,
            "at": observation.at,
            "link": observation.link,
        }
        with self.db.write() as conn:
            issue = conn.execute(_ISSUE_OF, {"message_id": observation.message_id}).scalar()
            if issue is None:
                return "unknown"
            if conn.execute(_SEEN, key).first() is not None:
                return "duplicate"
            conn.execute(
                _INSERT,
                {
                    **key,
                    "issue": issue,
                    "paper": observation.paper,
                    "machine": observation.machine,
                    "synthetic": observation.synthetic,
                    "received_at": utc_now(),
                },
            )
            if burst is not None and observation.type == "click":
                window = timedelta(seconds=burst.seconds)
                near = conn.execute(
                    sa.select(engagement.c.id, engagement.c.link).where(
                        engagement.c.message_id == observation.message_id,
                        engagement.c.type == "click",
                        engagement.c.at.between(observation.at - window, observation.at + window),
                    )
                ).all()
                if len({link for _, link in near}) >= burst.links:
                    conn.execute(
                        engagement.update()
                        .where(engagement.c.id.in_([i for i, _ in near]), engagement.c.machine.is_(None))
                        .values(machine=burst.reason)
                    )
        return "stored"

    def engagement_rows(self, issue: str) -> list[dict[str, Any]]:
        """Every open and click of the issue's messages, oldest first."""
        query = (
            sa.select(engagement)
            .where(engagement.c.issue == issue)
            .order_by(engagement.c.at, engagement.c.id)
        )
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def engagement_counts(self, issue: str) -> dict[str, int]:
        """Readers who opened or clicked (distinct messages, machines' events left out), and the machines' events.

        Only what SES reported: the demo's synthetic rows are left out. Empty when
        nothing was recorded for the issue (engagement off, or no event yet).
        """
        human = engagement.c.machine.is_(None)
        query = (
            sa.select(
                engagement.c.type,
                sa.func.count(sa.distinct(sa.case((human, engagement.c.message_id)))),
                sa.func.count(sa.case((human, 1))),
                sa.func.count(sa.case((sa.not_(human), 1))),
            )
            .where(engagement.c.issue == issue)
            .group_by(engagement.c.type)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return {}
        counts = dict.fromkeys(("opened", "opens", "machine_opens", "clicked", "clicks", "machine_clicks"), 0)
        for type_, readers, events, machines in rows:
            if type_ == "open":
                counts.update(opened=readers, opens=events, machine_opens=machines)
            else:
                counts.update(clicked=readers, clicks=events, machine_clicks=machines)
        return counts

    def send_started(self, issue: str) -> datetime | None:
        """When the issue's first message was claimed (None: nothing sent yet)."""
        first = sa.func.min(
            sa.func.coalesce(deliveries.c.claimed_at, deliveries.c.sent_at), type_=UtcDateTime()
        )
        with self.db.read() as conn:
            return conn.execute(sa.select(first).where(deliveries.c.issue == issue)).scalar()

    def subscriber_dates(self) -> list[dict[str, Any]]:
        """Each subscriber's status, when they joined and when they left (no addresses): the list over time."""
        query = sa.select(subscribers.c.status, subscribers.c.created_at, subscribers.c.unsubscribed_at)
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def send_summary(self, issue: str) -> SendSummary:
        """What a report needs of an issue's ledger, counted by the database (not row by row here).

        A row's language is the translation its message was made in (recorded when it was
        claimed), else the subscriber's (a row never claimed); None when neither is known.
        """
        joined = deliveries.outerjoin(subscribers, deliveries.c.subscriber_id == subscribers.c.id)
        language = sa.func.coalesce(deliveries.c.language, subscribers.c.language)
        where = deliveries.c.issue == issue
        states = (
            sa.select(language, deliveries.c.state, sa.func.count(), sa.func.count(deliveries.c.delivered_at))
            .select_from(joined)
            .where(where)
            .group_by(language, deliveries.c.state)
        )
        if self.db.sqlite:
            minute: Any = sa.func.strftime("%Y-%m-%d %H:%M", deliveries.c.sent_at)
        else:
            minute = sa.func.to_char(sa.func.date_trunc("minute", deliveries.c.sent_at), "YYYY-MM-DD HH24:MI")
        minutes = (
            sa.select(minute, sa.func.count())
            .where(where, deliveries.c.state == "sent", deliveries.c.sent_at.is_not(None))
            .group_by(minute)
            .order_by(minute)
        )
        opened = (
            sa.select(language, sa.func.count(sa.distinct(engagement.c.message_id)))
            .select_from(
                engagement.join(deliveries, deliveries.c.message_id == engagement.c.message_id).outerjoin(
                    subscribers, deliveries.c.subscriber_id == subscribers.c.id
                )
            )
            .where(engagement.c.issue == issue, engagement.c.type == "open", engagement.c.machine.is_(None))
            .group_by(language)
        )
        failed = (
            sa.select(deliveries.c.email, deliveries.c.outcome, deliveries.c.error)
            .where(where, deliveries.c.state == "failed")
            .order_by(deliveries.c.id)
        )
        with self.db.read() as conn:
            return SendSummary(
                states={(lang, state): (n, delivered) for lang, state, n, delivered in conn.execute(states)},
                minutes=[
                    (datetime.strptime(m, "%Y-%m-%d %H:%M").replace(tzinfo=UTC), n)
                    for m, n in conn.execute(minutes)
                ],
                opened={lang: n for lang, n in conn.execute(opened)},
                failed=[tuple(r) for r in conn.execute(failed)],
            )


@dataclass(frozen=True)
class SendSummary:
    """An issue's ledger in counts: per (language, state), per minute sent, opens per language, failures."""

    states: dict[tuple[str | None, str], tuple[int, int]]  # (language, state) -> (rows, delivered)
    minutes: list[tuple[datetime, int]]  # (UTC minute, messages sent in it)
    opened: dict[str | None, int]  # language -> readers who opened (machines left out)
    failed: list[tuple[str, str | None, str | None]]  # (address, outcome, error) of each failed row
