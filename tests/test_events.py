"""SES event notifications: parsing, their effect on a real SQLite store, SQS and SNS through moto."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience.events import import_file, process_notification
from newsletter.audience.lifecycle import change_status, event_decision
from newsletter.audience.notifications import MAX_BODY_BYTES, Notice, Trust, json_depth, parse_notification
from newsletter.audience.sqs import poll_queue
from newsletter.cli import main
from newsletter.store import Store
from tests.support.aws import REGION, moto_server  # noqa: F401 - a fixture
from tests.support.old_databases import undo_after_version_3

FIXTURES = Path(__file__).parent / "fixtures" / "events"


TOPIC = (
    "arn:aws:sns:eu-west-1:123456789012:ses-events"  # every fixture's topic (tests/fixtures/events/README.md)
)
ACCOUNT = "123456789012"
TRUSTED = Trust(frozenset({TOPIC}), ACCOUNT)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def body_of(name: str) -> str:
    """A fixture as the SQS message body (a .txt fixture is the body itself)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return text if name.endswith(".txt") else json.dumps(json.loads(text))


def nested(depth: int, inner: str = "1") -> str:
    return '{"a": ' * depth + inner + "}" * depth


def raw_event(name: str) -> dict:
    """The SES event inside a fixture (unwrapping an SNS envelope)."""
    data = fixture(name)
    return json.loads(data["Message"]) if data.get("Type") == "Notification" else data


ADDRESSES = (
    "gone@example.org",
    "also-gone@example.org",
    "full@example.org",
    "unsure@example.org",
    "angry@example.org",
    "annoyed@example.org",
    "happy@example.org",
    "reader1@example.org",
    "reader2@example.org",
    "reader3@example.org",
)


