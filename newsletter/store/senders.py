"""Senders that share one ledger: who they are, whether they still live, and the rate they share.

Several `newsletter send` processes (on one machine or many) may send one issue from one
database. Each registers as a *sender* named "host pid start", stamps the rows it claims with
that name, and refreshes its `seen_at` while it works. A row in `sending` is *in flight* while
its sender lives, and *uncertain* once the sender has finished or gone silent for
`SILENT_AFTER` (killed, or its machine lost): only then may any sender report or re-queue it.
A sender on this machine whose process is gone is known dead at once (`reap`), not a minute later.

The rate is shared through a token bucket row per quota: every sender takes its tokens from
the same row, in a transaction that locks it, so N senders together never exceed the quota.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.store.engine import Database, PreparedStatement
from newsletter.store.schema import deliveries, rate_buckets, senders, utc_now

SILENT_AFTER = timedelta(seconds=60)  # a sender not seen for this long is gone; its rows are uncertain


def sender_name(started: datetime | None = None) -> str:
    """This process as a sender: host, process id and start time (UTC, to the second)."""
    started = started or utc_now()
    return f"{socket.gethostname()} {os.getpid()} {started.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def holder_gone(name: str) -> bool:
    """Whether `name` ("host pid start", see `sender_name`) is a process of this machine that no longer exists.

    A process of another machine is never known gone here: only its silence tells.
    """
    parts = name.split(" ")
    return (
        len(parts) >= 3
        and parts[0] == socket.gethostname()
        and parts[1].isdigit()
        and _process_gone(int(parts[1]))
    )


def reap(conn: sa.Connection, issue: str, now: datetime) -> None:
    """Mark finished the senders of `issue` on this machine whose process no longer exists (SIGKILL).

    A reused process id keeps a dead sender "alive" until SILENT_AFTER: the safe mistake.
    """
    unfinished = conn.execute(
        sa.select(senders.c.sender).where(senders.c.issue == issue, senders.c.finished_at.is_(None))
    ).scalars()
    dead = [name for name in unfinished if holder_gone(name)]
    if dead:
        conn.execute(
            senders.update()
            .where(senders.c.issue == issue, senders.c.sender.in_(dead))
            .values(finished_at=now)
        )


def live_senders(issue: str, now: datetime) -> sa.Select:
    """The senders of `issue` still at work: not finished, seen within SILENT_AFTER."""
    return sa.select(senders.c.sender).where(
        senders.c.issue == issue, senders.c.finished_at.is_(None), senders.c.seen_at > now - SILENT_AFTER
    )


def not_in_flight(issue: str, now: datetime) -> sa.ColumnElement[bool]:
    """Rows whose claimer is no longer at work (or unknown): a row in `sending` is then uncertain."""
    return sa.or_(deliveries.c.sender.is_(None), deliveries.c.sender.not_in(live_senders(issue, now)))


class Senders:
    """The senders and the shared rate buckets of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start_sender(self, issue: str) -> str:
        """Register this process as a sender of `issue`; returns its name for `claim_batch`."""
        now = utc_now()
        name = sender_name(now)
        with self.db.write() as conn:
            conn.execute(senders.delete().where(senders.c.issue == issue, senders.c.sender == name))
            conn.execute(senders.insert().values(issue=issue, sender=name, started_at=now, seen_at=now))
        return name

    def sender_seen(self, issue: str, name: str) -> None:
        """The sender is still at work (called while it waits on slow answers)."""
        with self.db.write() as conn:
            conn.execute(
                senders.update()
                .where(senders.c.issue == issue, senders.c.sender == name)
                .values(seen_at=utc_now())
            )

    def finish_sender(self, issue: str, name: str) -> None:
        """The sender stopped: rows it left in `sending` are uncertain from now on."""
        with self.db.write() as conn:
            conn.execute(
                senders.update()
                .where(senders.c.issue == issue, senders.c.sender == name)
                .values(finished_at=utc_now())
            )

    def sender_counts(self, issue: str) -> dict[str, dict[str, int]]:
        """Rows each sender of `issue` holds, by state (sent, failed, sending), in order of start."""
        order = sa.select(senders.c.sender).where(senders.c.issue == issue).order_by(senders.c.started_at)
        query = (
            sa.select(deliveries.c.sender, deliveries.c.state, sa.func.count())
            .where(deliveries.c.issue == issue, deliveries.c.sender.is_not(None))
            .group_by(deliveries.c.sender, deliveries.c.state)
        )
        with self.db.read() as conn:
            counts: dict[str, dict[str, int]] = {name: {} for name in conn.execute(order).scalars()}
            for name, state, n in conn.execute(query):
                counts.setdefault(name, {})[state] = n
        return counts

    def take_tokens(
        self, bucket: str, n: int, rate: float, *, burst: float | None = None, now: float | None = None
    ) -> int:
        """Take up to `n` tokens from the shared bucket `bucket` (refilled at `rate` per second).

        Returns how many were granted (0 when the bucket is empty); the caller waits about
        1/rate before asking again. The bucket's row is locked for the transaction, so
        concurrent senders draw from one balance. A sender that asks with another rate
        sets the bucket's rate: the quota is the account's, and the last word wins.
        `now` (seconds since the epoch, every sender's clock) defaults to this machine's.
        """
        if n <= 0:
            return 0
        burst = max(1.0, rate * 0.1) if burst is None else burst
        if not self.db.sqlite:
            return self._take_tokens_postgres(bucket, n, rate, burst, now)
        with self.db.write(lock=f"rate {bucket}") as conn:
            row = conn.execute(
                sa.select(rate_buckets.c.tokens, rate_buckets.c.at)
                .where(rate_buckets.c.name == bucket)
                .with_for_update()
            ).first()
            # the time once the row is ours: read before the lock, a waiting sender would count
            # again the time the previous holder already refilled
            now = time.time() if now is None else now
            if row is None:
                tokens = burst
                conn.execute(
                    rate_buckets.insert().values(name=bucket, rate=rate, burst=burst, tokens=0, at=now)
                )
            else:
                now = max(now, row.at)  # clocks of several machines: never refill twice
                tokens = min(burst, row.tokens + (now - row.at) * rate)
            granted = min(n, int(tokens))
            conn.execute(
                rate_buckets.update()
                .where(rate_buckets.c.name == bucket)
                .values(tokens=tokens - granted, at=now, rate=rate, burst=burst)
            )
        return granted

    def _take_tokens_postgres(self, bucket: str, n: int, rate: float, burst: float, now: float | None) -> int:
        """`take_tokens` in one statement on the loop's own connection: a sender asks before
        every claim, and a transaction of four statements through the pool cost more CPU than
        the claim itself. The row lock of the UPDATE serialises the senders as before."""
        params = {"name": bucket, "n": n, "rate": rate, "burst": burst}
        conn = self.db.dedicated()
        for _ in range(2):
            # the time once asked: a sender that waited for the row counts no time twice,
            # since the refill starts from the later of `at` and this time
            params["now"] = time.time() if now is None else now
            rows = _TAKE_TOKENS.run(conn, params)
            if rows:
                return int(rows[0][0])
            _NEW_BUCKET.run(conn, params)  # the first take of this quota: a full burst
        raise AssertionError(f"rate bucket {bucket!r} neither found nor made")  # pragma: no cover


