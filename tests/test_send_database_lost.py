"""The database stops answering in the middle of a send: the send stops, says what to do, and sends nothing twice.

A PostgreSQL server that restarts or fails over ends its connections; a SQLite file becomes
read-only or finds its disk full. The sender must stop
(not go on sending what it can no longer record), tell the editor in one message what is
recorded and what is not, and leave every message that left as `sent` or `sending` — never
`queued`, which the next send would send again.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.delivery.plan import build_template, plan_send
from newsletter.delivery.sending import send_issue
from newsletter.delivery.transports.base import SendResult
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store import Answers, Store, StoreError
from tests.support.project import make_newsletter
from tests.support.sending import ISSUE, SECRET, add_people

THREADS = 4


class FaultAt(MemoryTransport):
    """Accepts every message; at the `at`-th, `fault` makes the database stop answering the sender."""

    def __init__(self, at: int, fault: Callable[[], int]) -> None:
        super().__init__()
        self.at = at
        self.fault = fault
        self.faults = 0

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        result = super().send(sender, recipient, raw)
        if len(self.messages) == self.at:
            self.faults = self.fault()
        return result


def server_restart(admin_url: str) -> Callable[[], int]:
    """The server ends the sender's claiming connection, as a restart or a fail-over does."""

    def fault() -> int:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            return admin.execute(  # the connection that claims: its statement opens so
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE %s AND pid <> pg_backend_pid()",
                ("%WITH sent AS (%",),
            ).fetchone()[0]

    return fault


def read_only(store: Store) -> Callable[[], int]:
    """The SQLite file can no longer be written, as on a disk remounted read-only (the local
    transport sends on the loop's own thread, so this is the loop's own connection)."""

    def fault() -> int:
        store.db.dedicated().execute("PRAGMA query_only = ON")
        return 1

    return fault


def _send(settings, library, store, transport):
    issue = library.issue(ISSUE)
    plan = plan_send(
        settings,
        library,
        issue,
        transport=transport,
        secret=SECRET.encode(),
        template=build_template(settings, library, issue),
        threads=THREADS,
    )
    return send_issue(plan, store)


def test_the_send_stops_with_what_to_do_and_nothing_left_is_queued(tmp_path: Path, database_url: str) -> None:
    settings = dataclasses.replace(
        load_settings(make_newsletter(tmp_path), env={}), database_url=database_url
    )
    library = load_library(settings)
    with Store.open(database_url) as store:
        people = add_people(store, 60, suppressed=False)["active"]

    with Store.open(database_url) as store, pytest.raises(StoreError) as raised:
        sqlite = store.db.sqlite
        transport = FaultAt(10, read_only(store) if sqlite else server_restart(database_url))
        _send(settings, library, store, transport)

    assert transport.faults == 1
    message = str(raised.value.message)
    said = (
        "attempt to write a readonly database"
        if sqlite
        else "terminating connection due to administrator command"
    )
    assert said in message.splitlines()[0]
    assert f"The database stopped answering, so the send of {ISSUE} stopped." in message
    assert f"run `newsletter send {ISSUE}` to go on" in message
    left = [m.recipient for m in transport.messages]
    assert 10 <= len(left) <= 10 + THREADS  # stopped at once: no more than what was in hand
    with Store.open(database_url) as store:
        states = {row.email: row.state for row in store.ledger(ISSUE)}
        assert {states[to] for to in left} <= {"sent", "sending"}  # nothing that left is queued again
        unrecorded = sum(state == "sending" for state in states.values())
        assert 0 < unrecorded <= 2 * THREADS
        assert f"{unrecorded} reader(s) claimed by this send could not be recorded" in message
        assert "resend those only with --resend-uncertain" in message
        # the database is back. The next `newsletter send` is a new process, which finds the
        # stopped sender's process gone (`reap`); this test is one process, so it says so itself
        for name in store.sender_counts(ISSUE):
            store.finish_sender(ISSUE, name)
        # the next send finishes the rest and lists the unrecorded as uncertain
        rest = MemoryTransport()
        report = _send(settings, library, store, rest)
        counts = store.ledger_counts(ISSUE)
        sending = {row.email for row in store.ledger(ISSUE) if row.state == "sending"}
    assert counts["queued"] == 0 and counts["sent"] + counts["sending"] == 60
    assert {d.email for d in report.uncertain} == sending
    received = Counter(left) + Counter(m.recipient for m in rest.messages)
    assert max(received.values()) == 1  # nobody twice
    assert set(people) - set(received) <= sending  # nobody lost without being listed


def test_a_full_disk_at_commit_is_reported_as_what_it_is(tmp_path: Path) -> None:
    """SQLite ends the transaction itself when COMMIT finds the disk full: the claim must report
    that, not fail again on its own ROLLBACK ("cannot rollback - no transaction is active")."""
    with Store.open(f"sqlite:///{tmp_path / 'list.db'}") as store:
        add_people(store, 200, suppressed=False)
        store.create_ledger(ISSUE)
        conn = store.db.dedicated()
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            for _ in range(200):  # the WAL fills what the file has; then it must grow, and cannot
                rows = store.claim_batch(ISSUE, 8)
                store.record(ISSUE, Answers(sent=[(row.id, f"id-{row.id}-" + "x" * 200) for row in rows]))
        assert not conn.in_transaction
