"""The sending pool: as many threads as the answers' latency needs, never more than `threads`.

A local transport answers in microseconds: the loop's own thread sends. A slow one makes the
pool grow, up to the setting and no further, and never more rows in `sending` than the
setting allows. Every test that uses the store runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from newsletter.content.library import Library, load_library
from newsletter.delivery import pool as pool_module
from newsletter.delivery.plan import build_template, plan_send
from newsletter.delivery.pool import SendingPool
from newsletter.delivery.sending import send_issue
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.store import Store
from tests.support.project import make_newsletter
from tests.support.sending import ISSUE, SECRET, add_people
from tests.support.smtp import SmtpServer


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return dataclasses.replace(load_settings(make_newsletter(tmp_path), env={}), database_url=database_url)


@pytest.fixture
def library(settings: Settings) -> Library:
    return load_library(settings)


@pytest.fixture
def store(settings: Settings):
    with Store.open(settings.database_url) as s:
        yield s


@pytest.fixture
def template(settings: Settings, library: Library):
    return build_template(settings, library, library.issue(ISSUE))


class WatchedTransport(MemoryTransport):
    """A memory transport that notes which threads send, how many at once, and how many of
    the issue's rows are `sending` in the database while a message goes out (every
    `look_every`-th one: a look takes longer than a local transport's answer)."""

    def __init__(self, database_url: str, *, delay: float = 0.0, look_every: int = 1) -> None:
        super().__init__(delay=delay)
        self.look_every = look_every
        self.calls = 0
        self.threads: Counter[int] = Counter()
        self.now = 0
        self.most_at_once = 0
        self.most_sending = 0
        self._watch = threading.Lock()
        self._store = Store.open(database_url)

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        with self._watch:
            self.threads[threading.get_ident()] += 1
            self.now += 1
            self.most_at_once = max(self.most_at_once, self.now)
            self.calls += 1
            if self.calls % self.look_every == 0:
                sending = self._store.ledger_counts(ISSUE)["sending"]
                self.most_sending = max(self.most_sending, sending)
        try:
            return super().send(sender, recipient, raw)
        finally:
            with self._watch:
                self.now -= 1

    def close(self) -> None:
        super().close()
        self._store.close()


def send(settings, library, store, transport, template, **options):
    plan = plan_send(
        settings,
        library,
        library.issue(ISSUE),
        transport=transport,
        secret=SECRET.encode(),
        template=template,
        **options,
    )
    return send_issue(plan, store)


def test_a_local_transport_is_sent_to_from_the_loops_own_thread(
    settings, library, store, template, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy machine can pause a thread for milliseconds, and every seventh message here waits
    # for a look at the database: thresholds well above both, far below a network's answer.
    monkeypatch.setattr(pool_module, "SLOW_ANSWER", 0.25)
    monkeypatch.setattr(pool_module, "VERY_SLOW", 5.0)
    people = add_people(store, 40)
    transport = WatchedTransport(settings.database_url, look_every=7)
    report = send(settings, library, store, transport, template, threads=8)

    assert report.sent == 40 and sorted(transport.recipients) == sorted(people["active"])
    # answers in microseconds need one sender, and the loop's thread is one
    assert list(transport.threads) == [threading.get_ident()]
    assert transport.most_at_once == 1
    # the loop still claims for the setting, and never more
    assert 1 < transport.most_sending <= 8
    assert store.ledger_counts(ISSUE)["sending"] == 0


def test_a_slow_transport_grows_the_pool_to_the_setting_and_never_past_it(
    settings, library, store, template
) -> None:
    people = add_people(store, 48)
    transport = WatchedTransport(settings.database_url, delay=0.03)
    report = send(settings, library, store, transport, template, threads=4)

    assert report.sent == 48 and sorted(transport.recipients) == sorted(people["active"])
    assert transport.most_at_once == 4  # unpaced and waiting on answers: every thread the setting allows
    assert transport.most_sending <= 4
    pool_threads = [ident for ident in transport.threads if ident != threading.get_ident()]
    assert len(pool_threads) == 4  # the loop's thread sent the first, then handed over to four
    assert transport.threads[threading.get_ident()] == 1
    assert not any(t.name.startswith("send-") for t in threading.enumerate())  # all ended


class SlowAtFirstTransport(MemoryTransport):
    """Answers after `delay` for its first `slow` messages, then at once; notes the thread of each message."""

    def __init__(self, *, slow: int, delay: float) -> None:
        super().__init__()
        self.slow, self.slow_delay = slow, delay  # (MemoryTransport's own `delay` stays 0)
        self.order: list[int] = []
        self._watch = threading.Lock()

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        with self._watch:
            self.order.append(threading.get_ident())
            wait = len(self.order) <= self.slow
        if wait:
            time.sleep(self.slow_delay)
        return super().send(sender, recipient, raw)


def test_a_send_moved_to_the_pool_comes_back_to_the_loops_thread_once_answers_are_quick(
    settings, library, store, template, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a slow moment (a busy machine, a disk flushing) must not cost thread hand-overs for the rest
    # of the send; quick here is below 10 ms, which a busy test machine keeps to
    monkeypatch.setattr(pool_module, "SLOW_ANSWER", 0.01)
    monkeypatch.setattr(pool_module, "QUICK_SAMPLES", 16)
    people = add_people(store, 120)
    transport = SlowAtFirstTransport(slow=3, delay=0.05)
    report = send(settings, library, store, transport, template, threads=4)

    assert report.sent == 120 and sorted(transport.recipients) == sorted(people["active"])
    loop_thread = threading.get_ident()
    assert transport.order[0] == loop_thread  # the first message: very slow, so the pool takes over
    assert transport.order[1] != loop_thread
    # once the pool's last 16 messages were quick, the loop's thread sends to the end
    back = transport.order.index(loop_thread, 1)
    assert back <= 3 + 16 + 4 + 4  # the slow ones, the samples, a batch in flight, a batch claimed
    assert set(transport.order[back:]) == {loop_thread}
    assert store.ledger_counts(ISSUE) == {**store.ledger_counts(ISSUE), "sending": 0, "queued": 0}


def test_a_paced_slow_transport_gets_the_threads_its_rate_needs_not_the_setting(
    settings, library, store, template, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no thread leaves during the send: every thread that ever sent was alive at once, so the
    # count below is the pool's size (on a busy machine a pause could retire one, and its
    # successor would count twice)
    monkeypatch.setattr(pool_module, "IDLE_RETIRE", 60.0)
    add_people(store, 60, suppressed=False)
    transport = WatchedTransport(settings.database_url, delay=0.03)
    # 40/s × 30 ms: about 1.2 messages in flight at a time (Little's law), a few in a burst
    report = send(settings, library, store, transport, template, threads=16, rate=40.0)

    assert report.sent == 60
    assert transport.most_at_once <= 8
    assert len(transport.threads) <= 8  # threads that ever sent: the pool grew only as rows waited
    assert transport.most_sending <= 16


def test_ctrl_c_while_the_loops_own_thread_sends(settings, library, store, template) -> None:
    people = add_people(store, 200, suppressed=False)
    transport = MemoryTransport()
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 20:
            stop.set()

    plan = plan_send(
        settings,
        library,
        library.issue(ISSUE),
        transport=transport,
        secret=SECRET.encode(),
        template=template,
        threads=8,
    )
    report = send_issue(plan, store, progress=progress, stop_event=stop)
    assert report.interrupted and report.exit_code == 130
    counts = store.ledger_counts(ISSUE)
    assert counts["sending"] == 0 and counts["sent"] == len(transport.messages) < 200
    assert counts["sent"] <= 20 + 8  # the batch in hand ends, nothing more is claimed

    rest = send(settings, library, store, transport, template, threads=8)
    assert rest.sent == 200 - counts["sent"]
    assert Counter(transport.recipients) == Counter(people["active"])


# --------------------------------------------------------------------------- the pool alone


def test_the_pool_grows_for_rows_that_wait_up_to_the_ceiling() -> None:
    pool = SendingPool(lambda item: item, queue.SimpleQueue(), 8)
    assert pool.grow(waiting=3) == 3 and pool.size == 3
    assert pool.grow(waiting=0) == 0  # no row waits: the threads keep up
    assert pool.grow(waiting=9) == 5 and pool.size == 8  # never past the ceiling
    assert pool.grow(waiting=1) == 0
    pool.close()


def test_inline_sends_turn_slow_after_two_slow_messages_or_one_very_slow() -> None:
    pool = SendingPool(lambda item: item, queue.SimpleQueue(), 8)
    assert not pool.waited(0.003)
    assert not pool.waited(0.00005)
    assert not pool.waited(0.003)  # one slow message may be the machine's hiccup
    assert pool.waited(0.002) and pool.slow
    again = SendingPool(lambda item: item, queue.SimpleQueue(), 8)
    assert again.waited(0.5) and again.slow


def test_the_pool_hands_back_to_the_loops_thread_when_its_last_messages_were_quick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_module, "QUICK_SAMPLES", 4)
    answers: queue.SimpleQueue = queue.SimpleQueue()
    hold = {"seconds": 0.03}
    pool = SendingPool(lambda item: (time.sleep(hold["seconds"]), item)[1], answers, 2)
    assert pool.waited(0.5) and pool.slow
    pool.grow(waiting=2)
    for i in range(3):
        pool.put(i)
    [answers.get(timeout=5) for _ in range(3)]
    assert not pool.quick_again()  # three messages are too few to tell
    pool.put(3)
    answers.get(timeout=5)
    assert not pool.quick_again() and pool.slow  # four slow ones: the pool keeps the sending
    hold["seconds"] = 0.0
    for i in range(3):
        pool.put(i)
    [answers.get(timeout=5) for _ in range(3)]
    assert not pool.quick_again()  # a "no" waits for as many new messages
    pool.put(3)
    answers.get(timeout=5)
    assert pool.quick_again() and not pool.slow  # the loop's thread sends again
    pool.close()


def test_idle_threads_leave_but_one_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "IDLE_RETIRE", 0.05)
    answers: queue.SimpleQueue = queue.SimpleQueue()
    pool = SendingPool(lambda item: (time.sleep(0.01), item)[1], answers, 4)
    assert pool.grow(waiting=10) == 4
    assert pool.grow(waiting=10) == 0  # the ceiling
    for i in range(8):
        pool.put(i)
    assert sorted(answers.get(timeout=5) for _ in range(8)) == list(range(8))
    deadline = time.monotonic() + 5
    while pool.size > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.size == 1 and pool.peak == 4
    pool.put(99)  # the one that stayed still works
    assert answers.get(timeout=5) == 99
    pool.close()
    assert not any(t.is_alive() for t in pool._threads)


def test_a_thread_that_leaves_the_pool_says_quit_on_its_smtp_connection(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each sending thread holds an SMTP connection of its own; one that leaves takes it along
    (servers limit the connections a client holds, and a long send's pool grows and shrinks)."""
    monkeypatch.setattr(pool_module, "IDLE_RETIRE", 0.2)
    readers = [f"reader{i}@example.org" for i in range(4)]
    smtp_server.handler.slow_after_data = dict.fromkeys(readers, 0.3)  # busy: each goes to its own thread
    raw = b"From: editor@example.org\r\nTo: reader@example.org\r\nSubject: Hello\r\n\r\nHello.\r\n"
    transport = SmtpTransport(smtp_server.host, smtp_server.port, security="none", timeout=5)
    answers: queue.SimpleQueue[SendResult] = queue.SimpleQueue()
    pool = SendingPool(
        lambda to: transport.send("editor@example.org", to, raw), answers, 4, leave=transport.release_thread
    )
    pool.grow(4)
    for to in readers:
        pool.put(to)
    assert [answers.get(timeout=10).outcome for _ in readers] == [Outcome.SENT] * 4
    deadline = time.monotonic() + 10
    while smtp_server.handler.quits < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (smtp_server.handler.quits, pool.size) == (3, 1)  # one thread always stays, connected
    pool.close()
    assert smtp_server.handler.quits == 4
    transport.close()
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == readers