def _open_list(url: str) -> Iterator[Store]:
    with Store.open(url) as store:
        for address in ADDRESSES:
            store.add_subscriber(address, status="active")
        yield store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The list on each back-end: a SQLite file, then a PostgreSQL schema."""
    yield from _open_list(database_url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """The list in a SQLite file, for tests that reach into SQLite itself."""
    yield from _open_list(f"sqlite:///{tmp_path / 'subscribers.db'}")


def status(store: Store, address: str) -> str:
    return store.get_subscriber(address).status


def with_message_id(event: dict, message_id: str) -> dict:
    return {**event, "mail": {**event["mail"], "messageId": message_id}}


# --------------------------------------------------------------------------- parsing and effects


def test_permanent_bounce_in_an_sns_envelope_suppresses_every_recipient(store: Store) -> None:
    summary = process_notification(store, json.dumps(fixture("bounce-permanent-sns.json")))
    assert (summary.processed, summary.bounced, summary.malformed) == (1, 2, 0)
    assert status(store, "gone@example.org") == "bounced"
    assert status(store, "also-gone@example.org") == "bounced"  # from '"Also Gone" <also-gone@...>'
    [event] = store.list_events(email="gone@example.org", type="bounce")
    assert event["message_id"] == "0102018e-perm-000000"
    assert event["detail"]["bounceSubType"] == "General"
    assert event["detail"]["diagnosticCode"] == "smtp; 550 5.1.1 user unknown"
    assert "somethingNew" not in event["detail"]  # unknown fields are ignored, not stored
    [change] = store.list_events(email="gone@example.org", type="status")
    assert change["detail"]["reason"] == "permanent bounce (General)"


def test_transient_bounces_suppress_after_the_limit(store: Store) -> None:
    event = fixture("bounce-transient-raw.json")
    for n in (1, 2):
        summary = process_notification(store, with_message_id(event, f"soft-{n}"), soft_bounce_limit=3)
        assert (summary.soft_bounces, summary.bounced) == (1, 0)
        assert status(store, "full@example.org") == "active"
    assert store.get_subscriber("full@example.org").soft_bounces == 2
    third = process_notification(store, with_message_id(event, "soft-3"), soft_bounce_limit=3)
    assert third.bounced == 1 and status(store, "full@example.org") == "bounced"
    assert store.list_events(email="full@example.org", type="bounce")[-1]["detail"]["soft_bounces"] == 3


def test_a_redelivered_notification_changes_nothing(store: Store) -> None:
    body = json.dumps(fixture("bounce-transient-raw.json"))
    first = process_notification(store, body)
    again = process_notification(store, body)
    assert (first.soft_bounces, again.soft_bounces, again.duplicates) == (1, 0, 1)
    assert store.get_subscriber("full@example.org").soft_bounces == 1
    assert len(store.list_events(email="full@example.org", type="bounce")) == 1


def test_undetermined_identity_notification_is_a_soft_bounce(store: Store) -> None:
    summary = process_notification(store, fixture("bounce-undetermined-identity.json"), soft_bounce_limit=1)
    assert (summary.soft_bounces, summary.bounced) == (1, 1)
    assert status(store, "unsure@example.org") == "bounced"


def test_complaint_suppresses_and_is_never_overwritten_by_a_bounce(store: Store) -> None:
    summary = process_notification(store, fixture("complaint-sns.json"))
    assert summary.complained == 2
    assert status(store, "angry@example.org") == "complained"
    assert status(store, "annoyed@example.org") == "complained"
    bounce = raw_event("bounce-permanent-sns.json")
    bounce["bounce"]["bouncedRecipients"] = [{"emailAddress": "angry@example.org"}]
    assert process_notification(store, bounce).bounced == 0
    assert status(store, "angry@example.org") == "complained"


def test_a_not_spam_complaint_is_recorded_only(store: Store) -> None:
    summary = process_notification(store, fixture("complaint-not-spam.json"))
    assert summary.complained == 0 and summary.processed == 1
    assert status(store, "happy@example.org") == "active"
    [event] = store.list_events(email="happy@example.org", type="complaint")
    assert event["detail"]["complaintFeedbackType"] == "not-spam"


def test_delivery_marks_the_ledger(store: Store) -> None:
    store.create_ledger("2026-03-17")
    rows = {d.email: d for d in store.claim_batch("2026-03-17", 100)}
    store.mark_sent("2026-03-17", rows["reader1@example.org"].subscriber_id, "0102018e-deliv-000005")
    store.mark_sent("2026-03-17", rows["reader3@example.org"].subscriber_id, "0102018e-deliv-000006")
    summary = process_notification(store, fixture("delivery-batched.json"))
    assert summary.delivered == 2  # batched recipients, one a "Name <addr>"
    assert process_notification(store, fixture("delivery-eventbridge.json")).delivered == 1
    delivered = {d.email: d.delivered_at for d in store.ledger("2026-03-17")}
    assert delivered["reader1@example.org"] is not None
    assert delivered["reader3@example.org"] is not None
    assert delivered["reader2@example.org"] is None  # its message id was not the notified one
    assert [e["email"] for e in store.list_events(type="delivery")] == [
        "reader1@example.org",
        "reader2@example.org",
        "reader3@example.org",
    ]
    assert all(status(store, a) == "active" for a in ("reader1@example.org", "reader2@example.org"))


def test_other_events_and_sns_housekeeping_are_ignored(store: Store) -> None:
    opened = process_notification(store, fixture("open-ignored.json"))
    confirmation = process_notification(store, fixture("subscription-confirmation.json"))
    assert (opened.ignored, confirmation.ignored, opened.malformed, confirmation.malformed) == (1, 1, 0, 0)
    # engagement is opt-in (`ses.engagement`): with it off, nothing of an open is kept
    assert store.list_events(type="open") == []
    assert all(status(store, a) == "active" for a in ADDRESSES)


@pytest.mark.parametrize(
    ("name", "kind", "address"),
    [
        ("send-raw.json", "send", "reader1@example.org"),
        ("reject-raw.json", "reject", "reader1@example.org"),
        ("delivery-delay-raw.json", "deliverydelay", "reader2@example.org"),
        ("rendering-failure-raw.json", "rendering failure", "reader1@example.org"),
    ],
)
def test_every_other_ses_event_type_is_recorded_once_and_changes_nobody(
    store: Store, name: str, kind: str, address: str
) -> None:
    body = fixture(name)
    assert "aNewMailField" in body["mail"]  # unknown fields do not bother the parser
    first, again = process_notification(store, body), process_notification(store, json.dumps(body))
    assert (first.processed, first.ignored, first.malformed) == (1, 1, 0)
    [event] = store.list_events(type=kind)
    assert (event["email"], event["message_id"]) == (address, body["mail"]["messageId"])
    assert "aNewMailField" not in event["detail"]
    assert all(status(store, a) == "active" for a in ADDRESSES)
    assert store.get_subscriber(address).soft_bounces == 0  # a delivery delay is not a bounce
    assert again.processed == 1


def test_an_ses_list_management_unsubscribe_is_honoured(store: Store) -> None:
    body = fixture("subscription-raw.json")
    summary = process_notification(store, body)
    assert (summary.unsubscribed, summary.processed, summary.malformed) == (1, 1, 0)
    assert status(store, "reader2@example.org") == "unsubscribed"
    assert process_notification(store, body).duplicates == 1
    # A subscription event that does not opt out of everything changes nothing.
    body["subscription"]["newTopicPreferences"]["unsubscribeAll"] = False
    body["mail"]["destination"] = ["reader3@example.org"]
    assert process_notification(store, body).unsubscribed == 0
    assert status(store, "reader3@example.org") == "active"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (json.dumps(fixture("malformed-no-type.json")), "expected 'eventType' or 'notificationType'"),
        (
            json.dumps(fixture("malformed-bounce-without-recipients.json")),
            "bounce.bouncedRecipients: expected a list of recipients, got none",
        ),
        (json.dumps({"eventType": "Complaint", "complaint": "no"}), "complaint: expected an object, got str"),
        (json.dumps({"eventType": "Delivery", "delivery": {"recipients": []}}), "delivery.recipients"),
    ],
)
def test_malformed_notifications_are_counted_with_a_reason(store: Store, body: str, reason: str) -> None:
    summary = process_notification(store, body)
    assert (summary.malformed, summary.processed) == (1, 0)
    assert reason in summary.errors[0]
    assert store.list_events(type="bounce") == []


def test_parse_accepts_bytes_and_raw_events() -> None:
    parsed = parse_notification(json.dumps(raw_event("bounce-permanent-sns.json")).encode())
    assert parsed.type == "Bounce" and parsed.bounce_type == "Permanent"
    assert parsed.recipients == ("gone@example.org", "also-gone@example.org")


# --------------------------------------------------------------------------- messages as they really arrive

NOTICES = [
    ("validation-notice-sns.json", "SES topic validation"),
    ("validation-notice-raw.txt", "SES topic validation"),
    ("subscription-confirmation.json", "SNS SubscriptionConfirmation"),
    ("unsubscribe-confirmation.json", "SNS UnsubscribeConfirmation"),
    ("eventbridge-advisor-recommendation-open.json", "EventBridge 'Advisor Recommendation Status Open'"),
    ("eventbridge-sending-status-disabled.json", "EventBridge 'Sending Status Disabled'"),
    ("eventbridge-sending-status-enabled.json", "EventBridge 'Sending Status Enabled'"),
]


@pytest.mark.parametrize(("name", "kind"), NOTICES)
def test_messages_about_no_mail_are_recognised_and_ignored(store: Store, name: str, kind: str) -> None:
    body = body_of(name)
    notice = parse_notification(body, TRUSTED)
    assert isinstance(notice, Notice) and notice.kind == kind
    summary = process_notification(store, body, trust=TRUSTED)
    assert (summary.processed, summary.ignored, summary.notices) == (1, 1, 1)
    assert (summary.malformed, summary.refused, summary.errors) == (0, 0, [])
    assert store.list_events() == []
    assert all(status(store, a) == "active" for a in ADDRESSES)


def test_the_validation_notice_as_sqs_carries_it(store: Store) -> None:
    """The research sample is an SQS ReceiveMessage answer; its Body is what the poller reads."""
    answer = fixture("validation-notice-sns.json")
    assert answer["Message"] == "Successfully validated SNS topic for Amazon SES event publishing."
    assert (FIXTURES / "validation-notice-raw.txt").read_text(encoding="utf-8") == answer["Message"]
    # Bytes, as a saved body may be, and with the whitespace an editor adds.
    assert process_notification(store, answer["Message"].encode() + b"\n").notices == 1


def test_an_eventbridge_mail_event_is_still_applied(store: Store) -> None:
    assert process_notification(store, fixture("delivery-eventbridge.json"), trust=TRUSTED).delivered == 1


def test_envelopes_from_other_topics_or_accounts_are_refused(store: Store) -> None:
    forged = body_of("forged-topic-bounce-sns.json")
    refused = process_notification(store, forged, trust=TRUSTED)
    assert (refused.refused, refused.processed, refused.bounced) == (1, 0, 0)
    assert "TopicArn: expected arn:aws:sns:eu-west-1:123456789012:ses-events, got" in refused.errors[0]
    assert "210987654321" in refused.errors[0]
    assert status(store, "gone@example.org") == "active" and store.list_events() == []

    # The account alone is enough to refuse another account's topic, and its account events.
    by_account = Trust(account_id=ACCOUNT)
    assert process_notification(store, forged, trust=by_account).refused == 1
    elsewhere = {**fixture("eventbridge-sending-status-disabled.json"), "account": "210987654321"}
    assert (
        "account: expected 123456789012, got '210987654321'"
        in (process_notification(store, elsewhere, trust=by_account).errors[0])
    )
    # A confirmation for another topic is refused too: it says someone else subscribed this queue.
    other = {**fixture("subscription-confirmation.json"), "TopicArn": TOPIC.replace("ses-events", "other")}
    assert process_notification(store, other, trust=TRUSTED).refused == 1

    # The allowed topic is applied; without settings every topic is (the queue policy decides).
    assert process_notification(store, body_of("bounce-permanent-sns.json"), trust=TRUSTED).bounced == 2
    assert process_notification(store, forged).duplicates == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 200_000 + "]" * 200_000, "expected at most 262144 bytes"),
        ("[" * 100_000 + "]" * 100_000, "expected JSON nested at most 64 deep, got 100000"),
        (nested(65).encode(), "expected JSON nested at most 64 deep, got 65"),
        (json.dumps({"eventType": "Bounce", "pad": "x" * MAX_BODY_BYTES}), "expected at most 262144 bytes"),
        (
            json.dumps({**fixture("bounce-permanent-sns.json"), "Message": "[" * 50_000 + "]" * 50_000}),
            "expected JSON nested at most 64 deep, got 50000",
        ),
    ],
    ids=["200k-brackets", "100k-brackets", "65-objects", "oversized", "deep-inside-an-envelope"],
)
def test_oversized_or_deep_json_is_malformed_not_a_crash(
    store: Store, body: str | bytes, reason: str
) -> None:
    summary = process_notification(store, body)
    assert (summary.malformed, summary.processed) == (1, 0)
    assert reason in summary.errors[0]


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(nested(64)) == 64
    assert json_depth(json.dumps({"a": "[[[[{{{{", "b": ['\\"]]]', {"c": []}]})) == 4
    assert json_depth("") == 0
    # 64 levels is still an event: the limit is above any real SES event.
    event = raw_event("bounce-permanent-sns.json")
    event["mail"]["tags"]["deep"] = json.loads(nested(55))
    assert parse_notification(json.dumps(event)).type == "Bounce"


def test_events_import_of_a_deeply_nested_file_reports_it(tmp_path: Path) -> None:
    from newsletter.store import Store as _Store

    root = _newsletter_folder(tmp_path)
    _Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}").close()
    saved = tmp_path / "saved.json"
    saved.write_text(
        "[" * 200_000 + "]" * 200_000 + "\n" + body_of("complaint-sns.json") + "\n", encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["--root", str(root), "events", "import", str(saved)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    assert f"Error: {saved}:1: expected at most 262144 bytes" in result.output
    assert "1 processed" in result.output


def test_events_settings(tmp_path: Path) -> None:
    from newsletter.config import load_settings
    from newsletter.errors import NewsletterError

    repo_toml = Path(__file__).parent / "fixtures" / "good" / "digest" / "newsletter.toml"
    base = repo_toml.read_text(encoding="utf-8")
    (tmp_path / "newsletter.toml").write_text(
        base + f'\n[events]\ntopic_arns = ["{TOPIC}"]\naccount_id = "{ACCOUNT}"\n', encoding="utf-8"
    )
    settings = load_settings(tmp_path, env={})
    assert (settings.events.topic_arns, settings.events.account_id) == ((TOPIC,), ACCOUNT)
    other = "arn:aws:sns:eu-west-1:210987654321:ses-events"
    assert load_settings(
        tmp_path, env={"NEWSLETTER_EVENTS_TOPIC_ARNS": f"{TOPIC}, {TOPIC}-2"}
    ).events.topic_arns == (
        TOPIC,
        f"{TOPIC}-2",
    )
    (tmp_path / "newsletter.toml").write_text(
        base + f'\n[events]\ntopic_arns = ["{other}", "ses-events"]\naccount_id = {ACCOUNT}\n',
        encoding="utf-8",
    )
    with pytest.raises(NewsletterError) as problems:
        load_settings(tmp_path, env={})
    message = str(problems.value)
    assert "events.topic_arns: expected a list of SNS topic ARNs like" in message
    assert "events.account_id: expected an AWS account id of 12 digits, as text, got" in message
    (tmp_path / "newsletter.toml").write_text(
        base + f'\n[events]\ntopic_arns = ["{other}"]\naccount_id = "{ACCOUNT}"\n', encoding="utf-8"
    )
    with pytest.raises(NewsletterError, match=r"events\.topic_arns: expected topics of account 123456789012"):
        load_settings(tmp_path, env={})


# --------------------------------------------------------------------------- one transaction per event


def break_commits(database: Path) -> None:
    """Make every COMMIT that recorded an event fail, for real, inside SQLite.

    The trigger inserts a row that violates a deferred foreign key: the statements all
    succeed, and the violation is only detected at COMMIT.
    """
    with sqlite3.connect(database) as conn:
        conn.executescript(
            """
            CREATE TABLE commit_guard (
                ref INTEGER REFERENCES subscribers(id) DEFERRABLE INITIALLY DEFERRED
            );
            CREATE TRIGGER fail_commit AFTER INSERT ON events
            BEGIN INSERT INTO commit_guard VALUES (-1); END;
            """
        )


def mend_commits(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        conn.executescript("DROP TRIGGER fail_commit; DROP TABLE commit_guard;")


@pytest.mark.parametrize(
    ("name", "address", "field", "before"),
    [
        ("bounce-transient-raw.json", "full@example.org", "soft_bounces", 0),
        ("bounce-permanent-sns.json", "gone@example.org", "status", "active"),
        ("complaint-sns.json", "angry@example.org", "status", "active"),
    ],
)
def test_a_failing_commit_leaves_nothing_half_applied(
    sqlite_store: Store, tmp_path: Path, name: str, address: str, field: str, before: object
) -> None:
    store = sqlite_store
    database = tmp_path / "subscribers.db"
    body = json.dumps(fixture(name))
    break_commits(database)
    with pytest.raises(Exception, match="FOREIGN KEY constraint failed"):
        process_notification(store, body, soft_bounce_limit=1)
    # Neither the count, nor the status, nor any event: the whole change was rolled back.
    assert getattr(store.get_subscriber(address), field) == before
    assert store.get_subscriber(address).soft_bounces == 0
    assert store.list_events() == []

    mend_commits(database)  # SQS redelivers the message: it is applied exactly once
    for _ in range(2):
        process_notification(store, body, soft_bounce_limit=3)
    subscriber = store.get_subscriber(address)
    assert subscriber.soft_bounces == (1 if field == "soft_bounces" else 0)
    assert subscriber.status == ("active" if field == "soft_bounces" else status(store, address))
    assert len(store.list_events(email=address, type=raw_event(name)["eventType"].lower())) == 1


def test_a_soft_bounce_is_counted_once_when_pollers_race(tmp_path: Path) -> None:
    """Eight stores (connections) apply the same redelivered bounce at once: one count, one event."""
    import threading

    url = f"sqlite:///{tmp_path / 'race.db'}"
    with Store.open(url) as first:
        first.add_subscriber("full@example.org", status="active")
    body = json.dumps(fixture("bounce-transient-raw.json"))
    barrier = threading.Barrier(8)
    results = []

    def poller() -> None:
        with Store.open(url) as own:
            barrier.wait()
            results.append(process_notification(own, body))

    threads = [threading.Thread(target=poller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted((r.soft_bounces, r.duplicates) for r in results) == [(0, 1)] * 7 + [(1, 0)]
    with Store.open(url) as check:
        assert check.get_subscriber("full@example.org").soft_bounces == 1
        assert len(check.list_events(type="bounce")) == 1


def test_apply_event_rules(store: Store) -> None:
    # Complaint beats bounce; nothing brings a suppressed address back.
    now = datetime.now(UTC)
    store.apply_event(
        "complaint", "angry@example.org", "m-1", {}, decide=event_decision("complained", "x", now=now)
    )
    late = store.apply_event(
        "bounce", "ANGRY@example.org", "m-2", {}, decide=event_decision("bounced", "y", now=now)
    )
    assert (late.duplicate, late.changed, late.status) == (False, False, "complained")
    change_status(store, "gone@example.org", "unsubscribed", "editor")
    back = store.apply_event(
        "x", "gone@example.org", "m-3", {}, decide=event_decision("active", None, now=now)
    )
    assert back.changed is False
    assert status(store, "gone@example.org") == "unsubscribed"
    # Dedupe is on (type, address in any case, message id); no message id: never deduplicated.
    assert store.apply_event("complaint", "Angry@Example.org", "m-1", {}).duplicate is True
    assert store.apply_event("delivery", "angry@example.org", "m-1", {}).duplicate is False
    assert store.apply_event("open", None, None, {}).duplicate is False
    assert store.apply_event("open", None, None, {}).duplicate is False
    unknown = store.apply_event("bounce", "stranger@example.org", "m-4", {}, soft_bounce=True)
    assert (unknown.known, unknown.soft_bounces, unknown.changed) == (False, 0, False)
    # A status change is recorded as its own event, as every status change is.
    [change] = store.list_events(email="angry@example.org", type="status")
    assert change["detail"] == {"from": "active", "to": "complained", "reason": "x"}


def test_a_delivery_restarts_the_soft_bounce_count(store: Store) -> None:
    store.create_ledger("2026-03-17")
    row = next(d for d in store.claim_batch("2026-03-17", 100) if d.email == "full@example.org")
    store.mark_sent("2026-03-17", row.subscriber_id, "m-delivered")
    event = fixture("bounce-transient-raw.json")
    for n in (1, 2):
        process_notification(store, with_message_id(event, f"soft-{n}"), soft_bounce_limit=3)
    assert store.get_subscriber("full@example.org").soft_bounces == 2
    delivery = {
        "eventType": "Delivery",
        "mail": {"messageId": "m-delivered"},
        "delivery": {"recipients": ["full@example.org"]},
    }
    assert process_notification(store, delivery).delivered == 1
    assert store.get_subscriber("full@example.org").soft_bounces == 0
    first = next(d for d in store.ledger("2026-03-17") if d.email == "full@example.org").delivered_at
    assert first is not None
    # Two more soft bounces after the delivery: still under the limit of 3.
    for n in (3, 4):
        process_notification(store, with_message_id(event, f"soft-{n}"), soft_bounce_limit=3)
    assert status(store, "full@example.org") == "active"


def test_an_old_database_gains_the_message_id_index(tmp_path: Path) -> None:
    from newsletter.store import SCHEMA_VERSION

    database = tmp_path / "old.db"
    with Store.open(f"sqlite:///{database}"):
        pass
    with sqlite3.connect(database) as conn:  # back to what version 1 looked like
        conn.execute("DROP INDEX ix_events_message_id")
        undo_after_version_3(conn)
        conn.execute("UPDATE schema_version SET version = 1")
    with Store.open(f"sqlite:///{database}") as store:
        store.add_subscriber("full@example.org", status="active")
        process_notification(store, fixture("bounce-transient-raw.json"))
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        plan = " ".join(
            str(row)
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM events WHERE message_id = ? AND type = ?", ("m", "bounce")
            )
        )
    assert "ix_events_message_id" in plan


# --------------------------------------------------------------------------- events import


def test_import_a_json_list(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "saved.json"
    path.write_text(
        json.dumps([fixture("bounce-permanent-sns.json"), fixture("complaint-sns.json")]), encoding="utf-8"
    )
    summary = import_file(store, path)
    assert (summary.processed, summary.bounced, summary.complained, summary.malformed) == (2, 2, 2, 0)


def test_events_import_cli_with_json_lines_reports_malformed_lines(tmp_path: Path) -> None:
    root = _newsletter_folder(tmp_path)
    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        store.add_subscriber("gone@example.org", status="active")
        store.add_subscriber("angry@example.org", status="active")
    lines = [
        json.dumps(fixture("bounce-permanent-sns.json")),
        "{broken",
        "",
        json.dumps(fixture("complaint-sns.json")),
    ]
    saved = tmp_path / "saved.jsonl"
    saved.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--root", str(root), "events", "import", str(saved)])
    assert result.exit_code == 1, result.output
    assert f"Error: {saved}:2: not JSON" in result.output
    assert "2 processed, 1 bounced" in result.output and "1 complained" in result.output
    assert "1 malformed" in result.output and "Traceback" not in result.output
    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        assert status(store, "gone@example.org") == "bounced"
        assert status(store, "angry@example.org") == "complained"


def test_events_import_of_a_file_that_is_not_text_fails_clearly(tmp_path: Path) -> None:
    root = _newsletter_folder(tmp_path)
    saved = tmp_path / "saved.json"
    saved.write_bytes(b'[{"eventType": "Bounce"}]\xff\xfe')
    result = CliRunner().invoke(main, ["--root", str(root), "events", "import", str(saved)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {saved}: expected saved SES notifications as UTF-8 JSON, "
        "found a byte that is not UTF-8 at offset 25\n"
    )


# --------------------------------------------------------------------------- newsletter status


def test_status_counts_this_issues_bounces_and_complaints_and_warns(tmp_path: Path) -> None:
    """`newsletter events import`, then `newsletter status`: matched to the issue by message id."""
    from newsletter.store import SubscriberRow

    root = _newsletter_folder(tmp_path)
    url = f"sqlite:///{root / 'subscribers' / 'subscribers.db'}"
    with Store.open(url) as store:
        store.upsert_many(SubscriberRow(email=f"r{i}@example.org", status="active") for i in range(1000))
        for issue in ("2026-03-17", "2026-03-24"):
            store.create_ledger(issue)
            for d in store.claim_batch(issue, 1000):
                store.mark_sent(issue, d.subscriber_id, f"{issue}-{d.email}")

    def bounce(issue: str, address: str, kind: str = "Permanent") -> dict:
        return {"eventType": "Bounce", "mail": {"messageId": f"{issue}-{address}"},
                "bounce": {"bounceType": kind, "bouncedRecipients": [{"emailAddress": address}]}}  # fmt: skip

    def complaint(issue: str, address: str) -> dict:
        return {"eventType": "Complaint", "mail": {"messageId": f"{issue}-{address}"},
                "complaint": {"complainedRecipients": [{"emailAddress": address}]}}  # fmt: skip

    saved = tmp_path / "saved.json"
    notifications = [
        bounce("2026-03-17", "r1@example.org"),
        bounce("2026-03-17", "r2@example.org", "Transient"),
        complaint("2026-03-17", "r3@example.org"),
        complaint("2026-03-17", "r4@example.org"),
        {
            **complaint("2026-03-17", "r6@example.org"),
            "complaint": {
                "complainedRecipients": [{"emailAddress": "r6@example.org"}],
                "complaintFeedbackType": "not-spam",
            },
        },
        complaint("2026-03-24", "r5@example.org"),  # another issue's message
    ]
    saved.write_text(json.dumps(notifications + notifications[:1]), encoding="utf-8")  # one redelivered
    runner = CliRunner()
    imported = runner.invoke(main, ["--root", str(root), "events", "import", str(saved)])
    assert imported.exit_code == 0, imported.output
    assert "1 duplicates" in imported.output

    result = runner.invoke(main, ["--root", str(root), "status", "2026-03-17"])
    assert result.exit_code == 0, result.output
    assert "Bounces:    1 permanent, 1 transient" in result.output
    assert "Complaints: 2 (0.20% of sent)" in result.output
    assert "Warning: complaint rate 0.20% is above 0.1%" in result.output
    other = runner.invoke(main, ["--root", str(root), "status", "2026-03-24", "--json"])
    figures = json.loads(other.stdout)
    assert (
        figures["bounces"],
        figures["soft_bounces"],
        figures["complaints"],
        figures["complaint_rate"],
    ) == (
        0,
        0,
        1,
        0.001,
    )
    assert "Warning" not in other.output  # 0.1% exactly is not above it


# --------------------------------------------------------------------------- SQS and SNS (moto server)


@pytest.fixture
def sqs(moto_server: str):  # noqa: F811 - the fixture imported above
    import boto3

    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)


def new_queue(sqs, **attributes: str) -> str:
    return sqs.create_queue(QueueName=f"ses-events-{uuid.uuid4().hex[:8]}", Attributes=attributes)["QueueUrl"]


def queued(sqs, queue_url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_poll_once_processes_everything_and_deletes_after_processing(
    store: Store, sqs, caplog: pytest.LogCaptureFixture
) -> None:
    queue = new_queue(sqs)
    names = [
        "bounce-permanent-sns.json",
        "complaint-sns.json",
        "bounce-transient-raw.json",
        "delivery-batched.json",
        "open-ignored.json",
        "subscription-confirmation.json",
    ]
    bodies = [json.dumps(fixture(n)) for n in names]
    bodies.insert(2, "this is not JSON")  # a malformed message in the middle of the batch
    bodies += [json.dumps(with_message_id(raw_event("bounce-transient-raw.json"), f"m{n}")) for n in range(6)]
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    result = poll_queue(
        store,
        queue,
        endpoint_url=sqs.meta.endpoint_url,
        region=REGION,
        once=True,
        wait_seconds=0,
        # long enough that the malformed message does not come back within this poll, even
        # when a loaded machine takes over a second to apply the batch to a server
        visibility_timeout=4,
    )
    s = result.summary
    assert result.received == 13 and result.deleted == 12 and result.failed == 0
    assert (s.processed, s.malformed, s.bounced, s.complained, s.delivered) == (12, 1, 3, 2, 2)
    assert status(store, "gone@example.org") == "bounced"
    assert status(store, "full@example.org") == "bounced"  # 7 soft bounces > 3
    assert status(store, "annoyed@example.org") == "complained"
    # Only the malformed message is left, for the queue's redrive policy.
    assert "has no redrive policy" in caplog.text
    time.sleep(4.2)
    left = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    assert [m["Body"] for m in left] == ["this is not JSON"]


def test_poll_survives_every_fixture(store: Store, sqs) -> None:
    """Every kind of message in one queue: applied, ignored or set aside; none stuck, no failure."""
    queue, dead = new_queue(sqs), new_queue(sqs)
    names = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt"))
    generated = ["[" * 100_000 + "]" * 100_000, nested(65), "x" * 1000]
    bodies = [body_of(n) for n in names] + generated
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    result = poll_queue(
        store,
        queue,
        endpoint_url=sqs.meta.endpoint_url,
        region=REGION,
        once=True,
        wait_seconds=0,
        visibility_timeout=1,
        dead_letter_queue_url=dead,
        trust=TRUSTED,
    )
    s = result.summary
    malformed = [n for n in names if n.startswith("malformed-")]
    assert (result.received, result.deleted, result.failed) == (len(bodies), len(bodies), 0)
    assert (s.notices, s.refused, s.malformed) == (len(NOTICES), 1, len(malformed) + len(generated))
    assert result.dead_lettered == s.refused + s.malformed
    assert s.processed == len(bodies) - s.refused - s.malformed
    assert status(store, "gone@example.org") == "bounced"  # from the allowed topic
    time.sleep(1.2)  # past the visibility timeout: nothing comes back
    assert queued(sqs, queue) == 0
    moved = []
    while batch := sqs.receive_message(
        QueueUrl=dead, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", []):
        moved += batch
        sqs.delete_message_batch(
            QueueUrl=dead,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
        )
    reasons = sorted(m["MessageAttributes"]["error"]["StringValue"] for m in moved)
    assert len(moved) == result.dead_lettered
    assert any(r.startswith("refused: TopicArn") for r in reasons)
    assert any("nested at most 64 deep, got 100000" in r for r in reasons)


def test_a_refused_message_is_never_deleted_without_a_dead_letter_queue(store: Store, sqs) -> None:
    """A typo in the allowed topics must not throw real bounces away: they wait for the redrive policy."""
    queue = new_queue(sqs)
    sqs.send_message(QueueUrl=queue, MessageBody=body_of("bounce-permanent-sns.json"))
    wrong = Trust(frozenset({TOPIC + "-typo"}))
    result = poll_queue(
        store,
        queue,
        endpoint_url=sqs.meta.endpoint_url,
        region=REGION,
        once=True,
        wait_seconds=0,
        visibility_timeout=1,
        trust=wrong,
    )
    assert (result.received, result.deleted, result.summary.refused, result.failed) == (1, 0, 1, 0)
    assert status(store, "gone@example.org") == "active"
    time.sleep(1.2)  # once the settings are right, the same message is applied
    again = poll_queue(
        store,
        queue,
        endpoint_url=sqs.meta.endpoint_url,
        region=REGION,
        once=True,
        wait_seconds=0,
        trust=TRUSTED,
    )
    assert (again.deleted, again.summary.bounced) == (1, 2)
    assert queued(sqs, queue) == 0


def queue_arn(sqs, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_malformed_messages_go_to_the_dead_letter_queue(
    store: Store, sqs, caplog: pytest.LogCaptureFixture
) -> None:
    queue, dead = new_queue(sqs), new_queue(sqs)
    sqs.send_message(QueueUrl=queue, MessageBody="{oops")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(fixture("complaint-sns.json")))
    result = poll_queue(
        store,
        queue,
        endpoint_url=sqs.meta.endpoint_url,
        region=REGION,
        once=True,
        wait_seconds=0,
        dead_letter_queue_url=dead,
    )
    assert (result.dead_lettered, result.deleted, result.summary.complained) == (1, 2, 2)
    with_policy = new_queue(
        sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": queue_arn(sqs, dead), "maxReceiveCount": "3"})
    )
    caplog.clear()
    poll_queue(
        store, with_policy, endpoint_url=sqs.meta.endpoint_url, region=REGION, once=True, wait_seconds=0
    )
    assert "redrive policy" not in caplog.text
    assert queued(sqs, queue) == 0
    [moved] = sqs.receive_message(QueueUrl=dead, MessageAttributeNames=["All"])["Messages"]
    assert moved["Body"] == "{oops"
    assert "not JSON" in moved["MessageAttributes"]["error"]["StringValue"]


def test_a_message_whose_processing_fails_stays_in_the_queue(
    store: Store,
    sqs,
    tmp_path: Path,
) -> None:
    queue = new_queue(sqs)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(fixture("bounce-permanent-sns.json")))
    with store.engine.begin() as conn:  # the database fails for real
        conn.exec_driver_sql("ALTER TABLE subscribers RENAME TO elsewhere")
    result = poll_queue(
        store,
        queue,
        endpoint_url=sqs.meta.endpoint_url,
        region=REGION,
        once=True,
        wait_seconds=0,
        visibility_timeout=1,
    )
    assert (result.received, result.failed, result.deleted) == (1, 1, 0)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE elsewhere RENAME TO subscribers")
    time.sleep(1.2)  # the visibility timeout: the message comes back and now succeeds
    again = poll_queue(
        store, queue, endpoint_url=sqs.meta.endpoint_url, region=REGION, once=True, wait_seconds=0
    )
    assert (again.deleted, again.summary.bounced) == (1, 2)
    assert queued(sqs, queue) == 0


@pytest.mark.parametrize("raw_delivery", [False, True])
def test_sns_topic_to_sqs_subscription(store: Store, sqs, raw_delivery: bool) -> None:
    import boto3

    sns = boto3.client("sns", region_name=REGION, endpoint_url=sqs.meta.endpoint_url)
    topic = sns.create_topic(Name=f"ses-events-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = new_queue(sqs)
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)
    if raw_delivery:
        sns.set_subscription_attributes(
            SubscriptionArn=subscription["SubscriptionArn"],
            AttributeName="RawMessageDelivery",
            AttributeValue="true",
        )
    sns.publish(TopicArn=topic, Message=json.dumps(raw_event("bounce-permanent-sns.json")))
    sns.publish(TopicArn=topic, Message=json.dumps(raw_event("complaint-sns.json")))

    result = poll_queue(
        store, queue, endpoint_url=sqs.meta.endpoint_url, region=REGION, once=True, wait_seconds=0
    )
    assert (result.received, result.deleted, result.summary.malformed) == (2, 2, 0)
    assert (result.summary.bounced, result.summary.complained) == (2, 2)
    assert status(store, "also-gone@example.org") == "bounced"
    assert status(store, "angry@example.org") == "complained"


SOME_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/ses-events"


def _newsletter_folder(tmp_path: Path) -> Path:
    """A newsletter folder with the fixture's settings and nothing else (its database made on first use)."""
    root = tmp_path / "nl"
    root.mkdir()
    repo_toml = Path(__file__).parent / "fixtures" / "good" / "digest" / "newsletter.toml"
    (root / "newsletter.toml").write_text(repo_toml.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def test_events_poll_cli(
    tmp_path: Path,
    sqs,
) -> None:
    root = _newsletter_folder(tmp_path)
    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        store.add_subscriber("gone@example.org", status="active")
    queue = new_queue(sqs)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(fixture("bounce-permanent-sns.json")))
    sqs.send_message(QueueUrl=queue, MessageBody="nope")
    result = CliRunner().invoke(
        main,
        [
            "--root",
            str(root),
            "events",
            "poll",
            "--queue-url",
            queue,
            "--once",
            "--wait-seconds",
            "0",
            "--endpoint-url",
            sqs.meta.endpoint_url,
            "--region",
            REGION,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "Received 2, deleted 1: 1 processed, 1 bounced, 0 complained, 0 delivered, 0 ignored, 1 malformed."
        in result.output
    )
    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        assert status(store, "gone@example.org") == "bounced"


def test_events_poll_cli_with_a_missing_queue_fails_clearly(tmp_path: Path, sqs) -> None:
    root = _newsletter_folder(tmp_path)
    missing = f"{sqs.meta.endpoint_url}/123456789012/no-such-queue"
    result = CliRunner().invoke(
        main,
        ["--root", str(root), "events", "poll", "--queue-url", missing, "--once", "--wait-seconds", "0",
         "--endpoint-url", sqs.meta.endpoint_url, "--region", REGION],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"Error: {missing}: cannot receive from SQS:" in result.output
    assert "Traceback" not in result.output


def _start_poller(tmp_path: Path, sqs, wait_seconds: int, *, with_bounce: bool):
    """`newsletter events poll` in a subprocess on a new queue (holding one permanent bounce, if asked)."""
    import os
    import subprocess
    import sys

    root = _newsletter_folder(tmp_path)
    database = root / "subscribers" / "subscribers.db"
    queue = new_queue(sqs)
    if with_bounce:
        with Store.open(f"sqlite:///{database}") as store:
            store.add_subscriber("gone@example.org", status="active")
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(fixture("bounce-permanent-sns.json")))
    env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--root", str(root), "events", "poll",
         "--queue-url", queue, "--wait-seconds", str(wait_seconds), "--endpoint-url", sqs.meta.endpoint_url,
         "--region", REGION],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, queue, database


