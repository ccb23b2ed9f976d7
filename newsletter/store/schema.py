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
    # ids are never reused (migration 3): an unsubscribe link names its subscriber by id, so
    # after an erasure it must name nobody, not whoever is added next
    sqlite_autoincrement=True,
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
    # who claimed the row last ("host pid start", see `senders`): an uncertain row names its sender
    sa.Column("sender", sa.String(200)),
    # the language of the translation the row's message was made in, chosen when it is claimed
    sa.Column("language", sa.String(35)),
    sa.UniqueConstraint("issue", "subscriber_id", name="uq_deliveries_issue_subscriber"),
    sa.CheckConstraint(_one_of("state", STATES), name="state"),
    # only rows that have a message id (sent ones): see migration "sent message ids"
    sa.Index(
        "ix_deliveries_message_id",
        "message_id",
        sqlite_where=sa.text("message_id IS NOT NULL"),
        postgresql_where=sa.text("message_id IS NOT NULL"),
    ),
    # a claim takes the next queued rows in snapshot order; only queued rows are in it, so a
    # row leaves it once, when claimed (migration "queued claims")
    sa.Index(
        "ix_deliveries_queued",
        "issue",
        "id",
        sqlite_where=sa.text("state = 'queued'"),
        postgresql_where=sa.text("state = 'queued'"),
    ),
)

# deliveries' columns that later migrations added: version 1 made the table without them
_ADDED_TO_DELIVERIES = ("sender", "language")

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


# A subscriber's tags (`subscribers tag`, imports): one row per (subscriber, tag), tags folded
# (see `newsletter.text.fold_tag`). An issue's `audience:` selects readers by them.
subscriber_tags = sa.Table(
    "subscriber_tags",
    _metadata,
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Index("ix_subscriber_tags_tag", "tag"),
)


