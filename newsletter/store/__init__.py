"""Subscribers and the delivery ledger: schema, migrations and every SQL statement.

This is the only module that writes SQL (SQLAlchemy Core 2.x). SQLite is the
embedded default; statements stay portable so PostgreSQL can follow, and the few
SQLite-specific pieces (WAL, pragmas, ``BEGIN IMMEDIATE``) sit behind a dialect check.

Times are stored as naive UTC and returned timezone-aware (UTC).

The ledger contract (see docs/architecture.md): one row per (issue, subscriber), made
when a send starts; ``queued → sending → sent | failed``. A row left in
``sending`` is *uncertain* and is only re-queued when the editor asks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.audience.lifecycle import STATUSES, SUPPRESSED
from newsletter.errors import NewsletterError

STATES = ("queued", "sending", "sent", "failed")
OUTCOMES = ("temporary", "permanent")
ERASED = "[erased]"  # what an erased subscriber's address becomes in the ledger and events
_CHUNK = 1000  # rows per executemany / IN (...) list; well under SQLite's 32766 variables


class StoreError(NewsletterError):
    """The database cannot be opened or used, or a request contradicts its contents."""


# --------------------------------------------------------------------------- records


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


@dataclass(frozen=True)
class Delivery:
    """One ledger row. `name` and `language` are the subscriber's current values (for personalisation)."""

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
    name: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    """What `Store.apply_event` did for one (event, address)."""

    duplicate: bool  # already recorded for this (type, address, message id): nothing changed
    known: bool  # the address is a subscriber
    changed: bool  # the subscriber's status changed
    status: str | None  # the subscriber's status afterwards (None: unknown address)
    soft_bounces: int  # the subscriber's soft-bounce count afterwards
    delivered: int = 0  # ledger rows newly marked delivered


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


def email_key(email: str) -> str:
    """The case-insensitive identity of an address (what uniqueness is checked on)."""
    return email.strip().lower()


