"""Sending an issue: the ledger, pacing, retries, stops, resumes, and the send/status commands.

Every test sends the real rendered fixture issue through a real transport: memory (which
keeps the exact bytes), the outbox folder, moto in server mode, or the local SES stub
(for quotas, throttling and pauses, which moto lacks). Every test that uses the store runs
twice: on a SQLite file and on a PostgreSQL schema (skipped, with one line, without a server).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience.lifecycle import change_status
from newsletter.cli import main
from newsletter.config import SesSettings, Settings, load_settings
from newsletter.content.library import Library, load_library
from newsletter.delivery.loop import MAX_ATTEMPTS
from newsletter.delivery.plan import TEST_PREFIX, build_template, plan_send
from newsletter.delivery.sending import send_issue, send_test
from newsletter.delivery.status import issue_status
from newsletter.delivery.transports import Outcome, StopSending, make_transport
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.delivery.transports.ses import SesTransport
from newsletter.store import Store
from newsletter.tokens import UNSUBSCRIBE, read_token
from tests.support.aws import FAKE_AWS_ENV, SesStub, moto_sent_messages, verify_identity
from tests.support.project import make_newsletter
from tests.support.sending import ISSUE, SECRET, add_people, parse

SENDER = "digest@example.org"


# --------------------------------------------------------------------------- set-up


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    return SECRET.encode()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_newsletter(tmp_path)


@pytest.fixture
def settings(folder: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The folder's settings on one back-end; the commands a test runs use the same database."""
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    return dataclasses.replace(load_settings(folder, env={}), database_url=database_url)


@pytest.fixture
def library(settings: Settings) -> Library:
    return load_library(settings)


@pytest.fixture
def store(settings: Settings):
    with Store.open(settings.database_url) as s:
        yield s


@pytest.fixture
def template(settings: Settings, library: Library):
    """The fixture issue rendered once for the whole test (rendering takes a few hundred ms)."""
    return build_template(settings, library, library.issue(ISSUE))


