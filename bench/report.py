"""Benchmark: opens and clicks stored as SES reports them, then `newsletter report` of the send.

Run from the repository root:  .venv/bin/python bench/report.py [READERS] [EVENTS]

A fresh SQLite store gets READERS (default 20,000) readers of the example issue, all
marked sent (one message id each), then EVENTS (default 4,000) Open and Click events
in SNS envelopes, each its own notification and transaction (as `events poll` applies
them). Prints, next to their goals:
- events stored per second (goal >= 200/s: a 20,000-reader send with half of them
  opening is stored in under a minute);
- seconds to write the issue's report (goal <= 10 s for 20,000 readers), and its size.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.audience.events import process_notification
from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.content.selection import plan
from newsletter.mail.tracking import link_tag
from newsletter.reports.figures import issue_figures
from newsletter.reports.page import issue_page
from newsletter.store import Store, SubscriberRow

REPO = Path(__file__).resolve().parent.parent
ISSUE = "2026-03-17-multilingual-llms"
GOAL_EVENTS = 200  # stored per second
GOAL_REPORT = 10.0  # seconds for 20,000 readers
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
LANGUAGES = ("en", "de", "ar", "zh", "hi")


def envelope(kind: str, message_id: str, sent, after: float, paper: str | None) -> str:
    section = {
        "timestamp": (sent + timedelta(seconds=after)).isoformat().replace("+00:00", "Z"),
        "ipAddress": "192.0.2.1",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
    }
    if paper is not None:
        section["link"] = f"https://digest.example.org/papers/{paper}/"
        section["linkTags"] = {"paper": [link_tag(paper)]}
    record = {
        "eventType": kind,
        "mail": {"messageId": message_id, "timestamp": sent.isoformat().replace("+00:00", "Z")},
        kind.lower(): section,
    }
    return json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": json.dumps(record)})


def main() -> None:
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 4_000
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        settings = load_settings(REPO, env={"NEWSLETTER_DATABASE_URL": url})
        library = load_library(settings)
        papers = [p.id for p in plan(library)[ISSUE]]
        with Store.open(url) as store:
            store.upsert_many(
                SubscriberRow(f"reader{n}@example.com", language=LANGUAGES[n % 5], status="active")
                for n in range(readers)
            )
            store.create_ledger(ISSUE)
            rows = store.ledger(ISSUE)
            store.mark_sent_many(ISSUE, [(d.subscriber_id, f"m{d.subscriber_id}") for d in rows])
            rows = store.ledger(ISSUE)
            bodies = []
            for n in range(count):
                row = rows[(n * 7) % len(rows)]
                if n % 3 == 2:
                    bodies.append(envelope("Click", row.message_id, row.sent_at, 600 + n, papers[n % 12]))
                else:
                    bodies.append(envelope("Open", row.message_id, row.sent_at, 300 + n, None))
            start = time.perf_counter()
            stored = sum(
                s.opens + s.clicks for s in (process_notification(store, b, engagement=True) for b in bodies)
            )
            took = time.perf_counter() - start
            rate = count / took
            verdict = "ok" if rate >= GOAL_EVENTS else "BELOW GOAL"
            print(
                f"events stored: {stored} of {count} in {took:.1f} s = {rate:.0f}/s (goal >= {GOAL_EVENTS}/s) {verdict}"
            )
            start = time.perf_counter()
            page = issue_page(issue_figures(library, store, library.issue(ISSUE)))
            took = time.perf_counter() - start
            verdict = "ok" if took <= GOAL_REPORT * readers / 20_000 else "ABOVE GOAL"
            print(
                f"report of {readers} readers: {took:.2f} s (goal <= {GOAL_REPORT * readers / 20_000:.1f} s) "
                f"{verdict}, {len(page) / 1024:.0f} KiB"
            )
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
