"""Scheduled sends: `send_at:` in an issue, `newsletter send --due` on a fixed clock, and the lease
that keeps two overlapping runs from competing (real processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.delivery.schedule import LEASE_NAME
from newsletter.store import Store, SubscriberRow
from tests.support.aws import FAKE_AWS_ENV, SesStub
from tests.support.project import REPO, make_newsletter, run
from tests.support.sending import ISSUE, SECRET, add_people, parse

SEND_AT = "2026-12-01T08:00:00+01:00"
BEFORE = "2026-12-01T06:59:00Z"  # a minute before SEND_AT
AT = "2026-12-01T07:00:00Z"  # SEND_AT itself, written in UTC
ARABIC = "2024-01-17-arabic"  # the fixture's draft


def _set_front_matter(folder: Path, slug: str, *lines: str) -> None:
    """Add `lines` to the front matter of issues/<slug>.md (after its first line)."""
    path = folder / "issues" / f"{slug}.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("---\n", "---\n" + "".join(f"{line}\n" for line in lines), 1), encoding="utf-8"
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The fixture newsletter with 12 readers, its published issue scheduled for SEND_AT."""
    folder = make_newsletter(tmp_path)
    _set_front_matter(folder, ISSUE, f"send_at: {SEND_AT}")
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 12)
    return folder


def _due(folder: Path, now: str, *args: str):
    return run(folder, "send", "--due", "--now", now, "--no-spam-score", *args)


def _outbox(folder: Path, slug: str = ISSUE) -> Counter:
    """How many messages each address got in the file outbox."""
    box = folder / "outbox" / slug
    return Counter(parse(p.read_bytes())["To"].addresses[0].addr_spec for p in box.glob("*.eml"))


def _counts(folder: Path, slug: str = ISSUE) -> dict[str, int]:
    with Store.open(load_settings(folder, env={}).database_url) as store:
        return store.ledger_counts(slug)


def test_send_at_without_a_zone_is_refused_with_file_field_expected_and_got(tmp_path: Path) -> None:
    folder = make_newsletter(tmp_path)
    _set_front_matter(folder, ISSUE, "send_at: 2026-12-01T08:00:00")
    result = run(folder, "build", ISSUE)
    assert result.exit_code == 1
    assert (
        f"issues/{ISSUE}.md: send_at: expected an ISO 8601 time with a zone, like "
        "2026-12-01T08:00:00+01:00 (this one has no zone), got '2026-12-01T08:00:00'"
    ) in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["2026-12-01", "tomorrow at 8", "2026-13-01T08:00:00+01:00"])
def test_send_at_that_is_not_a_zoned_time_is_refused(tmp_path: Path, value: str) -> None:
    folder = make_newsletter(tmp_path)
    _set_front_matter(folder, ISSUE, f"send_at: {value}")
    result = run(folder, "build", ISSUE)
    assert result.exit_code == 1
    assert (
        f"send_at: expected an ISO 8601 time with a zone, like 2026-12-01T08:00:00+01:00, got '{value}'"
        in (result.output)
    )


def test_before_send_at_nothing_is_sent_and_one_line_says_what_comes_next(folder: Path) -> None:
    result = _due(folder, BEFORE)
    assert result.exit_code == 0, result.output
    assert (
        result.output == f"Nothing due at 2026-12-01T06:59+00:00; next: {ISSUE} at 2026-12-01T08:00+01:00\n"
    )
    assert sum(_counts(folder).values()) == 0
    assert not (folder / "outbox").exists()


def test_issues_shows_a_published_issue_with_send_at_ahead_as_scheduled(folder: Path) -> None:
    table = run(folder, "issues", "--now", BEFORE)
    line = next(line for line in table.output.splitlines() if ISSUE in line)
    assert f"scheduled {SEND_AT}" in line
    rows = json.loads(run(folder, "issues", "--json", "--now", BEFORE).output)
    first = next(r for r in rows if r["slug"] == ISSUE)
    assert (first["status"], first["send_at"]) == ("scheduled", SEND_AT)
    # its time has come: published again (nothing sent yet), then sent
    after = json.loads(run(folder, "issues", "--json", "--now", AT).output)
    assert next(r for r in after if r["slug"] == ISSUE)["status"] == "published"
    assert _due(folder, AT).exit_code == 0
    done = json.loads(run(folder, "issues", "--json", "--now", BEFORE).output)
    assert next(r for r in done if r["slug"] == ISSUE)["status"] == "sent"


