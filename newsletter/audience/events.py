"""SES events (bounce, complaint, delivery) → subscriber status and the ledger.

`newsletter.audience.notifications` reads a message into an SES event (or a notice, or
a refusal); this module decides what the event does and has the store apply it;
`newsletter.audience.sqs` reads the queue.

What each event does:
Status changes follow the lifecycle (`newsletter.audience.lifecycle`): an event only
suppresses, and never weakens a suppression (a complaint is never replaced; a bounced
address is not turned into an unsubscribed one).
- Bounce, Permanent: the address becomes ``bounced`` (never mailed again).
- Bounce, Transient or Undetermined: counted; after `soft_bounce_limit` of them, ``bounced``.
- Complaint: ``complained`` (never mailed again), unless the feedback type is ``not-spam``.
- Subscription (SES list management) with ``unsubscribeAll``: ``unsubscribed``.
- Delivery: the ledger row of ``mail.messageId`` gets its delivery time, and the address's
  soft-bounce count starts again (the limit counts soft bounces since the last delivery).
- Open, Click: only with `engagement` on (``ses.engagement``, opt-in), stored per message
  in the engagement table, not in the address's event log (`newsletter.audience.engagement`);
  with it off they are ignored and nothing of them is kept.
Every other event is recorded. All recipients of one notification are applied in one
transaction (``Store.apply_events``); SQS delivers at least once, so an event already
recorded for the same (type, address, message id) is skipped: processing a redelivered
message changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.audience.engagement import store_engagement
from newsletter.audience.lifecycle import SOFT_BOUNCE_LIMIT, event_decision
from newsletter.audience.notifications import (
    ANYWHERE,
    MalformedNotification,
    Notice,
    Notification,
    RefusedNotification,
    Trust,
    parse_notification,
)
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.store import Store


@dataclass
class EventSummary:
    """What processing did. Counts are per recipient, except the per-message ones marked so."""

    processed: int = 0  # messages acted on (or knowingly ignored)
    bounced: int = 0  # addresses suppressed as bounced (permanent, or over the soft-bounce limit)
    soft_bounces: int = 0  # transient/undetermined bounces counted
    complained: int = 0  # addresses suppressed as complained
    delivered: int = 0  # recipients reported delivered
    unsubscribed: int = 0  # addresses unsubscribed through SES list management
    duplicates: int = 0  # recipient events already recorded (a redelivered message)
    ignored: int = 0  # messages: other event types (Send, Reject, ...; Open and Click when off) and notices
    opens: int = 0  # Open events stored (engagement on)
    clicks: int = 0  # Click events stored (engagement on)
    machine: int = 0  # of those, the ones that look like a proxy's or a scanner's
    notices: int = 0  # messages about no mail (SNS confirmations, topic validation, account events)
    malformed: int = 0  # messages
    refused: int = 0  # messages from a topic or account that is not allowed
    errors: list[str] = field(default_factory=list)  # why each malformed or refused message was set aside

    def __iadd__(self, other: EventSummary) -> EventSummary:
        for f in fields(self):
            if f.name == "errors":
                self.errors.extend(other.errors)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def set_aside(self) -> int:
        """Messages that were not applied and must not be deleted unseen (malformed or refused)."""
        return self.malformed + self.refused

    def line(self) -> str:
        return (
            f"{self.processed} processed, {self.bounced} bounced, {self.soft_bounces} soft bounces, "
            f"{self.complained} complained, {self.delivered} delivered, {self.ignored} ignored, "
            f"{self.duplicates} duplicates, {self.malformed} malformed"
            + (f", {self.refused} refused" if self.refused else "")
            + (f", {self.unsubscribed} unsubscribed" if self.unsubscribed else "")
            + (f", {self.opens} opens, {self.clicks} clicks" if self.opens or self.clicks else "")
            + (f" ({self.machine} by machines)" if self.machine else "")
        )


def process_notification(
    store: Store,
    body: str | bytes | dict[str, Any],
    *,
    soft_bounce_limit: int = SOFT_BOUNCE_LIMIT,
    trust: Trust = ANYWHERE,
    engagement: bool = False,
) -> EventSummary:
    """Apply one notification to the store; a malformed or refused one is counted (with its reason).

    `engagement` (the ``ses.engagement`` setting): store Open and Click events; off, they
    are ignored.

    All its recipients are applied in one transaction (`Store.apply_events`): a crash
    leaves it either fully applied (a redelivery is then skipped as a duplicate) or not
    at all (a redelivery applies it).
    """
    summary = EventSummary()
    try:
        notification = parse_notification(body, trust)
    except MalformedNotification as exc:
        summary.malformed = 1
        summary.errors.append(str(exc))
        return summary
    except RefusedNotification as exc:
        summary.refused = 1
        summary.errors.append(f"refused: {exc}")
        return summary
    summary.processed = 1
    if isinstance(notification, Notice):
        summary.ignored = summary.notices = 1
        return summary
    now = datetime.now(UTC)
    if notification.type == "Subscription" and notification.unsubscribe_all:
        # Only when SES manages a contact list too: its own unsubscribe must be honoured here.
        decide = event_decision("unsubscribed", "unsubscribe (SES list management)", now=now)
        rows = [(address, notification.detail) for address in notification.recipients]
        for result in store.apply_events("subscription", notification.message_id, rows, decide=decide):
            summary.duplicates += result.duplicate
            summary.unsubscribed += result.changed
        return summary
    if notification.type in ("Open", "Click"):
        return _engagement(store, notification, summary, engagement)
    if notification.type not in ("Bounce", "Complaint", "Delivery"):
        summary.ignored = 1
        first = notification.recipients[0] if notification.recipients else None
        store.apply_events(notification.type.lower(), notification.message_id, [(first, notification.detail)])
        return summary
    kind = notification.type.lower()
    detail = dict(notification.detail)
    effect = _effect(notification, detail, now, soft_bounce_limit)
    rows = _recipient_details(notification, detail)
    for result in store.apply_events(kind, notification.message_id, rows, **effect):
        if result.duplicate:
            summary.duplicates += 1
            continue
        if kind == "delivery":
            summary.delivered += 1
        elif kind == "bounce" and notification.bounce_type != "Permanent":
            summary.soft_bounces += 1
        if result.changed and result.status == "bounced":
            summary.bounced += 1
        elif result.changed and result.status == "complained":
            summary.complained += 1
    return summary


def _engagement(
    store: Store, notification: Notification, summary: EventSummary, enabled: bool
) -> EventSummary:
    if not enabled:
        summary.ignored = 1  # the editor did not opt in: nothing of it is kept
        return summary
    outcome, observation = store_engagement(store, notification)
    if outcome == "malformed":
        summary.processed, summary.malformed = 0, 1
        summary.errors.append(f"{notification.type.lower()}: expected mail.messageId and a timestamp")
    elif outcome == "duplicate":
        summary.duplicates = 1
    elif outcome == "unknown":
        summary.ignored = 1  # not a message of this ledger
    else:
        summary.opens, summary.clicks = int(notification.type == "Open"), int(notification.type == "Click")
        summary.machine = int(observation is not None and observation.machine is not None)
    return summary


def _recipient_details(
    notification: Notification, detail: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(address, detail) for each recipient: the notification's detail plus the recipient's own part.

    Recipients whose own part is the same share one detail object, which the store then
    encodes once for all of them (a large bounce usually says the same of every address).
    """
    shared: dict[Any, dict[str, Any]] = {}
    rows = []
    for address in notification.recipients:
        extra = notification.per_recipient.get(address, {})
        try:
            key: Any = tuple(extra.items())
            merged = shared.get(key)
        except TypeError:  # a value that cannot be a key (a list): this recipient's own detail
            key, merged = None, None
        if merged is None:
            merged = {**detail, **extra}
            if key is not None:
                shared[key] = merged
        rows.append((address, merged))
    return rows


