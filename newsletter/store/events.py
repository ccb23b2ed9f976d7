"""Events: what SES reported about each address, and status changes, in one log.

`apply_event` applies one notification for one address in one transaction; the
lifecycle decides any status change (`decide`), this module only writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from newsletter.store.addresses import email_key
from newsletter.store.engine import Database
from newsletter.store.schema import deliveries, events, subscribers, utc_now
from newsletter.store.subscribers import StatusChange, write_status_change


@dataclass(frozen=True)
class ApplyResult:
    """What `Store.apply_event` did for one (event, address)."""

    duplicate: bool  # already recorded for this (type, address, message id): nothing changed
    known: bool  # the address is a subscriber
    changed: bool  # the subscriber's status changed
    status: str | None  # the subscriber's status afterwards (None: unknown address)
    soft_bounces: int  # the subscriber's soft-bounce count afterwards
    delivered: int = 0  # ledger rows newly marked delivered


class Events:
    """The event log of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_events(self, *, email: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """Recorded events, oldest first (`subscribers history`: an address's record)."""
        query = sa.select(events).order_by(events.c.id)
        if email is not None:
            query = query.where(sa.func.lower(events.c.email) == email_key(email))
        if type is not None:
            query = query.where(events.c.type == type)
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def apply_event(
        self,
        type: str,
        email: str | None,
        message_id: str | None,
        detail: dict[str, Any],
        *,
        decide: Callable[[str, int], tuple[StatusChange, str | None] | None] | None = None,
        soft_bounce: bool = False,
        delivered: bool = False,
    ) -> ApplyResult:
        """Apply one notification event for one address, all of it in ONE transaction.

        SQS delivers at least once: when an event of the same `type`, address (any case)
        and `message_id` is already recorded, nothing is done (`duplicate`). Events without
        a message id are never deduplicated. Otherwise, in this order:
        - `soft_bounce`: the subscriber's soft-bounce count goes up by one;
        - `decide(current status, soft-bounce count)` (the lifecycle) says whether the
          status changes, and the reason recorded (None: the event changes no status);
        - `delivered`: ledger rows of `message_id` get their delivery time (the first
          one only), and the subscriber's soft-bounce count starts again from 0;
        - the event is recorded (with ``soft_bounces`` in its detail when counted), plus a
          ``status`` event when the status changed.
        A failure anywhere rolls all of it back, so processing the notification again is safe.
        """
        now = utc_now()
        key = email_key(email) if email else None
        with self.db.write() as conn:
            if message_id is not None:
                seen = conn.execute(
                    sa.select(events.c.id)
                    .where(
                        events.c.message_id == message_id,
                        events.c.type == type,
                        sa.func.lower(events.c.email) == key if key else events.c.email.is_(None),
                    )
                    .limit(1)
                ).first()
                if seen is not None:
                    return ApplyResult(
                        duplicate=True, known=False, changed=False, status=None, soft_bounces=0
                    )
            row = None
            if key is not None:
                row = conn.execute(
                    sa.select(
                        subscribers.c.id,
                        subscribers.c.email,
                        subscribers.c.status,
                        subscribers.c.soft_bounces,
                    ).where(subscribers.c.email_key == key)
                ).first()
            detail = dict(detail)
            current = row.status if row else None
            soft_bounces = row.soft_bounces if row else 0
            values: dict[str, Any] = {}
            if soft_bounce and row is not None:
                soft_bounces += 1
                values["soft_bounces"] = soft_bounces
                detail["soft_bounces"] = soft_bounces
            decision = decide(row.status, soft_bounces) if decide is not None and row is not None else None
            marked = 0
            if delivered:
                if message_id is not None:
                    marked = conn.execute(
                        deliveries.update()
                        .where(deliveries.c.message_id == message_id, deliveries.c.delivered_at.is_(None))
                        .values(delivered_at=now, updated_at=now)
                    ).rowcount
                if row is not None and soft_bounces:
                    soft_bounces = values["soft_bounces"] = 0
            conn.execute(
                events.insert().values(
                    type=type, email=email, message_id=message_id, detail=detail, received_at=now
                )
            )
            changed = decision is not None and decision[0].changed
            if changed:
                write_status_change(
                    conn, row.id, row.email, decision[0], now, reason=decision[1], also=values
                )
            elif values and row is not None:
                values["updated_at"] = now
                conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(values))
        return ApplyResult(
            duplicate=False,
            known=row is not None,
            changed=changed,
            status=decision[0].status if changed else current,
            soft_bounces=soft_bounces,
            delivered=marked,
        )

    # ----------------------------------------------------------------- the ledger

    def issue_event_counts(self, issue: str) -> dict[str, int]:
        """Bounces (permanent), soft bounces and complaints that answer the issue's messages.

        Empty when no message of the issue has an id yet. A complaint whose feedback type
        is ``not-spam`` is a reader taking a complaint back, so it is not counted.
        """
        sent = sa.select(deliveries.c.message_id).where(
            deliveries.c.issue == issue, deliveries.c.message_id.is_not(None)
        )
        permanent = events.c.detail["bounceType"].as_string() == "Permanent"
        feedback = sa.func.lower(sa.func.coalesce(events.c.detail["complaintFeedbackType"].as_string(), ""))
        kind = sa.case(
            (sa.and_(events.c.type == "bounce", permanent), "bounce"),
            (events.c.type == "bounce", "soft_bounce"),
            (feedback != "not-spam", "complaint"),
            else_=None,
        ).label("kind")
        query = (
            sa.select(kind, sa.func.count())
            .where(events.c.type.in_(("bounce", "complaint")), events.c.message_id.in_(sent))
            .group_by(kind)
        )
        with self.db.read() as conn:
            if conn.execute(sent.limit(1)).first() is None:
                return {}
            counts = dict.fromkeys(("bounce", "soft_bounce", "complaint"), 0)
            for name, n in conn.execute(query):
                if name is not None:
                    counts[name] = n
        return counts
