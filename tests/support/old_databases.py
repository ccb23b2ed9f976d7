"""SQLite databases as older versions of the schema left them, for the migration tests.

`undo_after_version_3` takes a current database back past every migration from 4 on, one
entry per migration in `UNDO`: a migration added to `newsletter.store.schema.MIGRATIONS`
without its entry here fails `tests/test_store.py::test_every_migration_after_3_can_be_undone`.
"""

from __future__ import annotations

import sqlite3

# What each migration after 3 added, in MIGRATIONS order, as the statements that remove it.
UNDO: dict[str, tuple[str, ...]] = {
    "_migration_4": (
        "DROP TABLE senders",
        "DROP TABLE rate_buckets",
        "ALTER TABLE deliveries DROP COLUMN sender",
    ),
    "_migration_delivery_language": ("ALTER TABLE deliveries DROP COLUMN language",),
    "_migration_engagement": ("DROP TABLE engagement",),
    "_migration_send_lease": ("DROP TABLE leases",),
    "_migration_subscriber_tags": ("DROP TABLE subscriber_tags",),
    "_migration_claim_order": ("DROP INDEX ix_deliveries_claim",),
    "_migration_queued_claims": (
        "DROP INDEX ix_deliveries_queued",
        "CREATE INDEX ix_deliveries_claim ON deliveries (issue, state, id)",
        "CREATE INDEX ix_deliveries_issue_state ON deliveries (issue, state)",
    ),
    "_migration_sent_message_ids": (
        "DROP INDEX ix_deliveries_message_id",
        "CREATE INDEX ix_deliveries_message_id ON deliveries (message_id)",
    ),
}


def undo_after_version_3(conn: sqlite3.Connection) -> None:
    """Remove what migrations 4 and later added (the schema_version row is the caller's)."""
    for statements in reversed(UNDO.values()):
        for statement in statements:
            conn.execute(statement)


def schema_of(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    """The database's tables and indexes, by name and the SQL that made them (whitespace-folded)."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'schema_version'"
    )
    return {(name, " ".join(sql.split())) for name, sql in rows}
