"""The store on real SQLite files and a real PostgreSQL server: schema and migrations, subscribers, the ledger."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.audience import lifecycle
from newsletter.audience.lifecycle import change_status
from newsletter.store import (
    ERASED,
    SCHEMA_VERSION,
    STATUSES,
    Store,
    StoreError,
    SubscriberRow,
    normalize_email,
)
from newsletter.store.engine import Database
from newsletter.store.schema import MIGRATIONS, schema_version
from tests.support.old_databases import UNDO, schema_of, undo_after_version_3


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "subscribers.db"


@pytest.fixture
def store(database_url: str):
    """A store on each back-end: a SQLite file, then a PostgreSQL schema."""
    with Store.open(database_url) as s:
        yield s


@pytest.fixture
def sqlite_store(db_path: Path):
    with Store.open(f"sqlite:///{db_path}") as s:
        yield s


def _people(store: Store, n: int, prefix: str = "user") -> list[int]:
    return [store.add_subscriber(f"{prefix}{i}@example.com").id for i in range(n)]


def _version(db_path: Path) -> int:
    """The schema version the database file records."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    finally:
        conn.close()


def _failed(store: Store, issue: str) -> list:
    return [d for d in store.ledger(issue) if d.state == "failed"]


# ------------------------------------------------------------------ schema and opening


def test_fresh_database_is_created_with_folder_wal_and_current_version(
    db_path: Path, sqlite_store: Store
) -> None:
    assert db_path.is_file()
    assert _version(db_path) == SCHEMA_VERSION == len(MIGRATIONS)
    conn = sqlite3.connect(db_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "schema_version",
        "subscribers",
        "deliveries",
        "events",
        "snapshots",
        "senders",
        "leases",
    } <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"ix_deliveries_queued", "ix_deliveries_message_id"} <= indexes
    # a claimed row leaves the queued index once; no index on state keeps it after that
    assert not {"ix_deliveries_issue_state", "ix_deliveries_claim"} & indexes
    conn.close()


def test_every_sqlite_commit_reaches_the_disk_before_it_returns(sqlite_store: Store) -> None:
    """synchronous = FULL: a claim is on disk before its messages leave, so a power loss cannot
    put claimed rows back in the queue (NORMAL keeps a WAL commit only across a process crash)."""
    with sqlite_store.engine.connect() as conn:  # a pooled connection (events, subscribers, the web app)
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    claims = sqlite_store.db.dedicated()  # the send loop's own connection
    assert claims.execute("PRAGMA synchronous").fetchone()[0] == 2


def _tables_and_indexes(store: Store) -> tuple[set[str], set[str], set[str]]:
    inspector = sa.inspect(store.engine)
    indexes = {  # PostgreSQL also lists the index behind each unique constraint
        i["name"]
        for t in ("deliveries", "events")
        for i in inspector.get_indexes(t)
        if not i.get("duplicates_constraint")
    }
    columns = {c["name"] for c in inspector.get_columns("deliveries")}
    return set(inspector.get_table_names()), indexes, columns


def test_both_back_ends_get_the_same_schema(postgres_url: str, sqlite_store: Store) -> None:
    with Store.open(postgres_url) as server:
        assert server.engine.dialect.name == "postgresql"
        assert server.engine.dialect.driver == "psycopg"
        assert _tables_and_indexes(server) == _tables_and_indexes(sqlite_store)
    tables, indexes, columns = _tables_and_indexes(sqlite_store)
    assert {
        "schema_version",
        "subscribers",
        "deliveries",
        "events",
        "snapshots",
        "senders",
        "rate_buckets",
    } <= tables
    assert {"ix_deliveries_queued", "ix_deliveries_message_id", "ix_events_message_id"} <= indexes
    assert "sender" in columns


