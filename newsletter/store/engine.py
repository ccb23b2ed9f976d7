"""The database connection: the engine, its URL and pool, and the two kinds of transaction.

SQLite is the embedded default; PostgreSQL (psycopg 3) is the shared store for a list that
outgrows one machine. Statements stay portable; the back-end specific pieces (SQLite's WAL,
pragmas and ``BEGIN IMMEDIATE``; PostgreSQL's driver, pool and advisory locks) live here.
"""

from __future__ import annotations

import contextlib
import re
import select
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.errors import NewsletterError


class StoreError(NewsletterError):
    """The database cannot be opened or used, or a request contradicts its contents."""


# The URL schemes people write for PostgreSQL, and the driver SQLAlchemy should use for them.
_POSTGRES_SCHEMES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
CONNECT_TIMEOUT = 10  # seconds before an unreachable server is reported
# libpq's options for a server that vanishes without closing the connection (a network cut,
# a machine lost): without them a sender waits for its answer until the kernel gives up,
# a quarter of an hour later, holding its rows and its lease. A URL's own values win.
SERVER_LOST = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 30,  # seconds of silence before the first probe
    "keepalives_interval": 10,
    "keepalives_count": 3,  # an idle connection is known dead after 30 + 3 × 10 s
    "tcp_user_timeout": 60_000,  # ms a request may stay unacknowledged: a lost server within a minute
}


class Database:
    """One database: its engine, where it is (for messages), and its transactions.

    `connections` sizes a server's connection pool: one per thread that uses the store
    at the same time (a sender's claiming loop, the web app's request threads).
    """

    def __init__(self, url: str, *, connections: int = 5) -> None:
        self.url = url
        self.engine = _create_engine(url, max(1, connections))
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._own = threading.local()
        self._dedicated: list[Any] = []
        self._dedicated_lock = threading.Lock()

    def close(self) -> None:
        with self._dedicated_lock:
            dedicated, self._dedicated = self._dedicated, []
        for conn in dedicated:
            conn.close()
        self.engine.dispose()

    def dedicated(self) -> Any:
        """This thread's own DBAPI connection, outside the pool, for the send loop's batch statements.

        It is made like a pooled one (SQLite's pragmas, the server's timeouts) and kept until
        `close`. On SQLite it runs no transaction of its own (the caller says BEGIN IMMEDIATE
        and COMMIT); on PostgreSQL it is in autocommit, so a single statement is a whole
        transaction and costs one round trip instead of three (BEGIN, statement, COMMIT).
        """
        conn = getattr(self._own, "conn", None)
        if conn is not None and not self.sqlite and conn.closed:
            conn = None  # closed when a statement was stopped midway (`PreparedStatement.run`)
        if conn is None:
            proxied = self.engine.raw_connection()
            conn = proxied.driver_connection
            proxied.detach()  # ours to keep and close: the pool neither resets nor reuses it
            if self.sqlite:
                # SQLite runs `state IN (...)`, the CHECK on deliveries.state, by building a
                # temporary b-tree for every row a statement changes: a third of a claim's CPU.
                # The batch statements on this connection set only states written in their
                # SQL (newsletter.store.claims), so here the check is skipped; every other
                # connection still enforces it.
                conn.execute("PRAGMA ignore_check_constraints = ON")
            else:
                conn.rollback()  # the pool's ping may have opened a transaction
                conn.autocommit = True
            self._own.conn = conn
            with self._dedicated_lock:
                self._dedicated.append(conn)
        return conn

    @property
    def where(self) -> str:
        """The database as messages name it: the file of a SQLite database, else the URL without password."""
        database = self.engine.url.database
        return database if self.sqlite and database else self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self, lock: str | None = None) -> Iterator[Connection]:
        """A write transaction that takes the write lock at BEGIN.

        On SQLite a deferred transaction that reads and then writes can fail with
        SQLITE_BUSY without waiting (WAL snapshot upgrade); BEGIN IMMEDIATE waits for
        the lock up to busy_timeout instead, and serialises every writer. PostgreSQL
        lets writers run side by side (claims skip each other's locked rows); a `lock`
        name serialises the transactions that share it, for read-then-insert steps
        (migrating, snapshotting a ledger) that two senders may start at once.
        """
        with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
            if lock is not None and not self.sqlite:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": lock})
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn


