"""What sending tests share: the fixture issue, the signing secret, readers, parsed messages."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from newsletter.store import Store, SubscriberRow

ISSUE = "2024-01-10-first"
SECRET = "test-secret-for-sending-0123456789abcdef"


def add_people(store: Store, active: int, *, suppressed: bool = True) -> dict[str, list[str]]:
    """`active` active readers (with names, some non-ASCII) plus one of each suppressed status."""
    rows = [
        SubscriberRow(
            email=f"reader{i:04d}@example.com", name=f"Zoë {i}" if i % 2 else f"Ana {i}", status="active"
        )
        for i in range(active)
    ]
    if suppressed:
        rows += [
            SubscriberRow(email="gone@example.com", name="Gone", status="unsubscribed"),
            SubscriberRow(email="bounced@example.com", status="bounced"),
            SubscriberRow(email="angry@example.com", status="complained"),
            SubscriberRow(email="unconfirmed@example.com", status="pending"),
        ]
    store.upsert_many(rows)
    return {
        "active": [r.email for r in rows if r.status == "active"],
        "never": [r.email for r in rows if r.status != "active"],
    }


def parse(raw: bytes) -> EmailMessage:
    """A message as the standard library's modern email objects see it."""
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]
