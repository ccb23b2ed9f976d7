"""SES event notifications (bounce, complaint, delivery) → subscriber status and the ledger.

Notifications arrive through SQS, either wrapped in an SNS envelope (the event JSON is a
*string* in ``Message``), raw (SNS raw message delivery), or as an EventBridge event
(the event in ``detail``). Parsing is tolerant: ``eventType`` (configuration-set events)
or ``notificationType`` (identity notifications), unknown fields ignored, several
recipients per notification.

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
Every event is recorded. Each recipient's event is applied in one transaction
(``Store.apply_event``); SQS delivers at least once, so an event already recorded for the
same (type, address, message id) is skipped: processing a redelivered message changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.audience.lifecycle import SOFT_BOUNCE_LIMIT, event_decision
from newsletter.errors import NewsletterError
from newsletter.interrupts import GracefulStop

if TYPE_CHECKING:
    from newsletter.store import Store

log = logging.getLogger(__name__)

_BOUNCE_DETAIL = ("bounceType", "bounceSubType", "feedbackId", "timestamp", "reportingMTA", "remoteMtaIp")
_RECIPIENT_DETAIL = ("action", "status", "diagnosticCode")


class EventsError(NewsletterError):
    """The queue cannot be read (wrong URL, no access, no network)."""


class MalformedNotification(ValueError):
    """The message is not an SES notification this module can act on."""


@dataclass
class EventSummary:
    """What processing did. Counts are per recipient, except `processed` and `malformed` (per message)."""

    processed: int = 0  # notifications acted on (or knowingly ignored)
    bounced: int = 0  # addresses suppressed as bounced (permanent, or over the soft-bounce limit)
    soft_bounces: int = 0  # transient/undetermined bounces counted
    complained: int = 0  # addresses suppressed as complained
    delivered: int = 0  # recipients reported delivered
    unsubscribed: int = 0  # addresses unsubscribed through SES list management
    duplicates: int = 0  # recipient events already recorded (a redelivered message)
    ignored: int = 0  # notifications of other types (Send, Open, Click, ...) or not for us
    malformed: int = 0
    errors: list[str] = field(default_factory=list)  # why each malformed message was set aside

    def __iadd__(self, other: EventSummary) -> EventSummary:
        for f in fields(self):
            if f.name == "errors":
                self.errors.extend(other.errors)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def line(self) -> str:
        return (
            f"{self.processed} processed, {self.bounced} bounced, {self.soft_bounces} soft bounces, "
            f"{self.complained} complained, {self.delivered} delivered, {self.ignored} ignored, "
            f"{self.duplicates} duplicates, {self.malformed} malformed"
            + (f", {self.unsubscribed} unsubscribed" if self.unsubscribed else "")
        )


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Notification:
    """One SES event, reduced to what is acted on."""

    type: str  # "Bounce", "Complaint", "Delivery", or another SES event type
    message_id: str | None
    recipients: tuple[str, ...]
    detail: dict[str, Any]  # per notification, stored with each recipient's event
    per_recipient: dict[str, dict[str, Any]] = field(default_factory=dict)
    bounce_type: str | None = None
    feedback_type: str | None = None
    unsubscribe_all: bool = False  # a Subscription event that opts out of everything


def parse_notification(body: str | bytes | dict[str, Any]) -> Notification | None:
    """The SES event in `body`, or None for a notification that is not an event (SNS housekeeping).

    Raises MalformedNotification with the reason.
    """
    event = _unwrap(body)
    if event is None:
        return None
    kind = event.get("eventType") or event.get("notificationType")
    if not isinstance(kind, str) or not kind:
        raise MalformedNotification("expected 'eventType' or 'notificationType', found neither")
    mail = event.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    message_id = mail.get("messageId") if isinstance(mail.get("messageId"), str) else None
    base = {"eventType": kind}
    for key in ("timestamp", "source"):
        if isinstance(mail.get(key), str):
            base[f"mail_{key}"] = mail[key]
    if isinstance(mail.get("tags"), dict):
        base["tags"] = mail["tags"]

    if kind == "Bounce":
        bounce = _section(event, "bounce")
        per = _recipients(bounce, "bouncedRecipients", "bounce")
        bounce_type = (
            bounce.get("bounceType") if isinstance(bounce.get("bounceType"), str) else "Undetermined"
        )
        detail = {**base, **{k: bounce[k] for k in _BOUNCE_DETAIL if k in bounce}}
        return Notification(kind, message_id, tuple(per), detail, per, bounce_type=bounce_type)
    if kind == "Complaint":
        complaint = _section(event, "complaint")
        per = _recipients(complaint, "complainedRecipients", "complaint")
        feedback = complaint.get("complaintFeedbackType")
        feedback = feedback if isinstance(feedback, str) else None
        keys = ("complaintFeedbackType", "complaintSubType", "feedbackId", "timestamp", "userAgent")
        detail = {**base, **{k: complaint[k] for k in keys if k in complaint}}
        return Notification(kind, message_id, tuple(per), detail, per, feedback_type=feedback)
    if kind == "Delivery":
        delivery = _section(event, "delivery")
        raw = delivery.get("recipients")
        if not isinstance(raw, list) or not raw:
            raise MalformedNotification("delivery.recipients: expected a list of addresses, got none")
        recipients = tuple(dict.fromkeys(a for a in (_address(r) for r in raw) if a))
        if not recipients:
            raise MalformedNotification(f"delivery.recipients: expected addresses, got {raw!r:.80}")
        keys = ("timestamp", "processingTimeMillis", "smtpResponse", "reportingMTA")
        detail = {**base, **{k: delivery[k] for k in keys if k in delivery}}
        return Notification(kind, message_id, recipients, detail)
    destination = mail.get("destination")
    recipients = tuple(a for a in (_address(r) for r in destination or () if isinstance(r, str)) if a)
    recipients = recipients if isinstance(destination, list) else ()
    if kind == "Subscription":
        subscription = event.get("subscription")
        new = subscription.get("newTopicPreferences") if isinstance(subscription, dict) else None
        everything = isinstance(new, dict) and new.get("unsubscribeAll") is True
        return Notification(kind, message_id, recipients, base, unsubscribe_all=everything)
    return Notification(kind, message_id, recipients, base)


def _unwrap(body: str | bytes | dict[str, Any]) -> dict[str, Any] | None:
    """The SES event inside an SQS body: SNS envelope, EventBridge event, or the event itself."""
    event: Any = body
    for _ in range(3):  # envelope → event; never loop on a pathological self-nesting body
        if isinstance(event, (str, bytes)):
            try:
                event = json.loads(event)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedNotification(f"not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise MalformedNotification(f"expected a JSON object, got {type(event).__name__}")
        sns_type = event.get("Type")
        if sns_type in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            # Never confirm a subscription automatically: that is for the operator to do.
            log.warning("SNS %s for topic %s ignored", sns_type, event.get("TopicArn"))
            return None
        if sns_type == "Notification" and "Message" in event:
            event = event["Message"]
            continue
        if isinstance(event.get("detail"), dict) and "detail-type" in event:
            event = event["detail"]
            continue
        if event.get("notificationType") == "AmazonSnsSubscriptionSucceeded":
            return None
        return event
    raise MalformedNotification("expected an SES event, found envelopes nested too deep")


def _section(event: dict[str, Any], key: str) -> dict[str, Any]:
    section = event.get(key)
    if not isinstance(section, dict):
        raise MalformedNotification(f"{key}: expected an object, got {type(section).__name__}")
    return section


def _recipients(section: dict[str, Any], key: str, where: str) -> dict[str, dict[str, Any]]:
    raw = section.get(key)
    if not isinstance(raw, list) or not raw:
        raise MalformedNotification(f"{where}.{key}: expected a list of recipients, got none")
    found: dict[str, dict[str, Any]] = {}
    for item in raw:
        address = _address(item.get("emailAddress")) if isinstance(item, dict) else _address(item)
        if address:
            extra = {k: item[k] for k in _RECIPIENT_DETAIL if isinstance(item, dict) and k in item}
            found.setdefault(address, extra)
    if not found:
        raise MalformedNotification(f"{where}.{key}: expected entries with 'emailAddress', got {raw!r:.80}")
    return found


def _address(value: Any) -> str | None:
    """The bare address from 'a@b' or 'Name <a@b>'."""
    if not isinstance(value, str):
        return None
    address = parseaddr(value)[1].strip()
    return address if "@" in address else None


# --------------------------------------------------------------------------- acting


def process_notification(
    store: Store, body: str | bytes | dict[str, Any], *, soft_bounce_limit: int = SOFT_BOUNCE_LIMIT
) -> EventSummary:
    """Apply one notification to the store; a malformed one is counted (with its reason), never raised.

    Each recipient's event is applied in one transaction (`Store.apply_event`): a crash
    leaves it either fully applied (a redelivery is then skipped as a duplicate) or not
    at all (a redelivery applies it).
    """
    summary = EventSummary()
    try:
        notification = parse_notification(body)
    except MalformedNotification as exc:
        summary.malformed = 1
        summary.errors.append(str(exc))
        return summary
    summary.processed = 1
    now = datetime.now(UTC)
    if notification is not None and notification.type == "Subscription" and notification.unsubscribe_all:
        # Only when SES manages a contact list too: its own unsubscribe must be honoured here.
        for address in notification.recipients:
            result = store.apply_event(
                "subscription",
                address,
                notification.message_id,
                notification.detail,
                decide=event_decision("unsubscribed", "unsubscribe (SES list management)", now=now),
            )
            summary.duplicates += result.duplicate
            summary.unsubscribed += result.changed
        return summary
    if notification is None or notification.type not in ("Bounce", "Complaint", "Delivery"):
        summary.ignored = 1
        if notification is not None:
            store.apply_event(
                notification.type.lower(),
                _first(notification.recipients),
                notification.message_id,
                notification.detail,
            )
        return summary
    kind = notification.type.lower()
    for address in notification.recipients:
        detail = {**notification.detail, **notification.per_recipient.get(address, {})}
        effect = _effect(notification, detail, now, soft_bounce_limit)
        result = store.apply_event(kind, address, notification.message_id, detail, **effect)
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


def _effect(
    notification: Notification, detail: dict[str, Any], now: datetime, soft_bounce_limit: int
) -> dict[str, Any]:
    """What a bounce, complaint or delivery does for one recipient (`Store.apply_event`'s options).

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


def _first(items: tuple[str, ...]) -> str | None:
    return items[0] if items else None


# --------------------------------------------------------------------------- sources


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
    except ValueError:
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


def import_file(store: Store, path: Path, *, soft_bounce_limit: int = SOFT_BOUNCE_LIMIT) -> EventSummary:
    """Process saved notifications (see `read_saved`); malformed ones are reported by position."""
    total = EventSummary()
    for where, item in read_saved(path):
        summary = process_notification(store, item, soft_bounce_limit=soft_bounce_limit)
        summary.errors = [f"{where}: {e}" for e in summary.errors]
        total += summary
    return total


@dataclass
class PollResult:
    summary: EventSummary
    received: int = 0
    deleted: int = 0
    dead_lettered: int = 0
    failed: int = 0  # messages left in the queue because processing raised (retried later)
    interrupted: bool = False


def poll_queue(
    store: Store,
    queue_url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    once: bool = False,
    wait_seconds: int | None = None,
    visibility_timeout: int | None = None,
    dead_letter_queue_url: str | None = None,
    soft_bounce_limit: int = SOFT_BOUNCE_LIMIT,
    max_batches: int | None = None,
    on_batch: Any = None,
) -> PollResult:
    """Receive SES notifications from SQS (long polling, 10 at a time) and process them.

    A message is deleted only after its changes are committed. A malformed message is
    moved to `dead_letter_queue_url` when given, else left for the queue's own redrive
    policy; either way the loop goes on. `once`: stop at the first empty receive.
    `wait_seconds` is the long-poll wait (default 20, or 1 with `once` so it ends promptly).
    Ctrl-C stops after deleting what was already processed.

    Raises EventsError when the first receive fails (a wrong URL or missing access); later
    failures (the network) are logged and retried with backoff, except with `once`.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    if wait_seconds is None:
        wait_seconds = 1 if once else 20

    client = boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, read_timeout=wait_seconds + 10),
    )
    result = PollResult(EventSummary())
    batches = failures = 0
    if dead_letter_queue_url is None:
        _warn_without_redrive(client, queue_url)
    # The first Ctrl-C lets the batch in hand finish (its messages deleted after the
    # commit), then stops; a receive waits at most `wait_seconds`, so the flag is seen soon.
    stop = threading.Event()
    try:
        with GracefulStop(stop):
            while (max_batches is None or batches < max_batches) and not stop.is_set():
                request: dict[str, Any] = {
                    "QueueUrl": queue_url,
                    "MaxNumberOfMessages": 10,
                    "WaitTimeSeconds": wait_seconds,
                    "AttributeNames": ["ApproximateReceiveCount"],
                }
                if visibility_timeout is not None:
                    request["VisibilityTimeout"] = visibility_timeout
                try:
                    messages = client.receive_message(**request).get("Messages", [])
                except (BotoCoreError, ClientError) as exc:
                    if once or batches == 0:
                        raise EventsError(f"{queue_url}: cannot receive from SQS: {exc}") from None
                    backoff = min(60.0, 2.0 ** min(failures, 6))
                    failures += 1
                    log.warning("SQS receive failed (%s); retrying in %.0f s", exc, backoff)
                    stop.wait(backoff)
                    continue
                failures = 0
                batches += 1
                if not messages:
                    if once:
                        break
                    continue
                result.received += len(messages)
                _process_batch(
                    client, store, queue_url, messages, result, dead_letter_queue_url, soft_bounce_limit
                )
                if on_batch is not None:
                    on_batch(result)
    except KeyboardInterrupt:
        result.interrupted = True
    result.interrupted = result.interrupted or stop.is_set()
    return result


def _warn_without_redrive(client: Any, queue_url: str) -> None:
    """Malformed messages are set aside by a redrive policy; without one they come back forever."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    except (BotoCoreError, ClientError):
        return  # the first receive reports what is wrong with the queue
    if "RedrivePolicy" not in attributes.get("Attributes", {}):
        log.warning(
            "%s has no redrive policy: a malformed message will come back after every visibility "
            "timeout; give --dead-letter-queue-url or set a redrive policy on the queue",
            queue_url,
        )


def _process_batch(
    client: Any,
    store: Store,
    queue_url: str,
    messages: list[dict[str, Any]],
    result: PollResult,
    dead_letter_queue_url: str | None,
    soft_bounce_limit: int,
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    done: list[dict[str, Any]] = []
    try:
        for message in messages:
            try:
                summary = process_notification(
                    store, message.get("Body", ""), soft_bounce_limit=soft_bounce_limit
                )
            except Exception:
                # The database (not the message) failed: leave it in the queue to be retried.
                log.exception(
                    "SQS message %s: processing failed; left in the queue", message.get("MessageId")
                )
                result.failed += 1
                continue
            result.summary += summary
            if summary.malformed:
                log.warning(
                    "SQS message %s: malformed notification: %s",
                    message.get("MessageId"),
                    "; ".join(summary.errors),
                )
                if dead_letter_queue_url is None:
                    continue  # the queue's redrive policy moves it after maxReceiveCount
                try:
                    client.send_message(
                        QueueUrl=dead_letter_queue_url,
                        MessageBody=message.get("Body", ""),
                        MessageAttributes={
                            "error": {"DataType": "String", "StringValue": "; ".join(summary.errors)[:1000]},
                            "source_queue": {"DataType": "String", "StringValue": queue_url},
                        },
                    )
                except (BotoCoreError, ClientError) as exc:
                    log.warning(
                        "dead-letter queue %s: cannot move the message: %s", dead_letter_queue_url, exc
                    )
                    continue  # not deleted: it stays where it is
                result.dead_lettered += 1
            done.append(message)
    finally:
        # Even on Ctrl-C: what was committed must not come back.
        if done:
            result.deleted += _delete(client, queue_url, done)


def _delete(client: Any, queue_url: str, messages: Iterable[dict[str, Any]]) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
    try:
        answer = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except (BotoCoreError, ClientError) as exc:
        log.warning("SQS delete failed: %s; the messages come back and are skipped as duplicates", exc)
        return 0
    for failure in answer.get("Failed", []):
        # The message comes back after its visibility timeout; processing it again is a no-op.
        log.warning("SQS delete failed (%s): %s", failure.get("Code"), failure.get("Message"))
    return len(answer.get("Successful", []))
