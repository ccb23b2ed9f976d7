"""Subscribers: adding, finding, listing, counting, importing, erasing, and writing status changes.

The statements here write what the lifecycle (`newsletter.audience.lifecycle`) decided: a
status change arrives as a decided `StatusChange`, or as a function that decides from the
status read inside the same transaction. No rule about which status may follow which lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.store.addresses import email_key
from newsletter.store.engine import Database, StoreError
from newsletter.store.schema import (
    ERASED,
    STATUSES,
    deliveries,
    events,
    subscriber_tags,
    subscribers,
    utc_now,
)
from newsletter.store.tags import add_tags, tags_of

_CHUNK = 1000  # rows per executemany / IN (...) list; well under SQLite's 32766 variables


class StatusChange(Protocol):
    """What the lifecycle decided for one subscriber (`newsletter.audience.lifecycle.Transition`)."""

    @property
    def current(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def changed(self) -> bool: ...
    @property
    def columns(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    language: str | None
    status: str
    source: str | None
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    soft_bounces: int = 0
    unsubscribed_at: datetime | None = None
    tags: tuple[str, ...] = ()  # folded, sorted


@dataclass(frozen=True)
class SubscriberRow:
    """One subscriber as an import wants it. `status=None`: the source did not say."""

    email: str  # already validated and normalised (ASCII, domain in punycode)
    name: str | None = None
    language: str | None = None
    status: str | None = None
    source: str = "import"
    consent_at: datetime | None = None
    attributes: dict[str, Any] | None = None
    line: int | None = None  # where it came from, for reports
    tags: tuple[str, ...] = ()  # folded; an import adds tags, never removes one


@dataclass
class ImportCounts:
    """What `upsert_many` did, counted once per distinct address."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # rows merged into an earlier row for the same address in the same call
    # email_key -> "added" | "updated" | "unchanged" for the last call (lets callers re-count)
    outcomes: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __iadd__(self, other: ImportCounts) -> ImportCounts:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        return self