def text_part(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def html_part(msg: EmailMessage) -> str:
    return msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


def token_of(msg: EmailMessage) -> str:
    found = re.search(r"<https://example\.org/api/u/([A-Za-z0-9_.-]+)>", str(msg["List-Unsubscribe"]))
    assert found, msg["List-Unsubscribe"]
    return found.group(1)


def send(
    settings, library, store, transport, secret, template=None, progress=None, stop_event=None, **options
):
    plan = plan_send(
        settings,
        library,
        library.issue(ISSUE),
        transport=transport,
        secret=secret,
        template=template,
        **options,
    )
    return send_issue(plan, store, progress=progress, stop_event=stop_event)


# --------------------------------------------------------------------------- sending with real transports


def test_memory_send_reaches_each_active_reader_once_with_their_own_link_and_name(
    settings, library, store, template, secret
) -> None:
    people = add_people(store, 40)
    transport = MemoryTransport()
    report = send(settings, library, store, transport, secret, template, threads=4)

    assert sorted(transport.recipients) == sorted(people["active"])
    assert not set(transport.recipients) & set(people["never"])
    assert report.sent == 40 and report.exit_code == 0
    assert store.ledger_counts(ISSUE) == {
        "queued": 0,
        "sending": 0,
        "sent": 40,
        "failed_temporary": 0,
        "failed_permanent": 0,
    }
    for address in ("reader0001@example.com", "reader0002@example.com"):
        subscriber = store.get_subscriber(address)
        (sent,) = transport.to(address)
        msg = sent.message
        assert sent.sender == SENDER
        assert msg["To"].addresses[0].addr_spec == address
        assert msg["To"].addresses[0].display_name == subscriber.name
        assert msg["Subject"] == "Test Digest #1 — transfer, dialects & tokenizers"
        token = token_of(msg)
        assert read_token(secret, UNSUBSCRIBE, token) == str(subscriber.id)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"Hi {subscriber.name}," in text_part(msg)
        assert f"https://example.org/api/u/{token}" in text_part(msg)
        assert subscriber.name in html_part(msg)
        assert f'href="https://example.org/api/u/{token}"' in html_part(msg)
    # every message id from the transport is in the ledger
    ids = {d.message_id for d in store.ledger(ISSUE)}
    assert ids == {f"memory-{n}" for n in range(1, 41)}


def test_file_send_writes_one_message_per_reader(
    settings, library, store, template, secret, tmp_path
) -> None:
    people = add_people(store, 25)
    outbox = tmp_path / "outbox"
    transport = make_transport(settings, "file", outbox=outbox)
    report = send(settings, library, store, transport, secret, template)

    files = sorted(outbox.glob("*.eml"))
    received = [parse(f.read_bytes())["To"].addresses[0].addr_spec for f in files]
    assert sorted(received) == sorted(people["active"])
    assert report.sent == 25
    ledger_names = {d.message_id for d in store.ledger(ISSUE)}
    assert ledger_names == {f.name for f in files}


def test_ses_send_through_moto_reaches_every_active_reader_exactly_once(
    settings, library, store, template, secret, moto_reset
) -> None:
    verify_identity(moto_reset, SENDER)
    people = add_people(store, 30)
    ses = dataclasses.replace(settings, ses=SesSettings(endpoint_url=moto_reset))
    transport = make_transport(ses, "ses", concurrency=4)
    transport.check()
    report = send(ses, library, store, transport, secret, template, threads=4)

    sent = moto_sent_messages(moto_reset)
    to = Counter(parse(m.raw)["To"].addresses[0].addr_spec for m in sent)
    assert to == Counter(people["active"])
    assert report.sent == 30
    assert {d.message_id for d in store.ledger(ISSUE)} == {m.message_id for m in sent}
    one = next(m for m in sent if "reader0003@example.com" in m.destinations)
    msg = parse(one.raw)
    assert read_token(secret, UNSUBSCRIBE, token_of(msg)) == str(
        store.get_subscriber("reader0003@example.com").id
    )
    assert "Hi Zoë 3," in text_part(msg)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch):
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with SesStub(max_send_rate=2000.0) as running:
        yield running


def ses_transport(stub: SesStub, threads: int = 8) -> SesTransport:
    return SesTransport(sender=SENDER, endpoint_url=stub.endpoint_url, concurrency=threads)


def test_lost_answers_are_uncertain_and_only_resend_uncertain_mails_them_again(
    settings, library, store, template, secret, stub
) -> None:
    # the stub records each message it accepts; for 10 % it then closes the connection unanswered
    stub.reset(drop_fraction=0.1, seed=11)
    people = add_people(store, 80, suppressed=False)
    report = send(settings, library, store, ses_transport(stub), secret, template, threads=8)

    dropped = set(stub.dropped)
    assert 2 <= len(dropped) <= 20
    # every reader got exactly one copy; the ones whose answer was lost are the uncertain ones
    assert Counter(stub.recipients()) == Counter(people["active"])
    assert {d.email for d in report.uncertain} == dropped
    assert report.tally.uncertain == len(dropped) and report.sent == 80 - len(dropped)
    assert report.tally.failed_temporary == 0  # nothing that may have arrived is called failed
    assert all(d.outcome == "uncertain" and "may have been sent" in d.error for d in report.uncertain)
    assert all(address in report.summary() for address in dropped)
    assert set(issue_status(store, ISSUE).uncertain) == dropped

    with stub.lock:
        stub.state.drop_fraction = 0.0
    retried = send(settings, library, store, ses_transport(stub), secret, template, retry_failed=True)
    assert retried.sent == 0 and retried.requeued_failed == 0
    assert Counter(stub.recipients()) == Counter(people["active"])  # still no second copy

    resent = send(settings, library, store, ses_transport(stub), secret, template, resend_uncertain=True)
    assert resent.requeued_uncertain == len(dropped) and resent.sent == len(dropped)
    twice = {to for to, n in Counter(stub.recipients()).items() if n > 1}
    assert twice == dropped  # exactly those, because the editor asked
    assert store.uncertain(ISSUE) == []


