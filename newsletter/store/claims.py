"""Claiming ledger rows and recording their answers in batches: the send loop's hot statements.

A send claims and records every reader's row, so these few statements run thousands of times
a second; building and executing them through SQLAlchemy cost more CPU than the database
takes to run them (≈1 ms per batch, against a goal of 0.1 ms per reader for the whole send).
They run as plain SQL on a DBAPI connection of their own (`Database.dedicated`):

* SQLite: one ``BEGIN IMMEDIATE`` transaction per batch, each kind of answer one
  ``executemany`` (the loop runs in C), the claim one SELECT and one ``executemany``;
* PostgreSQL: ONE statement per batch — data-modifying CTEs record every answer and claim
  the next rows (``FOR UPDATE SKIP LOCKED``) — in autocommit, so a batch is a single round
  trip and a single transaction; it is prepared once and run through libpq itself
  (`PreparedStatement`), without a cursor's Python work per execute.

Either way a batch is atomic: the answers it records and the rows it claims commit together,
so what a crash leaves in ``sending`` is what the sender had claimed and not yet recorded
(the ledger's contract, docs/architecture.md "Ledger states").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from newsletter.store.engine import Database, PreparedStatement
from newsletter.store.schema import OUTCOMES, UNCERTAIN, UtcDateTime

LanguageFor = Callable[[str | None], str]  # a reader's language → the translation they get


@dataclass
class Answers:
    """Answers a sender has and the ledger does not yet: recorded together with the next claim."""

    # rows by their id (the primary key: the cheapest lookup there is)
    sent: list[tuple[int, str | None]] = field(default_factory=list)  # (row id, message_id)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (row id, outcome, error)
    uncertain: list[tuple[int, str]] = field(default_factory=list)  # (row id, error)
    requeued: list[int] = field(default_factory=list)  # row ids: certainly not sent

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.uncertain) + len(self.requeued)

    def check(self) -> None:
        for _, outcome, _ in self.failed:
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {outcome!r}")


# Columns a claim reads, in this order: the row, then its subscriber's status, name and language.
CLAIMED = (
    "id",
    "subscriber_id",
    "email",
    "state",
    "attempts",
    "outcome",
    "error",
    "message_id",
    "sent_at",
    "delivered_at",
)  # then status, name, language

_SQLITE_SENT = (
    "UPDATE deliveries SET state = 'sent', message_id = ?, sent_at = ?, outcome = NULL, error = NULL,"
    " updated_at = ? WHERE id = ?"
)
_SQLITE_FAILED = "UPDATE deliveries SET state = 'failed', outcome = ?, error = ?, updated_at = ? WHERE id = ?"
_SQLITE_UNCERTAIN = (
    "UPDATE deliveries SET outcome = ?, error = ?, updated_at = ? WHERE id = ? AND state = 'sending'"
)
_SQLITE_REQUEUED = "UPDATE deliveries SET state = 'queued', claimed_at = NULL, updated_at = ? WHERE id = ? AND state = 'sending'"
_SQLITE_SEEN = "UPDATE senders SET seen_at = ? WHERE issue = ? AND sender = ?"
_SQLITE_CANDIDATES = (
    "SELECT d.id, d.subscriber_id, d.email, d.state, d.attempts, d.outcome, d.error, d.message_id,"
    " d.sent_at, d.delivered_at, s.status, s.name, s.language"
    " FROM deliveries AS d LEFT OUTER JOIN subscribers AS s ON d.subscriber_id = s.id"
    " WHERE d.issue = ? AND d.state = 'queued' ORDER BY d.id LIMIT ?"
)
_SQLITE_CLAIM = (
    "UPDATE deliveries SET state = 'sending', claimed_at = ?, attempts = attempts + 1, updated_at = ?,"
    " sender = ?, language = ? WHERE id = ?"
)
_SQLITE_SKIP = (
    "UPDATE deliveries SET state = 'failed', outcome = 'permanent', error = ?, updated_at = ? WHERE id = ?"
)

# One statement: record every answer, tell the others this sender is at work, claim the next
# rows. The CTEs touch disjoint rows (answers are for rows in `sending`, the claim takes
# `queued` ones), and all of them commit together or not at all. Answers travel as JSON text
# and ids as array literals: psycopg adapts a Python list element by element in Python
# (≈0.1 ms per list), a string in C. `= ANY(ids)` lets the planner find the rows by key.
_POSTGRES_LANGUAGE = "UPDATE deliveries SET language = v.language FROM jsonb_to_recordset(%(rows)s::jsonb)"
_POSTGRES_LANGUAGE += (
    " AS v(id bigint, language text) WHERE deliveries.id = ANY(%(ids)s::bigint[]) AND deliveries.id = v.id"
)

_POSTGRES_BATCH = """
WITH sent AS (
  UPDATE deliveries AS d SET state = 'sent', message_id = v.mid, sent_at = %(now)s, outcome = NULL,
    error = NULL, updated_at = %(now)s
  FROM jsonb_to_recordset(%(sent)s::jsonb) AS v(id bigint, mid text)
  WHERE d.id = ANY(%(sent_ids)s::bigint[]) AND d.id = v.id
), failed AS (
  UPDATE deliveries AS d SET state = 'failed', outcome = v.outcome, error = v.error, updated_at = %(now)s
  FROM jsonb_to_recordset(%(failed)s::jsonb) AS v(id bigint, outcome text, error text)
  WHERE d.id = ANY(%(failed_ids)s::bigint[]) AND d.id = v.id
), uncertain AS (
  UPDATE deliveries AS d SET outcome = %(uncertain_outcome)s, error = v.error, updated_at = %(now)s
  FROM jsonb_to_recordset(%(uncertain)s::jsonb) AS v(id bigint, error text)
  WHERE d.id = ANY(%(uncertain_ids)s::bigint[]) AND d.id = v.id AND d.state = 'sending'
), requeued AS (
  UPDATE deliveries AS d SET state = 'queued', claimed_at = NULL, updated_at = %(now)s
  WHERE d.id = ANY(%(requeued_ids)s::bigint[]) AND d.state = 'sending'
), seen AS (
  UPDATE senders SET seen_at = %(now)s
  WHERE %(heartbeat)s AND issue = %(issue)s AND sender = %(sender)s
), locked AS (
  SELECT d.id, d.subscriber_id FROM deliveries AS d
  WHERE d.issue = %(issue)s AND d.state = 'queued'
  ORDER BY d.id LIMIT %(n)s
  FOR UPDATE SKIP LOCKED
), picked AS (
  SELECT l.id, s.status, s.language FROM locked AS l LEFT OUTER JOIN subscribers AS s ON l.subscriber_id = s.id
), claimed AS (
  UPDATE deliveries AS d SET
    state = CASE WHEN p.status = 'active' THEN 'sending' ELSE 'failed' END,
    outcome = CASE WHEN p.status = 'active' THEN d.outcome ELSE 'permanent' END,
    error = CASE WHEN p.status = 'active' THEN d.error ELSE 'skipped: ' || coalesce(p.status, 'removed') END,
    claimed_at = CASE WHEN p.status = 'active' THEN %(now)s ELSE d.claimed_at END,
    attempts = CASE WHEN p.status = 'active' THEN d.attempts + 1 ELSE d.attempts END,
    sender = CASE WHEN p.status = 'active' THEN %(sender)s ELSE d.sender END,
    language = CASE WHEN p.status = 'active' THEN %(languages)s::jsonb ->> coalesce(p.language, '')
      ELSE d.language END,
    updated_at = %(now)s
  FROM picked AS p WHERE d.id = p.id
  RETURNING d.id, d.subscriber_id, d.email, d.state, d.attempts, d.outcome, d.error, d.message_id,
    d.sent_at, d.delivered_at, p.status, d.language AS sent_language
)
SELECT c.id, c.subscriber_id, c.email, c.state, c.attempts, c.outcome, c.error, c.message_id,
  c.sent_at, c.delivered_at, c.status, s.name, s.language, c.sent_language FROM claimed AS c LEFT OUTER JOIN subscribers AS s ON c.subscriber_id = s.id