def normalize_email(address: str, *, check_dns: bool = False) -> str:
    """A valid, SES-sendable form of `address`, or ValueError with the reason.

    The domain is lowercased and IDNA-encoded (punycode); the local part keeps its case.
    Addresses whose local part is not ASCII are refused: they need SMTPUTF8, which
    Amazon SES does not offer.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if at and not local.isascii():
        odd = "".join(dict.fromkeys(c for c in local if not c.isascii()))
        raise ValueError(
            f"the part before '@' has non-ASCII characters ({odd!r}); Amazon SES cannot send to such addresses"
        )
    if not check_dns and _PLAIN_LOCAL.match(local) and len(address) <= 254:
        # Imports repeat a few domains many times: validating each domain once keeps
        # 100k-row imports fast. A plain dot-atom local part needs no further checks.
        plain = f"{local}@{_ascii_domain(domain)}"
        if len(plain) <= 254:
            return plain
    return _validate(address, check_dns)


# RFC 5322 dot-atom (ASCII), at most 64 characters: what email-validator accepts without question
_PLAIN_LOCAL = re.compile(
    r"^(?=.{1,64}$)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    return _validate(f"postmaster@{domain}", False).rpartition("@")[2]


def _validate(address: str, check_dns: bool) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(address, check_deliverability=check_dns, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc).rstrip(".")) from None
    return result.ascii_email or result.normalized


# --------------------------------------------------------------------------- schema


class _UtcDateTime(sa.TypeDecorator):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL behave alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


_metadata = sa.MetaData()


def _one_of(column: str, values: Iterable[str]) -> str:
    # The exact text of the first schema ("'a','b'", no spaces): existing databases hold it.
    return f"{column} IN ({','.join(repr(v) for v in values)})"


schema_version = sa.Table(
    "schema_version",
    _metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.Text),
    sa.Column("language", sa.String(35)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source", sa.String(64)),
    sa.Column("consent_at", _UtcDateTime),
    sa.Column("created_at", _UtcDateTime, nullable=False),
    sa.Column("updated_at", _UtcDateTime, nullable=False),
    sa.Column("attributes", sa.JSON(none_as_null=True)),
    sa.Column("soft_bounces", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unsubscribed_at", _UtcDateTime),
    sa.CheckConstraint(_one_of("status", STATUSES), name="status"),
    sa.Index("ix_subscribers_status", "status"),
)

deliveries = sa.Table(
    "deliveries",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue", sa.String(200), nullable=False),
    # SET NULL: erasing a subscriber keeps the (anonymised) row so counts stay true
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outcome", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("message_id", sa.String(255)),
    sa.Column("claimed_at", _UtcDateTime),
    sa.Column("sent_at", _UtcDateTime),
    sa.Column("delivered_at", _UtcDateTime),
    sa.Column("updated_at", _UtcDateTime, nullable=False),
    sa.UniqueConstraint("issue", "subscriber_id", name="uq_deliveries_issue_subscriber"),
    sa.CheckConstraint(_one_of("state", STATES), name="state"),
    sa.Index("ix_deliveries_issue_state", "issue", "state"),
    sa.Index("ix_deliveries_message_id", "message_id"),
)

# One row per issue whose ledger exists; `complete` once the whole list was snapshotted
# (a canary send snapshots only its first N subscribers).
snapshots = sa.Table(
    "snapshots",
    _metadata,
    sa.Column("issue", sa.String(200), primary_key=True),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("created_at", _UtcDateTime, nullable=False),
)

events = sa.Table(
    "events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("detail", sa.JSON(none_as_null=True)),
    sa.Column("received_at", _UtcDateTime, nullable=False),
    sa.Index("ix_events_email", "email"),
)


def _migration_1(conn: Connection) -> None:
    """The first schema.

    It creates the tables from the definitions above. When a later migration
    changes a table, freeze a copy of that table's version-1 definition here first,
    so a fresh database still replays history step by step.
    """
    _metadata.create_all(conn, tables=[subscribers, deliveries, snapshots, events])


def _migration_2(conn: Connection) -> None:
    """An index on events(message_id): `apply_event` looks up every notification by it."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_events_message_id ON events (message_id)"))