def test_a_real_limit_below_the_quota_is_found_and_every_reader_gets_one_copy(
    settings, library, store, template, secret, stub
) -> None:
    # GetAccount says 200/s; another sender on the account leaves 20/s
    stub.reset(max_send_rate=200.0, send_limit=20.0)
    people = add_people(store, 80, suppressed=False)
    report = send(settings, library, store, ses_transport(stub), secret, template, threads=8)

    assert Counter(stub.recipients()) == Counter(people["active"])
    assert report.sent == 80 and report.exit_code == 0
    assert stub.throttled > 0 and report.tally.throttled == stub.throttled
    assert report.tally.quota == 200.0
    assert report.tally.final_rate is not None and report.tally.final_rate < 40.0
    assert report.tally.requests == stub.calls["SendEmail"]  # retries take tokens like first sends
    assert "Rate: quota 200/s, achieved" in report.summary()
    assert f"throttled {stub.throttled} of {stub.calls['SendEmail']} request(s)" in report.summary()


def test_throttled_sends_back_off_slow_down_and_arrive_exactly_once(
    settings, library, store, template, secret, stub
) -> None:
    stub.reset(throttle_fraction=0.3, seed=7)
    people = add_people(store, 120, suppressed=False)
    report = send(settings, library, store, ses_transport(stub), secret, template, threads=8)

    assert Counter(stub.recipients()) == Counter(people["active"])
    assert report.sent == 120 and report.exit_code == 0
    assert stub.throttled > 10
    assert report.tally.throttled == stub.throttled
    assert report.tally.retries == stub.throttled  # each throttled call was retried once more
    assert store.ledger_counts(ISSUE)["sent"] == 120
    assert report.rate == 2000.0  # from GetAccount's MaxSendRate


def test_rate_comes_from_the_ses_quota_and_is_kept(settings, library, store, template, secret, stub) -> None:
    stub.reset(max_send_rate=40.0)
    add_people(store, 30, suppressed=False)
    report = send(settings, library, store, ses_transport(stub), secret, template)
    assert report.rate == 40.0
    assert stub.throttled == 0
    assert report.sent == 30
    # 30 messages at 40/s with a 4-message burst: no faster than the quota allows
    assert report.elapsed >= (30 - 4) / 40 * 0.9


def test_paused_account_stops_the_send_and_leaves_the_rest_queued(
    settings, library, store, template, secret, stub
) -> None:
    stub.reset(paused=True)
    add_people(store, 20, suppressed=False)
    report = send(settings, library, store, ses_transport(stub), secret, template, threads=4)

    assert report.exit_code == 1
    assert "SendingPausedException" in report.stopped
    assert stub.messages == []
    assert store.ledger_counts(ISSUE)["queued"] == 20
    assert store.uncertain(ISSUE) == []

    stub.reset(paused=False)
    resumed = send(settings, library, store, ses_transport(stub), secret, template, threads=4)
    assert resumed.sent == 20 and len(set(stub.recipients())) == 20


def test_stop_midway_records_what_was_sent_and_a_resume_finishes_without_duplicates(
    settings, library, store, template, secret
) -> None:
    people = add_people(store, 60, suppressed=False)
    transport = MemoryTransport()
    transport.fail("reader0030@example.com", StopSending("SES: SendingPausedException: paused"), times=1)
    report = send(settings, library, store, transport, secret, template, threads=4)

    assert report.exit_code == 1 and "paused" in report.stopped
    first = list(transport.recipients)
    counts = store.ledger_counts(ISSUE)
    assert 0 < len(first) < 60
    assert counts["sent"] == len(first) and counts["queued"] == 60 - len(first) and counts["sending"] == 0

    again = send(settings, library, store, transport, secret, template, threads=4)
    assert again.exit_code == 0
    assert Counter(transport.recipients) == Counter(people["active"])