# A bucket's tokens refilled to now (never past the burst, never twice for the same time),
# up to `n` of them granted, in one statement: RETURNING gives what was granted.
_POSTGRES_TAKE_TOKENS = """
WITH old AS (
  SELECT name,
    LEAST(%(burst)s, tokens + GREATEST(%(now)s - at, 0) * %(rate)s) AS tokens,
    GREATEST(at, %(now)s) AS at
  FROM rate_buckets WHERE name = %(name)s FOR UPDATE
)
UPDATE rate_buckets AS r
SET tokens = old.tokens - LEAST(%(n)s, FLOOR(old.tokens)), at = old.at, rate = %(rate)s, burst = %(burst)s
FROM old WHERE r.name = old.name
RETURNING LEAST(%(n)s, FLOOR(old.tokens))::integer
"""
_POSTGRES_NEW_BUCKET = """
INSERT INTO rate_buckets (name, rate, burst, tokens, at) VALUES (%(name)s, %(rate)s, %(burst)s, %(burst)s, %(now)s)
ON CONFLICT (name) DO NOTHING
"""
_TAKE_TOKENS = PreparedStatement("newsletter_take_tokens", _POSTGRES_TAKE_TOKENS)
_NEW_BUCKET = PreparedStatement("newsletter_new_bucket", _POSTGRES_NEW_BUCKET)
