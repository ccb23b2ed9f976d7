"""The schema: tables, the column type for times, and the migrations that build them.

Times are stored as naive UTC and returned timezone-aware (UTC). The database's version is
the number of migrations applied; `migrate` applies the missing ones in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.store.engine import Database, StoreError

# The statuses the schema's CHECK constraint admits. The lifecycle (newsletter.audience.lifecycle,
# a layer above) owns what they mean; this copy is what databases hold, so a new status needs a
# migration as well as a line there (tests check that the two agree).
STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
STATES = ("queued", "sending", "sent", "failed")
OUTCOMES = ("temporary", "permanent")  # of a failed row
UNCERTAIN = "uncertain"  # the outcome of a row left `sending` because the provider's answer was lost
ERASED = "[erased]"  # what an erased subscriber's address becomes in the ledger and events


def utc_now() -> datetime:
    """The time as the store records it: aware, in UTC."""
    return datetime.now(UTC)


class UtcDateTime(sa.TypeDecorator):
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
    sa.Column("consent_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("attributes", sa.JSON(none_as_null=True)),
    sa.Column("soft_bounces", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unsubscribed_at", UtcDateTime),
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
    sa.Column("claimed_at", UtcDateTime),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
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
    sa.Column("created_at", UtcDateTime, nullable=False),
)

events = sa.Table(
    "events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("detail", sa.JSON(none_as_null=True)),
    sa.Column("received_at", UtcDateTime, nullable=False),
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


def migrate(db: Database) -> None:
    """Bring the database to SCHEMA_VERSION; StoreError when it is newer than this code."""
    with db.write() as conn:
        schema_version.create(conn, checkfirst=True)
        version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{db.where}: database schema version {version} is newer than this newsletter "
                f"understands (version {SCHEMA_VERSION})\n\n"
                "Upgrade newsletter (pip install -U newsletter), or use another database."
            )
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            migration(conn)
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=number))
