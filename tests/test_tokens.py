"""Signed link tokens: one spelling per token, long secrets, key rotation, and ids never reused."""

from __future__ import annotations

import base64
import hmac
import sqlite3
from pathlib import Path

import pytest

from newsletter import tokens
from newsletter.config import load_settings
from newsletter.errors import ConfigError
from newsletter.store import Store
from newsletter.store.schema import SCHEMA_VERSION
from tests.support.old_databases import undo_after_version_3

SECRET = b"k" * 32
OLD = b"o" * 40


def test_a_token_reads_back_and_every_other_spelling_is_refused() -> None:
    token = tokens.unsubscribe_token(SECRET, 12345)
    assert tokens.read_token(SECRET, tokens.UNSUBSCRIBE, token) == "12345"
    payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = signature[-1]
    # 16 signature bytes leave 4 unused bits in the last character: these spell the same bytes
    same_bytes = [c for c in alphabet if c != last and alphabet.index(c) >> 4 == alphabet.index(last) >> 4]
    assert len(same_bytes) == 15
    spellings = [
        *(f"{payload}.{signature[:-1]}{c}" for c in same_bytes),  # trailing bits
        f"{payload}.{signature}==",  # padding
        f"{payload}==.{signature}",
        f"{payload}.{signature.swapcase()}",  # case
        f"{payload.swapcase()}.{signature}",
        f"{payload}.{signature[:11]}*{signature[11:]}",  # a character base64 decoders skip
        f" {token}",
        f"{token}.",
    ]
    for spelling in spellings:
        with pytest.raises(tokens.InvalidToken):
            tokens.read_token(SECRET, tokens.UNSUBSCRIBE, spelling)


def test_an_old_secret_still_verifies_but_never_signs() -> None:
    sent_before = tokens.unsubscribe_token(OLD, 7)
    assert tokens.read_token((SECRET, OLD), tokens.UNSUBSCRIBE, sent_before) == "7"
    with pytest.raises(tokens.InvalidToken):
        tokens.read_token(SECRET, tokens.UNSUBSCRIBE, sent_before)
    with pytest.raises(tokens.InvalidToken):
        tokens.read_token((SECRET, OLD), tokens.UNSUBSCRIBE, tokens.unsubscribe_token(b"x" * 32, 7))


def _settings(tmp_path: Path):
    (tmp_path / "newsletter.toml").write_text(
        '[newsletter]\nname = "T"\nbase_url = "https://t.example.org/"\npostal_address = "1 Street"\n'
        '[email]\nfrom = "T <t@example.org>"\nlist_id = "t.example.org"\n',
        encoding="utf-8",
    )
    return load_settings(tmp_path)


@pytest.mark.parametrize("name", ["NEWSLETTER_SECRET", "NEWSLETTER_SECRET_OLD"])
def test_a_short_secret_is_refused_with_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "s" * 32)
    monkeypatch.setenv(name, "x")
    settings = _settings(tmp_path)
    with pytest.raises(ConfigError) as err:
        settings.verify_secrets  # noqa: B018
    assert err.value.message == (
        f"environment: {name}: expected a secret of at least 32 bytes, got 1 bytes\n\n"
        "Generate one with:\n\n"
        '    python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )


def test_rotation_verifies_with_both_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "n" * 32)
    monkeypatch.setenv("NEWSLETTER_SECRET_OLD", "o" * 32)
    settings = _settings(tmp_path)
    assert settings.secret == b"n" * 32
    assert settings.verify_secrets == (b"n" * 32, b"o" * 32)


def test_an_erased_subscribers_id_is_never_given_again(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'list.db'}") as store:
        store.add_subscriber("first@example.org")
        newest = store.add_subscriber("erased@example.org")
        old_link = tokens.unsubscribe_token(SECRET, newest.id)
        assert store.remove_subscriber(newest.id)
        newcomer = store.add_subscriber("newcomer@example.org")
        assert newcomer.id != newest.id
        named = tokens.read_token(SECRET, tokens.UNSUBSCRIBE, old_link)
        assert store.get_subscriber(int(named)) is None


def test_a_version_2_database_gets_ids_that_are_never_reused_and_keeps_its_ledger(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store.open(f"sqlite:///{path}") as store:
        ids = [store.add_subscriber(f"r{i}@example.org").id for i in range(3)]
        store.create_ledger("2026-01-05")
    _downgrade_to_version_2(path)

    with Store.open(f"sqlite:///{path}") as store:
        assert [d.subscriber_id for d in store.ledger("2026-01-05")] == ids
        assert [s.email for s in store.iter_subscribers()] == [f"r{i}@example.org" for i in range(3)]
        store.remove_subscriber(ids[-1])
        assert store.add_subscriber("new@example.org").id == ids[-1] + 1
    conn = sqlite3.connect(path)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'subscribers'")}
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert "AUTOINCREMENT" in sql
    assert "ix_subscribers_status" in indexes


def _downgrade_to_version_2(path: Path) -> None:
    """Rebuild the subscribers table as versions 1 and 2 made it: an integer key without AUTOINCREMENT."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA legacy_alter_table = ON")  # keep deliveries' reference to the name 'subscribers'
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0]
    conn.execute(
        sql.replace("AUTOINCREMENT", "").replace("CREATE TABLE subscribers", "CREATE TABLE plain", 1)
    )
    conn.execute("INSERT INTO plain SELECT * FROM subscribers")
    conn.execute("DROP TABLE subscribers")
    conn.execute("ALTER TABLE plain RENAME TO subscribers")
    conn.execute("CREATE INDEX ix_subscribers_status ON subscribers (status)")
    undo_after_version_3(conn)  # and what the later migrations added
    conn.execute("UPDATE schema_version SET version = 2")
    conn.commit()
    assert (
        "AUTOINCREMENT"
        not in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0]
    )
    conn.close()


@pytest.mark.parametrize("length", [32, 63, 64, 65, 200])
def test_signatures_are_hmac_sha256_whatever_the_secret_length(length: int) -> None:
    """Tokens are signed with HMAC-SHA256 truncated to 128 bits, as a verifier elsewhere would compute."""
    secret = bytes(range(256))[:length]
    token = tokens.make_token(secret, "u", "42")
    payload, signature = token.split(".")
    expected = hmac.digest(secret, b"u:42", "sha256")[:16]
    assert signature == base64.urlsafe_b64encode(expected).rstrip(b"=").decode("ascii")
    assert payload == base64.urlsafe_b64encode(b"u:42").rstrip(b"=").decode("ascii")