def test_at_send_at_every_reader_gets_it_once_and_a_second_run_is_a_no_op(folder: Path) -> None:
    result = _due(folder, AT)
    assert result.exit_code == 0, result.output
    assert f"Sending {ISSUE} (send_at 2026-12-01T08:00+01:00)" in result.output
    mailed = _outbox(folder)
    assert len(mailed) == 12 and set(mailed.values()) == {1}
    assert "gone@example.com" not in mailed and "bounced@example.com" not in mailed
    assert _counts(folder)["sent"] == 12
    assert (folder / "issues" / f"{ISSUE}.sent.toml").exists()  # frozen, as `send ISSUE` does

    again = _due(folder, "2026-12-01T07:01:00Z")
    assert again.exit_code == 0
    assert again.output == "Nothing due at 2026-12-01T07:01+00:00\n"
    assert _outbox(folder) == mailed
    with Store.open(load_settings(folder, env={}).database_url) as store:
        assert store.lease(LEASE_NAME) is None  # released at the end of the run


def test_the_environment_variable_sets_the_clock_too(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_NOW", BEFORE)
    assert run(folder, "send", "--due").output.startswith("Nothing due at 2026-12-01T06:59+00:00")
    bad = run(folder, "send", "--due", "--now", "2026-12-01T07:00:00")
    assert bad.exit_code == 1
    assert "--now" in bad.output and "expected an ISO 8601 time with a zone" in bad.output


def test_dry_run_lists_what_is_due_and_sends_nothing(folder: Path) -> None:
    result = _due(folder, AT, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Due:    {ISSUE} (send_at 2026-12-01T08:00+01:00, 12 readers)\nDry run: nothing was sent.\n"
    )
    assert sum(_counts(folder).values()) == 0 and not (folder / "outbox").exists()
    refused = run(folder, "send", ISSUE, "--due")
    assert refused.exit_code == 1 and "--due sends the issues that are due" in refused.output


def test_a_partial_send_is_resumed_and_nobody_gets_it_twice(folder: Path) -> None:
    canary = run(folder, "send", ISSUE, "--limit", "5", "--yes", "--no-spam-score")
    assert canary.exit_code == 0, canary.output
    assert _due(folder, AT).exit_code == 0
    mailed = _outbox(folder)
    assert len(mailed) == 12 and set(mailed.values()) == {1}


def test_a_sent_issue_whose_send_at_is_past_is_left_alone(tmp_path: Path) -> None:
    folder = make_newsletter(tmp_path)
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 4)
    assert run(folder, "send", ISSUE, "--yes", "--no-spam-score").exit_code == 0
    _set_front_matter(folder, ISSUE, "send_at: 2024-01-10T08:00:00Z")
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 6, suppressed=False)  # joined after the send: the next issue is theirs
    before = _outbox(folder)
    result = _due(folder, AT)
    assert result.exit_code == 0, result.output
    assert result.output == "Nothing due at 2026-12-01T07:00+00:00\n"
    assert _outbox(folder) == before and sum(before.values()) == 4


def test_a_draft_with_send_at_is_not_sent_and_check_warns(folder: Path) -> None:
    _set_front_matter(folder, ARABIC, "send_at: 2026-11-01T08:00:00+03:00")
    result = _due(folder, BEFORE)
    assert result.exit_code == 0, result.output
    assert "Nothing due" in result.output
    assert not (folder / "outbox").exists()
    checked = run(folder, "check", ARABIC, "--no-spam-score")
    assert (
        "warn  send_at: 2026-11-01T08:00:00+03:00, but status is draft: `send --due` sends only "
        "published issues (set 'status: published' when it is ready)"
    ) in checked.output


def test_an_issue_failing_its_checks_is_skipped_with_the_reason_and_the_run_exits_1(tmp_path: Path) -> None:
    folder = make_newsletter(tmp_path, extra_toml="")
    toml = folder / "newsletter.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace("[web]", "max_html_kb = 1\n\n[web]"), encoding="utf-8"
    )
    _set_front_matter(folder, ISSUE, f"send_at: {SEND_AT}")
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 3)
    result = _due(folder, AT)
    assert result.exit_code == 1
    assert f"Error: {ISSUE}: skipped, nothing was sent: the pre-flight checks failed:" in result.output
    assert "over the 1 KB limit" in result.output
    assert sum(_counts(folder).values()) == 0
    assert not (folder / "issues" / f"{ISSUE}.sent.toml").exists()