class PreparedStatement:
    """A PostgreSQL statement prepared once per connection and run through libpq itself.

    For the send loop's one statement per batch of readers: psycopg's cursor spends about
    60 µs of Python on every execute (converting the query, adapting each parameter, its
    prepared-statement cache and wait loop), a third of what the batch costs the sender.
    Here the ``%(name)s`` placeholders become ``$n`` once, parameters travel as text (the
    server infers each one's type at PREPARE from where the statement uses it), the answer
    is awaited in a poll that lets Ctrl-C through, and the rows come back through
    psycopg's own loaders, so they are the values a cursor would return. Errors are
    psycopg's, raised as a cursor raises them.
    """

    def __init__(self, name: str, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        self.name = name.encode("ascii")
        self.sql = re.sub(r"%\((\w+)\)s", number, sql)
        self.names = tuple(names)

    def run(self, conn: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement on psycopg connection `conn` (in autocommit) and return its rows."""
        from psycopg import errors, pq
        from psycopg.adapt import Transformer

        encoding = conn.info.encoding
        values = [_text(params[name], encoding) for name in self.names]
        pgconn = conn.pgconn
        try:
            result = _answer(pgconn, pgconn.send_query_prepared, self.name, values)
            if result.status == pq.ExecStatus.FATAL_ERROR and _not_prepared(result):
                # the first run on this connection (or the server forgot it, as DISCARD ALL makes it)
                prepared = _answer(pgconn, pgconn.send_prepare, self.name, self.sql.encode(encoding))
                if prepared.status != pq.ExecStatus.COMMAND_OK:
                    raise errors.error_from_result(prepared, encoding=encoding)
                result = _answer(pgconn, pgconn.send_query_prepared, self.name, values)
        except BaseException:
            if pgconn.is_busy():  # stopped while the server works: the connection is of no further use
                with contextlib.suppress(Exception):
                    conn.cancel()
                conn.close()
            raise
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            raise errors.error_from_result(result, encoding=encoding)
        loader = Transformer(conn)
        loader.set_pgresult(result)
        return loader.load_rows(0, result.ntuples, tuple)


def _answer(pgconn: Any, send: Any, *args: Any) -> Any:
    """Send one request through libpq and return its result, waiting with Python's eyes open.

    libpq's blocking calls (PQexecPrepared) would hold the thread in C until the server
    answers, and the Python signal handler (a first Ctrl-C stops the send, a second ends
    it) would run only then: with a server that stopped answering, never. So the request
    goes out on the connection psycopg made non-blocking, and the wait is a poll that
    wakes at least every WAKE_MS to let a signal's handler run.
    """
    send(*args)
    while pgconn.flush():  # libpq's buffer is not all sent yet: wait until it can be
        _wait(pgconn.socket, select.POLLOUT | select.POLLIN)
        pgconn.consume_input()
    result = None
    while True:
        if pgconn.is_busy():
            _wait(pgconn.socket, select.POLLIN)
            pgconn.consume_input()
            continue
        got = pgconn.get_result()
        if got is None:
            return result
        result = got


WAKE_MS = 100


def _wait(fd: int, events: int) -> None:
    poller = select.poll()
    poller.register(fd, events)
    while not poller.poll(WAKE_MS):
        pass


def _not_prepared(result: Any) -> bool:
    from psycopg import pq

    return result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000"  # invalid_sql_statement_name


def _text(value: Any, encoding: str) -> bytes | None:
    """A parameter in PostgreSQL's text input format."""
    if value is None:
        return None
    if type(value) is str:  # most of them: one test, not four
        return value.encode(encoding)
    if isinstance(value, bool):  # before int: a bool is one
        return b"t" if value else b"f"
    if isinstance(value, str):
        return value.encode(encoding)
    if isinstance(value, int | float):
        return str(value).encode("ascii")
    if isinstance(value, datetime):
        return value.isoformat().encode("ascii")
    raise TypeError(f"no text form for a parameter of type {type(value).__name__}")


def driver_error(exc: BaseException) -> bool:
    """Whether `exc` is the database's (through SQLAlchemy, or on a dedicated connection)."""
    if isinstance(exc, sa.exc.DBAPIError | sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")  # imported only where a server is used
    return psycopg is not None and isinstance(exc, psycopg.Error)


def reason(exc: sa.exc.DBAPIError) -> str:
    """What the database driver said."""
    return str(exc.orig) if exc.orig is not None else str(exc)


def unusable(where: str, exc: sa.exc.DBAPIError) -> StoreError:
    """The error to show when the database cannot be reached or used: what failed and what to do."""
    said = reason(exc).strip()
    lowered = said.lower()
    if (
        "authentication failed" in lowered
        or "password" in lowered
        or ("role" in lowered and "not exist" in lowered)
    ):
        what, fix = "the server refused the credentials", "Check the user and password in the URL."
    elif "database" in lowered and "does not exist" in lowered:
        what = "no database of that name on the server"
        fix = "Create it first (createdb NAME), or correct the name in the URL."
    elif (
        isinstance(exc, sa.exc.OperationalError) and not exc.connection_invalidated and _unreachable(lowered)
    ):
        what = "cannot reach the database server"
        fix = "Check the host and port in the URL, and that the server is running and accepts connections."
    else:
        return StoreError(f"{where}: cannot use the database: {said}")
    # psycopg: 'connection failed: connection to server at "h", port p failed: FATAL:  <why>\n\t<hint>'
    detail = said.splitlines()[0].rsplit("failed: ", 1)[-1] if said else type(exc).__name__
    detail = detail.removeprefix("FATAL:").strip()
    return StoreError(
        f"{where}: {what} ({detail})\n\n{fix} The URL comes from database.url in newsletter.toml "
        "or NEWSLETTER_DATABASE_URL."
    )


def _unreachable(said: str) -> bool:
    return any(
        words in said
        for words in (
            "connection refused",
            "timeout",
            "timed out",
            "could not translate host",
            "no route",
            "connection failed",
        )
    )


def parse_url(url: str) -> sa.URL:
    """The URL SQLAlchemy should open: ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(
            f"database url: expected a URL like 'sqlite:///subscribers/subscribers.db' or "
            f"'postgresql://user@host/newsletter', got {url!r}"
        ) from None
    if parsed.drivername in _POSTGRES_SCHEMES:
        parsed = parsed.set(drivername=_POSTGRES_SCHEMES[parsed.drivername])
    return parsed


def _create_engine(url: str, connections: int) -> Engine:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        # a few spare connections for short side tasks (heartbeats, reports) beside the threads
        options.update(
            pool_size=connections,
            max_overflow=2,
            connect_args={key: value for key, value in SERVER_LOST.items() if key not in parsed.query},
        )
    try:
        return sa.create_engine(parsed, **options)
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
        # Every commit reaches the disk before it returns. With NORMAL, a WAL commit survives the
        # process but not a power loss or a kernel crash, which could undo the last few hundred
        # claims after their messages left: those rows would be queued again and sent twice.
        # The same goes for an unsubscribe the reader was told about. It costs one fsync per
        # batch of claims (about 0.01 ms of CPU per reader).
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine
