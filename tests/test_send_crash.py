"""A send killed with SIGKILL mid-way, then resumed: nobody gets the issue twice, nobody is lost.

`newsletter send` runs in a real subprocess, with the outbox transport (paced by --rate)
or against the local SES stub (which takes 50 ms per message, so every sending thread
has a message in flight when the kill lands). After the kill the ledger and what left
must agree: every `sent` row has exactly one message, every `queued` row none, and only
rows left `sending` (at most the number of sending threads) are uncertain. A plain re-run finishes the rest without
touching the uncertain ones; `--resend-uncertain` then completes the send.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.audience.lifecycle import change_status
from newsletter.store import Store
from tests.support.aws import FAKE_AWS_ENV, SesStub
from tests.support.project import make_newsletter
from tests.support.sending import ISSUE, SECRET, add_people, parse

REPO = Path(__file__).parent.parent
THREADS = 4


def newsletter_command(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from newsletter.cli import main; main()", "--root", str(folder), *args]


class Outbox:
    """Messages that left, read from the outbox folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.options = ("--transport", "file", "--outbox", str(folder))
        self.env: dict[str, str] = {}

    def count(self) -> int:
        return len(list(self.folder.glob("*.eml")))

    def received(self) -> Counter[str]:
        # only whole messages: the file transport renames a finished temporary file into place
        return Counter(parse(f.read_bytes())["To"].addresses[0].addr_spec for f in self.folder.glob("*.eml"))


class Ses:
    """Messages that left, as the SES stub accepted them."""

    def __init__(self, stub: SesStub) -> None:
        self.stub = stub
        self.options = ("--transport", "ses")
        self.env = {**FAKE_AWS_ENV, "NEWSLETTER_SES_ENDPOINT_URL": stub.endpoint_url}

    def count(self) -> int:
        with self.stub.lock:
            return len(self.stub.messages)

    def received(self) -> Counter[str]:
        return Counter(self.stub.recipients())


