"""SES notifications as they arrive: from a message body to one SES event, a notice, or a refusal.

A body reaches the queue in one of these shapes:
- an SNS envelope (``Type``, ``TopicArn``, and the event JSON as a *string* in ``Message``);
- the bare event (SNS raw message delivery), or a notification saved from either;
- an EventBridge event (``detail-type``, ``account``, the event in ``detail``).
Besides mail events, real queues carry messages that are about no mail: SNS
``SubscriptionConfirmation`` and ``UnsubscribeConfirmation``, SES's plain-text
"Successfully validated SNS topic ..." (sent the moment an event destination is added;
bare with raw delivery, inside an envelope without), and account events on a catch-all
EventBridge rule (sending status, advisor recommendations). Those are a `Notice`:
recognised, and ignored.

`Trust` holds the allowed SNS topics and the expected AWS account: an envelope from
another topic or account is refused (`RefusedNotification`). A raw body has no envelope
to check; the queue policy (README) is what keeps other writers out.

Every body is checked before it is decoded: over the SQS maximum (256 KiB) or nested
deeper than `MAX_DEPTH` is malformed. The depth is counted by scanning the brackets
outside strings, because `json.loads` recurses in C and raises RecursionError at about
a thousand levels whatever hooks it is given.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # the SQS maximum message size
MAX_DEPTH = 64  # an SES event nests about 6 deep; an EventBridge event adds one level
VALIDATION_NOTICE = "Successfully validated SNS topic for Amazon SES event publishing."
# EventBridge detail-types of mail events (events-ref-ses); any other (Sending Status *,
# Advisor Recommendation Status *, API calls via CloudTrail) is about the account, not a message.
MAIL_DETAIL_TYPES = frozenset(
    {
        "Email Sent",
        "Email Delivered",
        "Email Bounced",
        "Email Complaint Received",
        "Email Rejected",
        "Email Opened",
        "Email Clicked",
        "Email Rendering Failed",
        "Email Delivery Delayed",
        "Email Subscribed",
    }
)
_SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
_BOUNCE_DETAIL = ("bounceType", "bounceSubType", "feedbackId", "timestamp", "reportingMTA", "remoteMtaIp")
_RECIPIENT_DETAIL = ("action", "status", "diagnosticCode")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class MalformedNotification(ValueError):
    """The message is not an SES notification this module can act on."""


class RefusedNotification(ValueError):
    """The message comes from an SNS topic or AWS account that is not allowed."""


@dataclass(frozen=True)
class Trust:
    """Where notifications may come from. Empty: anywhere (the queue policy decides)."""

    topic_arns: frozenset[str] = frozenset()
    account_id: str | None = None

    def check_topic(self, topic: Any) -> None:
        if self.topic_arns and topic not in self.topic_arns:
            allowed = ", ".join(sorted(self.topic_arns))
            raise RefusedNotification(f"TopicArn: expected {allowed}, got {_shown(topic)}")
        if self.account_id is not None:
            account = topic.split(":")[4] if isinstance(topic, str) and topic.count(":") >= 5 else None
            if account != self.account_id:
                raise RefusedNotification(
                    f"TopicArn: expected a topic of account {self.account_id}, got {_shown(topic)}"
                )

    def check_account(self, account: Any) -> None:
        if self.account_id is not None and account != self.account_id:
            raise RefusedNotification(f"account: expected {self.account_id}, got {_shown(account)}")


ANYWHERE = Trust()


@dataclass(frozen=True)
class Notice:
    """A message about no mail (an SNS confirmation, SES's topic validation, an account event)."""

    kind: str  # e.g. "SNS SubscriptionConfirmation", "SES topic validation", "EventBridge Sending Status Disabled"
    origin: str | None = None  # the topic ARN or account it came from, when it says


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
    # an Open or Click event's own section (time, link, link tags, and the IP address and
    # user agent that `newsletter.audience.engagement` looks at and never stores)
    engagement: dict[str, Any] | None = None


def parse_notification(body: str | bytes | dict[str, Any], trust: Trust = ANYWHERE) -> Notification | Notice:
    """The SES event in `body`, or the `Notice` it is.

    Raises MalformedNotification or RefusedNotification with the reason.
    """
    event = _unwrap(body, trust)
    if isinstance(event, Notice):
        return event
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
    if kind in ("Open", "Click"):
        section = event.get(kind.lower())
        section = section if isinstance(section, dict) else None
        return Notification(kind, message_id, recipients, base, engagement=section)
    if kind == "Subscription":
        subscription = event.get("subscription")
        new = subscription.get("newTopicPreferences") if isinstance(subscription, dict) else None
        everything = isinstance(new, dict) and new.get("unsubscribeAll") is True
        return Notification(kind, message_id, recipients, base, unsubscribe_all=everything)
    return Notification(kind, message_id, recipients, base)


def _unwrap(body: str | bytes | dict[str, Any], trust: Trust) -> dict[str, Any] | Notice:
    """The SES event inside an SQS body: SNS envelope, EventBridge event, or the event itself."""
    if isinstance(body, (str, bytes)):
        if _text(body).strip() == VALIDATION_NOTICE:  # raw delivery: the bare text
            return Notice("SES topic validation")
        event: Any = load_json(body)
    else:
        event = body
    for _ in range(3):  # envelope → event; never loop on a pathological self-nesting body
        if not isinstance(event, dict):
            raise MalformedNotification(f"expected a JSON object, got {type(event).__name__}")
        sns_type = event.get("Type")
        if sns_type in _SNS_TYPES and ("TopicArn" in event or "Message" in event):
            topic = event.get("TopicArn")
            trust.check_topic(topic)
            if sns_type != "Notification":
                # Never confirm a subscription automatically: that is for the operator to do.
                log.warning("SNS %s for topic %s ignored", sns_type, topic)
                return Notice(f"SNS {sns_type}", topic if isinstance(topic, str) else None)
            message = event.get("Message")
            if not isinstance(message, str):
                raise MalformedNotification(
                    f"Message: expected the event as JSON text, got {_shown(message)}"
                )
            if message.strip() == VALIDATION_NOTICE:
                return Notice("SES topic validation", topic if isinstance(topic, str) else None)
            event = load_json(message)
            continue
        if "detail-type" in event and "detail" in event:
            trust.check_account(event.get("account"))
            detail_type = event["detail-type"]
            if detail_type not in MAIL_DETAIL_TYPES:
                account = event.get("account")
                return Notice(
                    f"EventBridge {_shown(detail_type)}", account if isinstance(account, str) else None
                )
            event = event["detail"]
            continue
        if event.get("notificationType") == "AmazonSnsSubscriptionSucceeded":
            return Notice("SES feedback subscription")
        return event
    raise MalformedNotification("expected an SES event, found envelopes nested too deep")


def load_json(body: str | bytes) -> Any:
    """`body` decoded, unless it is over the SQS maximum or nested deeper than MAX_DEPTH."""
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise MalformedNotification(f"expected at most {MAX_BODY_BYTES} bytes (the SQS maximum), got {size}")
    text = _text(body)
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise MalformedNotification(f"expected JSON nested at most {MAX_DEPTH} deep, got {depth}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedNotification(f"not JSON: {exc}") from None


def json_depth(text: str) -> int:
    """How deep the arrays and objects of JSON `text` nest, counted without recursion."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(itertools.accumulate(1 if b in "[{" else -1 for b in brackets)))


def _text(body: str | bytes) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNotification(f"not JSON: not UTF-8 at byte {exc.start}") from None


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
    address = value.strip()
    if any(
        c in address for c in '<>"(), \t'
    ):  # a display name or comment: the usual bare one needs no parsing
        address = parseaddr(value)[1].strip()
    return address if "@" in address else None


def _shown(value: Any) -> str:
    return "none" if value is None else repr(value)[:120]
