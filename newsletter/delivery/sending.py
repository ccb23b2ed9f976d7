"""Sending an issue: render once, personalise per reader, hand to a transport, record in the ledger.

The ledger (see docs/architecture.md, "Ledger states") makes a send resumable and safe to repeat:

* the first run snapshots the active subscribers into ``queued`` rows;
* a row is claimed (``sending``) just before its message goes out, and only as many rows
  are claimed as there are free sending threads and rate tokens, so a crash leaves at most
  ``threads × workers`` rows *uncertain*;
* each answer is recorded at once: ``sent``, ``failed`` (temporary or permanent), or back to
  ``queued`` when the message certainly did not leave (a stop before it was handed over);
* a re-run continues with the queued rows and never touches ``sent`` or uncertain rows
  unless asked to (``resend_uncertain``, ``retry_failed``).

Throughput: one thread claims and records (SQLite has one writer anyway), a thread pool
does the I/O, and a token bucket paces the pool. When one process is not enough
(boto3 spends ~1.2 ms of CPU per call), ``workers`` processes run the same loop against
the same database; ``claim_batch`` hands each row to exactly one of them.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.delivery.ratelimit import TokenBucket
from newsletter.delivery.transports.base import Outcome, StopSending, Transport
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.content.library import Issue, Library
    from newsletter.mail.message import MessageTemplate
    from newsletter.mail.render import Rendered
    from newsletter.store import Delivery, Store

# Used by the local transports when NEWSLETTER_SECRET is unset, so `make demo` needs no set-up.
# Links signed with it are worthless outside a development machine, which is the point.
DEVELOPMENT_SECRET = b"newsletter-development-secret (not for real mail)"
REAL_TRANSPORTS = frozenset({"ses", "smtp"})
TEST_PREFIX = "[TEST] "

MAX_ATTEMPTS = 8  # sends of one message in one run before a retry-safe failure is recorded
BACKOFF_BASE = 0.05  # seconds before the first retry; doubles each time
BACKOFF_CAP = 5.0
RECORD_DELAY = 0.2  # seconds a sent message may wait to be recorded with the next claim
FAILURES_KEPT = 200  # failures listed in a report (all of them stay in the ledger)
COMPLAINT_WARNING = 0.001  # SES reviews accounts whose complaint rate reaches 0.1 %

Progress = Callable[[int, int], None]  # (done in this run, to do in this run)


# --------------------------------------------------------------------------- preparation


def resolve_secret(settings: Settings, transport_name: str) -> tuple[bytes, str | None]:
    """The HMAC key for unsubscribe tokens, and a warning when a development key stands in.

    A real transport refuses to run without NEWSLETTER_SECRET: links signed with a
    guessable key would let anyone unsubscribe anyone.
    """
    secret = settings.secret
    if secret:
        return secret, None
    if transport_name in REAL_TRANSPORTS:
        raise NewsletterError(
            f"NEWSLETTER_SECRET: not set; the {transport_name} transport needs it to sign unsubscribe links\n\n"
            "Export a long random value and keep it (changing it breaks the links in mail already sent):\n"
            "    export NEWSLETTER_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return DEVELOPMENT_SECRET, (
        f"NEWSLETTER_SECRET is not set: the {transport_name} transport signs unsubscribe links "
        "with a development key"
    )


def build_template(
    settings: Settings,
    library: Library,
    issue: Issue,
    *,
    subject_prefix: str = "",
    rendered: Rendered | None = None,
) -> MessageTemplate:
    """Render the issue once (unless `rendered` is given) and encode the message every copy is made from."""
    from newsletter.content.selection import papers_for
    from newsletter.mail.message import MessageTemplate
    from newsletter.mail.render import render_issue

    if rendered is None:
        rendered = render_issue(library, issue, papers_for(library, issue))
    return MessageTemplate.build(rendered, settings, subject_prefix=subject_prefix)


def resolve_rate(rate: float | None, settings: Settings, transport: Transport) -> float | None:
    """Messages per second: the option, else settings, else the provider's quota, else unlimited."""
    if rate is not None:
        if rate <= 0:
            raise NewsletterError(f"--rate: expected a positive number of messages per second, got {rate:g}")
        return rate
    if settings.rate is not None:
        return settings.rate
    return transport.max_rate()


