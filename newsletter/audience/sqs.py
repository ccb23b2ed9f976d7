"""SES notifications from SQS: long polling, and deleting only what was saved.

A message is deleted once its changes are committed, or once it is known to need
nothing (a notice, an event type that changes nobody, a duplicate). A malformed
message, or one refused because it comes from another SNS topic or account, is set
aside: moved to the dead-letter queue when one is given, else left for the queue's
redrive policy. Refused messages are never deleted: a mistyped topic in the settings
would otherwise throw away every real bounce, while a dead-letter queue keeps them to
be redriven once the settings are right.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.audience.events import EventSummary, process_notification
from newsletter.audience.lifecycle import SOFT_BOUNCE_LIMIT
from newsletter.audience.notifications import ANYWHERE, Trust
from newsletter.errors import NewsletterError
from newsletter.interrupts import GracefulStop

if TYPE_CHECKING:
    from newsletter.store import Store

log = logging.getLogger(__name__)


class EventsError(NewsletterError):
    """The queue cannot be read (wrong URL, no access, no network)."""


@dataclass
class PollResult:
    """What one `poll_queue` run received, and what became of it."""

    summary: EventSummary
    received: int = 0
    deleted: int = 0
    dead_lettered: int = 0
    failed: int = 0  # messages left in the queue because processing raised (retried later)
    interrupted: bool = False
    quit_at_once: bool = False  # a second Ctrl-C: the batch in hand may be left for the next poll


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
    engagement: bool = False,
    trust: Trust = ANYWHERE,
    max_batches: int | None = None,
    on_batch: Any = None,
    stop_event: threading.Event | None = None,
) -> PollResult:
    """Receive SES notifications from SQS (long polling, 10 at a time) and process them.

    A message is deleted only after its changes are committed. A malformed or refused
    message (see `trust`) is moved to `dead_letter_queue_url` when given, else left for the
    queue's own redrive policy; either way the loop goes on. `once`: stop at the first empty receive.
    `wait_seconds` is the long-poll wait (default 20, or 1 with `once` so it ends promptly).
    Ctrl-C stops after deleting what was already processed; `stop_event` (set by a caller's
    own Ctrl-C handling, even before this function starts) stops the same way.

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
    stop = stop_event if stop_event is not None else threading.Event()
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
                    client,
                    store,
                    queue_url,
                    messages,
                    result,
                    dead_letter_queue_url,
                    {"soft_bounce_limit": soft_bounce_limit, "trust": trust, "engagement": engagement},
                )
                if on_batch is not None:
                    on_batch(result)
    except KeyboardInterrupt:
        result.interrupted = result.quit_at_once = True
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
    options: dict[str, Any],
) -> None:
    """Process `messages`; delete those applied or needing nothing, set the others aside."""
    from botocore.exceptions import BotoCoreError, ClientError

    done: list[dict[str, Any]] = []
    try:
        for message in messages:
            try:
                summary = process_notification(store, message.get("Body", ""), **options)
            except Exception:
                # The database (not the message) failed: leave it in the queue to be retried.
                log.exception(
                    "SQS message %s: processing failed; left in the queue", message.get("MessageId")
                )
                result.failed += 1
                continue
            result.summary += summary
            if summary.set_aside:
                log.warning(
                    "SQS message %s: %s notification: %s",
                    message.get("MessageId"),
                    "refused" if summary.refused else "malformed",
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
