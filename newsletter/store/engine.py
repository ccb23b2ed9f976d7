"""The database connection: the engine, SQLite's pragmas, and the two kinds of transaction.

SQLite is the embedded default; statements stay portable so PostgreSQL can follow, and the
SQLite-specific pieces (WAL, pragmas, ``BEGIN IMMEDIATE``) live here behind a dialect check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.errors import NewsletterError


class StoreError(NewsletterError):
    """The database cannot be opened or used, or a request contradicts its contents."""


class Database:
    """One database: its engine, where it is (for messages), and its transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self.sqlite = self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    @property
    def where(self) -> str:
        """The database as messages name it: the file of a SQLite database, else the URL without password."""
        database = self.engine.url.database
        return database if self.sqlite and database else self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction that takes the write lock at BEGIN.

        On SQLite a deferred transaction that reads and then writes can fail with
        SQLITE_BUSY without waiting (WAL snapshot upgrade); BEGIN IMMEDIATE waits for
        the lock up to busy_timeout instead, and serialises concurrent claimers.
        """
        with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn


def reason(exc: sa.exc.DBAPIError) -> str:
    """What the database driver said."""
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