def test_a_throttled_message_is_not_given_up_after_a_few_quick_retries(
    settings, library, store, template, secret
) -> None:
    # Throttled retries wait only a few tokens' time (2 ms each at 1000/s): MAX_ATTEMPTS of them
    # pass before the rate controller has decided anything, so attempts alone do not give up.
    add_people(store, 3, suppressed=False)
    transport = MemoryTransport()
    transport.fail("reader0001@example.com", Outcome.TEMPORARY, times=MAX_ATTEMPTS + 2, throttled=True)
    report = send(settings, library, store, transport, secret, template, rate=1000.0)

    assert report.sent == 3 and report.tally.failures == []
    assert transport.attempts["reader0001@example.com"] == MAX_ATTEMPTS + 3
    assert report.tally.throttled == MAX_ATTEMPTS + 2


def test_failures_and_uncertain_messages_are_recorded_and_resent_only_when_asked(
    settings, library, store, template, secret
) -> None:
    add_people(store, 10, suppressed=False)
    transport = MemoryTransport()
    transport.fail("reader0002@example.com", Outcome.PERMANENT)
    transport.fail("reader0005@example.com", Outcome.UNCERTAIN, times=1)  # delivered, answer lost
    transport.fail("reader0007@example.com", Outcome.TEMPORARY, times=2)
    transport.fail("reader0008@example.com", Outcome.TEMPORARY, times=MAX_ATTEMPTS)
    report = send(settings, library, store, transport, secret, template)

    assert report.sent == 7
    assert {(f.email, f.outcome) for f in report.tally.failures} == {
        ("reader0002@example.com", "permanent"),
        ("reader0008@example.com", "temporary"),
    }
    assert transport.attempts["reader0007@example.com"] == 3  # retried in place, then sent
    assert transport.attempts["reader0008@example.com"] == MAX_ATTEMPTS  # then given up for this run
    assert transport.attempts["reader0005@example.com"] == 1  # may have arrived: never resent silently
    rows = {d.email: d for d in store.ledger(ISSUE)}
    assert (rows["reader0002@example.com"].state, rows["reader0002@example.com"].error) == (
        "failed",
        "reader0002@example.com: refused (memory transport)",
    )
    lost = rows["reader0005@example.com"]
    assert (lost.state, lost.outcome) == ("sending", "uncertain")
    assert "the answer was lost" in lost.error
    assert [d.email for d in report.uncertain] == ["reader0005@example.com"]
    summary = report.summary()
    assert "Uncertain: 1 (the provider may have them: its answer was lost)." in summary
    assert "1 whose answer from the provider was lost): reader0005@example.com." in summary
    assert "1 temporary failure(s) can be retried with --retry-failed" in summary
    assert issue_status(store, ISSUE).uncertain == ["reader0005@example.com"]

    plain = send(settings, library, store, transport, secret, template)
    assert plain.nothing_to_do and transport.attempts["reader0005@example.com"] == 1

    retried = send(settings, library, store, transport, secret, template, retry_failed=True)
    assert retried.requeued_failed == 1 and retried.sent == 1
    assert len(transport.to("reader0008@example.com")) == 1
    assert transport.attempts["reader0005@example.com"] == 1  # --retry-failed leaves it alone
    assert len(transport.to("reader0002@example.com")) == 0
    assert store.ledger_counts(ISSUE)["failed_permanent"] == 1

    resent = send(settings, library, store, transport, secret, template, resend_uncertain=True)
    assert resent.requeued_uncertain == 1 and resent.sent == 1
    assert len(transport.to("reader0005@example.com")) == 2  # the editor asked for the second copy
    assert store.uncertain(ISSUE) == []