# Applied in order; the database's version is the number of migrations applied.
MIGRATIONS = [_migration_1, _migration_2]
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------- the store


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Subscribers, events and the delivery ledger in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        try:
            self._migrate()
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(f"{self._where}: cannot use the database: {_reason(exc)}") from None
        except StoreError:
            self.engine.dispose()
            raise

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _where(self) -> str:
        database = self.engine.url.database
        return database if self._sqlite and database else self.engine.url.render_as_string(hide_password=True)

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that takes the write lock at BEGIN.

        On SQLite a deferred transaction that reads and then writes can fail with
        SQLITE_BUSY without waiting (WAL snapshot upgrade); BEGIN IMMEDIATE waits for
        the lock up to busy_timeout instead, and serialises concurrent claimers.
        """
        with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _migrate(self) -> None:
        with self._write() as conn:
            schema_version.create(conn, checkfirst=True)
            version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._where}: database schema version {version} is newer than this newsletter "
                    f"understands (version {SCHEMA_VERSION})\n\n"
                    "Upgrade newsletter (pip install -U newsletter), or use another database."
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(conn)
                conn.execute(schema_version.delete())
                conn.execute(schema_version.insert().values(version=number))

    def version(self) -> int:
        """The schema version of the open database."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0

    # ----------------------------------------------------------------- subscribers

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
        now = _now()
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
        with self._write() as conn:
            existing = conn.execute(
                sa.select(subscribers.c.status).where(subscribers.c.email_key == values["email_key"])
            ).scalar()
            if existing is not None:
                raise StoreError(f"subscriber {email!r} already exists (status {existing})")
            new_id = conn.execute(subscribers.insert().values(values)).inserted_primary_key[0]
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == new_id)).one()
        return _subscriber(row)

    def get_subscriber(self, email_or_id: str | int) -> Subscriber | None:
        with self._read() as conn:
            row = conn.execute(sa.select(subscribers).where(_identify(email_or_id))).first()
        return None if row is None else _subscriber(row)

    def set_status(self, email_or_id: str | int, status: str, *, reason: str | None = None) -> bool:
        """Move a subscriber to `status`; True if it now has that status.

        False when there is no such subscriber, or when the move would bring an
        unsubscribed, bounced or complained address back to active or pending:
        those never receive mail again unless they re-subscribe by hand (remove + add).
        Every change is recorded as a `status` event with the reason.
        """
        _check_status(status)
        with self._write() as conn:
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.status).where(
                    _identify(email_or_id)
                )
            ).first()
            if row is None:
                return False
            if row.status == status:
                return True
            if row.status in SUPPRESSED and status not in SUPPRESSED:
                return False
            now = _now()
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == "unsubscribed":
                values["unsubscribed_at"] = now
            if status == "active" and row.status == "pending":
                values["consent_at"] = now
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(values))
            detail = {"from": row.status, "to": status, "reason": reason}
            conn.execute(
                events.insert().values(
                    type="status", email=row.email, message_id=None, detail=detail, received_at=now
                )
            )
        return True

    def remove_subscriber(self, email: str | int) -> bool:
        """Delete the subscriber (GDPR erasure) and anonymise its ledger rows and events."""
        with self._write() as conn:
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email_key).where(_identify(email))
            ).first()
            if row is None:
                return False
            conn.execute(deliveries.update().where(deliveries.c.subscriber_id == row.id).values(email=ERASED))
            conn.execute(
                events.update()
                .where(sa.func.lower(events.c.email) == row.email_key)
                .values(email=ERASED, detail=None)
            )
            conn.execute(subscribers.delete().where(subscribers.c.id == row.id))
        return True

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
            with self._read() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield _subscriber(row)
            if len(rows) < batch:
                return
            last = rows[-1].id

    def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        with self._read() as conn:
            query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
            for status, n in conn.execute(query):
                counts[status] = n
        return counts

    def upsert_many(self, rows: Iterable[SubscriberRow]) -> ImportCounts:
        """Add or merge subscribers in one transaction (batched executemany).

        Merge rules, per address (case-insensitive):
        - new address: added with the row's status, or ``active`` when the row has none;
        - unsubscribed, bounced, complained: never re-activated (a row saying so is
          applied; a row saying active/pending is ignored for the status);
        - pending becomes active only when the row says active; active never goes back to pending;
        - name and language are updated when the row has them; attributes are merged.
        Several rows for one address in the same call are merged in order.
        """
        counts = ImportCounts()
        with self._write() as conn:
            chunk: list[SubscriberRow] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    counts += self._upsert_chunk(conn, chunk, counts.outcomes)
                    chunk = []
            if chunk:
                counts += self._upsert_chunk(conn, chunk, counts.outcomes)
        return counts

    def _upsert_chunk(
        self, conn: Connection, rows: list[SubscriberRow], outcomes: dict[str, str]
    ) -> ImportCounts:
        counts = ImportCounts()
        keys = list(dict.fromkeys(email_key(r.email) for r in rows))
        found = {
            r.email_key: r._asdict()
            for r in conn.execute(sa.select(subscribers).where(subscribers.c.email_key.in_(keys)))
        }
        now = _now()
        merged: dict[str, dict[str, Any]] = {}
        original: dict[str, dict[str, Any]] = {}
        for row in rows:
            key = email_key(row.email)
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
            merged[key] = _merge(current, row, now)

        inserts, updates = [], []
        for key, values in merged.items():
            if key not in original and key not in found:
                inserts.append(values)
                outcome = "added"
            elif values != original[key]:
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
        return counts

    def record_soft_bounce(self, email: str) -> int:
        """Count one more soft bounce for the address; returns the new count (0: unknown address)."""
        key = email_key(email)
        with self._write() as conn:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.email_key == key)
                .values(soft_bounces=subscribers.c.soft_bounces + 1, updated_at=_now())
            )
            count = conn.execute(
                sa.select(subscribers.c.soft_bounces).where(subscribers.c.email_key == key)
            ).scalar()
        return count or 0

    def record_event(self, type: str, email: str | None, message_id: str | None, detail: dict) -> None:
        with self._write() as conn:
            conn.execute(
                events.insert().values(
                    type=type, email=email, message_id=message_id, detail=detail, received_at=_now()
                )
            )

    def list_events(self, *, email: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """Recorded events, oldest first (for reports and tests)."""
        query = sa.select(events).order_by(events.c.id)
        if email is not None:
            query = query.where(sa.func.lower(events.c.email) == email_key(email))
        if type is not None:
            query = query.where(events.c.type == type)
        with self._read() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def apply_event(
        self,
        type: str,
        email: str | None,
        message_id: str | None,
        detail: dict[str, Any],
        *,
        status: str | None = None,
        reason: str | None = None,
        soft_bounce: bool = False,
        soft_bounce_limit: int | None = None,
        delivered: bool = False,
    ) -> ApplyResult:
        """Apply one notification event for one address, all of it in ONE transaction.

        SQS delivers at least once: when an event of the same `type`, address (any case)
        and `message_id` is already recorded, nothing is done (`duplicate`). Events without
        a message id are never deduplicated. Otherwise, in this order:
        - `soft_bounce`: the subscriber's soft-bounce count goes up by one; reaching
          `soft_bounce_limit` moves it to ``bounced`` (reason "N soft bounces");
        - `status`: the subscriber moves there (with `reason`), except that a suppressed
          address never goes back to active or pending, and ``complained`` is never
          replaced (it is the strongest reason not to write);
        - `delivered`: ledger rows of `message_id` get their delivery time (the first
          one only), and the subscriber's soft-bounce count starts again from 0;
        - the event is recorded (with ``soft_bounces`` in its detail when counted), plus a
          ``status`` event when the status changed.
        A failure anywhere rolls all of it back, so processing the notification again is safe.
        """
        if status is not None:
            _check_status(status)
        now = _now()
        key = email_key(email) if email else None
        with self._write() as conn:
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
            target = status
            if soft_bounce and row is not None:
                soft_bounces += 1
                values["soft_bounces"] = soft_bounces
                detail["soft_bounces"] = soft_bounces
                if target is None and soft_bounce_limit is not None and soft_bounces >= soft_bounce_limit:
                    target, reason = "bounced", f"{soft_bounces} soft bounces"
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
            changed = (
                row is not None
                and target is not None
                and target != current
                and current != "complained"
                and not (current in SUPPRESSED and target not in SUPPRESSED)
            )
            if changed:
                values["status"] = target
                if target == "unsubscribed":
                    values["unsubscribed_at"] = now
                if target == "active" and current == "pending":
                    values["consent_at"] = now
            if values and row is not None:
                values["updated_at"] = now
                conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(values))
            conn.execute(
                events.insert().values(
                    type=type, email=email, message_id=message_id, detail=detail, received_at=now
                )
            )
            if changed:
                conn.execute(
                    events.insert().values(
                        type="status",
                        email=row.email,
                        message_id=None,
                        detail={"from": current, "to": target, "reason": reason},
                        received_at=now,
                    )
                )
        return ApplyResult(
            duplicate=False,
            known=row is not None,
            changed=changed,
            status=target if changed else current,
            soft_bounces=soft_bounces,
            delivered=marked,
        )

    # ----------------------------------------------------------------- the ledger

    def create_ledger(self, issue: str, *, limit: int | None = None) -> int:
        """Snapshot the active subscribers into the ledger for `issue`; returns rows added.

        The snapshot is taken once: when the issue's ledger is complete, later calls
        add nothing (people who subscribe afterwards get the next issue). A `limit`
        makes a partial snapshot for a canary send: the ledger then holds at most
        `limit` rows in subscriber order; a later call with a larger limit tops it up
        to that size, and a call without a limit completes the snapshot.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit: expected a number >= 0, got {limit}")
        now = _now()
        with self._write() as conn:
            snap = conn.execute(sa.select(snapshots.c.complete).where(snapshots.c.issue == issue)).first()
            if snap is not None and snap.complete:
                return 0
            have = conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.issue == issue)
            ).scalar()
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
                    sa.literal(now, _UtcDateTime).label("updated_at"),
                )
                .where(subscribers.c.status == "active", ~sa.exists(already))
                .order_by(subscribers.c.id)
            )
            if limit is not None:
                eligible = eligible.limit(limit - have)
            added = conn.execute(
                deliveries.insert().from_select(
                    ["issue", "subscriber_id", "email", "state", "attempts", "updated_at"], eligible
                )
            ).rowcount
            complete = limit is None
            if snap is None:
                conn.execute(snapshots.insert().values(issue=issue, complete=complete, created_at=now))
            elif complete:
                conn.execute(snapshots.update().where(snapshots.c.issue == issue).values(complete=True))
        return added

    def claim_batch(
        self, issue: str, n: int, *, record_sent: Iterable[tuple[int, str | None]] = ()
    ) -> list[Delivery]:
        """Atomically move up to `n` queued rows to `sending` and return them.

        Only rows whose subscriber is still active are claimed; rows of people who
        unsubscribed, bounced, complained or were erased since the snapshot become
        failed/permanent with error ``skipped: <status>``. Concurrent claimers (other
        processes) never receive the same row: BEGIN IMMEDIATE on SQLite,
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.

        `record_sent` — (subscriber_id, message_id) pairs of messages this sender has
        finished — are marked sent in the same transaction: a sender that records its
        results when it claims the next rows pays one commit per batch, not per message.
        """
        now = _now()
        with self._write() as conn:
            self._mark_sent(conn, issue, record_sent, now)
            return self._claim(conn, issue, n, now)

    @staticmethod
    def _claim(conn: Connection, issue: str, n: int, now: datetime) -> list[Delivery]:
        """Claim up to `n` rows: one SELECT (rows, with the subscriber's current status) and one UPDATE."""
        statements = _ledger_statements()
        claimed: list[Delivery] = []
        while len(claimed) < n:
            candidates = conn.execute(statements.candidates, {"b_issue": issue, "n": n - len(claimed)}).all()
            if not candidates:
                break
            ready = [c for c in candidates if c.subscriber_status == "active"]
            skipped: dict[str, list[int]] = {}
            for c in candidates:
                if c.subscriber_status != "active":
                    skipped.setdefault(c.subscriber_status or "removed", []).append(c.id)
            for status, ids in skipped.items():
                conn.execute(statements.skip, {"ids": ids, "b_error": f"skipped: {status}", "now": now})
            if ready:
                conn.execute(statements.claim, {"ids": [c.id for c in ready], "now": now})
                for c in ready:
                    row = c._asdict()
                    del row["subscriber_status"]
                    row.update(state="sending", claimed_at=now, attempts=c.attempts + 1, updated_at=now)
                    claimed.append(Delivery(**row))
        return claimed

    def _set_row(self, issue: str, subscriber_id: int, values: dict[str, Any], *states: str) -> int:
        where = [deliveries.c.issue == issue, deliveries.c.subscriber_id == subscriber_id]
        if states:
            where.append(deliveries.c.state.in_(states))
        with self._write() as conn:
            return conn.execute(
                deliveries.update().where(*where).values(updated_at=_now(), **values)
            ).rowcount

    def mark_sent(self, issue: str, subscriber_id: int, message_id: str | None) -> None:
        self._set_row(
            issue,
            subscriber_id,
            {"state": "sent", "message_id": message_id, "sent_at": _now(), "outcome": None, "error": None},
        )

    def mark_sent_many(self, issue: str, sent: Iterable[tuple[int, str | None]]) -> None:
        """Record several (subscriber_id, message_id) as sent in one transaction.

        One commit per message costs more CPU than building the message; a sender
        records the messages that finished together at once.
        """
        with self._write() as conn:
            self._mark_sent(conn, issue, sent, _now())

    @staticmethod
    def _mark_sent(
        conn: Connection, issue: str, sent: Iterable[tuple[int, str | None]], now: datetime
    ) -> None:
        rows = [{"b_issue": issue, "sid": sid, "mid": mid, "now": now} for sid, mid in sent]
        if rows:
            conn.execute(_ledger_statements().mark_sent, rows)

    def mark_failed(self, issue: str, subscriber_id: int, outcome: str, error: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {outcome!r}")
        self._set_row(issue, subscriber_id, {"state": "failed", "outcome": outcome, "error": error})

    def requeue(self, issue: str, subscriber_id: int) -> None:
        """sending → queued, after a temporary failure that certainly did not deliver."""
        self._set_row(issue, subscriber_id, {"state": "queued", "claimed_at": None}, "sending")

    def uncertain(self, issue: str) -> list[Delivery]:
        """Rows left in `sending` (by a crash): maybe delivered, maybe not."""
        query = _delivery_query().where(deliveries.c.issue == issue, deliveries.c.state == "sending")
        with self._read() as conn:
            return [_delivery(r) for r in conn.execute(query.order_by(deliveries.c.id))]

    def _requeue_where(self, issue: str, *where: sa.ColumnElement[bool]) -> int:
        with self._write() as conn:
            return conn.execute(
                deliveries.update()
                .where(deliveries.c.issue == issue, *where)
                .values(state="queued", claimed_at=None, outcome=None, updated_at=_now())
            ).rowcount

    def requeue_uncertain(self, issue: str) -> int:
        """Put every uncertain row back in the queue (the editor asked: --resend-uncertain)."""
        return self._requeue_where(issue, deliveries.c.state == "sending")

    def requeue_temporary(self, issue: str) -> int:
        """failed/temporary → queued, for a later retry run. The error text is kept until resent."""
        return self._requeue_where(issue, deliveries.c.state == "failed", deliveries.c.outcome == "temporary")

    def ledger_counts(self, issue: str) -> dict[str, int]:
        """Rows by state: queued, sending, sent, failed_temporary, failed_permanent."""
        counts = dict.fromkeys(("queued", "sending", "sent", "failed_temporary", "failed_permanent"), 0)
        query = (
            sa.select(deliveries.c.state, deliveries.c.outcome, sa.func.count())
            .where(deliveries.c.issue == issue)
            .group_by(deliveries.c.state, deliveries.c.outcome)
        )
        with self._read() as conn:
            for state, outcome, n in conn.execute(query):
                key = f"failed_{outcome or 'permanent'}" if state == "failed" else state
                counts[key] += n
        return counts

    def failures(self, issue: str) -> list[Delivery]:
        query = _delivery_query().where(deliveries.c.issue == issue, deliveries.c.state == "failed")
        with self._read() as conn:
            return [_delivery(r) for r in conn.execute(query.order_by(deliveries.c.id))]

    def ledger(self, issue: str) -> list[Delivery]:
        """Every ledger row of the issue, in snapshot order."""
        query = _delivery_query().where(deliveries.c.issue == issue)
        with self._read() as conn:
            return [_delivery(r) for r in conn.execute(query.order_by(deliveries.c.id))]

    def mark_delivered(self, message_id: str) -> str | None:
        """Record an SES delivery notification; returns the row's issue (None: unknown id)."""
        now = _now()
        with self._write() as conn:
            issue = conn.execute(
                sa.select(deliveries.c.issue).where(deliveries.c.message_id == message_id).limit(1)
            ).scalar()
            if issue is not None:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.message_id == message_id)
                    .values(delivered_at=now, updated_at=now)
                )
        return issue

    def issues_sent(self) -> list[str]:
        """Issues that have a ledger, oldest first."""
        query = (
            sa.select(deliveries.c.issue).group_by(deliveries.c.issue).order_by(sa.func.min(deliveries.c.id))
        )
        with self._read() as conn:
            return list(conn.execute(query).scalars())