def _wait_for_the_bounce(process, database: Path) -> None:
    deadline = time.monotonic() + 20
    with Store.open(f"sqlite:///{database}") as store:
        while status(store, "gone@example.org") != "bounced":
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the poller did not process the message"
            time.sleep(0.1)


def test_ctrl_c_stops_the_poller_cleanly(tmp_path: Path, sqs) -> None:
    """`newsletter events poll` in a subprocess: SIGINT ends it with a summary, exit 0."""
    import signal

    process, queue, database = _start_poller(tmp_path, sqs, 1, with_bounce=True)
    try:
        _wait_for_the_bounce(process, database)
        time.sleep(0.3)  # let it delete the message and go back to waiting
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Stopped." in err and "Traceback" not in err
    assert "Received 1, deleted 1: 1 processed, 1 bounced" in out
    assert queued(sqs, queue) == 0


def test_a_second_ctrl_c_quits_the_poller_at_once_and_still_prints_the_summary(tmp_path: Path, sqs) -> None:
    """Two SIGINTs while `events poll` waits on a long poll: it quits without waiting, with its figures."""
    import signal

    process, _, database = _start_poller(tmp_path, sqs, 20, with_bounce=True)
    try:
        _wait_for_the_bounce(process, database)
        time.sleep(0.5)  # back in a 20 s long poll: the first Ctrl-C alone would wait for it
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)  # well before the long poll would end
    finally:
        if process.poll() is None:
            process.kill()
    assert "Aborted!" not in out + err and "Traceback" not in err, err
    assert "Received 1, deleted 1: 1 processed, 1 bounced" in out
    assert "Quit at once. Messages not deleted stay in the queue; run `newsletter events poll` again" in err
    assert process.returncode == 130, (out, err)


