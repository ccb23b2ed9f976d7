"""The store: subscribers, events and the delivery ledger in one database, behind one `Store`.

This package is the only place that writes SQL (SQLAlchemy Core 2.x):
- `engine`: the engine, SQLite's pragmas, read and write transactions;
- `schema`: tables and migrations;
- `subscribers`, `events`, `ledger`: one small class each, holding their statements;
- `addresses`: an address's identity and valid form.
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
from newsletter.store.engine import Database, StoreError, reason
from newsletter.store.events import ApplyResult, Events
from newsletter.store.ledger import Delivery, Ledger
from newsletter.store.schema import ERASED, OUTCOMES, SCHEMA_VERSION, STATES, STATUSES, migrate
from newsletter.store.subscribers import ImportCounts, StatusChange, Subscriber, SubscriberRow, Subscribers

__all__ = [
    "ERASED",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "STATES",
    "STATUSES",
    "ApplyResult",
    "Delivery",
    "ImportCounts",
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

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.url = url
        self.engine = self.db.engine
        try:
            migrate(self.db)
        except sa.exc.DBAPIError as exc:
            self.db.close()
            raise StoreError(f"{self.db.where}: cannot use the database: {reason(exc)}") from None
        except StoreError:
            self.db.close()
            raise
        subscribers, events, ledger = Subscribers(self.db), Events(self.db), Ledger(self.db)

        self.add_subscriber = subscribers.add_subscriber
        self.get_subscriber = subscribers.get_subscriber
        self.change_status = subscribers.change_status
        self.remove_subscriber = subscribers.remove_subscriber
        self.iter_subscribers = subscribers.iter_subscribers
        self.count_by_status = subscribers.count_by_status
        self.upsert_many = subscribers.upsert_many

        self.list_events = events.list_events
        self.apply_event = events.apply_event
        self.apply_events = events.apply_events
        self.issue_event_counts = events.issue_event_counts

        self.create_ledger = ledger.create_ledger
        self.claim_batch = ledger.claim_batch
        self.mark_sent = ledger.mark_sent
        self.mark_sent_many = ledger.mark_sent_many
        self.mark_failed = ledger.mark_failed
        self.requeue = ledger.requeue
        self.uncertain = ledger.uncertain
        self.requeue_uncertain = ledger.requeue_uncertain
        self.requeue_temporary = ledger.requeue_temporary
        self.ledger_counts = ledger.ledger_counts
        self.reachable = ledger.reachable
        self.ledger = ledger.ledger
        self.issues_sent = ledger.issues_sent

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(url)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