ORDER BY c.id
"""
_BATCH = PreparedStatement("newsletter_claim_batch", _POSTGRES_BATCH)


class Claims:
    """The batch statements of one database, on this thread's dedicated connection."""

    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.engine.dialect
        # the column type's own conversions, as SQLAlchemy would apply them (SQLite stores text)
        stamp = UtcDateTime().dialect_impl(dialect)
        self._to_db: Callable[[datetime], Any] = stamp.bind_processor(dialect) or (lambda v: v)
        self._from_db: Callable[[Any], datetime | None] = stamp.result_processor(dialect, None) or (
            lambda v: v
        )
        # PostgreSQL: reader language ("" for none) → translation, as `language_for` chose so far
        self._languages: dict[str, str] = {}
        self._languages_json = "{}"  # the same, as the claim statement takes it
        self._language_for: LanguageFor | None = None

    def batch(
        self,
        issue: str,
        n: int,
        answers: Answers,
        *,
        sender: str | None,
        heartbeat: bool,
        now: datetime,
        language_for: LanguageFor | None = None,
    ) -> list[dict[str, Any]]:
        """Record `answers`, then claim up to `n` queued rows of active subscribers, in one transaction.

        Returns each claimed row's columns (CLAIMED, plus claimed_at, updated_at, name,
        language and sent_language), as they are after the claim. Rows of subscribers no
        longer active become failed/permanent, ``skipped: <status>``, and the claim goes on
        past them. `language_for` turns a reader's language into the translation their
        message is made in; each claimed row records it (``sent_language``).
        """
        answers.check()
        stamp = self._to_db(now)
        if self.db.sqlite:
            return self._sqlite(issue, n, answers, sender, heartbeat, now, stamp, language_for)
        return self._postgres(issue, n, answers, sender, heartbeat, now, stamp, language_for)

    def _sqlite(
        self,
        issue: str,
        n: int,
        answers: Answers,
        sender: str | None,
        heartbeat: bool,
        now: datetime,
        stamp: Any,
        language_for: LanguageFor | None,
    ) -> list[dict[str, Any]]:
        conn = self.db.dedicated()
        claimed: list[dict[str, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            if answers.sent:
                conn.executemany(_SQLITE_SENT, [(mid, stamp, stamp, i) for i, mid in answers.sent])
            if answers.failed:
                rows = [(outcome, error, stamp, i) for i, outcome, error in answers.failed]
                conn.executemany(_SQLITE_FAILED, rows)
            if answers.uncertain:
                rows = [(UNCERTAIN, error, stamp, i) for i, error in answers.uncertain]
                conn.executemany(_SQLITE_UNCERTAIN, rows)
            if answers.requeued:
                conn.executemany(_SQLITE_REQUEUED, [(stamp, i) for i in answers.requeued])
            if heartbeat and sender is not None:
                conn.execute(_SQLITE_SEEN, (stamp, issue, sender))
            while len(claimed) < n:
                candidates = conn.execute(_SQLITE_CANDIDATES, (issue, n - len(claimed))).fetchall()
                if not candidates:
                    break
                ready = []
                skipped = []
                for c in candidates:
                    status = c[10]
                    if status == "active":
                        ready.append(c)
                    else:
                        skipped.append((f"skipped: {status or 'removed'}", stamp, c[0]))
                if skipped:
                    conn.executemany(_SQLITE_SKIP, skipped)
                if ready:
                    rows = []
                    for c in ready:  # one pass: this runs for every reader of a send
                        lang = language_for(c[12]) if language_for else None
                        rows.append((stamp, stamp, sender, lang, c[0]))
                        claimed.append(self._claimed(c, c[4] + 1, now, lang))
                    conn.executemany(_SQLITE_CLAIM, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite ends it itself on some errors (a full disk at COMMIT)
                conn.execute("ROLLBACK")
            raise
        return claimed

    def _postgres(
        self,
        issue: str,
        n: int,
        answers: Answers,
        sender: str | None,
        heartbeat: bool,
        now: datetime,
        stamp: Any,
        language_for: LanguageFor | None,
    ) -> list[dict[str, Any]]:
        conn = self.db.dedicated()
        if language_for != self._language_for:
            self._languages, self._language_for = {}, language_for
            self._languages_json = "{}"
        # most batches carry only sent answers: the other kinds skip the JSON encoder
        params: dict[str, Any] = {
            "issue": issue,
            "now": stamp,
            "sender": sender,
            "heartbeat": heartbeat and sender is not None,
            "uncertain_outcome": UNCERTAIN,
            "sent": _json([{"id": i, "mid": mid} for i, mid in answers.sent]),
            "sent_ids": _ids(i for i, _ in answers.sent),
            "failed": _json([{"id": i, "outcome": o, "error": e} for i, o, e in answers.failed]),
            "failed_ids": _ids(i for i, _, _ in answers.failed) if answers.failed else "{}",
            "uncertain": _json([{"id": i, "error": e} for i, e in answers.uncertain]),
            "uncertain_ids": _ids(i for i, _ in answers.uncertain) if answers.uncertain else "{}",
            "requeued_ids": _ids(answers.requeued),
        }
        claimed: list[dict[str, Any]] = []
        first = True
        while first or len(claimed) < n:
            params["n"] = n - len(claimed)
            params["languages"] = self._languages_json
            rows = _BATCH.run(conn, params)
            if first:  # the answers are recorded: later rounds only claim
                first = False
                params.update(
                    {key: "[]" for key in ("sent", "failed", "uncertain")},
                    **{key: "{}" for key in ("sent_ids", "failed_ids", "uncertain_ids", "requeued_ids")},
                    heartbeat=False,
                )
            claimed.extend(self._claimed(r, r[4], now, r[13]) for r in rows if r[10] == "active")
            if len(rows) < params["n"] or n == 0:
                break
        if language_for is not None:
            self._choose_languages(conn, claimed, language_for)
        return claimed

    def _choose_languages(self, conn: Any, claimed: list[dict[str, Any]], language_for: LanguageFor) -> None:
        """Rows whose reader's language the map passed to the claim did not know yet: ask
        `language_for` and record its answer (once per reader language and send: a statement more)."""
        missing = [row for row in claimed if (row["language"] or "") not in self._languages]
        if not missing:
            return
        for row in missing:
            row["sent_language"] = self._languages[row["language"] or ""] = language_for(row["language"])
        self._languages_json = json.dumps(self._languages)
        rows = json.dumps([{"id": row["id"], "language": row["sent_language"]} for row in missing])
        with conn.cursor() as cur:
            cur.execute(_POSTGRES_LANGUAGE, {"rows": rows, "ids": _ids(row["id"] for row in missing)})

    def _claimed(self, row: Any, attempts: int, now: datetime, sent_language: str | None) -> dict[str, Any]:
        sent_at, delivered_at = row[8], row[9]
        values = {
            "id": row[0],
            "subscriber_id": row[1],
            "email": row[2],
            "state": "sending",
            "attempts": attempts,
            "outcome": row[5],
            "error": row[6],
            "message_id": row[7],
            "sent_at": None if sent_at is None else self._from_db(sent_at),
            "delivered_at": None if delivered_at is None else self._from_db(delivered_at),
            "claimed_at": now,
            "updated_at": now,
            "name": row[11],
            "language": row[12],
            "sent_language": sent_language,
        }
        return values


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows) if rows else "[]"


def _ids(ids: Iterable[int]) -> str:
    """Row ids as a PostgreSQL array literal ("{1,2,3}")."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"
