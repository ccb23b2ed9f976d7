"""The store: subscribers, events and the delivery ledger in one database, behind one `Store`.

This package is the only place that writes SQL (SQLAlchemy Core 2.x):
- `engine`: the engine, SQLite's pragmas, read and write transactions;
- `schema`: tables and migrations;
- `subscribers`, `tags`, `events`, `ledger`: one small class each, holding their statements;
- `claims`: the send loop's batch statements (claim rows, record answers), in plain SQL;
- `engagement`: opens and clicks of the ledger's messages (opt-in);
- `senders`: the senders sharing a ledger (who claimed what, who still lives) and their shared rate;
- `leases`: exclusive work (`send --due`) held by one process at a time, until released or expired;
- `addresses`: an address's identity and valid form;
- `copy`: a whole database copied into another (SQLite → PostgreSQL), verified by counts.
`Store` opens the database, brings its schema up to date, and lends out the methods of
the three classes, so callers hold one object. It decides no policy: which status may
follow which is the lifecycle's (`newsletter.audience.lifecycle`).

The ledger contract (see docs/architecture.md): one row per (issue, subscriber), made
when a send starts; ``queued → sending → sent | failed``. A row left in
``sending`` is *uncertain* and is only re-queued when the editor asks.
"""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.store.addresses import email_key, normalize_email
from newsletter.store.claims import Answers
from newsletter.store.copy import copy_database
from newsletter.store.engagement import Burst, Engagement, Observation
from newsletter.store.engine import Database, StoreError, driver_error, unusable
from newsletter.store.events import ApplyResult, Events
from newsletter.store.leases import Lease, LeaseAnswer, Leases
from newsletter.store.ledger import Audience, Delivery, Ledger
from newsletter.store.schema import ERASED, OUTCOMES, SCHEMA_VERSION, STATES, STATUSES, UNCERTAIN, migrate
from newsletter.store.senders import Senders
from newsletter.store.subscribers import (
    ImportCounts,
    StatusChange,
    Subscriber,
    SubscriberRow,
    Subscribers,
    identify,
)
from newsletter.store.tags import Tags

__all__ = [
    "ERASED",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "STATES",
    "STATUSES",
    "UNCERTAIN",
    "Answers",
    "ApplyResult",
    "Audience",
    "Burst",
    "Delivery",
    "ImportCounts",
    "Lease",
    "LeaseAnswer",
    "Observation",
    "StatusChange",
    "Store",
    "StoreError",
    "Subscriber",
    "SubscriberRow",
    "email_key",
    "normalize_email",
]


class Store:
    """Subscribers, events and the delivery ledger in one database."""

    def __init__(self, url: str, *, connections: int = 5) -> None:
        self.db = Database(url, connections=connections)
        self.url = url
        self.engine = self.db.engine
        # a server that senders on several machines may share (SQLite is one machine's file)
        self.shared = not self.db.sqlite
        try:
            self.schema_was, self.schema_version = migrate(self.db)
        except sa.exc.DBAPIError as exc:
            self.db.close()
            raise unusable(self.db.where, exc) from None
        except StoreError:
            self.db.close()
            raise
        subscribers, events, ledger = Subscribers(self.db), Events(self.db), Ledger(self.db)
        senders = Senders(self.db)
        engagement = Engagement(self.db)

        self.add_subscriber = subscribers.add_subscriber
        self.get_subscriber = subscribers.get_subscriber
        self.change_status = subscribers.change_status
        self.remove_subscriber = subscribers.remove_subscriber
        self.purge_pending = subscribers.purge_pending
        self.iter_subscribers = subscribers.iter_subscribers
        self.count_by_status = subscribers.count_by_status
        self.upsert_many = subscribers.upsert_many
        self.set_profile = subscribers.set_profile
        self.tag_subscribers = Tags(self.db, identify).tag_subscribers

        self.list_events = events.list_events
        self.apply_event = events.apply_event
        self.apply_events = events.apply_events
        self.issue_event_counts = events.issue_event_counts

        self.record_engagement = engagement.record_engagement
        self.engagement_rows = engagement.engagement_rows
        self.engagement_counts = engagement.engagement_counts
        self.send_started = engagement.send_started
        self.subscriber_dates = engagement.subscriber_dates
        self.send_summary = engagement.send_summary

        self.create_ledger = ledger.create_ledger
        self.claim_batch = ledger.claim_batch
        self.mark_sent = ledger.mark_sent
        self.mark_sent_many = ledger.mark_sent_many
        self.record = ledger.record
        self.mark_failed = ledger.mark_failed
        self.mark_uncertain = ledger.mark_uncertain
        self.requeue = ledger.requeue
        self.uncertain = ledger.uncertain
        self.requeue_uncertain = ledger.requeue_uncertain
        self.requeue_temporary = ledger.requeue_temporary
        self.ledger_counts = ledger.ledger_counts
        self.reachable = ledger.reachable
        self.reachable_languages = ledger.reachable_languages
        self.ledger = ledger.ledger
        self.issues_sent = ledger.issues_sent

        self.start_sender = senders.start_sender
        self.sender_seen = senders.sender_seen
        self.finish_sender = senders.finish_sender
        self.sender_counts = senders.sender_counts
        self.take_tokens = senders.take_tokens

        leases = Leases(self.db)
        self.acquire_lease = leases.acquire_lease
        self.renew_lease = leases.renew_lease
        self.release_lease = leases.release_lease
        self.lease = leases.lease

    @classmethod
    def open(cls, url: str, *, connections: int = 5) -> Store:
        """Open the database at `url` (SQLite file or PostgreSQL server) and bring its schema up to date.

        `connections`: how many threads will use the store at once (a server's pool size).
        """
        return cls(url, connections=connections)

    def copy_to(self, url: str) -> dict[str, int]:
        """Copy this whole database into the empty database at `url`; rows per table, verified by counts."""
        with Store.open(url) as target:
            return copy_database(self.db, target.db)

    def failed(self, exc: BaseException) -> str | None:
        """When `exc` is the database's, what it said ("database: what"); None for any other error."""
        if not driver_error(exc):
            return None
        said = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc)
        return f"{self.db.where}: {said.strip().splitlines()[0] if said.strip() else type(exc).__name__}"

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
