"""Events: what SES reported about each address, and status changes, in one log.

`apply_events` applies one notification to all its addresses in one transaction; the
lifecycle decides any status change (`decide`), this module only writes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.store.addresses import email_key
from newsletter.store.engine import Database
from newsletter.store.schema import deliveries, events, subscribers, utc_now
from newsletter.store.subscribers import StatusChange, status_change_rows

# The lifecycle's answer for one subscriber: (status, soft-bounce count) → (change, reason) or None.
Decide = Callable[[str, int], tuple[StatusChange, str | None] | None]
_CHUNK = 1000  # addresses or ids per IN (...)
_ROWS = 5000  # rows per executemany
_CACHE_KIB = 65536  # SQLite page cache for a large notification's transaction


@dataclass(frozen=True)
class ApplyResult:
    """What `Store.apply_event` did for one (event, address)."""

    duplicate: bool  # already recorded for this (type, address, message id): nothing changed
    known: bool  # the address is a subscriber
    changed: bool  # the subscriber's status changed
    status: str | None  # the subscriber's status afterwards (None: unknown address)
    soft_bounces: int  # the subscriber's soft-bounce count afterwards
    delivered: int = 0  # ledger rows newly marked delivered


_DUPLICATE = ApplyResult(duplicate=True, known=False, changed=False, status=None, soft_bounces=0)


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
        decide: Decide | None = None,
        soft_bounce: bool = False,
        delivered: bool = False,
    ) -> ApplyResult:
        """`apply_events` for one address."""
        [result] = self.apply_events(
            type, message_id, [(email, detail)], decide=decide, soft_bounce=soft_bounce, delivered=delivered
        )
        return result

    def apply_events(
        self,
        type: str,
        message_id: str | None,
        recipients: Sequence[tuple[str | None, dict[str, Any]]],
        *,
        decide: Decide | None = None,
        soft_bounce: bool = False,
        delivered: bool = False,
    ) -> list[ApplyResult]:
        """Apply one notification to each of its (address, detail) `recipients`, in ONE transaction.

        SQS delivers at least once: an address for which an event of the same `type` and
        `message_id` is already recorded (any case) is skipped (`duplicate`), as is a second
        copy of an address in `recipients`. Events without a message id are never
        deduplicated. Otherwise, for each address, in this order:
        - `soft_bounce`: the subscriber's soft-bounce count goes up by one;
        - `decide(current status, soft-bounce count)` (the lifecycle) says whether the
          status changes, and the reason recorded (None: the event changes no status);
        - `delivered`: ledger rows of `message_id` get their delivery time (the first
          one only), and the subscriber's soft-bounce count starts again from 0;
        - the event is recorded (with ``soft_bounces`` in its detail when counted), plus a
          ``status`` event when the status changed.
        A failure anywhere rolls all of it back, so processing the notification again is
        safe. Reads and writes go by the thousand (one statement per kind of row), not one
        address at a time. Returns one result per recipient, in order.
        """
        now = utc_now()
        keyed = [(email, email_key(email) if email else None, detail) for email, detail in recipients]
        results: list[ApplyResult] = []
        with self.db.write() as conn:
            if self.db.sqlite and len(keyed) > _CHUNK:
                # Room for the whole transaction in the page cache: a large notification's
                # writes are not spilled to the WAL before the commit (this connection only,
                # until it is closed or this is set again).
                conn.exec_driver_sql(f"PRAGMA cache_size = -{_CACHE_KIB}")
            seen = self._recorded(conn, type, message_id, {k for _, k, _ in keyed})
            rows = self._subscribers(conn, {k for _, k, _ in keyed if k is not None and k not in seen})
            marked = 0
            if delivered and message_id is not None:
                marked = conn.execute(
                    deliveries.update()
                    .where(deliveries.c.message_id == message_id, deliveries.c.delivered_at.is_(None))
                    .values(delivered_at=now, updated_at=now)
                ).rowcount
            state = {
                k: (r[3], r[4]) for k, r in rows.items()
            }  # (status, count) as this notification leaves it
            new_events: list[dict[str, Any]] = []
            encode = _DetailEncoder(conn.dialect)
            # Subscribers that get the same columns (and the same status event) are written together.
            writes: dict[tuple[Any, ...], list[int]] = {}
            # What happens to a subscriber depends on (status, count) only: thousands of
            # recipients share a few outcomes, each decided once.
            outcomes: dict[tuple[str, int], _Outcome] = {}
            for email, key, detail in keyed:
                if message_id is not None:
                    if key in seen:
                        results.append(_DUPLICATE)
                        continue
                    seen.add(key)
                row = rows.get(key) if key is not None else None
                counted = None
                if row is None:
                    result = ApplyResult(False, False, False, None, 0, delivered=marked)
                else:
                    before = state[key]
                    outcome = outcomes.get(before)
                    if outcome is None:
                        outcome = outcomes[before] = _outcome(*before, decide, soft_bounce, delivered, now)
                    result = outcome.result
                    if marked:
                        result = dataclasses.replace(result, delivered=marked)
                    counted = outcome.counted
                    if outcome.write is not None:
                        writes.setdefault(outcome.write, []).append(row[0])
                    state[key] = (result.status, result.soft_bounces)
                new_events.append({"email": email, "detail": encode(detail, counted)})
                results.append(result)
                marked = 0  # the ledger rows count once, with the first address
            if new_events:
                _insert_events(conn, type, message_id, now, new_events)
            for (values, status_detail), ids in writes.items():
                _write_subscribers(
                    conn, ids, dict(values), None if status_detail is None else dict(status_detail), now
                )
        return results

    @staticmethod
    def _recorded(
        conn: Connection, type: str, message_id: str | None, keys: set[str | None]
    ) -> set[str | None]:
        """Which of `keys` (None: no address) already have an event of `type` for `message_id`."""
        if message_id is None:
            return set()
        query = sa.select(sa.func.lower(events.c.email)).where(
            events.c.message_id == message_id, events.c.type == type
        )
        if len(keys) <= _CHUNK and None not in keys:
            # a few addresses: look up those only, not every event of the message
            query = query.where(sa.func.lower(events.c.email).in_(sorted(keys)))
        return {email.strip() if email else None for (email,) in conn.execute(query)} & keys

    @staticmethod
    def _subscribers(conn: Connection, keys: set[str]) -> dict[str, tuple[Any, ...]]:
        """(id, email, email_key, status, soft_bounces) by address key, read in chunks (SQLite caps bound parameters)."""
        found: dict[str, tuple[Any, ...]] = {}
        ordered = sorted(keys)
        columns = (
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.email_key,
            subscribers.c.status,
            subscribers.c.soft_bounces,
        )
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            for row in conn.execute(sa.select(*columns).where(subscribers.c.email_key.in_(chunk))):
                found[row[2]] = row
        return found

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


@dataclass(frozen=True)
class _Outcome:
    """What one event does to a subscriber in a given (status, soft-bounce count)."""

    result: ApplyResult
    write: tuple[Any, ...] | None  # (columns to set, status event detail), as hashable items
    counted: int | None  # the soft-bounce count to note in the event's detail, when counted


def _outcome(
    current: str, soft_bounces: int, decide: Decide | None, soft_bounce: bool, delivered: bool, now: datetime
) -> _Outcome:
    values: dict[str, Any] = {}
    counted = None
    if soft_bounce:
        counted = soft_bounces = values["soft_bounces"] = soft_bounces + 1
    decision = decide(current, soft_bounces) if decide is not None else None
    if delivered and soft_bounces:
        soft_bounces = values["soft_bounces"] = 0
    changed = decision is not None and decision[0].changed
    status_detail = None
    if changed:
        # The status event's address is the subscriber's own, written by `_write_subscribers`.
        values, change = status_change_rows("", decision[0], now, reason=decision[1], also=values)
        status_detail = tuple(change["detail"].items())
    elif values:
        values["updated_at"] = now
    write = (tuple(sorted(values.items())), status_detail) if values else None
    status = decision[0].status if changed else current
    return _Outcome(ApplyResult(False, True, changed, status, soft_bounces), write, counted)


class _DetailEncoder:
    """Event details as the driver takes them, each distinct one encoded once.

    The recipients of one notification usually share their detail (the same object), so
    a 20,000-recipient bounce encodes a few details, not 20,000. Details are told apart
    by identity: the caller's sequence keeps them alive while the notification is applied.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self._process = events.c.detail.type.dialect_impl(dialect).bind_processor(dialect)
        self._encoded: dict[tuple[int, int | None], Any] = {}

    def __call__(self, detail: dict[str, Any] | None, counted: int | None) -> Any:
        key = (id(detail), counted)
        try:
            return self._encoded[key]
        except KeyError:
            pass
        value: Any = detail
        if counted is not None:
            value = {**(detail or {}), "soft_bounces": counted}
        if self._process is not None:
            value = self._process(value)
        self._encoded[key] = value
        return value