def test_ctrl_c_finishes_in_flight_messages_and_resume_continues(
    settings, library, store, template, secret
) -> None:
    people = add_people(store, 80, suppressed=False)
    transport = MemoryTransport(delay=0.005)
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 20:
            stop.set()

    report = send(
        settings, library, store, transport, secret, template, threads=4, progress=progress, stop_event=stop
    )
    assert report.interrupted and report.exit_code == 130
    counts = store.ledger_counts(ISSUE)
    assert counts["sending"] == 0  # everything in flight was recorded
    assert counts["sent"] == len(transport.messages) < 80
    assert "Stopped by Ctrl-C" in report.summary()

    rest = send(settings, library, store, transport, secret, template, threads=4)
    assert rest.sent == 80 - counts["sent"]
    assert Counter(transport.recipients) == Counter(people["active"])


def test_uncertain_rows_are_reported_not_resent_until_asked(
    settings, library, store, template, secret
) -> None:
    people = add_people(store, 12, suppressed=False)
    store.create_ledger(ISSUE)
    crashed = store.claim_batch(ISSUE, 3)  # as if a send died with these in flight
    transport = MemoryTransport()
    report = send(settings, library, store, transport, secret, template)

    uncertain = {d.email for d in crashed}
    assert report.sent == 9
    assert set(transport.recipients) == set(people["active"]) - uncertain
    assert {d.email for d in report.uncertain} == uncertain
    assert "--resend-uncertain" in report.summary()

    resend = send(settings, library, store, transport, secret, template, resend_uncertain=True)
    assert resend.requeued_uncertain == 3 and resend.sent == 3
    assert Counter(transport.recipients) == Counter(people["active"])
    assert store.uncertain(ISSUE) == []


def test_readers_who_leave_during_a_send_are_skipped_on_resume(
    settings, library, store, template, secret
) -> None:
    add_people(store, 10, suppressed=False)
    transport = MemoryTransport()
    store.create_ledger(ISSUE)  # the whole list is snapshotted when the send starts
    send(settings, library, store, transport, secret, template, limit=4)
    change_status(store, "reader0008@example.com", "unsubscribed", "editor")
    report = send(settings, library, store, transport, secret, template)
    assert "reader0008@example.com" not in transport.recipients
    assert report.sent == 5 and report.skipped == 1
    (row,) = [d for d in store.ledger(ISSUE) if d.email == "reader0008@example.com"]
    assert (row.state, row.error) == ("failed", "skipped: unsubscribed")


def test_canary_limit_then_the_rest(settings, library, store, template, secret) -> None:
    people = add_people(store, 30)
    transport = MemoryTransport()
    canary = send(settings, library, store, transport, secret, template, limit=5)
    assert canary.sent == 5 and len(store.ledger(ISSUE)) == 5
    # the first five readers of the list; threads hand them to the transport in any order
    assert sorted(transport.recipients) == people["active"][:5]
    more = send(settings, library, store, transport, secret, template, limit=10)
    assert more.sent == 10 and len(store.ledger(ISSUE)) == 15
    rest = send(settings, library, store, transport, secret, template)
    assert rest.sent == 15
    assert Counter(transport.recipients) == Counter(people["active"])


def test_two_worker_processes_share_the_ledger(settings, library, store, template, secret, tmp_path) -> None:
    people = add_people(store, 200)
    outbox = tmp_path / "outbox"
    transport = make_transport(settings, "file", outbox=outbox)
    report = send(settings, library, store, transport, secret, template, workers=2, threads=4)
    received = Counter(parse(f.read_bytes())["To"].addresses[0].addr_spec for f in outbox.glob("*.eml"))
    assert received == Counter(people["active"])
    assert report.sent == 200 and report.exit_code == 0
    assert store.ledger_counts(ISSUE)["sent"] == 200