def _effect(
    notification: Notification, detail: dict[str, Any], now: datetime, soft_bounce_limit: int
) -> dict[str, Any]:
    """What a bounce, complaint or delivery does to each recipient (`Store.apply_events`'s options).

    Notes the action in `detail` when a complaint is taken back.
    """
    if notification.type == "Bounce" and notification.bounce_type == "Permanent":
        why = f"permanent bounce ({detail.get('bounceSubType', '?')})"
        return {"decide": event_decision("bounced", why, now=now)}
    if notification.type == "Bounce":
        # Transient, Undetermined, or a type SES may add later: a soft bounce.
        return {
            "soft_bounce": True,
            "decide": event_decision(None, None, now=now, soft_bounce_limit=soft_bounce_limit),
        }
    if notification.type == "Complaint" and (notification.feedback_type or "").lower() == "not-spam":
        detail["action"] = "none: feedback type not-spam"
        return {}
    if notification.type == "Complaint":
        return {"decide": event_decision("complained", "complaint (SES)", now=now)}
    return {"delivered": True}


# --------------------------------------------------------------------------- saved notifications


def read_saved(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, notification) pairs from a saved file: a JSON list, one object, or one JSON per line.

    A line that is not JSON is yielded as its text, so processing reports it as malformed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NewsletterError(
            f"{path}: expected saved SES notifications as UTF-8 JSON, found a byte that is not UTF-8 "
            f"at offset {exc.start}"
        ) from None
    except OSError as exc:
        raise NewsletterError(f"{path}: cannot read: {exc.strerror}") from None
    stripped = text.strip()
    if not stripped:
        return
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):
        # Not one JSON document (or one nested absurdly deep): read it line by line, where
        # each line is checked for size and depth before it is decoded.
        data = None
    else:
        if isinstance(data, list):
            for n, item in enumerate(data, start=1):
                yield f"{path}[{n}]", item
            return
        if isinstance(data, dict):
            yield str(path), data
            return
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield f"{path}:{n}", line


def import_file(
    store: Store,
    path: Path,
    *,
    soft_bounce_limit: int = SOFT_BOUNCE_LIMIT,
    trust: Trust = ANYWHERE,
    engagement: bool = False,
) -> EventSummary:
    """Process saved notifications (see `read_saved`); malformed and refused ones are reported by position."""
    total = EventSummary()
    for where, item in read_saved(path):
        summary = process_notification(
            store, item, soft_bounce_limit=soft_bounce_limit, trust=trust, engagement=engagement
        )
        summary.errors = [f"{where}: {e}" for e in summary.errors]
        total += summary
    return total
