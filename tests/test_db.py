"""`newsletter db`: migrating, and copying a SQLite list and ledger into PostgreSQL (verified by counts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.store import SCHEMA_VERSION, Store, SubscriberRow
from newsletter.store.schema import copied_tables
from tests.support.project import make_newsletter

ISSUE = "2024-01-10-first"


def _newsletter(tmp_path: Path) -> Path:
    return make_newsletter(tmp_path)


def _run(folder: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--root", str(folder), *args], env=env or {}, catch_exceptions=False)


def _a_list_with_history(store: Store) -> None:
    """People in every status, a ledger part sent by a sender, events, a shared rate bucket."""
    store.upsert_many(
        [SubscriberRow(f"reader{i}@example.com", name=f"Zoë {i}", attributes={"n": i}) for i in range(120)]
        + [SubscriberRow("gone@example.com", status="unsubscribed")]
    )
    store.create_ledger(ISSUE)
    sender = store.start_sender(ISSUE)
    for d in store.claim_batch(ISSUE, 50, sender=sender):
        store.mark_sent(ISSUE, d.subscriber_id, f"ses-{d.id}")
    store.claim_batch(ISSUE, 3, sender=sender)  # left uncertain by a crash
    store.finish_sender(ISSUE, sender)
    store.apply_event("bounce", "reader1@example.com", "ses-2", {"bounceType": "Permanent"})
    store.take_tokens("ses", 1, rate=14.0)


def _rows(store: Store) -> dict[str, list[tuple]]:
    with store.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in copied_tables()
        }


def test_migrate_creates_then_reports_up_to_date(tmp_path: Path) -> None:
    folder = _newsletter(tmp_path)
    first = _run(folder, "db", "migrate")
    database = folder / "subscribers" / "subscribers.db"
    assert first.exit_code == 0, first.output
    assert first.output == f"{database}: schema version 0 → {SCHEMA_VERSION}\n"
    again = _run(folder, "db", "migrate")
    assert again.output == f"{database}: schema version {SCHEMA_VERSION}, up to date\n"


def test_copy_a_sqlite_list_into_postgresql_and_back(tmp_path: Path, postgres_url: str) -> None:
    folder = _newsletter(tmp_path)
    with Store.open(f"sqlite:///{folder / 'subscribers' / 'subscribers.db'}") as source:
        _a_list_with_history(source)
        before = _rows(source)
    result = _run(folder, "db", "copy", "--to", postgres_url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"copied {folder / 'subscribers' / 'subscribers.db'} → postgresql+psycopg://")
    assert "  subscribers          121 rows (same count on both sides)" in lines
    assert "  deliveries           120 rows (same count on both sides)" in lines
    with Store.open(postgres_url) as copied:
        assert _rows(copied) == before  # every row, every column, ids kept
        assert copied.ledger_counts(ISSUE) == {
            "queued": 67,
            "sending": 3,
            "sent": 50,
            "failed_temporary": 0,
            "failed_permanent": 0,
        }
        assert [d.email for d in copied.uncertain(ISSUE)] == [f"reader{i}@example.com" for i in (50, 51, 52)]
        # the server hands out new ids after the copied ones
        assert copied.add_subscriber("new@example.com").id == 122
        rows = _rows(copied)
    back = tmp_path / "back.db"
    with Store.open(postgres_url) as server:
        server.copy_to(f"sqlite:///{back}")
    with Store.open(f"sqlite:///{back}") as round_trip:
        assert _rows(round_trip) == rows


def test_copy_refuses_a_target_that_holds_rows(tmp_path: Path, postgres_url: str) -> None:
    folder = _newsletter(tmp_path)
    with Store.open(f"sqlite:///{folder / 'subscribers' / 'subscribers.db'}") as source:
        _a_list_with_history(source)
    with Store.open(postgres_url) as target:
        target.add_subscriber("already@example.com")
    result = _run(folder, "db", "copy", "--to", postgres_url)
    assert result.exit_code == 1
    assert "holds rows already (1 in subscribers); expected an empty database" in result.output
    assert "Nothing was copied." in result.output
    assert "Traceback" not in result.output
    with Store.open(postgres_url) as target:
        assert [s.email for s in target.iter_subscribers()] == ["already@example.com"]


@pytest.mark.parametrize("command", [("db", "migrate"), ("subscribers", "stats")])
def test_an_unreachable_server_exits_1_with_a_clear_message(tmp_path: Path, command: tuple[str, ...]) -> None:
    folder = _newsletter(tmp_path)
    env = {"NEWSLETTER_DATABASE_URL": "postgresql://newsletter:secret@127.0.0.1:1/newsletter"}
    result = _run(folder, *command, env=env)
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: postgresql+psycopg://newsletter:***@127.0.0.1:1/newsletter: cannot reach the database server ("
    )
    assert "secret" not in result.output and "Traceback" not in result.output