def test_test_send_goes_only_to_the_given_addresses_and_is_not_recorded(
    settings, library, store, secret
) -> None:
    add_people(store, 5)
    transport = MemoryTransport()
    results = send_test(
        settings,
        library,
        library.issue(ISSUE),
        ["reader0001@example.com", "editor@example.net"],
        transport=transport,
        store=store,
        secret=secret,
    )
    assert [r.outcome for r in results] == ["sent", "sent"]
    assert transport.recipients == ["reader0001@example.com", "editor@example.net"]
    msg = transport.to("reader0001@example.com")[0].message
    assert msg["Subject"].startswith(TEST_PREFIX + "Test Digest #1")
    assert read_token(secret, UNSUBSCRIBE, token_of(msg)) == str(
        store.get_subscriber("reader0001@example.com").id
    )
    assert store.ledger(ISSUE) == []


def test_status_counts_failures_and_uncertain(settings, library, store, template, secret) -> None:
    add_people(store, 6, suppressed=False)
    transport = MemoryTransport()
    transport.fail("reader0001@example.com", Outcome.PERMANENT)
    store.create_ledger(ISSUE)
    send(settings, library, store, transport, secret, template, limit=4)
    store.claim_batch(ISSUE, 1)  # an uncertain row
    result = issue_status(store, ISSUE)
    data = result.as_dict()
    assert data["sent"] == 3 and data["failed_permanent"] == 1 and data["uncertain"] == 1
    assert data["queued"] == 1 and data["total"] == 6
    assert data["failures"] == [
        {
            "email": "reader0001@example.com",
            "outcome": "permanent",
            "error": "reader0001@example.com: refused (memory transport)",
        }
    ]
    assert data["uncertain_emails"] == ["reader0004@example.com"]


# --------------------------------------------------------------------------- the commands