def test_a_broken_issue_file_is_reported_while_the_due_one_goes_out(folder: Path) -> None:
    broken = folder / "issues" / "2024-02-01-broken.md"
    broken.write_text(
        "---\ntitle: Broken\ndate: 2024-02-01\nnumber: 3\nstatus: published\n"
        "send_at: 2024-02-01T08:00\ninclude: [2401.00001]\n---\nHello.\n",
        encoding="utf-8",
    )
    result = _due(folder, AT)
    assert result.exit_code == 1
    assert "issues/2024-02-01-broken.md: send_at: expected an ISO 8601 time with a zone" in result.output
    assert "(left out; see `newsletter check`)" in result.output
    assert len(_outbox(folder)) == 12


def test_two_due_issues_go_out_in_send_at_order(folder: Path) -> None:
    arabic = folder / "issues" / f"{ARABIC}.md"
    arabic.write_text(arabic.read_text(encoding="utf-8").replace("status: draft", "status: published"))
    _set_front_matter(folder, ARABIC, "send_at: 2026-12-01T07:30:00+01:00")  # before the first one
    result = _due(folder, AT)
    assert result.exit_code == 0, result.output
    assert result.output.index(f"Sending {ARABIC}") < result.output.index(f"Sending {ISSUE}")
    assert len(_outbox(folder, ARABIC)) == 12 and len(_outbox(folder)) == 12


def test_a_lease_held_by_another_live_run_makes_this_run_say_who_and_since_when(folder: Path) -> None:
    with Store.open(load_settings(folder, env={}).database_url) as store:
        # a holder on another machine: only its lease's expiry can free it
        taken = store.acquire_lease(
            LEASE_NAME, "other-host 4242 2026-12-01T06:58:00Z", dt.timedelta(minutes=2)
        )
    assert taken.granted
    result = _due(folder, AT)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "send --due: another run is sending: other-host 4242 2026-12-01T06:58:00Z, since "
        f"{taken.lease.acquired_at.isoformat(timespec='minutes')}"
    )
    assert sum(_counts(folder).values()) == 0