def eligible_count(store: Store, issue: str, limit: int | None = None) -> int:
    """How many readers a send would reach now (an estimate for prompts and --dry-run).

    Queued rows count, and so do active subscribers not yet in an incomplete snapshot;
    `limit` caps it as `send --limit` caps a run. Nothing is written.
    """
    counts = store.ledger_counts(issue)
    in_ledger = sum(counts.values())
    active = store.count_by_status().get("active", 0)
    # Without a store query for "is the snapshot complete", assume it still grows when the
    # ledger holds fewer rows than there are active readers (true unless people left).
    n = counts["queued"] + max(0, active - in_ledger)
    return n if limit is None else min(n, limit)


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Failure:
    email: str
    outcome: str  # temporary | permanent
    error: str


@dataclass
class Tally:
    """What one claim/send loop did (one per process); picklable, so workers can return it."""

    sent: int = 0
    failed_temporary: int = 0
    failed_permanent: int = 0
    requeued: int = 0  # certainly not sent (stopped before or during retries); queued again
    retries: int = 0
    throttled: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped: str | None = None  # the StopSending message
    crashed: str | None = None  # an unexpected error (a bug): its rows are left uncertain

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.failed_temporary += other.failed_temporary
        self.failed_permanent += other.failed_permanent
        self.requeued += other.requeued
        self.retries += other.retries
        self.throttled += other.throttled
        self.failures.extend(other.failures[: max(0, FAILURES_KEPT - len(self.failures))])
        self.stopped = self.stopped or other.stopped
        self.crashed = self.crashed or other.crashed


@dataclass
class SendReport:
    """The outcome of one `send_issue` run, and the ledger after it."""

    issue: str
    transport: str
    rate: float | None
    dry_run: bool = False
    eligible: int = 0  # dry run: readers a send would reach
    added: int = 0  # rows this run put into the ledger
    requeued_uncertain: int = 0
    requeued_failed: int = 0
    skipped: int = 0  # rows dropped at claim time: the reader unsubscribed, bounced, complained
    tally: Tally = field(default_factory=Tally)
    uncertain: list[Delivery] = field(default_factory=list)  # rows in `sending` after the run
    counts: dict[str, int] = field(default_factory=dict)  # ledger rows by state after the run
    interrupted: bool = False
    elapsed: float = 0.0
    workers: int = 1
    threads: int = 1

    @property
    def sent(self) -> int:
        return self.tally.sent

    @property
    def stopped(self) -> str | None:
        return self.tally.stopped

    @property
    def nothing_to_do(self) -> bool:
        t = self.tally
        return not self.dry_run and t.sent + t.failed_permanent + t.failed_temporary + self.skipped == 0

    @property
    def exit_code(self) -> int:
        if self.tally.stopped or self.tally.crashed:
            return 1
        if self.interrupted:
            return 130
        return 0

    def summary(self) -> str:
        """Lines for the editor: what happened, what is left, what to do next."""
        t = self.tally
        c = self.counts
        lines: list[str] = []
        if self.dry_run:
            lines.append(f"Dry run: {self.issue} would go to {self.eligible} reader(s); nothing was sent.")
            return "\n".join(lines)
        if self.nothing_to_do and not self.interrupted and not t.stopped:
            if c.get("queued", 0) == 0 and sum(c.values()) > 0:
                lines.append(f"Nothing to send: {self.issue} was already sent ({c.get('sent', 0)} sent).")
            else:
                lines.append(f"Nothing to send for {self.issue}.")
        else:
            speed = f" in {self.elapsed:.1f} s" + (
                f" ({t.sent / self.elapsed:.0f}/s)" if self.elapsed > 0 and t.sent else ""
            )
            lines.append(f"Sent {t.sent} message(s) of {self.issue} via {self.transport}{speed}.")
            if t.failed_permanent or t.failed_temporary:
                lines.append(
                    f"Failed: {t.failed_permanent} permanent, {t.failed_temporary} temporary "
                    "(see `newsletter status`)."
                )
            if self.skipped:
                lines.append(f"Skipped {self.skipped} reader(s) who left the list since the send started.")
            if t.retries or t.throttled:
                lines.append(f"Retries: {t.retries} ({t.throttled} throttled by the provider).")
        if self.requeued_uncertain:
            lines.append(f"Re-queued {self.requeued_uncertain} uncertain row(s) as asked.")
        if self.requeued_failed:
            lines.append(f"Re-queued {self.requeued_failed} temporary failure(s) as asked.")
        if self.uncertain:
            shown = ", ".join(d.email for d in self.uncertain[:10])
            more = f" and {len(self.uncertain) - 10} more" if len(self.uncertain) > 10 else ""
            lines.append(
                f"Uncertain: {len(self.uncertain)} message(s) were being sent when an earlier send stopped "
                f"and may or may not have arrived: {shown}{more}.\n"
                "They are not resent automatically; resend them with --resend-uncertain."
            )
        if c.get("queued"):
            lines.append(f"Still queued: {c['queued']}; run the same command again to continue.")
        if c.get("failed_temporary") and not t.stopped:
            lines.append(f"{c['failed_temporary']} temporary failure(s) can be retried with --retry-failed.")
        if self.interrupted:
            lines.append("Stopped by Ctrl-C after the messages in flight were recorded.")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the loop