def _schema_version(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version FROM schema_version")).scalars())


def _set_version(url: str, version: int) -> None:
    db = Database(url)  # beside the store: opening one would migrate
    with db.write() as conn:
        conn.execute(schema_version.update().values(version=version))
    db.close()


def test_reopening_keeps_data_and_does_not_migrate_again(database_url: str, store: Store) -> None:
    store.add_subscriber("ana@example.com")
    store.close()
    with Store.open(database_url) as again:
        assert again.get_subscriber("ana@example.com").email == "ana@example.com"
        assert _schema_version(again) == [SCHEMA_VERSION]


def test_a_version_1_database_is_upgraded_in_place(database_url: str) -> None:
    db = Database(database_url)  # what version 1 made: the first migration alone
    with db.write() as conn:
        schema_version.create(conn)
        MIGRATIONS[0](conn)
        conn.execute(schema_version.insert().values(version=1))
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (email, email_key, status, created_at, updated_at) "
                "VALUES ('ana@example.com', 'ana@example.com', 'active', '2026-01-01', '2026-01-01')"
            )
        )
    db.close()
    with Store.open(database_url) as again:
        assert _schema_version(again) == [SCHEMA_VERSION]
        assert again.get_subscriber("ana@example.com").status == "active"
        tables, indexes, columns = _tables_and_indexes(again)
        assert {"senders", "rate_buckets"} <= tables
        assert "ix_events_message_id" in indexes
        assert "sender" in columns
        again.create_ledger(ISSUE)
        (row,) = again.claim_batch(ISSUE, 5, sender=again.start_sender(ISSUE))
        assert row.email == "ana@example.com"


def test_newer_schema_is_refused(database_url: str, store: Store) -> None:
    where = store.db.where
    store.close()
    newer = SCHEMA_VERSION + 1
    _set_version(database_url, newer)
    with pytest.raises(StoreError) as err:
        Store.open(database_url)
    assert err.value.message == (
        f"{where}: database schema version {newer} is newer than this newsletter understands "
        f"(version {SCHEMA_VERSION})\n\n"
        "Upgrade newsletter (pip install -U newsletter), or use another database."
    )


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the droids\n" * 100)
    with pytest.raises(StoreError) as err:
        Store.open(f"sqlite:///{path}")
    assert err.value.message == f"{path}: cannot use the database: file is not a database"


def test_bad_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as err:
        Store.open("subscribers.db")
    assert err.value.message == (
        "database url: expected a URL like 'sqlite:///subscribers/subscribers.db' or "
        "'postgresql://user@host/newsletter', got 'subscribers.db'"
    )
    with pytest.raises(StoreError) as err:
        Store.open(f"sqlite:///{tmp_path}")
    assert err.value.message == f"{tmp_path}: is a folder; expected a SQLite database file"


# ------------------------------------------------------------------ subscribers


def test_addresses_are_unique_regardless_of_case(store: Store) -> None:
    ana = store.add_subscriber("Ana@Example.com", name="Ana", language="pt-BR")
    assert (ana.email, ana.status, ana.source, ana.name) == ("Ana@Example.com", "active", "cli", "Ana")
    assert ana.consent_at is not None and ana.created_at.tzinfo is not None
    with pytest.raises(StoreError) as err:
        store.add_subscriber("ana@EXAMPLE.com")
    assert err.value.message == "subscriber 'ana@EXAMPLE.com' already exists (status active)"
    assert store.get_subscriber("ANA@example.com").id == ana.id
    assert store.get_subscriber(ana.id).email == "Ana@Example.com"
    assert store.get_subscriber(str(ana.id)).email == "Ana@Example.com"
    assert store.get_subscriber("nobody@example.com") is None