def test_two_ctrl_c_while_the_poller_starts_still_print_the_summary(tmp_path: Path, sqs) -> None:
    """Starting takes seconds (boto3, the queue's attributes): Ctrl-C twice then is no bare "Aborted!"."""
    import signal

    process, _, _ = _start_poller(tmp_path, sqs, 20, with_bounce=False)
    try:
        first = process.stderr.readline()  # "Polling …": Ctrl-C is handled from here on
        process.send_signal(signal.SIGINT)
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert first.startswith("Polling "), first
    assert "Aborted!" not in out + err and "Traceback" not in err, err
    assert "Quit at once. Messages not deleted stay in the queue" in err
    assert (
        out
        == "Received 0, deleted 0: 0 processed, 0 bounced, 0 complained, 0 delivered, 0 ignored, 0 malformed.\n"
    )
    assert process.returncode == 130, (out, err)


def test_a_bounce_with_many_recipients_is_one_transaction_through_the_lifecycle(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store  # the failing commit is made inside SQLite
    readers = [f"reader.{n}@example.com" for n in range(1500)]
    for address in readers[:1000]:
        store.add_subscriber(address, status="active")
    change_status(store, readers[0], "complained", "event")  # a complaint is never replaced by a bounce
    change_status(store, readers[1], "unsubscribed", "reader")  # a bounce is stronger than leaving
    event = raw_event("bounce-permanent-sns.json")
    recipients = [{"emailAddress": a} for a in readers]
    recipients.append({"emailAddress": readers[2].upper()})  # the same address twice, in another case
    event["bounce"]["bouncedRecipients"] = recipients
    database = tmp_path / "subscribers.db"

    break_commits(database)
    with pytest.raises(Exception, match="FOREIGN KEY constraint failed"):
        process_notification(store, event)
    assert status(store, readers[5]) == "active" and store.list_events(type="bounce") == []
    mend_commits(database)

    summary = process_notification(store, event)
    # 999 known, active or unsubscribed, became bounced; 500 unknown addresses are recorded only.
    assert (summary.bounced, summary.duplicates, summary.processed) == (999, 1, 1)
    assert [status(store, a) for a in readers[:3]] == ["complained", "bounced", "bounced"]
    assert len(store.list_events(type="bounce")) == 1500
    [change] = store.list_events(email=readers[1], type="status")[-1:]
    assert change["detail"] == {
        "from": "unsubscribed",
        "to": "bounced",
        "reason": "permanent bounce (General)",
    }
    assert store.count_by_status()["bounced"] == 999
    again = process_notification(store, event)
    assert (again.bounced, again.duplicates) == (0, 1501)


def test_a_second_ctrl_c_that_an_import_turns_into_another_error_still_quits_with_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt raised while an import fails can surface as another error (a
    TypeError from deep in the import machinery): after the second Ctrl-C, that is the quit."""
    import os
    import signal

    import newsletter.audience.sqs as sqs_module

    def starting(*args, **kwargs):  # the first thing poll_queue does is import boto3
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: stop after the batch in hand
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the second: quit at once
            time.sleep(1)
        except KeyboardInterrupt:
            raise TypeError("expected a message argument") from None

    monkeypatch.setattr(sqs_module, "poll_queue", starting)
    root = _newsletter_folder(tmp_path)
    result = CliRunner().invoke(main, ["--root", str(root), "events", "poll", "--queue-url", SOME_QUEUE])
    assert result.exit_code == 130, (result.exception, result.output)  # as after any Ctrl-C quit
    assert "Quit at once. Messages not deleted stay in the queue" in result.output
    assert "Received 0, deleted 0: 0 processed" in result.output


def test_an_error_without_a_second_ctrl_c_is_not_taken_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsletter.audience.sqs as sqs_module

    def failing(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(sqs_module, "poll_queue", failing)
    root = _newsletter_folder(tmp_path)
    result = CliRunner().invoke(main, ["--root", str(root), "events", "poll", "--queue-url", SOME_QUEUE])
    assert isinstance(result.exception, TypeError) and "a bug" in str(result.exception)