class Subscribers:
    """The subscriber list of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_subscriber(
        self,
        email: str,
        *,
        name: str | None = None,
        language: str | None = None,
        status: str = "active",
        source: str | None = "cli",
        consent_at: datetime | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Subscriber:
        """Add one subscriber; StoreError if the address (in any case) is already there.

        `email` is stored as given (stripped); validate it first with `normalize_email`.
        """
        _check_status(status)
        email = email.strip()
        if email.count("@") != 1:
            raise StoreError(f"subscriber: expected an email address, got {email!r}")
        now = utc_now()
        values = {
            "email": email,
            "email_key": email_key(email),
            "name": name or None,
            "language": language or None,
            "status": status,
            "source": source,
            "consent_at": consent_at or (now if status == "active" else None),
            "created_at": now,
            "updated_at": now,
            "attributes": attributes or None,
            "soft_bounces": 0,
            "unsubscribed_at": now if status == "unsubscribed" else None,
        }
        with self.db.write() as conn:
            existing = conn.execute(
                sa.select(subscribers.c.status).where(subscribers.c.email_key == values["email_key"])
            ).scalar()
            if existing is not None:
                raise StoreError(f"subscriber {email!r} already exists (status {existing})")
            new_id = conn.execute(subscribers.insert().values(values)).inserted_primary_key[0]
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == new_id)).one()
        return _subscriber(row)

    def get_subscriber(self, email_or_id: str | int) -> Subscriber | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(subscribers).where(identify(email_or_id))).first()
            tags = tags_of(conn, [row.id]) if row is not None else {}
        return None if row is None else _subscriber(row, tags)

    def set_profile(self, subscriber_id: int, *, name: str | None, language: str | None) -> bool:
        """Set a subscriber's name and language (None clears one); False when there is no such subscriber.

        The values are the caller's to check (the preferences page cleans and validates them).
        """
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    subscribers.update()
                    .where(subscribers.c.id == subscriber_id)
                    .values(name=name or None, language=language or None, updated_at=utc_now())
                ).rowcount
            )

    def change_status(
        self,
        email_or_id: str | int,
        decide: Callable[[str], StatusChange],
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> StatusChange | None:
        """Apply the status change `decide` makes of the subscriber's current status, in one transaction.

        The store decides nothing: `decide` (the lifecycle's transition) says what to write.
        None when there is no such subscriber. A change is recorded as a ``status`` event
        with the reason and who asked (`by`, when known).
        """
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.status).where(
                    identify(email_or_id)
                )
            ).first()
            if row is None:
                return None
            change = decide(row.status)
            if change.changed:
                now = utc_now()
                write_status_change(conn, row.id, row.email, change, now, reason=reason, by=by)
        return change

    def remove_subscriber(self, email: str | int) -> bool:
        """Delete the subscriber (GDPR erasure) and anonymise its ledger rows and events."""
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email_key).where(identify(email))
            ).first()
            if row is None:
                return False
            conn.execute(deliveries.update().where(deliveries.c.subscriber_id == row.id).values(email=ERASED))
            conn.execute(subscriber_tags.delete().where(subscriber_tags.c.subscriber_id == row.id))
            conn.execute(
                events.update()
                .where(sa.func.lower(events.c.email) == row.email_key)
                .values(email=ERASED, detail=None)
            )
            conn.execute(subscribers.delete().where(subscribers.c.id == row.id))
        return True

    def purge_pending(self, created_before: datetime, *, source: str = "web") -> list[str]:
        """Erase the `pending` subscribers from `source` created before `created_before`; their addresses.

        A subscribe request nobody confirmed is not consent: keeping it only keeps an
        address someone else may have typed. Imported pending rows (other sources) stay.
        """
        with self.db.read() as conn:
            ids = (
                conn.execute(
                    sa.select(subscribers.c.id).where(
                        subscribers.c.status == "pending",
                        subscribers.c.source == source,
                        subscribers.c.created_at < created_before,
                    )
                )
                .scalars()
                .all()
            )
        erased = []
        for subscriber_id in ids:
            row = self.get_subscriber(subscriber_id)
            # checked again: a confirmation may have landed in between
            if row is not None and row.status == "pending" and self.remove_subscriber(subscriber_id):
                erased.append(row.email)
        return erased

    def iter_subscribers(self, *, status: str | None = None, batch: int = 1000) -> Iterator[Subscriber]:
        """All subscribers (optionally of one status) by id, fetched `batch` at a time.

        Each page is its own short read, so a long consumer never holds the database.
        """
        if status is not None:
            _check_status(status)
        last = 0
        while True:
            query = (
                sa.select(subscribers).where(subscribers.c.id > last).order_by(subscribers.c.id).limit(batch)
            )
            if status is not None:
                query = query.where(subscribers.c.status == status)
            with self.db.read() as conn:
                rows = conn.execute(query).all()
                tags = tags_of(conn, [row.id for row in rows])
            for row in rows:
                yield _subscriber(row, tags)
            if len(rows) < batch:
                return
            last = rows[-1].id

    def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        with self.db.read() as conn:
            query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
            for status, n in conn.execute(query):
                counts[status] = n
        return counts

    def upsert_many(
        self,
        rows: Iterable[SubscriberRow],
        decide: Callable[[str, SubscriberRow], StatusChange] | None = None,
    ) -> ImportCounts:
        """Add or merge subscribers in one transaction (batched executemany).

        Merge rules, per address (case-insensitive):
        - new address: added with the row's status, or ``active`` when the row has none;
        - known address whose row names a status: `decide(current status, row)` (the
          lifecycle) says what to write; without `decide` the status is left alone;
        - name and language are updated when the row has them; attributes are merged.
        Several rows for one address in the same call are merged in order.
        """
        counts = ImportCounts()
        with self.db.write() as conn:
            chunk: list[SubscriberRow] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    counts += self._upsert_chunk(conn, chunk, counts.outcomes, decide)
                    chunk = []
            if chunk:
                counts += self._upsert_chunk(conn, chunk, counts.outcomes, decide)
        return counts

    def _upsert_chunk(
        self,
        conn: Connection,
        rows: list[SubscriberRow],
        outcomes: dict[str, str],
        decide: Callable[[str, SubscriberRow], StatusChange] | None,
    ) -> ImportCounts:
        counts = ImportCounts()
        keys = list(dict.fromkeys(email_key(r.email) for r in rows))
        found = {
            r.email_key: r._asdict()
            for r in conn.execute(sa.select(subscribers).where(subscribers.c.email_key.in_(keys)))
        }
        now = utc_now()
        merged: dict[str, dict[str, Any]] = {}
        original: dict[str, dict[str, Any]] = {}
        wanted_tags: dict[str, dict[str, None]] = {}  # tags the rows bring, per address, in order
        for row in rows:
            key = email_key(row.email)
            if row.tags:
                wanted_tags.setdefault(key, {}).update(dict.fromkeys(row.tags))
            if key in merged or key in outcomes:
                counts.duplicates += 1
            if key in merged:
                current = merged[key]
            elif key in found:
                current = found[key]
                original[key] = dict(current)
            else:
                status = row.status or "active"
                current = {
                    "email": row.email.strip(),
                    "email_key": key,
                    "name": None,
                    "language": None,
                    "status": status,
                    "source": row.source,
                    "consent_at": row.consent_at or (now if status == "active" else None),
                    "created_at": now,
                    "updated_at": now,
                    "attributes": None,
                    "soft_bounces": 0,
                    "unsubscribed_at": now if status == "unsubscribed" else None,
                }
            merged[key] = _merge(current, row, now, decide)

        have_tags = tags_of(conn, [found[k]["id"] for k in wanted_tags if k in found])
        new_tags = {
            key: [t for t in tags if key not in found or t not in have_tags.get(found[key]["id"], ())]
            for key, tags in wanted_tags.items()
        }
        inserts, updates = [], []
        for key, values in merged.items():
            if key not in original and key not in found:
                inserts.append(values)
                outcome = "added"
            elif values != original[key] or new_tags.get(key):
                values["updated_at"] = now
                updates.append({"b_id": values["id"], **{k: values[k] for k in _MERGED_COLUMNS}})
                outcome = "updated"
            else:
                outcome = "unchanged"
            # a key seen earlier in this call keeps its first outcome ("added" stays "added")
            if key not in outcomes:
                outcomes[key] = outcome
                setattr(counts, outcome, getattr(counts, outcome) + 1)
        if inserts:
            conn.execute(subscribers.insert(), inserts)
        if updates:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == sa.bindparam("b_id"))
                .values({k: sa.bindparam(k) for k in _MERGED_COLUMNS}),
                updates,
            )
        add_tags(conn, {k: v for k, v in new_tags.items() if v})
        return counts


_MERGED_COLUMNS = (
    "name",
    "language",
    "status",
    "consent_at",
    "attributes",
    "updated_at",
    "unsubscribed_at",
    "soft_bounces",
)


def _merge(
    current: dict[str, Any],
    row: SubscriberRow,
    now: datetime,
    decide: Callable[[str, SubscriberRow], StatusChange] | None,
) -> dict[str, Any]:
    """The subscriber after applying one import row (see Store.upsert_many for the rules)."""
    new = dict(current)
    if row.name and row.name != new["name"]:
        new["name"] = row.name
    if row.language and row.language != new["language"]:
        new["language"] = row.language
    if row.attributes:
        attributes = {**(new["attributes"] or {}), **row.attributes}
        if attributes != new["attributes"]:
            new["attributes"] = attributes
    if row.status is not None and decide is not None:
        change = decide(new["status"], row)
        if change.changed:
            new.update(change.columns)
    if new["consent_at"] is None and row.consent_at is not None:
        new["consent_at"] = row.consent_at
    if new != current and "id" in current:
        new["updated_at"] = now
    return new


def write_status_change(
    conn: Connection,
    subscriber_id: int,
    email: str,
    change: StatusChange,
    now: datetime,
    *,
    reason: str | None,
    by: str | None = None,
    also: dict[str, Any] | None = None,
) -> None:
    """Write a decided status change (plus `also`, other columns) and record it as a ``status`` event."""
    values, event = status_change_rows(email, change, now, reason=reason, by=by, also=also)
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(values))
    conn.execute(events.insert().values(event))


def status_change_rows(
    email: str,
    change: StatusChange,
    now: datetime,
    *,
    reason: str | None,
    by: str | None = None,
    also: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The subscriber columns a decided status change sets, and its ``status`` event row."""
    values = {**(also or {}), **change.columns, "updated_at": now}
    detail = {"from": change.current, "to": change.status, "reason": reason}
    if by is not None:
        detail["by"] = by
    return values, {
        "type": "status",
        "email": email,
        "message_id": None,
        "detail": detail,
        "received_at": now,
    }


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")


def identify(email_or_id: str | int) -> sa.ColumnElement[bool]:
    if isinstance(email_or_id, int) or (isinstance(email_or_id, str) and email_or_id.strip().isdigit()):
        return subscribers.c.id == int(email_or_id)
    return subscribers.c.email_key == email_key(email_or_id)


def _subscriber(row: sa.Row, tags: dict[int, tuple[str, ...]] | None = None) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        language=row.language,
        status=row.status,
        source=row.source,
        consent_at=row.consent_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attributes=row.attributes or {},
        soft_bounces=row.soft_bounces,
        unsubscribed_at=row.unsubscribed_at,
        tags=(tags or {}).get(row.id, ()),
    )
