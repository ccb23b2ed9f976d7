"""Benchmark: SES bounce notifications applied to a fresh SQLite store.

Run from the repository root:  .venv/bin/python bench/events.py [RECIPIENTS] [SINGLES]

Prints, next to their goals:
- single-recipient events/s: SINGLES (default 2,000) permanent bounces, each its own
  notification in an SNS envelope (as the queue brings them), each its own transaction;
- recipient updates/s for ONE bounce with RECIPIENTS (default 20,000) recipients, every
  one an active subscriber (one transaction for all of them). Goal: >= 20,000/s; a
  transaction per recipient took 87 s for 20,000 (230/s);
- for reference, the same updates one transaction per recipient (`Store.apply_event`),
  on the first 2,000 addresses of another list.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.audience.events import process_notification
from newsletter.audience.imports import import_csv
from newsletter.audience.lifecycle import event_decision
from newsletter.store import Store

GOAL_UPDATES = 20_000  # recipient updates per second for one large bounce
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"


def subscribers(path: Path, groups: dict[str, int]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "status"])
        for group, n in groups.items():
            writer.writerows([f"{group}.{i}@example.org", "active"] for i in range(n))


def bounce(message_id: str, addresses: list[str]) -> dict:
    """An SES event-publishing Permanent bounce (the AWS example's shape)."""
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": a,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1",
                }
                for a in addresses
            ],
            "timestamp": "2026-03-17T09:00:04.000Z",
            "feedbackId": f"feedback-{message_id}",
            "reportingMTA": "dsn; a1-2.smtp-out.eu-west-1.amazonses.com",
        },
        "mail": {
            "timestamp": "2026-03-17T09:00:00.000Z",
            "source": "Digest <digest@example.org>",
            "sendingAccountId": "123456789012",
            "messageId": message_id,
            "destination": addresses,
            "tags": {"ses:configuration-set": ["newsletter"]},
        },
    }


def envelope(event: dict, n: int) -> str:
    return json.dumps(
        {"Type": "Notification", "MessageId": f"sns-{n}", "TopicArn": TOPIC, "Message": json.dumps(event)}
    )


def main() -> None:
    recipients = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    singles = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    reference = min(2_000, recipients)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "subscribers.csv"
        subscribers(csv_path, {"single": singles, "bulk": recipients, "each": reference})
        with Store.open(f"sqlite:///{tmp}/bench.db") as store:
            import_csv(store, csv_path)

            bodies = [envelope(bounce(f"single-{i}", [f"single.{i}@example.org"]), i) for i in range(singles)]
            start = time.perf_counter()
            bounced = sum(process_notification(store, body).bounced for body in bodies)
            elapsed = time.perf_counter() - start
            print(
                f"single-recipient events: {singles} in {elapsed:6.2f} s = {singles / elapsed:9,.0f} events/s "
                f"({bounced} bounced; one transaction each)"
            )

            # A notification this large cannot come through SQS (256 KiB; SES sends to at most
            # 50 recipients per message): it is what `events import` of a saved file meets.
            big = bounce("bulk-1", [f"bulk.{i}@example.org" for i in range(recipients)])
            start, cpu = time.perf_counter(), time.process_time()
            summary = process_notification(store, big)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            rate = recipients / elapsed
            print(
                f"one {recipients:,}-recipient bounce: {elapsed:6.2f} s = {rate:9,.0f} recipient updates/s "
                f"(goal >= {GOAL_UPDATES:,}/s: {'met' if rate >= GOAL_UPDATES else 'NOT met'}; before: 87 s, 230/s; "
                f"{summary.bounced} bounced; {cpu:.2f} s of this process's CPU time = {recipients / cpu:,.0f}/s, "
                "which a shared machine slows less than the wall clock)"
            )

            now = datetime.now(UTC)
            decide = event_decision("bounced", "permanent bounce (General)", now=now)
            start = time.perf_counter()
            for i in range(reference):
                store.apply_event("bounce", f"each.{i}@example.org", "each-1", {}, decide=decide)
            elapsed = time.perf_counter() - start
            print(
                f"reference, one transaction per recipient: {reference} in {elapsed:6.2f} s = "
                f"{reference / elapsed:9,.0f} recipient updates/s"
            )
            counts = store.count_by_status()
            print(f"database: {counts['bounced']} bounced, {counts['active']} active")


if __name__ == "__main__":
    main()