# --------------------------------------------------------------------------- internals

_MERGED_COLUMNS = ("name", "language", "status", "consent_at", "attributes", "updated_at", "unsubscribed_at")


def _merge(current: dict[str, Any], row: SubscriberRow, now: datetime) -> dict[str, Any]:
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
    status = new["status"]
    if row.status in SUPPRESSED and status != row.status:
        new["status"] = row.status
        if row.status == "unsubscribed":
            new["unsubscribed_at"] = now
    elif row.status == "active" and status == "pending":
        new["status"] = "active"
        new["consent_at"] = row.consent_at or now
    if new["consent_at"] is None and row.consent_at is not None:
        new["consent_at"] = row.consent_at
    if new != current and "id" in current:
        new["updated_at"] = now
    return new


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")


def _identify(email_or_id: str | int) -> sa.ColumnElement[bool]:
    if isinstance(email_or_id, int) or (isinstance(email_or_id, str) and email_or_id.strip().isdigit()):
        return subscribers.c.id == int(email_or_id)
    return subscribers.c.email_key == email_key(email_or_id)


def _subscriber(row: sa.Row) -> Subscriber:
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
    )


@dataclass(frozen=True)
class _LedgerStatements:
    candidates: sa.Select
    claim: sa.Update
    skip: sa.Update
    mark_sent: sa.Update


