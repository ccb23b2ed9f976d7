"""The delivery ledger: one row per (issue, subscriber), made when a send starts.

The contract (see docs/architecture.md): ``queued → sending → sent | failed``. A row left in
``sending`` is *uncertain* and is only re-queued when the editor asks: a send that crashed
leaves it so, and a send whose answer was lost (the connection closed after the request
went out, a timeout, a server error) records that, with outcome ``uncertain`` and the error.
Concurrent senders never claim the same row (``BEGIN IMMEDIATE`` on SQLite,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.store.claims import Answers, Claims
from newsletter.store.engine import Database
from newsletter.store.schema import (
    OUTCOMES,
    UNCERTAIN,
    UtcDateTime,
    deliveries,
    snapshots,
    subscriber_tags,
    subscribers,
    utc_now,
)
from newsletter.store.senders import not_in_flight, reap

# A claim tells the other senders this one is at work at most this often: a statement per
# batch would cost a round trip to a server for nothing (SILENT_AFTER is far longer).
HEARTBEAT = timedelta(seconds=5)
_LONG_AGO = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Delivery:
    """One ledger row. `name` and `language` are the subscriber's current values (for personalisation);
    `sent_language` is the language of the translation its message was made in (set when claimed)."""

    id: int
    issue: str
    subscriber_id: int | None
    email: str
    state: str
    attempts: int
    outcome: str | None
    error: str | None
    message_id: str | None
    claimed_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    updated_at: datetime
    sender: str | None = None
    name: str | None = None
    language: str | None = None
    sent_language: str | None = None


class Ledger:
    """The delivery ledger of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._claims = Claims(db)
        self._seen: dict[str, datetime] = {}  # when each sender last told the others it is at work

    def create_ledger(self, issue: str, *, limit: int | None = None, audience: Audience | None = None) -> int:
        """Snapshot the active subscribers into the ledger for `issue`; returns rows added.

        The snapshot is taken once: when the issue's ledger is complete, later calls
        add nothing (people who subscribe afterwards get the next issue). A `limit`
        makes a partial snapshot for a canary send: the ledger then holds at most
        `limit` rows in subscriber order; a later call with a larger limit tops it up
        to that size, and a call without a limit completes the snapshot. An `audience`
        snapshots only the active subscribers it selects.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit: expected a number >= 0, got {limit}")
        now = utc_now()
        # the lock: senders starting together snapshot once, one after the other
        with self.db.write(lock=f"ledger {issue}") as conn:
            snap = conn.execute(sa.select(snapshots.c.complete).where(snapshots.c.issue == issue)).first()
            if snap is not None and snap.complete:
                return 0
            count = sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.issue == issue)
            have = conn.execute(count).scalar()
            if limit is not None and have >= limit:
                return 0
            already = sa.select(deliveries.c.id).where(
                deliveries.c.issue == issue, deliveries.c.subscriber_id == subscribers.c.id
            )
            eligible = (
                sa.select(
                    sa.literal(issue, sa.String).label("issue"),
                    subscribers.c.id,
                    subscribers.c.email,
                    sa.literal("queued", sa.String).label("state"),
                    sa.literal(0, sa.Integer).label("attempts"),
                    sa.literal(now, UtcDateTime).label("updated_at"),
                )
                .where(subscribers.c.status == "active", ~sa.exists(already), *_selects(audience))
                .order_by(subscribers.c.id)
            )
            if limit is not None:
                eligible = eligible.limit(limit - have)
            conn.execute(
                deliveries.insert().from_select(
                    ["issue", "subscriber_id", "email", "state", "attempts", "updated_at"], eligible
                )
            )
            # counted, not the rowcount: psycopg reports -1 for an INSERT … SELECT through SQLAlchemy
            added = conn.execute(count).scalar() - have
            complete = limit is None
            if snap is None:
                conn.execute(snapshots.insert().values(issue=issue, complete=complete, created_at=now))
            elif complete:
                conn.execute(snapshots.update().where(snapshots.c.issue == issue).values(complete=True))
        return added

    def claim_batch(
        self,
        issue: str,
        n: int,
        *,
        answers: Answers | None = None,
        sender: str | None = None,
        language_for: Callable[[str | None], str] | None = None,
    ) -> list[Delivery]:
        """Atomically move up to `n` queued rows to `sending` and return them.

        Only rows whose subscriber is still active are claimed; rows of people who
        unsubscribed, bounced, complained or were erased since the snapshot become
        failed/permanent with error ``skipped: <status>``. Concurrent claimers (other
        processes) never receive the same row: BEGIN IMMEDIATE on SQLite,
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.

        `answers` — what this sender knows of the rows it claimed before (sent, failed,
        uncertain, certainly not sent) — are recorded in the same transaction: a sender
        that records its results when it claims the next rows pays one commit per batch,
        not per message (see ``newsletter.store.claims``).

        `sender` (from `start_sender`) stamps the claimed rows with their claimer and
        tells the others it is still at work.

        `language_for` turns a reader's language into the translation their message is
        made in; each claimed row records it, so `status` counts per language.
        """
        now = utc_now()
        if answers is None:
            answers = Answers()
        heartbeat = sender is not None and now - self._seen.get(sender, _LONG_AGO) > HEARTBEAT
        rows = self._claims.batch(
            issue, n, answers, sender=sender, heartbeat=heartbeat, now=now, language_for=language_for
        )
        if heartbeat:
            self._seen[sender] = now  # type: ignore[index]
        return [_claimed(row, issue, sender) for row in rows]

    def record(self, issue: str, answers: Answers) -> None:
        """Record a sender's answers in one transaction (claiming nothing)."""
        if len(answers):
            self._claims.batch(issue, 0, answers, sender=None, heartbeat=False, now=utc_now())

    def _set_row(self, issue: str, subscriber_id: int, values: dict[str, Any], *states: str) -> int:
        where = [deliveries.c.issue == issue, deliveries.c.subscriber_id == subscriber_id]
        if states:
            where.append(deliveries.c.state.in_(states))
        with self.db.write() as conn:
            return conn.execute(
                deliveries.update().where(*where).values(updated_at=utc_now(), **values)
            ).rowcount

    def mark_sent(self, issue: str, subscriber_id: int, message_id: str | None) -> None:
        self._set_row(
            issue,
            subscriber_id,
            {"state": "sent", "message_id": message_id, "sent_at": utc_now(), "outcome": None, "error": None},
        )

    def mark_sent_many(self, issue: str, sent: Iterable[tuple[int, str | None]]) -> None:
        """Record several (subscriber_id, message_id) as sent in one transaction.

        One commit per message costs more CPU than building the message; a sender
        records the messages that finished together at once.
        """
        now = utc_now()
        rows = [{"b_issue": issue, "sid": sid, "mid": mid, "now": now} for sid, mid in sent]
        if not rows:
            return
        statement = (
            deliveries.update()
            .where(
                deliveries.c.issue == sa.bindparam("b_issue"),
                deliveries.c.subscriber_id == sa.bindparam("sid"),
            )
            .values(
                state="sent",
                message_id=sa.bindparam("mid"),
                sent_at=sa.bindparam("now"),
                outcome=None,
                error=None,
                updated_at=sa.bindparam("now"),
            )
        )
        with self.db.write() as conn:
            conn.execute(statement, rows)

    def mark_failed(self, issue: str, subscriber_id: int, outcome: str, error: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {outcome!r}")
        self._set_row(issue, subscriber_id, {"state": "failed", "outcome": outcome, "error": error})

    def mark_uncertain(self, issue: str, subscriber_id: int, error: str) -> None:
        """The provider may have the message and its answer was lost: the row stays `sending`.

        Only ``requeue_uncertain`` (the editor's --resend-uncertain) sends it again.
        """
        self._set_row(issue, subscriber_id, {"outcome": UNCERTAIN, "error": error}, "sending")

    def requeue(self, issue: str, subscriber_id: int) -> None:
        """sending → queued, after a temporary failure that certainly did not deliver."""
        self._set_row(issue, subscriber_id, {"state": "queued", "claimed_at": None}, "sending")

    def uncertain(self, issue: str) -> list[Delivery]:
        """Rows left in `sending` by a sender that stopped or went silent: maybe delivered, maybe not.

        The rows of senders still at work are in flight, not uncertain.
        """
        now = utc_now()
        query = _delivery_query().where(
            deliveries.c.issue == issue, deliveries.c.state == "sending", not_in_flight(issue, now)
        )
        with self.db.write() as conn:
            reap(conn, issue, now)
            return [_delivery(r) for r in conn.execute(query.order_by(deliveries.c.id))]

    def _requeue_where(self, issue: str, *where: sa.ColumnElement[bool]) -> int:
        with self.db.write() as conn:
            reap(conn, issue, utc_now())
            return conn.execute(
                deliveries.update()
                .where(deliveries.c.issue == issue, *where)
                .values(state="queued", claimed_at=None, outcome=None, updated_at=utc_now())
            ).rowcount

    def requeue_uncertain(self, issue: str) -> int:
        """Put every uncertain row back in the queue (the editor asked: --resend-uncertain).

        Rows in flight with a sender still at work stay theirs.
        """
        return self._requeue_where(issue, deliveries.c.state == "sending", not_in_flight(issue, utc_now()))

    def requeue_temporary(self, issue: str) -> int:
        """failed/temporary → queued, for a later retry run. The error text is kept until resent."""
        return self._requeue_where(issue, deliveries.c.state == "failed", deliveries.c.outcome == "temporary")

    def reachable(self, issue: str, *, audience: Audience | None = None) -> int:
        """How many readers a send of `issue` would reach now, as `create_ledger` and the claims decide.

        Queued rows whose subscriber is still active, plus, while the snapshot is not
        complete (no send yet, or only a canary), active subscribers not in it yet (those in
        `audience` only).
        """
        return sum(self.reachable_languages(issue, audience=audience).values())

    def reachable_languages(self, issue: str, *, audience: Audience | None = None) -> dict[str | None, int]:
        """The readers `reachable` counts, by their language as stored (None: no language)."""
        language = subscribers.c.language
        queued = (
            sa.select(language, sa.func.count())
            .select_from(deliveries.join(subscribers, deliveries.c.subscriber_id == subscribers.c.id))
            .where(
                deliveries.c.issue == issue, deliveries.c.state == "queued", subscribers.c.status == "active"
            )
            .group_by(language)
        )
        already = sa.select(deliveries.c.id).where(
            deliveries.c.issue == issue, deliveries.c.subscriber_id == subscribers.c.id
        )
        joining = (
            sa.select(language, sa.func.count())
            .where(subscribers.c.status == "active", ~sa.exists(already), *_selects(audience))
            .group_by(language)
        )
        counts: dict[str | None, int] = {}
        with self.db.read() as conn:
            rows = list(conn.execute(queued))
            snap = conn.execute(sa.select(snapshots.c.complete).where(snapshots.c.issue == issue)).first()
            if snap is None or not snap.complete:
                rows += list(conn.execute(joining))
        for tag, n in rows:
            counts[tag or None] = counts.get(tag or None, 0) + n
        return counts

    def ledger_counts(self, issue: str) -> dict[str, int]:
        """Rows by state: queued, sending, sent, failed_temporary, failed_permanent."""
        counts = dict.fromkeys(("queued", "sending", "sent", "failed_temporary", "failed_permanent"), 0)
        query = (
            sa.select(deliveries.c.state, deliveries.c.outcome, sa.func.count())
            .where(deliveries.c.issue == issue)
            .group_by(deliveries.c.state, deliveries.c.outcome)
        )
        with self.db.read() as conn:
            for state, outcome, n in conn.execute(query):
                key = f"failed_{outcome or 'permanent'}" if state == "failed" else state
                counts[key] += n
        return counts

    def ledger(self, issue: str) -> list[Delivery]:
        """Every ledger row of the issue, in snapshot order."""
        query = _delivery_query().where(deliveries.c.issue == issue)
        with self.db.read() as conn:
            return [_delivery(r) for r in conn.execute(query.order_by(deliveries.c.id))]

    def issues_sent(self) -> list[str]:
        """Issues that have a ledger, oldest first."""
        query = (
            sa.select(deliveries.c.issue).group_by(deliveries.c.issue).order_by(sa.func.min(deliveries.c.id))
        )
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())