@pytest.fixture(params=["file", "ses"])
def sink(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "file":
        yield Outbox(tmp_path / "outbox")
        return
    with SesStub(max_send_rate=1000.0, latency=0.05) as stub:
        yield Ses(stub)


def test_sigkill_mid_send_then_resume_and_resend_uncertain(tmp_path: Path, sink, database_url: str) -> None:
    folder = make_newsletter(tmp_path)
    with Store.open(database_url) as store:
        people = add_people(store, 300)
    env = {
        **os.environ,
        **sink.env,
        "NEWSLETTER_SECRET": SECRET,
        "PYTHONPATH": str(REPO),
        "NEWSLETTER_DATABASE_URL": database_url,
    }
    send = newsletter_command(folder, "send", ISSUE, *sink.options, "--yes", "--no-spam-score")

    process = subprocess.Popen(
        [*send, "--rate", "80", "--threads", str(THREADS)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while sink.count() < 60:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the send did not get going"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    time.sleep(0.2)  # requests already at the stub finish there (that is what makes them uncertain)

    with Store.open(database_url) as store:
        counts = store.ledger_counts(ISSUE)
        rows = store.ledger(ISSUE)
    got = sink.received()
    by_state: dict[str, set[str]] = {}
    for row in rows:
        by_state.setdefault(row.state, set()).add(row.email)
    uncertain = by_state.get("sending", set())
    assert counts["sent"] + counts["sending"] >= 60 and counts["sent"] < 300, counts
    assert len(uncertain) <= THREADS
    if isinstance(sink, Ses):
        assert uncertain  # 50 ms per message: the kill always catches some in flight
    assert counts["sent"] + counts["sending"] + counts["queued"] == 300
    assert all(got[e] == 1 for e in by_state["sent"])  # recorded sent: delivered once
    assert not any(got[e] for e in by_state["queued"])  # queued: never handed over
    assert all(got[e] <= 1 for e in uncertain)  # uncertain: maybe
    assert not set(got) & set(people["never"])

    # someone unsubscribes between the crash and the resume
    leaver = sorted(by_state["queued"])[0]
    with Store.open(database_url) as store:
        change_status(store, leaver, "unsubscribed", "editor")

    resume = subprocess.run([*send, "--threads", "16"], env=env, capture_output=True, text=True, timeout=60)
    assert resume.returncode == 0, resume.stderr
    if uncertain:
        assert f"Uncertain: {len(uncertain)} message(s)" in resume.stdout
    got = sink.received()
    eligible = set(people["active"]) - {leaver}
    assert all(got[e] == 1 for e in eligible - uncertain)
    assert got[leaver] == 0
    assert not set(got) & set(people["never"])

    final = subprocess.run(
        [*send, "--resend-uncertain", "--threads", "16"], env=env, capture_output=True, text=True, timeout=60
    )
    assert final.returncode == 0, final.stderr
    got = sink.received()
    assert all(got[e] == 1 for e in eligible - uncertain)
    assert all(1 <= got[e] <= 2 for e in uncertain)  # twice only if the killed run had sent it
    assert got[leaver] == 0 and not set(got) & set(people["never"])
    with Store.open(database_url) as store:
        after = store.ledger_counts(ISSUE)
    assert after == {
        "queued": 0,
        "sending": 0,
        "sent": 299,
        "failed_temporary": 0,
        "failed_permanent": 1,
    }


def _senders_of(store: Store) -> dict[str, dict[str, int]]:
    return store.sender_counts(ISSUE)


def test_three_senders_share_one_postgresql_ledger_and_one_is_killed(
    tmp_path: Path, postgres_url: str
) -> None:
    """Three `newsletter send` processes at once against one PostgreSQL database: each reader
    gets the issue exactly once; a sender killed mid-send leaves only its own rows uncertain,
    which the others report; `status` names the three senders."""
    folder = make_newsletter(tmp_path)
    outbox = Outbox(tmp_path / "outbox")
    with Store.open(postgres_url) as store:
        people = add_people(store, 400)
    env = {
        **os.environ,
        "NEWSLETTER_SECRET": SECRET,
        "PYTHONPATH": str(REPO),
        "NEWSLETTER_DATABASE_URL": postgres_url,
    }
    send = [
        *newsletter_command(folder, "send", ISSUE, *outbox.options, "--yes", "--no-spam-score"),
        *("--rate", "200", "--threads", str(THREADS)),
    ]
    processes = [
        subprocess.Popen(send, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    victim = processes[0]
    deadline = time.monotonic() + 60
    with Store.open(postgres_url) as store:
        # kill the first sender once it has sent some, while the others work on
        while not (senders := _senders_of(store)).get(_name_of(senders, victim.pid), {}).get("sent"):
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "the first sender did not get going"
            time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    outputs = [p.communicate(timeout=120) for p in processes[1:]]
    for p, (_, err) in zip(processes[1:], outputs, strict=True):
        assert p.returncode == 0, err

    got = outbox.received()
    with Store.open(postgres_url) as store:
        rows = store.ledger(ISSUE)
        senders = _senders_of(store)
        uncertain = store.uncertain(ISSUE)
    killed = _name_of(senders, victim.pid)
    by_state: dict[str, set[str]] = {}
    for row in rows:
        by_state.setdefault(row.state, set()).add(row.email)
    assert set(by_state) <= {"sent", "sending"}  # the survivors finished the queue
    assert all(got[e] == 1 for e in by_state["sent"])  # exactly once
    assert all(got[e] <= 1 for e in by_state.get("sending", ()))
    assert not set(got) & set(people["never"])
    # only the killed sender's rows are uncertain, at most its threads' worth
    assert {d.sender for d in uncertain} <= {killed}
    assert len(uncertain) <= THREADS
    assert {d.email for d in uncertain} == by_state.get("sending", set())
    assert len(senders) == 3
    assert sum(counts.get("sent", 0) for counts in senders.values()) == len(by_state["sent"])
    assert sum(1 for counts in senders.values() if counts.get("sent")) >= 2  # they really shared the work
    for out, _ in outputs:  # every survivor reports what the killed one left
        if uncertain:
            assert f"Uncertain: {len(uncertain)} message(s)" in out

    status = subprocess.run(
        newsletter_command(folder, "status", ISSUE), env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert "Senders:" in status.stdout
    for name, counts in senders.items():
        assert (
            f"  {name}: {counts.get('sent', 0)} sent, 0 failed, {counts.get('sending', 0)} sending"
            in status.stdout
        )

    final = subprocess.run(
        [*send, "--resend-uncertain"], env=env, capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stderr
    got = outbox.received()
    assert set(got) == set(people["active"])
    assert all(got[e] == 1 for e in set(people["active"]) - {d.email for d in uncertain})
    with Store.open(postgres_url) as store:
        assert store.ledger_counts(ISSUE)["sent"] == 400


def _name_of(senders: dict[str, dict[str, int]], pid: int) -> str:
    """The sender name ("host pid start") of process `pid`, or "" before it registered."""
    return next((name for name in senders if name.split(" ")[1] == str(pid)), "")