def run(folder: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--root", str(folder), *args], env=env, catch_exceptions=False)


def outbox_recipients(outbox: Path) -> Counter[str]:
    """Readers of the issue's messages: `newsletter send` writes them to OUTBOX/<slug>/."""
    return Counter(parse(f.read_bytes())["To"].addresses[0].addr_spec for f in (outbox / ISSUE).glob("*.eml"))


@pytest.fixture
def people(store):
    return add_people(store, 8)


def test_cli_send_then_rerun_sends_nothing(folder, people, secret, tmp_path) -> None:
    outbox = tmp_path / "out"
    first = run(
        folder, "send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score"
    )
    assert first.exit_code == 0, first.output
    assert f"Sent 8 message(s) of {ISSUE} via file" in first.output
    assert outbox_recipients(outbox) == Counter(people["active"])

    again = run(
        folder, "send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score"
    )
    assert again.exit_code == 0
    assert f"Nothing to send: {ISSUE} was already sent (8 sent)." in again.output
    assert outbox_recipients(outbox) == Counter(people["active"])


def test_cli_dry_run_counts_and_writes_nothing(folder, people, store, secret, tmp_path) -> None:
    result = run(
        folder,
        "send",
        ISSUE,
        "--transport",
        "file",
        "--outbox",
        str(tmp_path / "o"),
        "--dry-run",
        "--no-spam-score",
    )
    assert result.exit_code == 0, result.output
    assert "Recipients: 8" in result.output
    assert "Checks:     passed" in result.output
    assert "Dry run: nothing was sent." in result.output
    assert store.ledger(ISSUE) == []
    assert not list((tmp_path / "o").rglob("*.eml"))


def test_cli_limit_is_a_canary(folder, people, store, secret, tmp_path) -> None:
    outbox = tmp_path / "out"
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score")
    result = run(folder, *args, "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "Sent 3 message(s)" in result.output
    assert sum(outbox_recipients(outbox).values()) == 3 and len(store.ledger(ISSUE)) == 3
    rest = run(folder, *args)
    assert "Sent 5 message(s)" in rest.output
    assert outbox_recipients(outbox) == Counter(people["active"])


def test_cli_test_addresses_get_a_prefixed_subject_and_no_ledger_rows(
    folder, people, store, secret, tmp_path
) -> None:
    outbox = tmp_path / "out"
    result = run(
        folder, "send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--no-spam-score",
        "--test", "me@example.net", "--test", "you@example.net",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not list((outbox / ISSUE).glob("*.eml"))  # test messages never mix with the issue's
    messages = [parse(f.read_bytes()) for f in sorted((outbox / ISSUE / "test").glob("*.eml"))]
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == ["me@example.net", "you@example.net"]
    assert all(m["Subject"].startswith("[TEST] Test Digest #1") for m in messages)
    assert "nothing was recorded in the ledger" in result.output
    assert store.ledger(ISSUE) == []


def test_cli_refuses_without_confirmation_when_not_a_terminal(
    folder, people, store, secret, tmp_path
) -> None:
    result = run(
        folder, "send", ISSUE, "--transport", "file", "--outbox", str(tmp_path / "o"), "--no-spam-score"
    )
    assert result.exit_code == 1
    assert "Error: send: refusing to send without confirmation (no terminal to ask on)" in result.output
    assert "Pass --yes" in result.output
    assert store.ledger(ISSUE) == []


def test_cli_ses_without_secret_refuses_and_writes_no_ledger_rows(folder, people, store, monkeypatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    result = run(folder, "send", ISSUE, "--transport", "ses", "--yes", "--no-spam-score")
    assert result.exit_code == 1
    assert (
        "Error: NEWSLETTER_SECRET: not set; the ses transport needs it to sign unsubscribe links"
        in result.output
    )
    assert "Traceback" not in result.output
    assert store.ledger(ISSUE) == []


def test_cli_file_transport_without_secret_warns_and_sends(folder, people, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    result = run(
        folder,
        "send",
        ISSUE,
        "--transport",
        "file",
        "--outbox",
        str(tmp_path / "o"),
        "--yes",
        "--no-spam-score",
    )
    assert result.exit_code == 0, result.output
    assert (
        "Warning: NEWSLETTER_SECRET is not set: the file transport signs unsubscribe links with a development key"
        in result.output
    )


def test_cli_secret_warning_is_not_printed_before_an_unrelated_error(
    folder, people, monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    outbox = ("--transport", "file", "--outbox", str(tmp_path / "o"))
    typo = run(folder, "send", "frist", *outbox, "--yes", "--no-spam-score")
    assert typo.exit_code == 1 and "no such issue" in typo.output
    assert "NEWSLETTER_SECRET" not in typo.output
    dry = run(folder, "send", ISSUE, *outbox, "--dry-run", "--no-spam-score")
    assert dry.exit_code == 0 and "NEWSLETTER_SECRET" not in dry.output  # nothing is signed


def test_cli_ses_with_unverified_sender_refuses_before_the_ledger(
    folder, people, store, secret, stub
) -> None:
    stub.reset(verified={"someone-else.org"})
    result = run(
        folder, "send", ISSUE, "--transport", "ses", "--yes", "--no-spam-score",
        env={"NEWSLETTER_SES_ENDPOINT_URL": stub.endpoint_url},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "sender 'digest@example.org' is not verified for sending" in result.output
    assert store.ledger(ISSUE) == []


def test_cli_ses_without_credentials_refuses(folder, people, store, secret, monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run(folder, "send", ISSUE, "--transport", "ses", "--yes", "--no-spam-score")
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output
    assert store.ledger(ISSUE) == []


def test_cli_account_paused_mid_send_stops_with_exit_1_and_resume_completes(
    folder, people, store, secret, stub
) -> None:
    env = {"NEWSLETTER_SES_ENDPOINT_URL": stub.endpoint_url}
    stub.reset(max_send_rate=20.0)

    def pause_after_three() -> None:
        while len(stub.messages) < 3:
            threading.Event().wait(0.002)
        with stub.lock:
            stub.state.paused = True

    pauser = threading.Thread(target=pause_after_three, daemon=True)
    pauser.start()
    args = ("send", ISSUE, "--transport", "ses", "--yes", "--no-spam-score", "--threads", "2")
    paused = run(folder, *args, env=env)
    pauser.join(5)
    assert paused.exit_code == 1, paused.output
    assert "Error: SES (" in paused.output and "SendingPausedException" in paused.output
    assert "The rest of the send stays queued" in paused.output
    counts = store.ledger_counts(ISSUE)
    assert counts["sent"] == len(stub.messages) < 8 and counts["sending"] == 0
    assert counts["queued"] == 8 - counts["sent"]

    with stub.lock:
        stub.state.paused = False
    resumed = run(folder, *args, env=env)
    assert resumed.exit_code == 0, resumed.output
    assert Counter(stub.recipients()) == Counter(people["active"])


def test_cli_refuses_when_checks_fail_unless_skipped(tmp_path, secret) -> None:
    folder = make_newsletter(tmp_path, extra_toml="")
    toml = folder / "newsletter.toml"
    toml.write_text(
        toml.read_text().replace(
            'list_id = "test.digest.example.org"', 'list_id = "test.digest.example.org"\nmax_html_kb = 1'
        )
    )
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 3)
    outbox = tmp_path / "out"
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score")
    refused = run(folder, *args)
    assert refused.exit_code == 1
    assert f"Error: {ISSUE}: the pre-flight checks failed; nothing was sent" in refused.output
    assert "over the 1 KB limit" in refused.output
    assert not list(outbox.rglob("*.eml"))
    forced = run(folder, *args, "--skip-checks")
    assert forced.exit_code == 0 and len(list((outbox / ISSUE).glob("*.eml"))) == 3


def test_cli_status_json_and_text(folder, people, store, secret, tmp_path) -> None:
    run(
        folder,
        "send",
        ISSUE,
        "--transport",
        "file",
        "--outbox",
        str(tmp_path / "o"),
        "--yes",
        "--no-spam-score",
        "--limit",
        "5",
    )
    change_status(store, "reader0005@example.com", "unsubscribed", "editor")
    store.claim_batch(ISSUE, 1)  # nothing queued: the limit kept the ledger at 5
    result = run(folder, "status", ISSUE, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["total"], data["sent"], data["queued"], data["uncertain"]) == (5, 5, 0, 0)
    text = run(folder, "status", f"issues/{ISSUE}.md")
    assert "Sent:       5" in text.output and "Recipients: 5" in text.output
    missing = run(folder, "status", "2099-01-01-nothing")
    assert missing.exit_code == 1
    assert "Error: 2099-01-01-nothing: no such issue (known issues: " in missing.output
    unsent = run(folder, "status", "arabic")
    assert unsent.exit_code == 1
    assert f"arabic: no send recorded for this issue (issues with a send: {ISSUE})" in unsent.output


def test_graceful_stop_first_ctrl_c_sets_the_flag_second_interrupts_then_handler_is_restored():
    import os
    import signal
    import time

    from newsletter.interrupts import GracefulStop

    told = []
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), GracefulStop(on_first=lambda: told.append("stopping")) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set() and told == ["stopping"]
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the second signal interrupts this
    assert signal.getsignal(signal.SIGINT) is before


def test_graceful_stop_a_second_ctrl_c_that_lands_in_a_finaliser_still_interrupts() -> None:
    """Python ignores exceptions raised in __del__ and weakref callbacks (the garbage collector
    runs them anywhere): a second Ctrl-C handled there must not be lost as "Exception ignored".
    In a process of its own, as a command runs: the test runner has signal machinery of its own."""
    import subprocess
    import sys

    script = """
import gc, os, signal, sys, time
from newsletter.interrupts import GracefulStop

class Finalised:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # handled here, inside the finaliser
        for _ in range(1000):
            pass

hook = sys.unraisablehook
try:
    with GracefulStop() as stop:
        stop.event.set()  # the first Ctrl-C came already
        Finalised()
        gc.collect()
        time.sleep(10)  # a lost interrupt would leave us here
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted", sys.unraisablehook is hook)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout == "interrupted True\n", (done.stdout, done.stderr)
    assert "Exception ignored" not in done.stderr, done.stderr
