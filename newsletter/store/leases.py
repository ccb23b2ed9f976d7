"""Leases: exclusive work (`send --due`) held by one process at a time, until released or expired.

A lease is one row (name, holder, acquired_at, expires_at). Taking it reads and writes the row
in one transaction that the database serialises (SQLite's BEGIN IMMEDIATE, a PostgreSQL
advisory lock on the lease's name), so of two processes asking at once exactly one gets it.
The holder renews it while it works; a holder that crashed stops renewing, and its lease is
free once `expires_at` has passed, or at once when its holder is a process of this machine
that no longer exists (the same check the senders use).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.store.engine import Database
from newsletter.store.schema import leases, utc_now
from newsletter.store.senders import holder_gone


@dataclass(frozen=True)
class Lease:
    """Who holds a lease, since when, and until when unless renewed."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class LeaseAnswer:
    """What asking for a lease gave: it is ours (`granted`), or `lease` says who holds it."""

    granted: bool
    lease: Lease


class Leases:
    """The leases of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, *, now: datetime | None = None
    ) -> LeaseAnswer:
        """Take the lease `name` for `ttl`, unless another live holder has it.

        A lease of the same holder is renewed; an expired one, or one whose holder on this
        machine is gone, is taken over.
        """
        now = now or utc_now()
        with self.db.write(lock=f"lease {name}") as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name).with_for_update()).first()
            if (
                row is not None
                and row.holder != holder
                and row.expires_at > now
                and not holder_gone(row.holder)
            ):
                return LeaseAnswer(False, Lease(row.name, row.holder, row.acquired_at, row.expires_at))
            acquired = row.acquired_at if row is not None and row.holder == holder else now
            values = {"holder": holder, "acquired_at": acquired, "expires_at": now + ttl}
            if row is None:
                conn.execute(leases.insert().values(name=name, **values))
            else:
                conn.execute(leases.update().where(leases.c.name == name).values(**values))
        return LeaseAnswer(True, Lease(name, holder, acquired, now + ttl))

    def renew_lease(self, name: str, holder: str, ttl: timedelta, *, now: datetime | None = None) -> bool:
        """Push the lease's expiry `ttl` ahead; False when `holder` no longer holds it (it expired and was taken)."""
        now = now or utc_now()
        with self.db.write() as conn:
            changed = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=now + ttl)
            ).rowcount
        return changed == 1

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if `holder` still holds it)."""
        with self.db.write() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))

    def lease(self, name: str) -> Lease | None:
        """The lease `name` as it stands (expired or not), or None."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else Lease(row.name, row.holder, row.acquired_at, row.expires_at)
