"""The sending loop of one process: claim ledger rows, send them (on its own thread or a pool), record every answer.

The ledger (see docs/architecture.md, "Ledger states") makes a send resumable and safe to repeat:

* a row is claimed (``sending``) just before its message goes out, and only as many rows
  are claimed as the ``threads`` setting leaves free slots (whichever threads send them)
  and there are rate tokens, so a crash leaves at most ``threads × workers`` rows *uncertain*;
* each answer is recorded in the same transaction as the next claim (or within
  RECORD_DELAY when no claim comes): ``sent``, ``failed`` (temporary or permanent), left in
  ``sending`` as *uncertain* when the provider may have it and its answer was lost, or back
  to ``queued`` when the message certainly did not leave (a stop before it was handed over).
  Until then its row counts against the bound above, so batching widens nothing.

Throughput: one thread claims and records (SQLite has one writer anyway) and sends between
claims while answers are quick; once they are slow, a pool (``newsletter.delivery.pool``) of
as many threads as the rate and the answers' latency need does the I/O, and a pacer
(``newsletter.delivery.pacing``) holds it at the rate the provider really allows; retries of
throttled requests take tokens too.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.delivery.pacing import Pacer, SharedPacer
from newsletter.delivery.pool import SendingPool
from newsletter.delivery.report import FAILURES_KEPT, Failure, Tally
from newsletter.delivery.transports import Outcome, StopSending, Transport
from newsletter.mail.message import Recipient
from newsletter.store import Answers, StoreError
from newsletter.tokens import preferences_token, unsubscribe_token

if TYPE_CHECKING:
    from newsletter.delivery.plan import SendPlan
    from newsletter.store import Delivery, Store

MAX_ATTEMPTS = 8  # sends of one message in one run before a temporary failure is recorded
BACKOFF_BASE = 0.05  # seconds before the first retry; doubles each time
BACKOFF_CAP = 5.0
# Throttled retries wait only a few tokens' time (pacing.Pacer.retry_delay), so MAX_ATTEMPTS of
# them can pass within one control interval, before the rate controller has slowed down: a
# throttled message is given up only once it has also been tried for this long.
THROTTLE_PATIENCE = 5.0
RECORD_DELAY = 0.2  # seconds an answer may wait to be recorded with the next claim
# Seconds a free thread may wait for the others before the loop claims for it alone: answers
# that come back together are claimed for together (a transaction per batch, not per answer),
# and a slow transport loses at most this much of each thread's time.
CLAIM_HOLD = 0.0003
HEARTBEAT = 10.0  # seconds between "still at work" notes to the other senders of a shared ledger


@dataclass(slots=True)
class _Answer:
    delivery: Delivery
    # sent | temporary | permanent | uncertain | requeue | stop | crash (after handing over) | crash-before
    kind: str
    message_id: str | None = None
    error: str | None = None
    retries: int = 0
    throttled: int = 0


class SendLoop:
    """Claim rows as threads and tokens free up; send them on a pool; record every answer."""

    def __init__(
        self,
        plan: SendPlan,
        transport: Transport,
        store: Store,
        *,
        rate: float | None,
        max_rows: int | None,
        halt: Any,  # threading.Event or multiprocessing Event: stop claiming, abandon retries
        quota: float | None = None,  # messages per second for all senders of a shared ledger together
        user_stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.issue = plan.issue
        self.plan = plan
        self.templates = plan.templates
        self.sender = plan.sender
        self.secret = plan.secret
        self.transport = transport
        self.store = store
        self.threads = plan.threads
        self.bucket = Pacer(rate)
        if quota is not None and store.shared:
            # senders on other machines draw from the same quota, through the database
            def take_shared(n: int) -> int:
                return store.take_tokens(plan.transport_name, n, quota)

            self.bucket = SharedPacer(rate or quota, take_shared, ask_for=max(1, self.threads // 4))
        self.claimer: str | None = None  # this process as a sender of the issue (host pid start)
        self._seen = 0.0
        self.max_rows = max_rows
        self.halt = halt
        self.user_stop = user_stop
        self.progress = progress
        self.tally = Tally()
        self.interrupted = False
        # claim for every thread at once when answers come back together (a transaction per
        # batch), but never keep a free thread waiting longer than CLAIM_HOLD
        self._low_water = self.threads
        self._hold_until: float | None = None  # when free threads stop waiting for the others
        self._unrecorded = Answers()  # answers to record with the next claim
        self._recording: Answers | None = None  # answers handed to the store, until it returns
        self._unrecorded_since = 0.0
        self.pool: SendingPool | None = None

    def run(self) -> Tally:
        # Long-lived sending threads fed through queues: a Future and a wait() per message
        # cost more CPU than building the message.
        answers: queue.SimpleQueue[_Answer] = queue.SimpleQueue()
        self.pool = pool = SendingPool(
            self._deliver_safely, answers, self.threads, leave=self.transport.release_thread
        )
        try:
            self.claimer = self.store.start_sender(self.issue)
            self._seen = time.monotonic()
            try:
                self._loop(pool, answers)
            except BaseException:
                self.halt.set()  # what the threads were handed and have not sent stays unsent
                raise
            finally:
                pool.close()
            if self._unrecorded:
                self.store.record(self.issue, self._take_unrecorded())
                self._recording = None
            # from now on what this sender left in `sending` is uncertain, for every sender to see
            self.store.finish_sender(self.issue, self.claimer)
        except Exception as exc:
            said = self.store.failed(exc)
            if said is None:
                raise
            raise StoreError(self._database_lost(said, answers)) from None
        self.tally.quota = self.bucket.quota
        self.tally.final_rate = self.bucket.rate
        self.tally.requests = self.bucket.requests
        return self.tally

    def _database_lost(self, said: str, answers: queue.SimpleQueue) -> str:
        """What to tell the editor when the database stopped answering mid-send (the threads have ended)."""
        done = []
        while True:
            try:
                done.append(answers.get_nowait())
            except queue.Empty:
                break
        self._record_all(done)
        unrecorded = [self._unrecorded] + ([self._recording] if self._recording is not None else [])
        claimed = sum(len(answers) for answers in unrecorded)
        sent = sum(len(answers.sent) for answers in unrecorded)
        unrecorded_text = (
            f"{claimed} reader(s) claimed by this send could not be recorded ({sent} of their messages "
            "were sent): their rows stay `sending`, and the next send lists them as uncertain; resend "
            "those only with --resend-uncertain, once you know they did not arrive. Everything else is "
            "recorded."
            if claimed
            else "Every message it sent is recorded."
        )
        return (
            f"{said}\n\nThe database stopped answering, so the send of {self.issue} stopped. "
            f"{unrecorded_text} When the database answers again, run `newsletter send {self.issue}` to go on."
        )

    def _loop(self, pool: SendingPool, answers: queue.SimpleQueue) -> None:
        in_flight = 0
        claimed = 0
        exhausted = self.max_rows is not None and self.max_rows <= 0
        while True:
            halted = self._stopping()
            # This loop's rows in `sending` are in flight or sent-but-unrecorded, never more
            # than `threads` together, however many threads the pool has: that bounds what a
            # crash leaves uncertain. A claim records the unrecorded ones first, in its own
            # transaction, so they free slots.
            free = self.threads - in_flight
            claimed_now = False
            if not halted and not exhausted and self._claim_now(free, in_flight):
                want = free if self.max_rows is None else min(free, self.max_rows - claimed)
                got = self.bucket.take(want) if want > 0 else 0
                if got:
                    rows = self.store.claim_batch(
                        self.issue,
                        got,
                        answers=self._take_unrecorded(),
                        sender=self.claimer,
                        language_for=self.plan.language_for,
                    )
                    self._recording = None
                    claimed_now = True
                    self.bucket.give_back(got - len(rows))
                    claimed += len(rows)
                    exhausted = len(rows) < got or (self.max_rows is not None and claimed >= self.max_rows)
                    in_flight += self._hand_over(rows, pool, in_flight)
            if (
                not claimed_now
                and self._unrecorded
                and (
                    len(self._unrecorded) >= self._low_water
                    or halted
                    or exhausted
                    or not in_flight
                    or time.monotonic() - self._unrecorded_since > RECORD_DELAY
                )
            ):
                self.store.record(self.issue, self._take_unrecorded())
                self._recording = None
            if not in_flight and (exhausted or halted):
                return
            if time.monotonic() - self._seen > HEARTBEAT:  # slow answers: still at work
                self.store.sender_seen(self.issue, self.claimer)  # type: ignore[arg-type]
                self._seen = time.monotonic()
            timeout = self._timeout(halted or exhausted, in_flight)
            if not in_flight:
                if timeout > 0:  # nothing to wait for when the loop's thread sends and tokens are there
                    self.halt.wait(timeout)
                continue
            try:
                done = [answers.get(timeout=timeout)]
            except queue.Empty:
                continue
            while True:
                try:
                    done.append(answers.get_nowait())
                except queue.Empty:
                    break
            in_flight -= len(done)
            self._record_all(done)

    def _timeout(self, done_claiming: bool, in_flight: int) -> float:
        """How long the loop may wait for an answer before it has something else to do."""
        timeout = 0.1
        if not done_claiming and in_flight < self.threads:
            timeout = min(timeout, max(self.bucket.wait_time(), 0.001 if in_flight else 0.0))
        if self._unrecorded:
            timeout = min(timeout, RECORD_DELAY)
        if done_claiming:
            self._hold_until = None
        elif self._hold_until is not None:
            timeout = min(timeout, max(self._hold_until - time.monotonic(), 0.0))
        return timeout

    def _claim_now(self, free: int, in_flight: int) -> bool:
        """Whether to claim for the `free` threads now, or let them wait (at most CLAIM_HOLD) for the others."""
        if not free:
            return False
        if free >= self._low_water or not in_flight:
            self._hold_until = None
            return True
        now = time.monotonic()
        if self._hold_until is None:
            if self.bucket.wait_time() > 0:  # rate tokens, not threads, are what a claim waits for
                return True
            self._hold_until = now + CLAIM_HOLD
        if now < self._hold_until:
            return False
        self._hold_until = None
        return True

    def _stopping(self) -> bool:
        """Whether the send is stopping: a first Ctrl-C (`user_stop`) becomes the halt here."""
        if self.user_stop is not None and self.user_stop.is_set() and not self.halt.is_set():
            self.interrupted = True
            self.halt.set()
        return self.halt.is_set()

    def _hand_over(self, rows: list[Delivery], pool: SendingPool, in_flight: int) -> int:
        """Send claimed rows: on the loop's thread while answers are quick, else on the pool,
        grown for the rows that wait for a thread; how many the pool now has in flight."""
        if not pool.slow or pool.quick_again():
            rows = self._send_inline(rows, pool)  # those left wait for the pool
        if rows and pool.size < self.threads:
            pool.grow(in_flight + len(rows) - pool.size)
        for delivery in rows:
            pool.put(delivery)
        return len(rows)

    def _send_inline(self, rows: list[Delivery], pool: SendingPool) -> list[Delivery]:
        """Send claimed rows on the loop's own thread while answers are quick; the rows left
        once they prove slow (or the send stops) are the pool's."""
        done: list[_Answer] = []
        left: list[Delivery] = []
        last = time.perf_counter()
        slow = pool.slow
        for i, delivery in enumerate(rows):
            # slow answers: the rest go to the pool; unless the send is stopping, when
            # _deliver answers them "requeue" at once
            if slow and not self._stopping():
                left = rows[i:]
                break
            try:
                done.append(self._deliver(delivery))
            except Exception:  # a second Ctrl-C (KeyboardInterrupt) ends the send at once, as it should
                done.append(_Answer(delivery, "crash", error=traceback.format_exc()))
            now = time.perf_counter()
            slow = pool.waited(now - last)
            last = now
        if done:
            self._record_all(done)
        return left

    def _pause(self, seconds: float) -> bool:
        """Wait before a retry; True when the send stops meanwhile. A Ctrl-C is watched here
        too: while the loop's own thread sends, nobody else would see it."""
        end = time.monotonic() + seconds
        while not self.halt.wait(min(0.1, max(0.0, end - time.monotonic()))):
            if self._stopping():
                return True
            if time.monotonic() >= end:
                return False
        return True

    def _deliver_safely(self, delivery: Delivery) -> _Answer:
        """Deliver one row on a pool thread."""
        try:
            return self._deliver(delivery)
        except BaseException:  # never leave the loop waiting for an answer that cannot come
            return _Answer(delivery, "crash", error=traceback.format_exc())

    def _take_unrecorded(self) -> Answers:
        taken, self._unrecorded = self._unrecorded, Answers()
        self._recording = taken  # counted as unrecorded should the database fail to take them
        return taken

    # runs on a sending thread
    def _deliver(self, delivery: Delivery) -> _Answer:
        answer = _Answer(delivery, "requeue")
        try:
            token = unsubscribe_token(self.secret, delivery.subscriber_id)  # type: ignore[arg-type]
            preferences = preferences_token(self.secret, delivery.subscriber_id)  # type: ignore[arg-type]
            # the claim chose the reader's translation (and recorded it in the ledger)
            template = self.templates.get(delivery.sent_language or "") or self.plan.template_for(
                delivery.language
            )
            raw = template.personalise(Recipient(delivery.email, delivery.name, token, preferences))
        except Exception:
            # a bug before anything left: the row goes back to the queue, the send stops
            self.halt.set()
            answer.kind, answer.error = "crash-before", traceback.format_exc()
            return answer
        attempt = 0
        first_try = time.monotonic()
        while True:
            if self.halt.is_set():
                answer.kind = "requeue"  # stopping, and this message was never accepted
                return answer
            attempt += 1
            try:
                result = self.transport.send(self.sender, delivery.email, raw)
            except StopSending as exc:
                answer.kind, answer.error = "stop", exc.format_message()
                return answer
            except Exception:
                # the provider may or may not have the message: leave the row uncertain
                answer.kind, answer.error = "crash", traceback.format_exc()
                return answer
            if result.outcome is Outcome.SENT:
                answer.kind, answer.message_id = "sent", result.message_id
                return answer
            answer.error = result.error or result.outcome.value
            if result.outcome is Outcome.PERMANENT:
                answer.kind = "permanent"
                return answer
            if result.outcome is Outcome.UNCERTAIN:
                answer.kind = "uncertain"  # may have been delivered: never resent silently
                return answer
            if result.throttled:
                answer.throttled += 1
                self.bucket.throttled()
            if attempt >= MAX_ATTEMPTS and not (
                result.throttled and time.monotonic() - first_try < THROTTLE_PATIENCE
            ):
                answer.kind = "temporary"
                answer.error = f"{answer.error} (gave up after {attempt} attempts)"
                return answer
            if result.throttled:
                delay = self.bucket.retry_delay(attempt)  # a few tokens' time at the current rate
            else:
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if self._pause(delay) or not self.bucket.acquire(self.halt):
                answer.kind = "requeue"
                return answer
            answer.retries += 1

    # runs on the loop's thread: the only writer of this process
    def _record_all(self, answers: list[_Answer]) -> None:
        """Note answers, to be recorded with the next claim (one transaction for both: a commit
        per message costs more CPU than building it). Until then their rows stay `sending`,
        which the bound on claims counts as in flight."""
        if not self._unrecorded:
            self._unrecorded_since = time.monotonic()
        for a in answers:
            self._record(a)

    def _record(self, answer: _Answer) -> None:
        d = answer.delivery
        sid = d.id  # the row, as the ledger records answers
        t = self.tally
        t.retries += answer.retries
        t.throttled += answer.throttled
        todo = self._unrecorded
        kind = answer.kind
        if kind == "sent":
            todo.sent.append((sid, answer.message_id))
            t.sent += 1
        elif kind in ("temporary", "permanent"):
            todo.failed.append((sid, kind, answer.error or kind))
            if kind == "temporary":
                t.failed_temporary += 1
            else:
                t.failed_permanent += 1
            if len(t.failures) < FAILURES_KEPT:
                t.failures.append(Failure(d.email, kind, answer.error or ""))
        elif kind == "uncertain":
            todo.uncertain.append((sid, answer.error or kind))
            t.uncertain += 1
        elif kind in ("requeue", "stop", "crash-before"):
            todo.requeued.append(sid)
            t.requeued += 1
            if kind == "stop":
                t.stopped = t.stopped or answer.error
                self.halt.set()
            elif kind == "crash-before":
                t.crashed = t.crashed or answer.error
        elif kind == "crash":
            t.crashed = t.crashed or answer.error
            self.halt.set()
        if self.progress is not None and kind != "requeue":
            self.progress(1)