def test_status_changes_write_what_the_lifecycle_decides_and_record_it(store: Store) -> None:
    store.add_subscriber("a@example.com", status="pending")
    assert change_status(store, "a@example.com", "active", "reader").changed
    assert store.get_subscriber("a@example.com").consent_at is not None
    assert change_status(store, "a@example.com", "unsubscribed", "reader", reason="link").changed
    assert store.get_subscriber("a@example.com").unsubscribed_at is not None
    again = change_status(store, "a@example.com", "unsubscribed", "editor")
    assert (again.changed, again.reason) == (False, None)  # idempotent
    assert not change_status(store, "a@example.com", "active", "editor").changed
    assert not change_status(store, "a@example.com", "pending", "import").changed
    assert change_status(store, "a@example.com", "complained", "event").changed
    assert not change_status(store, "a@example.com", "active", "editor").changed
    assert store.get_subscriber("a@example.com").status == "complained"
    assert change_status(store, "nobody@example.com", "unsubscribed", "editor") is None
    back = change_status(store, "a@example.com", "active", "editor", force=True, by="ed", reason="asked")
    assert (back.current, back.status, back.changed) == ("complained", "active", True)
    assert store.get_subscriber("a@example.com").unsubscribed_at is None
    moves = [
        (e["detail"]["from"], e["detail"]["to"], e["detail"]["reason"], e["detail"].get("by"))
        for e in store.list_events(type="status")
    ]
    assert moves == [
        ("pending", "active", None, None),
        ("active", "unsubscribed", "link", None),
        ("unsubscribed", "complained", None, None),
        ("complained", "active", "asked", "ed"),
    ]


def test_the_schema_admits_exactly_the_lifecycle_statuses() -> None:
    assert STATUSES == lifecycle.STATUSES


def test_the_store_imports_nothing_from_the_layers_above_it() -> None:
    code = "import json, sys, newsletter.store; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ours = [m for m in json.loads(run.stdout) if m.startswith("newsletter.")]
    assert "newsletter.store.subscribers" in ours
    assert [
        m for m in ours if not m.startswith(("newsletter.store", "newsletter.errors", "newsletter.text"))
    ] == []


def test_remove_erases_the_address_from_ledger_and_events(store: Store) -> None:
    ana = store.add_subscriber("ana@example.com")
    store.add_subscriber("bob@example.com")
    store.create_ledger("2026-03-17")
    store.apply_event("bounce", "Ana@example.com", "m-1", {"type": "Transient"}, soft_bounce=True)
    assert store.remove_subscriber("ana@example.com") is True
    assert store.remove_subscriber("ana@example.com") is False
    assert store.get_subscriber(ana.id) is None
    emails = [d.email for d in store.ledger("2026-03-17")]
    assert emails == [ERASED, "bob@example.com"]
    assert [(e["email"], e["detail"]) for e in store.list_events(type="bounce")] == [(ERASED, None)]
    assert store.ledger_counts("2026-03-17")["queued"] == 2
    assert [d.email for d in store.claim_batch("2026-03-17", 5)] == ["bob@example.com"]
    failed = [(d.email, d.error) for d in store.ledger("2026-03-17") if d.state == "failed"]
    assert failed == [(ERASED, "skipped: removed")]


def test_iter_subscribers_streams_in_pages(store: Store) -> None:
    _people(store, 7)
    change_status(store, "user3@example.com", "bounced", "event")
    assert [s.email for s in store.iter_subscribers(batch=2)] == [f"user{i}@example.com" for i in range(7)]
    assert [s.email for s in store.iter_subscribers(status="bounced", batch=2)] == ["user3@example.com"]
    assert store.count_by_status() == {
        "pending": 0,
        "active": 6,
        "unsubscribed": 0,
        "bounced": 1,
        "complained": 0,
    }


def test_upsert_many_merge_rules(store: Store) -> None:
    store.add_subscriber("gone@example.com", status="unsubscribed")
    store.add_subscriber("wait@example.com", status="pending")
    store.add_subscriber("stay@example.com", status="pending")
    store.add_subscriber("on@example.com", name="On")
    counts = store.upsert_many(
        [
            SubscriberRow("GONE@example.com", status="active", name="Back"),
            SubscriberRow("wait@example.com", status="active"),
            SubscriberRow("stay@example.com"),
            SubscriberRow("on@example.com", status="pending"),
            SubscriberRow("new@example.com", language="ar"),
            SubscriberRow("New@example.com", status="bounced"),
        ],
        lifecycle.import_decision(now=datetime.now(UTC)),
    )
    assert (counts.added, counts.updated, counts.unchanged, counts.duplicates) == (1, 2, 2, 1)
    status = {s.email: (s.status, s.name) for s in store.iter_subscribers()}
    assert status == {
        "gone@example.com": ("unsubscribed", "Back"),
        "wait@example.com": ("active", None),
        "stay@example.com": ("pending", None),
        "on@example.com": ("active", "On"),
        "new@example.com": ("bounced", None),
    }
    assert store.get_subscriber("new@example.com").source == "import"