@dataclass
class _Answer:
    delivery: Delivery
    kind: str  # sent | temporary | permanent | requeue | stop | crash
    message_id: str | None = None
    error: str | None = None
    retries: int = 0
    throttled: int = 0


class _SendLoop:
    """Claim rows as threads and tokens free up; send them on a pool; record every answer."""

    def __init__(
        self,
        *,
        issue: str,
        template: MessageTemplate,
        sender: str,
        secret: bytes,
        transport: Transport,
        store: Store,
        bucket: TokenBucket,
        threads: int,
        max_rows: int | None,
        halt: Any,  # threading.Event or multiprocessing Event: stop claiming, abandon retries
        user_stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.issue = issue
        self.template = template
        self.sender = sender
        self.secret = secret
        self.transport = transport
        self.store = store
        self.bucket = bucket
        self.threads = max(1, threads)
        self.max_rows = max_rows
        self.halt = halt
        self.user_stop = user_stop
        self.progress = progress
        self.tally = Tally()
        self.interrupted = False
        # claim in small batches (fewer transactions) but keep every thread busy
        self._low_water = max(1, self.threads // 4)
        self._unrecorded: list[tuple[int, str | None]] = []  # sent, to be recorded with the next claim
        self._unrecorded_since = 0.0

    def run(self) -> Tally:
        # Long-lived sending threads fed through queues: a Future and a wait() per message
        # cost more CPU than building the message.
        work: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        answers: queue.SimpleQueue[_Answer] = queue.SimpleQueue()
        senders = [
            threading.Thread(target=self._send_from, args=(work, answers), name=f"send-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for thread in senders:
            thread.start()
        try:
            self._loop(work, answers)
        finally:
            for _ in senders:
                work.put(None)
            for thread in senders:
                thread.join()
        if self._unrecorded:
            self.store.mark_sent_many(self.issue, self._take_unrecorded())
        return self.tally

    def _loop(self, work: queue.SimpleQueue, answers: queue.SimpleQueue) -> None:
        in_flight = 0
        claimed = 0
        exhausted = self.max_rows is not None and self.max_rows <= 0
        while True:
            if self.user_stop is not None and self.user_stop.is_set() and not self.halt.is_set():
                self.interrupted = True
                self.halt.set()
            halted = self.halt.is_set()
            # This loop's rows in `sending` are in flight or sent-but-unrecorded, never more
            # than `threads` together: that bounds what a crash leaves uncertain. A claim
            # records the unrecorded ones first, in its own transaction, so they free slots.
            free = self.threads - in_flight
            claimed_now = False
            if not halted and not exhausted and (free >= self._low_water or not in_flight):
                want = free if self.max_rows is None else min(free, self.max_rows - claimed)
                got = self.bucket.take(want) if want > 0 else 0
                if got:
                    rows = self.store.claim_batch(self.issue, got, record_sent=self._take_unrecorded())
                    claimed_now = True
                    self.bucket.give_back(got - len(rows))
                    claimed += len(rows)
                    exhausted = len(rows) < got or (self.max_rows is not None and claimed >= self.max_rows)
                    for delivery in rows:
                        work.put(delivery)
                    in_flight += len(rows)
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
                self.store.mark_sent_many(self.issue, self._take_unrecorded())
            if not in_flight and (exhausted or halted):
                return
            timeout = 0.1
            if not halted and not exhausted and in_flight < self.threads:
                timeout = min(timeout, max(self.bucket.wait_time(), 0.001))
            if self._unrecorded:
                timeout = min(timeout, RECORD_DELAY)
            if not in_flight:
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

    def _send_from(self, work: queue.SimpleQueue, answers: queue.SimpleQueue) -> None:
        """A sending thread: deliver what the loop hands over until it hands over None."""
        while (delivery := work.get()) is not None:
            try:
                answer = self._deliver(delivery)
            except BaseException:  # never leave the loop waiting for an answer that cannot come
                answer = _Answer(delivery, "crash", error=traceback.format_exc())
            answers.put(answer)

    def _take_unrecorded(self) -> list[tuple[int, str | None]]:
        taken, self._unrecorded = self._unrecorded, []
        return taken

    # runs on a sending thread
    def _deliver(self, delivery: Delivery) -> _Answer:
        from newsletter.mail.message import Recipient
        from newsletter.tokens import unsubscribe_token

        answer = _Answer(delivery, "requeue")
        try:
            token = unsubscribe_token(self.secret, delivery.subscriber_id)  # type: ignore[arg-type]
            raw = self.template.personalise(Recipient(delivery.email, delivery.name, token))
        except Exception:
            # a bug before anything left: the row goes back to the queue, the send stops
            self.halt.set()
            answer.kind, answer.error = "crash-before", traceback.format_exc()
            return answer
        attempt = 0
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
            if not result.retry_safe:
                answer.kind = "temporary"  # may have been delivered: never resent silently
                return answer
            if result.throttled:
                answer.throttled += 1
                self.bucket.throttled()
            if attempt >= MAX_ATTEMPTS:
                answer.kind = "temporary"
                answer.error = f"{answer.error} (gave up after {attempt} attempts)"
                return answer
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if self.halt.wait(delay) or not self.bucket.acquire(self.halt):
                answer.kind = "requeue"
                return answer
            answer.retries += 1

    # runs on the loop's thread: the only writer of this process
    def _record_all(self, answers: list[_Answer]) -> None:
        """Record answers. Sent messages are recorded with the next claim (one transaction for
        both: a commit per message costs more CPU than building it); the rest at once."""
        for a in answers:
            if a.kind == "sent":
                if not self._unrecorded:
                    self._unrecorded_since = time.monotonic()
                self._unrecorded.append((a.delivery.subscriber_id, a.message_id))  # type: ignore[arg-type]
                self._record(a, recorded=True)
            else:
                self._record(a)

    def _record(self, answer: _Answer, *, recorded: bool = False) -> None:
        d = answer.delivery
        sid: int = d.subscriber_id  # type: ignore[assignment]
        t = self.tally
        t.retries += answer.retries
        t.throttled += answer.throttled
        if answer.kind == "sent":
            if not recorded:
                self.store.mark_sent(self.issue, sid, answer.message_id)
            t.sent += 1
        elif answer.kind in ("temporary", "permanent"):
            self.store.mark_failed(self.issue, sid, answer.kind, answer.error or answer.kind)
            if answer.kind == "temporary":
                t.failed_temporary += 1
            else:
                t.failed_permanent += 1
            if len(t.failures) < FAILURES_KEPT:
                t.failures.append(Failure(d.email, answer.kind, answer.error or ""))
        elif answer.kind in ("requeue", "stop", "crash-before"):
            self.store.requeue(self.issue, sid)
            t.requeued += 1
            if answer.kind == "stop":
                t.stopped = t.stopped or answer.error
                self.halt.set()
            elif answer.kind == "crash-before":
                t.crashed = t.crashed or answer.error
        elif answer.kind == "crash":
            t.crashed = t.crashed or answer.error
            self.halt.set()
        if self.progress is not None and answer.kind != "requeue":
            self.progress(1)


# --------------------------------------------------------------------------- workers (processes)


@dataclass(frozen=True)
class _WorkerJob:
    settings: Settings
    database_url: str
    issue: str
    template: MessageTemplate
    sender: str
    secret: bytes
    transport: str
    outbox: Path | None
    rate: float | None
    threads: int
    max_rows: int | None


def _worker_main(job: _WorkerJob, halt: Any, results: Any) -> None:
    """One worker process: its own store connection, transport and share of the rate."""
    # Ctrl-C reaches the whole process group: the parent decides, and tells us through `halt`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from newsletter.delivery.transports import make_transport
    from newsletter.store import Store

    tally = Tally()
    try:
        with Store.open(job.database_url) as store:
            transport = make_transport(
                job.settings, job.transport, outbox=job.outbox, concurrency=job.threads
            )
            with transport:
                loop = _SendLoop(
                    issue=job.issue,
                    template=job.template,
                    sender=job.sender,
                    secret=job.secret,
                    transport=transport,
                    store=store,
                    bucket=TokenBucket(job.rate),
                    threads=job.threads,
                    max_rows=job.max_rows,
                    halt=halt,
                )
                tally = loop.run()
    except NewsletterError as exc:
        tally.stopped = exc.format_message()
        halt.set()
    except BaseException:
        tally.crashed = traceback.format_exc()
        halt.set()
    results.put(tally)


def _run_workers(
    *,
    settings: Settings,
    store: Store,
    issue: str,
    template: MessageTemplate,
    sender: str,
    secret: bytes,
    transport: Transport,
    rate: float | None,
    workers: int,
    threads: int,
    max_rows: int | None,
    stop_event: threading.Event | None,
    progress: Callable[[int], None] | None,
) -> tuple[Tally, bool]:
    if transport.name == "memory":
        raise NewsletterError(
            "--workers: the memory transport keeps messages inside one process; use --workers 1"
        )
    ctx = multiprocessing.get_context("spawn")
    halt = ctx.Event()
    results = ctx.Queue()
    shares = (
        [None] * workers
        if max_rows is None
        else [max_rows // workers + (i < max_rows % workers) for i in range(workers)]
    )
    jobs = [
        _WorkerJob(
            settings=settings,
            database_url=store.url,
            issue=issue,
            template=template,
            sender=sender,
            secret=secret,
            transport=transport.name,
            outbox=getattr(transport, "outbox", None),
            rate=None if rate is None else rate / workers,
            threads=threads,
            max_rows=shares[i],
        )
        for i in range(workers)
    ]
    processes = [ctx.Process(target=_worker_main, args=(job, halt, results), daemon=True) for job in jobs]
    for p in processes:
        p.start()
    tally = Tally()
    received = 0
    interrupted = False
    start = _done(store.ledger_counts(issue))
    reported = 0
    while received < workers:
        if stop_event is not None and stop_event.is_set() and not halt.is_set():
            interrupted = True
            halt.set()
        try:
            tally.add(results.get(timeout=0.25))
            received += 1
        except queue.Empty:
            if not any(p.is_alive() for p in processes) and received < workers:
                try:
                    tally.add(results.get(timeout=1.0))
                    received += 1
                    continue
                except queue.Empty:
                    tally.crashed = tally.crashed or "a worker process ended without a report"
                    break
        if progress is not None:
            now = _done(store.ledger_counts(issue)) - start
            if now > reported:
                progress(now - reported)
                reported = now
    for p in processes:
        p.join(timeout=10)
    return tally, interrupted


def _done(counts: dict[str, int]) -> int:
    return counts["sent"] + counts["failed_temporary"] + counts["failed_permanent"]


# --------------------------------------------------------------------------- the API


def send_issue(
    settings: Settings,
    library: Library,
    issue: Issue,
    *,
    transport: Transport,
    store: Store,
    rate: float | None = None,
    workers: int = 1,
    threads: int = 8,
    limit: int | None = None,
    resend_uncertain: bool = False,
    retry_failed: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    secret: bytes | None = None,
    template: MessageTemplate | None = None,
) -> SendReport:
    """Send `issue` to every eligible subscriber exactly once, recording each message in the ledger.

    Resumable: a re-run continues where the last one stopped; rows left uncertain by a
    crash are reported, and resent only with `resend_uncertain`. `rate` (messages per
    second) defaults to settings, then the provider's quota, then unlimited. `progress`
    is called with (done, total) as messages are recorded; setting `stop_event` stops
    claiming new rows, lets messages in flight finish, and returns.
    """
    if workers < 1 or threads < 1:
        raise NewsletterError(f"--workers/--threads: expected at least 1, got {workers}/{threads}")
    if limit is not None and limit < 0:
        raise NewsletterError(f"--limit: expected a number >= 0, got {limit}")
    slug = issue.slug
    if secret is None:
        secret, _ = resolve_secret(settings, transport.name)
    report = SendReport(issue=slug, transport=transport.name, rate=rate, workers=workers, threads=threads)
    if dry_run:
        report.eligible = eligible_count(store, slug, limit)
        report.counts = store.ledger_counts(slug)
        report.uncertain = store.uncertain(slug)
        return report

    started = time.monotonic()
    if template is None:
        template = build_template(settings, library, issue)
    with transport:
        report.rate = rate = resolve_rate(rate, settings, transport)
        before = store.ledger_counts(slug)
        # --limit N: at most N readers in this run; the ledger grows by what that needs
        settled = sum(before.values()) - before["queued"]
        report.added = store.create_ledger(slug, limit=None if limit is None else settled + limit)
        if resend_uncertain:
            report.requeued_uncertain = store.requeue_uncertain(slug)
        if retry_failed:
            report.requeued_failed = store.requeue_temporary(slug)
        counts = store.ledger_counts(slug)
        total = counts["queued"] if limit is None else min(counts["queued"], limit)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        sender = settings.sender_address.addr_spec
        if workers == 1:
            loop = _SendLoop(
                issue=slug,
                template=template,
                sender=sender,
                secret=secret,
                transport=transport,
                store=store,
                bucket=TokenBucket(rate),
                threads=threads,
                max_rows=limit,
                halt=threading.Event(),
                user_stop=stop_event,
                progress=advance,
            )
            report.tally = loop.run()
            report.interrupted = loop.interrupted
        else:
            report.tally, report.interrupted = _run_workers(
                settings=settings,
                store=store,
                issue=slug,
                template=template,
                sender=sender,
                secret=secret,
                transport=transport,
                rate=rate,
                workers=workers,
                threads=threads,
                max_rows=limit,
                stop_event=stop_event,
                progress=advance,
            )
    report.counts = store.ledger_counts(slug)
    report.uncertain = store.uncertain(slug)
    permanent_now = report.counts["failed_permanent"] - before["failed_permanent"]
    # rows claim_batch dropped as unsubscribed/bounced are permanent failures we did not record
    report.skipped = max(0, permanent_now - report.tally.failed_permanent)
    report.elapsed = time.monotonic() - started
    return report


@dataclass(frozen=True)
class TestSend:
    email: str
    outcome: str
    error: str | None = None


def send_test(
    settings: Settings,
    library: Library,
    issue: Issue,
    addresses: list[str],
    *,
    transport: Transport,
    store: Store | None = None,
    secret: bytes | None = None,
    rendered: Rendered | None = None,
) -> list[TestSend]:
    """Send the issue to `addresses` only, subject prefixed "[TEST] ", without touching the ledger.

    An address that is a subscriber gets that subscriber's own unsubscribe link (so the
    link can be tried); any other address gets a link signed for no one.
    """
    from newsletter.mail.message import Recipient
    from newsletter.tokens import make_token, unsubscribe_token

    if secret is None:
        secret, _ = resolve_secret(settings, transport.name)
    template = build_template(settings, library, issue, subject_prefix=TEST_PREFIX, rendered=rendered)
    sender = settings.sender_address.addr_spec
    results: list[TestSend] = []
    with transport:
        for address in addresses:
            subscriber = store.get_subscriber(address) if store is not None else None
            if subscriber is not None:
                recipient = Recipient(address, subscriber.name, unsubscribe_token(secret, subscriber.id))
            else:
                recipient = Recipient(address, None, make_token(secret, "test", address))
            result = transport.send(sender, address, template.personalise(recipient))
            results.append(TestSend(address, result.outcome.value, result.error))
    return results


# --------------------------------------------------------------------------- status


@dataclass
class Status:
    """The ledger of one issue, for `newsletter status`."""

    issue: str
    counts: dict[str, int]
    delivered: int
    failures: list[Failure]
    uncertain: list[str]
    events: dict[str, int]  # bounce (permanent), soft_bounce, complaint: matched to this issue's messages

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complaint_rate(self) -> float:
        sent = self.counts.get("sent", 0)
        return self.events.get("complaint", 0) / sent if sent else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "total": self.total,
            "queued": self.counts["queued"],
            "sending": self.counts["sending"],
            "uncertain": len(self.uncertain),
            "sent": self.counts["sent"],
            "failed_temporary": self.counts["failed_temporary"],
            "failed_permanent": self.counts["failed_permanent"],
            "delivered": self.delivered,
            "bounces": self.events.get("bounce", 0),
            "soft_bounces": self.events.get("soft_bounce", 0),
            "complaints": self.events.get("complaint", 0),
            "complaint_rate": round(self.complaint_rate, 6),
            "failures": [{"email": f.email, "outcome": f.outcome, "error": f.error} for f in self.failures],
            "uncertain_emails": self.uncertain,
        }


def issue_status(store: Store, issue: str) -> Status:
    """Counts by state, failures with reasons, delivery and complaint figures for one issue."""
    rows = store.ledger(issue)
    counts = store.ledger_counts(issue)
    failures = [
        Failure(d.email, d.outcome or "permanent", d.error or "") for d in rows if d.state == "failed"
    ]
    # Events (bounces, complaints) are recorded by `newsletter events`; the store counts
    # the ones that answer this issue's messages.
    events = store.issue_event_counts(issue)
    return Status(
        issue=issue,
        counts=counts,
        delivered=sum(1 for d in rows if d.delivered_at is not None),
        failures=failures,
        uncertain=[d.email for d in rows if d.state == "sending"],
        events=events,
    )
