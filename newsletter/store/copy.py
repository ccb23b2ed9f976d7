"""Copying a whole database to another (a SQLite list and ledger into PostgreSQL), verified by counts.

The target must be empty: copying into a list that already holds people would merge two
lists silently. Rows keep their ids (the ledger and events refer to subscribers by id), so
the server's id sequences are moved past the copied ids afterwards. Everything is written
in one transaction on the target: a copy that fails or does not add up leaves it empty.
"""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.store.engine import Database, StoreError
from newsletter.store.schema import copied_tables

PAGE = 5000  # rows read and written at a time: memory stays flat for large lists


def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Copy every row of `source` into the empty `target` (both at the current schema); rows per table."""
    tables = copied_tables()
    with source.read() as src, target.write(lock="newsletter copy") as dst:
        held = {t.name: _count(dst, t) for t in tables}
        if any(held.values()):
            found = ", ".join(f"{n} in {name}" for name, n in held.items() if n)
            raise StoreError(
                f"{target.where}: holds rows already ({found}); expected an empty database\n\n"
                "Nothing was copied. Copy into a new database, or empty this one first."
            )
        copied = {}
        for table in tables:
            copied[table.name] = _copy_table(src, dst, table)
            if not target.sqlite:
                _move_sequence(dst, table)
        counted = {t.name: _count(dst, t) for t in tables}
        expected = {t.name: _count(src, t) for t in tables}
        if counted != expected or counted != copied:
            raise StoreError(
                f"{target.where}: the copy does not add up (source {expected}, target {counted}); "
                "nothing was copied"
            )
    return counted


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _copy_table(src: sa.Connection, dst: sa.Connection, table: sa.Table) -> int:
    n = 0
    rows = src.execution_options(yield_per=PAGE).execute(sa.select(table).order_by(*table.primary_key))
    for page in rows.mappings().partitions():
        dst.execute(table.insert(), [dict(r) for r in page])
        n += len(page)
    return n


def _move_sequence(conn: sa.Connection, table: sa.Table) -> None:
    """The next id the server hands out comes after the copied ones."""
    (key,) = table.primary_key.columns if len(table.primary_key.columns) == 1 else (None,)
    if key is None or not isinstance(key.type, sa.Integer) or key.autoincrement is False:
        return
    conn.execute(
        sa.text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{key.name}'), "
            f"COALESCE((SELECT max({key.name}) FROM {table.name}), 0) + 1, false)"
        )
    )