@dataclass(frozen=True)
class Audience:
    """Which subscribers a snapshot takes: any of `languages` (by BCP 47 prefix) and any of `tags`.

    Empty means no condition on that side. A subscriber without a language counts as
    `default_language` (the newsletter's: what they are sent). Tags are folded
    (`newsletter.text.fold_tag`); language tags are compared case-insensitively.
    """

    languages: Sequence[str] = ()
    tags: Sequence[str] = ()
    default_language: str = "en"


def _selects(audience: Audience | None) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of an audience on the subscribers table (none without one)."""
    if audience is None:
        return []
    where = []
    if audience.languages:
        language = sa.func.lower(sa.func.coalesce(subscribers.c.language, audience.default_language))
        # `ar` selects `ar` and `ar-EG`, never `arn`; tags hold only letters, digits and '-'
        where.append(
            sa.or_(
                *(
                    sa.or_(language == tag.lower(), language.like(f"{tag.lower()}-%"))
                    for tag in audience.languages
                )
            )
        )
    if audience.tags:
        tagged = sa.select(subscriber_tags.c.subscriber_id).where(
            subscriber_tags.c.subscriber_id == subscribers.c.id, subscriber_tags.c.tag.in_(audience.tags)
        )
        where.append(sa.exists(tagged))
    return where


def _delivery_query() -> sa.Select:
    # the row's own `language` is the translation it was sent in; `language` is the reader's
    own = [c for c in deliveries.c if c.name != "language"]
    return sa.select(
        *own, deliveries.c.language.label("sent_language"), subscribers.c.name, subscribers.c.language
    ).select_from(deliveries.outerjoin(subscribers, deliveries.c.subscriber_id == subscribers.c.id))


def _claimed(values: dict[str, Any], issue: str, sender: str | None) -> Delivery:
    """A claimed row (every field but `issue` and `sender` in `values`) as a Delivery.

    A frozen dataclass's __init__ sets each of its 17 fields through object.__setattr__
    (≈8 µs, once per reader of a send); `values` (the claim's own dict) becomes its
    __dict__ instead, uncopied (≈0.8 µs against 1.5 µs for filling a new one).
    """
    values["issue"] = issue
    values["sender"] = sender
    delivery = object.__new__(Delivery)
    object.__setattr__(delivery, "__dict__", values)
    return delivery


def _delivery(row: sa.Row) -> Delivery:
    return Delivery(**row._asdict())