@lru_cache(maxsize=1)
def _ledger_statements() -> _LedgerStatements:
    """The sender's hot statements, built once with bind parameters.

    Building a Core statement costs more CPU than SQLite takes to run it; claiming and
    recording happen for every batch of every send.
    """
    now = sa.bindparam("now", type_=_UtcDateTime())
    ids = sa.bindparam("ids", expanding=True)
    return _LedgerStatements(
        candidates=_delivery_query()
        .add_columns(subscribers.c.status.label("subscriber_status"))
        .where(deliveries.c.issue == sa.bindparam("b_issue"), deliveries.c.state == "queued")
        .order_by(deliveries.c.id)
        .limit(sa.bindparam("n"))
        .with_for_update(skip_locked=True, of=deliveries),
        claim=deliveries.update()
        .where(deliveries.c.id.in_(ids))
        .values(state="sending", claimed_at=now, attempts=deliveries.c.attempts + 1, updated_at=now),
        skip=deliveries.update()
        .where(deliveries.c.id.in_(ids))
        .values(state="failed", outcome="permanent", error=sa.bindparam("b_error"), updated_at=now),
        mark_sent=deliveries.update()
        .where(
            deliveries.c.issue == sa.bindparam("b_issue"), deliveries.c.subscriber_id == sa.bindparam("sid")
        )
        .values(
            state="sent",
            message_id=sa.bindparam("mid"),
            sent_at=now,
            outcome=None,
            error=None,
            updated_at=now,
        ),
    )


def _delivery_query() -> sa.Select:
    return sa.select(deliveries, subscribers.c.name, subscribers.c.language).select_from(
        deliveries.outerjoin(subscribers, deliveries.c.subscriber_id == subscribers.c.id)
    )


def _delivery(row: sa.Row) -> Delivery:
    return Delivery(**row._asdict())


def _reason(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig) if exc.orig is not None else str(exc)


def _create_engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(
            f"database url: expected a URL like 'sqlite:///subscribers/subscribers.db', got {url!r}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed)
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"database url {parsed.render_as_string(hide_password=True)!r}: {exc}") from None


def _create_sqlite_engine(url: sa.URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        # each pooled connection would get its own empty in-memory database
        raise StoreError(f"database url {url.render_as_string()!r}: expected a SQLite file path, got none")
    path = Path(database)
    if path.is_dir():
        raise StoreError(f"{path}: is a folder; expected a SQLite database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path.parent}: cannot create the database folder ({exc.strerror})") from None
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # take over transaction control from the sqlite3 module so BEGIN IMMEDIATE is possible
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(
            "PRAGMA synchronous = NORMAL"
        )  # safe with WAL; a crash loses no committed ledger state
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine
