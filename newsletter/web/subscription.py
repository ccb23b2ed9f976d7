"""The subscription rules of the web app: what a subscribe, confirm, unsubscribe or preferences request changes.

Owns the checks on the form's fields (language tag, name), the reader's own changes to
their language and name, and the three status changes a reader can make from the web: a new address is added `pending`; a confirmation turns
`pending` into `active`; an unsubscribe turns anyone not yet suppressed into
`unsubscribed`. A suppressed address (unsubscribed, bounced, complained) is never
re-activated from the web: the editor re-adds it by hand. The data lives in the store;
which status may follow which is newsletter.audience.lifecycle's to say.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.audience.lifecycle import SUPPRESSED, change_status
from newsletter.store import Store, StoreError, Subscriber
from newsletter.text import ALL_CONTROL_CHARS
from newsletter.web.ratelimit import CONFIRMATION_INTERVAL

MAX_NAME = 200
# Mail providers where dots in the local part are ignored (all three deliver to one inbox).
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, as far as can be told from outside; for rate limits.

    Lowercase; a `+tag` after the local part dropped (subaddressing: Gmail, Outlook,
    Fastmail, iCloud, Proton and most servers deliver `ann+x@` to `ann@`); for Gmail
    (gmail.com, googlemail.com) dots in the local part dropped and the domain made
    gmail.com. Two spellings with the same key share one limit; the stored address is
    never changed.
    """
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _DOTLESS:
        local, domain = local.replace(".", ""), _DOTLESS[domain]
    return f"{local}@{domain}"


def clean_name(raw: str) -> str | None:
    """The form's name field as stored: control characters dropped, trimmed, at most MAX_NAME."""
    return ALL_CONTROL_CHARS.sub("", raw).strip()[:MAX_NAME] or None


class Subscriptions:
    """The reader-initiated status changes, over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def request(self, address: str, *, name: str | None, language: str | None) -> Subscriber | None:
        """Record a subscribe request for a normalised `address`: the subscriber to mail a confirmation.

        None when no mail is due: the address is already active, or suppressed. The caller
        must answer the same in every case (no enumeration of known addresses).
        """
        subscriber = self.store.get_subscriber(address)
        if subscriber is None:
            try:
                return self.store.add_subscriber(
                    address, name=name, language=language, status="pending", source="web"
                )
            except StoreError:  # a concurrent request added it first: its request sends the mail
                return None
        # Only a pending address gets mail. Active ones need nothing, and suppressed ones
        # (unsubscribed, bounced, complained) are never re-activated from the web. A pending
        # one got its mail when it was added: not again within the interval (this holds
        # across restarts, unlike the in-memory per-mailbox limit).
        recent = datetime.now(UTC) - subscriber.created_at < timedelta(seconds=CONFIRMATION_INTERVAL)
        if subscriber.status == "pending" and not recent:
            return subscriber
        return None

    def to_confirm(self, address: str) -> Subscriber | None:
        """The subscriber a confirmation link names, whatever its status; None once erased."""
        return self.store.get_subscriber(address)

    def confirm(self, subscriber: Subscriber) -> Subscriber:
        """Double opt-in: pending -> active. Idempotent; any other status is left as it is."""
        if subscriber.status == "pending":
            change_status(self.store, subscriber.id, "active", "reader", reason="confirmed by link (web)")
            subscriber = self.store.get_subscriber(subscriber.id) or subscriber
        return subscriber

    def unsubscribing(self, subject: str) -> Subscriber | None:
        """The subscriber an unsubscribe token's subject (a subscriber id) names; None once erased."""
        return self.store.get_subscriber(subject) if subject.isdigit() else None

    def set_preferences(
        self, subscriber: Subscriber, *, language: str, name: str | None
    ) -> Subscriber | None:
        """The reader's own language and name (checked by the caller); the subscriber after, None once erased.

        The next send reads them: the ledger takes each reader's current language and name.
        """
        if not self.store.set_profile(subscriber.id, name=name, language=language):
            return None
        return self.store.get_subscriber(subscriber.id)

    def unsubscribe(self, subscriber: Subscriber | None, reason: str) -> None:
        """Leave the list. Erased or already suppressed: nothing changes (bounced or
        complained is kept: it says more than "unsubscribed")."""
        if subscriber is not None and subscriber.status not in SUPPRESSED:
            change_status(self.store, subscriber.id, "unsubscribed", "reader", reason=reason)