# The events table without column types: `_insert_events` binds values already processed
# by the real column types (`events`), once per distinct value instead of once per row.
_events_untyped = sa.table(
    "events",
    sa.column("type"),
    sa.column("email"),
    sa.column("message_id"),
    sa.column("detail"),
    sa.column("received_at"),
)


def _bound(conn: Connection, column: sa.Column[Any], value: Any) -> Any:
    """`value` as the column's type hands it to the driver."""
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return value if process is None else process(value)


def _insert_events(
    conn: Connection, type: str, message_id: str | None, now: datetime, rows: list[dict[str, Any]]
) -> None:
    """Record one event per row ({"email", "detail" already encoded}) of one notification.

    The columns every row shares are bound once (not processed again for each row), and
    the rows go by the thousand in one executemany each.
    """
    statement = _events_untyped.insert().values(
        type=_bound(conn, events.c.type, type),
        message_id=_bound(conn, events.c.message_id, message_id),
        received_at=_bound(conn, events.c.received_at, now),
    )
    if conn.dialect.name != "sqlite":
        # other drivers: SQLAlchemy's own batching (several rows per INSERT on PostgreSQL)
        for start in range(0, len(rows), _ROWS):
            conn.execute(statement, rows[start : start + _ROWS])
        return
    # sqlite3's executemany takes the rows as they are (values already processed above), in
    # the order of the statement's ? placeholders: no parameter handling per row in between.
    compiled = statement.compile(dialect=conn.dialect, column_keys=["email", "detail"])
    shared = compiled.construct_params({"email": None, "detail": None})
    order = compiled.positiontup or []
    email_at, detail_at = order.index("email"), order.index("detail")
    template = [shared[name] for name in order]
    parameters = []
    for row in rows:
        values = template.copy()
        values[email_at] = row["email"]
        values[detail_at] = row["detail"]
        parameters.append(tuple(values))
    sql = str(compiled)
    for start in range(0, len(parameters), _ROWS):
        conn.exec_driver_sql(sql, parameters[start : start + _ROWS])


def _write_subscribers(
    conn: Connection,
    ids: list[int],
    values: dict[str, Any],
    status_detail: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Set `values` on the subscribers `ids` and, for a status change, record its ``status`` events.

    One statement per chunk of ids, whatever their number: a bounce for 20,000 addresses
    is a few dozen statements, not 40,000.
    """
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conn.execute(subscribers.update().where(subscribers.c.id.in_(chunk)).values(values))
        if status_detail is None:
            continue
        columns = ("type", "email", "message_id", "detail", "received_at")
        rows = (
            sa.select(
                sa.literal("status", events.c.type.type),
                subscribers.c.email,
                sa.null(),
                sa.literal(status_detail, events.c.detail.type),
                sa.literal(now, events.c.received_at.type),
            )
            .where(subscribers.c.id.in_(chunk))
            .order_by(subscribers.c.id)
        )
        conn.execute(events.insert().from_select(columns, rows))