# The senders of each issue: one row per `newsletter send` process, named "host pid start".
# A sender refreshes `seen_at` while it works and sets `finished_at` when it stops, so the rows
# it left in `sending` are in flight while it lives and uncertain once it has finished or gone silent.
senders = sa.Table(
    "senders",
    _metadata,
    sa.Column("issue", sa.String(200), primary_key=True),
    sa.Column("sender", sa.String(200), primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
)

# Token buckets that senders on several machines share: `tokens` available at `at` (seconds
# since the epoch), refilled at `rate` per second up to `burst`. One row per quota (a
# transport account), so N senders together never exceed it.
rate_buckets = sa.Table(
    "rate_buckets",
    _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("rate", sa.Float, nullable=False),
    sa.Column("burst", sa.Float, nullable=False),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

# Leases: one row per kind of exclusive work (e.g. "send --due"), held by one process at a time
# until it releases the row or `expires_at` passes (it renews the row while it works), so a
# crashed holder blocks no one for longer than one lease.
leases = sa.Table(
    "leases",
    _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)


# Opens and clicks (opt-in, `ses.engagement`), one row per SES Open or Click event of a
# message in the ledger (by its SES message id). Nothing of the reader's machine is kept:
# no IP address, no user agent; only when, which link (ours), which paper (its link tag)
# and, when the event looks like a machine's (a privacy proxy's prefetch, a link
# scanner), why. SQS delivers at least once: the unique key makes a redelivery a no-op.
engagement = sa.Table(
    "engagement",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue", sa.String(200), nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("type", sa.String(8), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("link", sa.Text, nullable=False, server_default=""),
    sa.Column("paper", sa.String(256)),
    sa.Column("machine", sa.String(200)),
    # made up, not reported by SES (`newsletter demo` adds a few to show the report)
    sa.Column("synthetic", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("message_id", "type", "at", "link", name="uq_engagement_event"),
    sa.CheckConstraint("type IN ('open','click')", name="engagement_type"),
    sa.Index("ix_engagement_issue", "issue"),
)


def _deliveries_v1(metadata: sa.MetaData) -> sa.Table:
    """`deliveries` as version 1 made it (before later migrations added `_ADDED_TO_DELIVERIES`)."""
    return sa.Table(
        "deliveries",
        metadata,
        *(column._copy() for column in deliveries.columns if column.name not in _ADDED_TO_DELIVERIES),
        sa.UniqueConstraint("issue", "subscriber_id", name="uq_deliveries_issue_subscriber"),
        sa.CheckConstraint(_one_of("state", STATES), name="state"),
        sa.Index("ix_deliveries_issue_state", "issue", "state"),
        sa.Index("ix_deliveries_message_id", "message_id"),
    )


def _migration_1(conn: Connection) -> None:
    """The first schema.

    It creates the tables from the definitions above. When a later migration
    changes a table, freeze a copy of that table's version-1 definition here first,
    so a fresh database still replays history step by step.
    """
    v1 = sa.MetaData()
    tables = [
        subscribers.to_metadata(v1),
        _deliveries_v1(v1),
        snapshots.to_metadata(v1),
        events.to_metadata(v1),
    ]
    v1.create_all(conn, tables=tables)


def _migration_2(conn: Connection) -> None:
    """An index on events(message_id): `apply_event` looks up every notification by it."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_events_message_id ON events (message_id)"))


def _migration_3(conn: Connection) -> None:
    """Subscriber ids are never reused: SQLite's AUTOINCREMENT, keeping every row and ledger link.

    Without it SQLite hands the highest id again after that subscriber is erased, and an
    old unsubscribe link would act on the newcomer. PostgreSQL's sequences never go back,
    so there is nothing to do there. SQLite cannot add AUTOINCREMENT to a table, so the
    table is rebuilt; dropping the old one sets deliveries.subscriber_id to NULL (its
    foreign key says so, and the pragma cannot be turned off inside a transaction), so
    those links are saved first and written back.
    """
    if conn.dialect.name != "sqlite":
        return
    sql = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'subscribers'")
    ).scalar()
    if sql is None or "AUTOINCREMENT" in sql.upper():
        return  # created by migration 1 from today's definition
    rebuilt = subscribers.to_metadata(sa.MetaData(), name="subscribers_rebuilt")
    conn.execute(sa.schema.CreateTable(rebuilt))
    columns = ", ".join(c.name for c in subscribers.columns)
    conn.execute(sa.text(f"INSERT INTO subscribers_rebuilt ({columns}) SELECT {columns} FROM subscribers"))
    conn.execute(
        sa.text(
            "CREATE TEMP TABLE delivery_owners AS "
            "SELECT id, subscriber_id FROM deliveries WHERE subscriber_id IS NOT NULL"
        )
    )
    conn.execute(sa.text("DROP TABLE subscribers"))
    conn.execute(sa.text("ALTER TABLE subscribers_rebuilt RENAME TO subscribers"))
    conn.execute(sa.text("CREATE INDEX ix_subscribers_status ON subscribers (status)"))
    conn.execute(
        sa.text(
            "UPDATE deliveries SET subscriber_id = "
            "(SELECT o.subscriber_id FROM delivery_owners o WHERE o.id = deliveries.id) "
            "WHERE id IN (SELECT id FROM delivery_owners)"
        )
    )
    conn.execute(sa.text("DROP TABLE delivery_owners"))


def _migration_4(conn: Connection) -> None:
    """Senders on several machines: who claimed each row, the senders of each issue, shared rate buckets."""
    conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN sender VARCHAR(200)"))
    _metadata.create_all(conn, tables=[senders, rate_buckets])


def _migration_delivery_language(conn: Connection) -> None:
    """Per-reader language: each ledger row records the language its message was sent in."""
    conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN language VARCHAR(35)"))


def _migration_engagement(conn: Connection) -> None:
    """Engagement: the `engagement` table of opens and clicks (opt-in, README "Engagement")."""
    _metadata.create_all(conn, tables=[engagement])


def _migration_send_lease(conn: Connection) -> None:
    """Leases: `send --due` runs from cron hold one, so two overlapping runs never compete."""
    _metadata.create_all(conn, tables=[leases])


def _migration_subscriber_tags(conn: Connection) -> None:
    """Subscriber tags: a table of (subscriber, tag) rows, so an audience is one indexed lookup."""
    _metadata.create_all(conn, tables=[subscriber_tags])


def _migration_claim_order(conn: Connection) -> None:
    """An index that hands a claim the next queued rows of an issue in id order, without a sort.

    PostgreSQL's (issue, state) index is not ordered by id: every claim sorted all the
    queued rows of the issue (60 ms at 5,000 readers). SQLite's index entries end with
    the rowid, so there it changes nothing but keeps both back-ends' schemas alike.
    """
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_deliveries_claim ON deliveries (issue, state, id)"))


def _migration_queued_claims(conn: Connection) -> None:
    """Index only the queued rows of each issue, in claim order: ix_deliveries_queued replaces ix_deliveries_claim.

    ix_deliveries_claim (issue, state, id) held every row, so each claimed row moved in it
    twice (queued → sending → sent): two entries deleted and two written per reader, and
    the pages they sit on written to the journal with every batch — a third of the
    database's CPU in a send. A row now leaves the index once, when it is claimed. Claims
    and `reachable` ask for `state = 'queued'`, which the index answers in id order;
    lookups of other states read the issue's rows through uq_deliveries_issue_subscriber.
    The (issue, state) index goes too: no query needs it any more.
    """
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_deliveries_issue_state"))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_deliveries_claim"))
    conn.execute(
        sa.text(
            "CREATE INDEX IF NOT EXISTS ix_deliveries_queued ON deliveries (issue, id) WHERE state = 'queued'"
        )
    )


def _migration_sent_message_ids(conn: Connection) -> None:
    """Index the message ids of sent rows only: ix_deliveries_message_id leaves out NULLs.

    Every queued row of a send had an entry (NULL) in the index, and recording it as sent
    deleted that entry before writing its message id: each batch rewrote index pages at
    the head of the NULLs, ≈1 of 9 pages a SQLite batch writes to its journal. Every query
    that looks a message id up (``message_id = ?``, joins on it, ``IS NOT NULL``) implies
    the index's condition, so both back-ends still use it.
    """
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_deliveries_message_id"))
    conn.execute(
        sa.text(
            "CREATE INDEX IF NOT EXISTS ix_deliveries_message_id ON deliveries (message_id)"
            " WHERE message_id IS NOT NULL"
        )
    )


# Applied in order; the database's version is the number of migrations applied.
MIGRATIONS = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_delivery_language,
    _migration_engagement,
    _migration_send_lease,
    _migration_subscriber_tags,
    _migration_claim_order,
    _migration_queued_claims,
    _migration_sent_message_ids,
]
SCHEMA_VERSION = len(MIGRATIONS)


def copied_tables() -> list[sa.Table]:
    """Every table that holds the list and its history, parents before children (for a copy)."""
    return [t for t in _metadata.sorted_tables if t is not schema_version]


def migrate(db: Database) -> tuple[int, int]:
    """Bring the database to SCHEMA_VERSION; StoreError when it is newer than this code.

    Returns the versions before and after.
    """
    # the lock: several senders starting at once against one server migrate one after another
    with db.write(lock="newsletter schema") as conn:
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
    return version, max(version, SCHEMA_VERSION)
