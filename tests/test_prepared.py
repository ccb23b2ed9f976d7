"""PreparedStatement: the send loop's PostgreSQL statements run through libpq, as a cursor would run them."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors

from newsletter.store.engine import Database, PreparedStatement

ECHO = PreparedStatement(
    "test_echo",
    "SELECT %(text)s::text, %(none)s::text, %(flag)s::boolean, %(count)s::bigint, %(ratio)s::float8,"
    " %(stamp)s::timestamp, %(text)s::text || '!', %(count)s::bigint + 1",
)
PARAMS = {
    "text": "Ünïcode — عربي 中文 'quoted' \"double\" back\\slash {1,2} $1 %(x)s",
    "none": None,
    "flag": True,
    "count": 2**40,
    "ratio": 0.125,
    "stamp": datetime(2026, 11, 30, 12, 34, 56, 789012),
}


@pytest.fixture
def conn(postgres_url: str):
    db = Database(postgres_url)
    try:
        yield db.dedicated()
    finally:
        db.close()


def test_its_rows_are_a_cursors_rows(conn) -> None:
    assert ECHO.names == ("text", "none", "flag", "count", "ratio", "stamp")  # each name once, in order
    with conn.cursor() as cur:
        expected = cur.execute(
            "SELECT %(text)s::text, %(none)s::text, %(flag)s::boolean, %(count)s::bigint, %(ratio)s::float8,"
            " %(stamp)s::timestamp, %(text)s::text || '!', %(count)s::bigint + 1",
            PARAMS,
        ).fetchall()
    rows = ECHO.run(conn, PARAMS)
    assert rows == expected
    assert rows == [
        (PARAMS["text"], None, True, 2**40, 0.125, PARAMS["stamp"], PARAMS["text"] + "!", 2**40 + 1)
    ]


def test_the_statement_is_prepared_again_when_the_server_forgot_it(conn) -> None:
    assert ECHO.run(conn, PARAMS)[0][3] == 2**40
    conn.execute("DISCARD ALL")  # what a connection pooler's reset does: every prepared statement goes
    assert ECHO.run(conn, {**PARAMS, "count": 7})[0][3] == 7


def test_a_failing_statement_raises_what_a_cursor_raises_and_the_connection_goes_on(conn) -> None:
    divide = PreparedStatement("test_divide", "SELECT 1 / %(n)s::int")
    with pytest.raises(errors.DivisionByZero, match="division by zero"):
        divide.run(conn, {"n": 0})
    assert divide.run(conn, {"n": 1}) == [(1,)]
    with pytest.raises(errors.UndefinedTable):
        PreparedStatement("test_missing", "SELECT * FROM no_such_table WHERE id = %(id)s").run(
            conn, {"id": 1}
        )


def test_a_statement_without_rows_returns_no_rows_and_its_change_is_committed(
    conn, postgres_url: str
) -> None:
    conn.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text, at timestamp)")
    insert = PreparedStatement("test_insert", "INSERT INTO notes VALUES (%(id)s, %(body)s, %(at)s)")
    at = datetime(2026, 1, 2, 3, 4, 5)
    assert insert.run(conn, {"id": 1, "body": "first", "at": at}) == []
    with pytest.raises(errors.UniqueViolation):
        insert.run(conn, {"id": 1, "body": "again", "at": at})
    with psycopg.connect(postgres_url) as other:  # autocommit: another connection sees the row at once
        assert other.execute("SELECT id, body, at FROM notes").fetchall() == [(1, "first", at)]


def test_a_parameter_without_a_text_form_is_refused(conn) -> None:
    with pytest.raises(TypeError, match="no text form for a parameter of type dict"):
        ECHO.run(conn, {**PARAMS, "text": {"a": 1}})
    assert ECHO.run(conn, PARAMS)[0][2] is True  # the connection is untouched: nothing was sent


class Stopped(Exception):
    pass


def test_a_signal_stops_a_statement_the_server_is_still_working_on(postgres_url: str) -> None:
    """Ctrl-C is seen while the server works (a blocking libpq call would hold it until the answer):
    the statement is cancelled on the server, and the next one gets a new connection."""
    db = Database(postgres_url)
    sleep = PreparedStatement("test_sleep", "SELECT %(tag)s::text FROM pg_sleep(%(seconds)s::float8)")
    conn = db.dedicated()

    def stop(signum, frame):
        raise Stopped

    previous = signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    try:
        started = time.monotonic()
        timer.start()
        with pytest.raises(Stopped):
            sleep.run(conn, {"seconds": 30, "tag": "stopped-by-a-signal"})
        assert time.monotonic() - started < 10
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert conn.closed
    with psycopg.connect(postgres_url, autocommit=True) as other:
        for _ in range(50):  # the cancel reaches the server's backend at once, its row a moment later
            running = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                ("%pg_sleep%",),
            ).fetchone()[0]
            if running == 0:  # (this query's own text names no pg_sleep: the pattern is a parameter)
                break
            time.sleep(0.1)
        assert running == 0
    again = db.dedicated()
    assert again is not conn and sleep.run(again, {"seconds": 0, "tag": "next"}) == [("next",)]
    db.close()


def test_a_server_that_vanishes_is_noticed_and_a_urls_own_values_win(postgres_url: str) -> None:
    """Keep-alives and a TCP user timeout on every connection, the send loop's own included:
    a cut network ends a wait within a minute instead of a quarter of an hour."""
    db = Database(postgres_url)
    try:
        said = db.dedicated().info.get_parameters()
        assert (said["keepalives_idle"], said["keepalives_count"], said["tcp_user_timeout"]) == (
            "30",
            "3",
            "60000",
        )
        with db.engine.connect() as pooled:
            assert pooled.connection.driver_connection.info.get_parameters()["keepalives"] == "1"
    finally:
        db.close()
    own = Database(str(sa.make_url(postgres_url).update_query_dict({"keepalives_idle": "5"})))
    try:
        assert own.dedicated().info.get_parameters()["keepalives_idle"] == "5"
    finally:
        own.close()