def test_the_lease_of_a_crashed_run_is_taken_over(folder: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = f"{socket.gethostname()} {gone.stdout.strip()} 2026-12-01T06:58:00Z"  # this machine, process gone
    with Store.open(load_settings(folder, env={}).database_url) as store:
        assert store.acquire_lease(LEASE_NAME, dead, dt.timedelta(hours=1)).granted
    result = _due(folder, AT)
    assert result.exit_code == 0, result.output
    assert len(_outbox(folder)) == 12


def test_leases_on_each_backend(database_url: str) -> None:
    ttl = dt.timedelta(minutes=2)
    t0 = dt.datetime(2026, 12, 1, 7, tzinfo=dt.UTC)
    with Store.open(database_url) as store:
        first = store.acquire_lease("job", "host-a 1 x", ttl, now=t0)
        assert first.granted and first.lease.expires_at == t0 + ttl
        refused = store.acquire_lease("job", "host-b 2 y", ttl, now=t0 + dt.timedelta(minutes=1))
        assert not refused.granted
        assert (refused.lease.holder, refused.lease.acquired_at) == ("host-a 1 x", t0)
        assert store.renew_lease("job", "host-a 1 x", ttl, now=t0 + dt.timedelta(minutes=1))
        # renewed to 07:03: still held at 07:02:30, free after 07:03
        assert not store.acquire_lease("job", "host-b 2 y", ttl, now=t0 + dt.timedelta(seconds=150)).granted
        later = t0 + dt.timedelta(minutes=3, seconds=1)
        taken = store.acquire_lease("job", "host-b 2 y", ttl, now=later)
        assert taken.granted and taken.lease.acquired_at == later
        assert not store.renew_lease("job", "host-a 1 x", ttl, now=later)  # a's lease is gone
        store.release_lease("job", "host-a 1 x")  # not a's to release
        assert store.lease("job").holder == "host-b 2 y"
        store.release_lease("job", "host-b 2 y")
        assert store.lease("job") is None


def _start(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--root", str(folder),
         "send", "--due", "--now", AT, "--transport", "ses", "--no-spam-score", "--threads", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_overlapping_runs_reach_every_reader_exactly_once(database_url: str, tmp_path: Path) -> None:
    """Two real `send --due` processes against one database: one sends, the other says who does."""
    folder = make_newsletter(tmp_path)
    _set_front_matter(folder, ISSUE, f"send_at: {SEND_AT}")
    with Store.open(database_url) as store:
        readers = add_people(store, 40)["active"]
    # 50 ms a message at the stub: the first run is still sending when the second starts
    with SesStub(max_send_rate=1000.0, latency=0.05) as stub:
        env = {**os.environ, **FAKE_AWS_ENV, "NEWSLETTER_SES_ENDPOINT_URL": stub.endpoint_url,
               "NEWSLETTER_SECRET": SECRET, "NEWSLETTER_DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}  # fmt: skip
        first = _start(folder, env)
        deadline = time.monotonic() + 60
        with Store.open(database_url) as store:
            while store.lease(LEASE_NAME) is None:
                assert first.poll() is None, first.communicate()
                assert time.monotonic() < deadline, "the first run did not take the lease"
                time.sleep(0.02)
            holder = store.lease(LEASE_NAME).holder
        second = _start(folder, env)
        out2, err2 = second.communicate(timeout=120)
        out1, err1 = first.communicate(timeout=120)
        # and two started at the same moment, once there is nothing left: both say so
        late = [_start(folder, env) for _ in range(2)]
        late_out = [p.communicate(timeout=120) for p in late]
    assert first.returncode == 0, (out1, err1)
    assert second.returncode == 0, (out2, err2)
    assert f"Sending {ISSUE}" in out1
    assert holder.split(" ")[1] == str(first.pid)
    if "Nothing due" not in out2:  # the first run may have finished before the second looked
        assert out2.startswith(f"send --due: another run is sending: {holder}, since "), (out2, err2)
    assert "Sending" not in out2
    for (out, err), process in zip(late_out, late, strict=True):
        assert process.returncode == 0 and out == "Nothing due at 2026-12-01T07:00+00:00\n", (out, err)
    got = Counter(to for m in stub.messages for to in m.to)
    assert got == Counter(readers)  # every active reader exactly once, nobody else
    with Store.open(database_url) as store:
        assert store.ledger_counts(ISSUE)["sent"] == 40
        assert store.lease(LEASE_NAME) is None


def test_two_runs_started_together_send_once(database_url: str, tmp_path: Path) -> None:
    folder = make_newsletter(tmp_path)
    _set_front_matter(folder, ISSUE, f"send_at: {SEND_AT}")
    with Store.open(database_url) as store:
        readers = add_people(store, 30)["active"]
    with SesStub(max_send_rate=1000.0, latency=0.02) as stub:
        env = {**os.environ, **FAKE_AWS_ENV, "NEWSLETTER_SES_ENDPOINT_URL": stub.endpoint_url,
               "NEWSLETTER_SECRET": SECRET, "NEWSLETTER_DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}  # fmt: skip
        runs = [_start(folder, env) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    assert sum(f"Sending {ISSUE}" in out for out, _ in outputs) == 1, outputs
    assert Counter(to for m in stub.messages for to in m.to) == Counter(readers)


def test_each_reader_gets_the_due_issue_in_their_language(tmp_path: Path) -> None:
    """The example's issue #1 has Arabic and German translations: `send --due` sends them as `send` does."""
    import shutil

    root = tmp_path / "example"
    root.mkdir()
    for name in ("papers", "issues", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    slug = "2026-03-17-multilingual-llms"
    _set_front_matter(root, slug, "send_at: 2026-03-17T08:00:00+01:00")
    readers = {
        "ada@example.org": "en",
        "laila@example.org": "ar",
        "jurgen@example.org": "de",
        "elise@example.org": "fr",
    }
    with Store.open(load_settings(root, env={}).database_url) as store:
        store.upsert_many(
            [SubscriberRow(email=a, language=lang, status="active") for a, lang in readers.items()]
        )
    result = run(root, "send", "--due", "--now", "2026-03-17T07:00:00Z", "--no-spam-score")
    assert result.exit_code == 0, result.output
    subjects = {}
    for path in (root / "outbox" / slug).glob("*.eml"):
        message = parse(path.read_bytes())
        subjects[message["To"].addresses[0].addr_spec] = str(message["Subject"])
    assert (
        subjects
        == {
            "ada@example.org": "Multilingual LLM Digest #1: 45 papers on LLMs beyond English",
            "laila@example.org": "النشرة متعددة اللغات #1: 45 ورقة عن نماذج لغوية تتجاوز الإنجليزية",
            "jurgen@example.org": "Multilingual LLM Digest #1: 45 Artikel über LLMs jenseits des Englischen",
            "elise@example.org": "Multilingual LLM Digest #1: 45 papers on LLMs beyond English",  # no French: the original
        }
    )