def test_soft_bounces_are_counted(store: Store) -> None:
    store.add_subscriber("a@example.com")
    counted = [
        store.apply_event("bounce", "A@example.com", f"m-{n}", {}, soft_bounce=True).soft_bounces
        for n in range(3)
    ]
    assert counted == [1, 2, 3]
    assert store.get_subscriber("a@example.com").status == "active"  # the store sets no threshold
    assert store.apply_event("bounce", "nobody@example.com", "m-9", {}, soft_bounce=True).soft_bounces == 0


def test_normalize_email() -> None:
    assert normalize_email(" Ana@Bücher.Example ") == "Ana@xn--bcher-kva.example"
    with pytest.raises(ValueError) as err:
        normalize_email("jürgen@example.com")
    assert str(err.value) == (
        "the part before '@' has non-ASCII characters ('ü'); Amazon SES cannot send to such addresses"
    )
    with pytest.raises(ValueError, match="must have an @-sign"):
        normalize_email("nobody")


@pytest.mark.parametrize(
    "address",
    [
        "Reader.1@Example.COM",
        "a+tag@sub.example.org",
        "o'brien@example.com",
        "x@bücher.example",
        "a..b@example.com",
        ".a@example.com",
        "a@b",
        "a@",
        "a@-bad-.example",
        '"quoted local"@example.com',
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_the_fast_path_agrees_with_full_validation(address: str) -> None:
    from newsletter.store.addresses import _validate

    try:
        expected = _validate(address, False)
    except ValueError as exc:
        with pytest.raises(ValueError) as err:
            normalize_email(address)
        assert str(err.value) == str(exc)
    else:
        assert normalize_email(address) == expected


# ------------------------------------------------------------------ the ledger

ISSUE = "2026-03-17-multilingual"


def test_ledger_is_a_snapshot_of_active_subscribers(store: Store) -> None:
    ids = _people(store, 3)
    store.add_subscriber("pending@example.com", status="pending")
    store.add_subscriber("left@example.com", status="unsubscribed")
    assert store.create_ledger(ISSUE) == 3
    store.add_subscriber("late@example.com")
    assert store.create_ledger(ISSUE) == 0  # taken once: late joiners get the next issue
    assert [d.subscriber_id for d in store.ledger(ISSUE)] == ids
    assert store.ledger_counts(ISSUE) == {
        "queued": 3,
        "sending": 0,
        "sent": 0,
        "failed_temporary": 0,
        "failed_permanent": 0,
    }
    assert store.issues_sent() == [ISSUE]


def test_mark_sent_many_records_each_row_with_its_own_message_id(store: Store) -> None:
    ids = _people(store, 5)
    store.create_ledger(ISSUE)
    claimed = store.claim_batch(ISSUE, 4)
    store.mark_sent_many(ISSUE, [(d.subscriber_id, f"ses-{d.subscriber_id}") for d in claimed[:3]])
    rows = {d.subscriber_id: d for d in store.ledger(ISSUE)}
    assert [rows[i].state for i in ids] == ["sent", "sent", "sent", "sending", "queued"]
    assert [rows[i].message_id for i in ids[:3]] == [f"ses-{i}" for i in ids[:3]]
    assert all(rows[i].sent_at is not None for i in ids[:3]) and rows[ids[3]].sent_at is None
    store.mark_sent_many(ISSUE, [])  # nothing to do is not an error
    assert store.ledger_counts(ISSUE)["sent"] == 3


def test_canary_limit_grows_then_completes(store: Store) -> None:
    _people(store, 10)
    assert store.create_ledger(ISSUE, limit=2) == 2
    assert store.create_ledger(ISSUE, limit=2) == 0
    assert store.create_ledger(ISSUE, limit=5) == 3
    store.add_subscriber("late@example.com")
    assert store.create_ledger(ISSUE) == 6  # completes the snapshot, including who joined meanwhile
    assert store.create_ledger(ISSUE) == 0
    assert store.create_ledger(ISSUE, limit=50) == 0


def test_claim_send_fail_requeue_cycle(store: Store) -> None:
    a, b, c, d = _people(store, 4)
    store.create_ledger(ISSUE)
    batch = store.claim_batch(ISSUE, 3)
    assert [(x.subscriber_id, x.state, x.attempts) for x in batch] == [
        (a, "sending", 1),
        (b, "sending", 1),
        (c, "sending", 1),
    ]
    assert batch[0].claimed_at is not None
    store.mark_sent(ISSUE, a, "ses-1")
    store.mark_failed(ISSUE, b, "temporary", "421 try later")
    store.requeue(ISSUE, c)
    assert store.ledger_counts(ISSUE) == {
        "queued": 2,
        "sending": 0,
        "sent": 1,
        "failed_temporary": 1,
        "failed_permanent": 0,
    }
    assert [(f.subscriber_id, f.outcome, f.error) for f in _failed(store, ISSUE)] == [
        (b, "temporary", "421 try later")
    ]
    assert [x.subscriber_id for x in store.claim_batch(ISSUE, 10)] == [c, d]
    store.mark_failed(ISSUE, c, "permanent", "550 no such user")
    store.mark_sent(ISSUE, d, "ses-4")
    assert store.claim_batch(ISSUE, 10) == []
    assert store.requeue_temporary(ISSUE) == 1
    again = store.claim_batch(ISSUE, 10)
    assert [(x.subscriber_id, x.attempts) for x in again] == [(b, 2)]
    store.mark_sent(ISSUE, b, "ses-2")
    assert store.ledger_counts(ISSUE) == {
        "queued": 0,
        "sending": 0,
        "sent": 3,
        "failed_temporary": 0,
        "failed_permanent": 1,
    }
    assert store.apply_event("delivery", "user3@example.com", "ses-4", {}, delivered=True).delivered == 1
    assert store.apply_event("delivery", "user3@example.com", "unknown", {}, delivered=True).delivered == 0
    assert [x.delivered_at is not None for x in store.ledger(ISSUE)] == [False, False, False, True]
    with pytest.raises(ValueError, match="outcome: expected one of temporary, permanent, got 'soft'"):
        store.mark_failed(ISSUE, b, "soft", "x")


def test_a_claimed_row_is_the_row_as_the_ledger_reads_it_back(store: Store) -> None:
    _people(store, 3)
    store.create_ledger(ISSUE)
    sender = store.start_sender(ISSUE)
    claimed = store.claim_batch(ISSUE, 2, sender=sender, language_for=lambda language: "en")
    stored = {row.id: row for row in store.ledger(ISSUE)}
    assert len(claimed) == 2
    for row in claimed:
        assert dataclasses.asdict(row) == dataclasses.asdict(stored[row.id])
        assert (row.state, row.sender, row.sent_language) == ("sending", sender, "en")


def test_rows_left_sending_are_uncertain_until_requeued(database_url: str, store: Store) -> None:
    _people(store, 3)
    store.create_ledger(ISSUE)
    store.claim_batch(ISSUE, 2)
    store.close()  # the "crash": two rows stay in 'sending'
    with Store.open(database_url) as after:
        assert [d.email for d in after.uncertain(ISSUE)] == ["user0@example.com", "user1@example.com"]
        # never re-sent silently: a plain claim only gets the queued row
        (third,) = after.claim_batch(ISSUE, 10)
        assert third.email == "user2@example.com"
        after.mark_sent(ISSUE, third.subscriber_id, "ses-3")
        assert after.requeue_uncertain(ISSUE) == 2
        assert after.uncertain(ISSUE) == []
        assert [(d.email, d.attempts) for d in after.claim_batch(ISSUE, 10)] == [
            ("user0@example.com", 2),
            ("user1@example.com", 2),
        ]


def test_people_who_leave_after_the_snapshot_are_skipped(store: Store) -> None:
    _people(store, 4)
    store.create_ledger(ISSUE)
    change_status(store, "user1@example.com", "unsubscribed", "editor")
    change_status(store, "user2@example.com", "complained", "event")
    claimed = store.claim_batch(ISSUE, 2)
    assert [d.email for d in claimed] == ["user0@example.com", "user3@example.com"]
    assert [(d.email, d.state, d.outcome, d.error) for d in _failed(store, ISSUE)] == [
        ("user1@example.com", "failed", "permanent", "skipped: unsubscribed"),
        ("user2@example.com", "failed", "permanent", "skipped: complained"),
    ]


def test_a_claim_records_each_readers_translation(store: Store) -> None:
    tags = ["ar-EG", "de", None, "ar", "pt-BR", "de", "ar-EG"]
    store.upsert_many(
        [SubscriberRow(f"reader{i}@example.com", language=tag, status="active") for i, tag in enumerate(tags)]
    )
    assert store.reachable_languages("i") == {"ar-EG": 2, "de": 2, None: 1, "ar": 1, "pt-BR": 1}
    store.create_ledger("i")
    chosen = {"ar-EG": "ar", "ar": "ar", "de": "de"}
    # a batch of one language (one UPDATE), then batches mixing three (a row each)
    first = store.claim_batch("i", 1, language_for=lambda tag: chosen.get(tag or "", "en"))
    rest = store.claim_batch("i", 10, language_for=lambda tag: chosen.get(tag or "", "en"))
    claimed = first + rest
    assert [d.sent_language for d in claimed] == ["ar", "de", "en", "ar", "en", "de", "ar"]
    assert [d.language for d in claimed] == tags
    recorded = {d.email: (d.state, d.sent_language, d.language) for d in store.ledger("i")}
    assert recorded == {
        f"reader{i}@example.com": ("sending", chosen.get(tag or "", "en"), tag) for i, tag in enumerate(tags)
    }
    assert store.reachable_languages("i") == {}


def test_concurrent_claimers_never_share_a_row(database_url: str, store: Store) -> None:
    store.upsert_many(SubscriberRow(f"p{i}@example.com") for i in range(300))
    store.create_ledger(ISSUE)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    start = threading.Barrier(4)

    def worker(n: int) -> None:
        try:
            with Store.open(database_url) as own:  # its own engine and connections
                got: list[int] = []
                start.wait()  # all claim at once, or one fast thread could take every row
                while batch := own.claim_batch(ISSUE, 7):
                    got.extend(d.id for d in batch)
                    for d in batch:
                        own.mark_sent(ISSUE, d.subscriber_id, f"m-{d.id}")
                    time.sleep(0.001)  # let the others in between batches, as sending would
                results[n] = got
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    claimed = [i for got in results.values() for i in got]
    assert len(claimed) == len(set(claimed)) == 300
    assert sum(1 for got in results.values() if got) >= 2  # they really did compete
    assert store.ledger_counts(ISSUE)["sent"] == 300


def test_issue_event_counts_count_only_the_issue_s_messages(store: Store) -> None:
    _people(store, 3)
    store.create_ledger(ISSUE)
    assert store.issue_event_counts(ISSUE) == {}  # nothing sent yet: no figures at all
    for n, row in enumerate(store.claim_batch(ISSUE, 3)):
        store.mark_sent(ISSUE, row.subscriber_id, f"ses-{n}")
    store.apply_event("bounce", "user0@example.com", "ses-0", {"bounceType": "Permanent"})
    store.apply_event("bounce", "user1@example.com", "ses-1", {"bounceType": "Transient"})
    store.apply_event("bounce", "user1@example.com", "ses-1b", {"bounceType": "Transient"})  # not ours
    store.apply_event("complaint", "user2@example.com", "ses-2", {})
    store.apply_event("complaint", "user1@example.com", "ses-1", {"complaintFeedbackType": "Not-Spam"})
    store.apply_event("delivery", "user2@example.com", "ses-2", {})
    assert store.issue_event_counts(ISSUE) == {"bounce": 1, "soft_bounce": 1, "complaint": 1}


# ------------------------------------------------------------------ senders sharing one ledger


def _silence(store: Store, sender: str) -> None:
    """What a SIGKILL leaves: the sender stops refreshing `seen_at`; make that long ago."""
    from newsletter.store.schema import senders
    from newsletter.store.senders import SILENT_AFTER

    with store.db.write() as conn:
        conn.execute(
            senders.update()
            .where(senders.c.sender == sender)
            .values(seen_at=datetime.now(UTC) - SILENT_AFTER * 2)
        )


def test_rows_of_a_live_sender_are_in_flight_and_of_a_silent_one_uncertain(store: Store) -> None:
    _people(store, 6)
    store.create_ledger(ISSUE)
    alive, killed = store.start_sender(ISSUE), store.start_sender(ISSUE) + " second"
    from newsletter.store.schema import senders

    with store.db.write() as conn:  # two senders of one process: give the second its own name
        conn.execute(
            senders.insert().values(
                issue=ISSUE, sender=killed, started_at=datetime.now(UTC), seen_at=datetime.now(UTC)
            )
        )
    mine = store.claim_batch(ISSUE, 2, sender=alive)
    theirs = store.claim_batch(ISSUE, 2, sender=killed)
    assert {d.sender for d in mine} == {alive} and {d.sender for d in theirs} == {killed}
    assert store.uncertain(ISSUE) == []  # both at work: in flight, nobody's business yet
    assert store.requeue_uncertain(ISSUE) == 0
    _silence(store, killed)
    assert [(d.email, d.sender) for d in store.uncertain(ISSUE)] == [
        ("user2@example.com", killed),
        ("user3@example.com", killed),
    ]
    assert store.requeue_uncertain(ISSUE) == 2  # only the silent sender's rows
    assert [d.state for d in store.ledger(ISSUE)] == [
        "sending",
        "sending",
        "queued",
        "queued",
        "queued",
        "queued",
    ]
    store.finish_sender(ISSUE, alive)  # finished: what it left in `sending` is uncertain too
    assert [d.email for d in store.uncertain(ISSUE)] == ["user0@example.com", "user1@example.com"]


def test_sender_counts_show_who_sent_what(store: Store) -> None:
    _people(store, 5)
    store.create_ledger(ISSUE)
    first = store.start_sender(ISSUE)
    for d in store.claim_batch(ISSUE, 3, sender=first):
        store.mark_sent(ISSUE, d.subscriber_id, f"m-{d.id}")
    (left,) = store.claim_batch(ISSUE, 1, sender=first)
    store.mark_failed(ISSUE, left.subscriber_id, "permanent", "refused")
    store.claim_batch(ISSUE, 1, sender=first)
    host, pid, started = first.split(" ")
    assert pid.isdigit() and started.endswith("Z") and host
    assert store.sender_counts(ISSUE) == {first: {"sent": 3, "failed": 1, "sending": 1}}
    assert store.sender_counts("another-issue") == {}


def test_a_shared_bucket_grants_at_most_its_burst_then_refills_at_its_rate(store: Store) -> None:
    t = 1_000_000.0
    assert store.take_tokens("ses", 100, rate=50.0, now=t) == 5  # a tenth of a second's worth: the burst
    assert store.take_tokens("ses", 100, rate=50.0, now=t) == 0
    assert store.take_tokens("ses", 100, rate=50.0, now=t + 0.04) == 2  # 50/s for 40 ms
    assert store.take_tokens("ses", 100, rate=50.0, now=t + 10) == 5  # refilled, but never past the burst
    with Store.open(store.url) as other:  # another sender draws from the same balance
        assert other.take_tokens("ses", 100, rate=50.0, now=t + 10) == 0
        assert other.take_tokens("ses", 3, rate=50.0, now=t + 10.06) == 3
        assert other.take_tokens("smtp", 1, rate=50.0, now=t + 10) == 1  # another quota, its own bucket


def test_concurrent_senders_share_one_rate(database_url: str, store: Store) -> None:
    """Three senders asking as fast as they can never get more, together, than one rate allows."""
    rate = 200.0
    totals: list[int] = []
    start = threading.Barrier(3)
    times: list[float] = []

    def sender() -> None:
        with Store.open(database_url) as own:
            got = 0
            start.wait()
            times.append(time.time())
            for _ in range(40):
                got += own.take_tokens("ses", 10, rate=rate)
                time.sleep(0.005)
            times.append(time.time())
            totals.append(got)

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # at most the burst plus what the rate refilled between the first take and the last
    assert 0 < sum(totals) <= rate * 0.1 + rate * (max(times) - min(times)) + 1


# ------------------------------------------------------------------ PostgreSQL errors


def test_an_unreachable_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError) as err:
        Store.open(f"postgresql://newsletter:secret@127.0.0.1:{port}/newsletter")
    message = err.value.message
    assert message.startswith(
        f"postgresql+psycopg://newsletter:***@127.0.0.1:{port}/newsletter: cannot reach the database server ("
    )
    assert "Connection refused" in message
    assert message.endswith(
        "Check the host and port in the URL, and that the server is running and accepts connections. "
        "The URL comes from database.url in newsletter.toml or NEWSLETTER_DATABASE_URL."
    )
    assert "secret" not in message


def test_an_unknown_user_or_database_is_a_clear_error(postgres_server: str) -> None:
    url = sa.make_url(postgres_server)
    with pytest.raises(StoreError) as err:
        Store.open(str(url.set(username="nobody")))
    assert ": the server refused the credentials (" in err.value.message
    assert 'role "nobody" does not exist' in err.value.message
    assert "Check the user and password in the URL." in err.value.message
    with pytest.raises(StoreError) as err:
        Store.open(str(url.set(database="no_such_list")))
    assert ": no database of that name on the server (" in err.value.message
    assert "createdb" in err.value.message


def test_a_sender_whose_process_is_gone_is_known_dead_at_once(store: Store) -> None:
    import socket

    from newsletter.store.schema import senders

    _people(store, 3)
    store.create_ledger(ISSUE)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    now = datetime.now(UTC)
    names = {
        "dead here": f"{socket.gethostname()} {int(gone.stdout)} 2026-01-01T00:00:00Z",
        "elsewhere": f"another-host {int(gone.stdout)} 2026-01-01T00:00:00Z",  # cannot tell: still live
    }
    with store.db.write() as conn:
        for name in names.values():
            conn.execute(senders.insert().values(issue=ISSUE, sender=name, started_at=now, seen_at=now))
    store.claim_batch(ISSUE, 1, sender=names["dead here"])
    store.claim_batch(ISSUE, 1, sender=names["elsewhere"])
    assert [(d.email, d.sender) for d in store.uncertain(ISSUE)] == [
        ("user0@example.com", names["dead here"])
    ]


def test_every_migration_after_3_can_be_undone_and_redone(tmp_path: Path) -> None:
    # the old-database tests rely on tests/support/old_databases.py knowing every migration
    assert list(UNDO) == [m.__name__ for m in MIGRATIONS[3:]]
    path = tmp_path / "current.db"
    with Store.open(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as conn:
        current = schema_of(conn)
        undo_after_version_3(conn)
        conn.execute("UPDATE schema_version SET version = 3")
        assert schema_of(conn) != current
    with Store.open(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as conn:
        assert schema_of(conn) == current
