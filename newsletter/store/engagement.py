"""Engagement: opens and clicks of the ledger's messages, stored per message, counted per issue.

What an event means is decided above (`newsletter.audience.engagement`): this module
writes the row it is given, refuses events of messages that are not in the ledger
(another application's mail on the same configuration set), and skips a redelivered
event. Nothing here names a reader: rows are joined to the ledger by SES message id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.store.engine import Database
from newsletter.store.schema import UtcDateTime, deliveries, engagement, subscribers, utc_now

TYPES = ("open", "click")


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
        with self.db.write() as conn:
            issue = conn.execute(
                sa.select(deliveries.c.issue)
                .where(deliveries.c.message_id == observation.message_id)
                .limit(1)
            ).scalar()
            if issue is None:
                return "unknown"
            key = (
                engagement.c.message_id == observation.message_id,
                engagement.c.type == observation.type,
                engagement.c.at == observation.at,
                engagement.c.link == observation.link,
            )
            if conn.execute(sa.select(engagement.c.id).where(*key)).first() is not None:
                return "duplicate"
            conn.execute(
                engagement.insert().values(
                    issue=issue,
                    message_id=observation.message_id,
                    type=observation.type,
                    at=observation.at,
                    link=observation.link,
                    paper=observation.paper,
                    machine=observation.machine,
                    synthetic=observation.synthetic,
                    received_at=utc_now(),
                )
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
