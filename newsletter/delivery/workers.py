"""Worker processes: when one CPU cannot keep up (boto3 spends ~1.2 ms of CPU per call), ``workers``
processes run the same sending loop against the same database, each with its own store
connection, transport and share of the rate; ``claim_batch`` hands each row to exactly one of them.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.delivery.loop import SendLoop
from newsletter.delivery.report import Tally
from newsletter.delivery.transports import make_transport
from newsletter.errors import NewsletterError
from newsletter.store import Store

if TYPE_CHECKING:
    from newsletter.delivery.plan import SendPlan


@dataclass(frozen=True)
class _WorkerJob:
    database_url: str
    plan: SendPlan  # without its transport: each worker makes its own
    outbox: Path | None
    rate: float | None  # this worker's share
    quota: float | None  # all senders' together (a shared ledger splits it through the database)
    max_rows: int | None  # this worker's share of --limit


def _worker_main(job: _WorkerJob, halt: Any, results: Any) -> None:
    """One worker process: its own store connection, transport and share of the rate."""
    # Ctrl-C reaches the whole process group: the parent decides, and tells us through `halt`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    plan = job.plan
    tally = Tally()
    try:
        with Store.open(job.database_url) as store:
            transport = make_transport(
                plan.settings, plan.transport_name, outbox=job.outbox, concurrency=plan.threads
            )
            with transport:
                loop = SendLoop(
                    plan, transport, store, rate=job.rate, quota=job.quota, max_rows=job.max_rows, halt=halt
                )
                tally = loop.run()
    except NewsletterError as exc:
        tally.stopped = exc.format_message()
        halt.set()
    except BaseException:
        tally.crashed = traceback.format_exc()
        halt.set()
    results.put(tally)


def run_workers(
    plan: SendPlan,
    store: Store,
    *,
    rate: float | None,
    stop_event: threading.Event | None,
    progress: Callable[[int], None] | None,
) -> tuple[Tally, bool]:
    """Run `plan.workers` processes to the end of the plan; their tallies added up, and whether Ctrl-C stopped them."""
    workers = plan.workers
    ctx = multiprocessing.get_context("spawn")
    halt = ctx.Event()
    results = ctx.Queue()
    limit = plan.limit
    shares = (
        [None] * workers
        if limit is None
        else [limit // workers + (i < limit % workers) for i in range(workers)]
    )
    portable = plan.without_transport()
    outbox = getattr(plan.transport, "outbox", None)
    jobs = [
        _WorkerJob(
            database_url=store.url,
            plan=portable,
            outbox=outbox,
            rate=None if rate is None else rate / workers,
            quota=rate,
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
    start = _done(store.ledger_counts(plan.issue))
    reported = 0
    while received < workers:
        if stop_event is not None and stop_event.is_set() and not halt.is_set():
            interrupted = True
            halt.set()
        try:
            tally.add(results.get(timeout=0.25))
            received += 1
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                # a process may have put its tally just before ending: give the queue a moment
                try:
                    tally.add(results.get(timeout=1.0))
                    received += 1
                    continue
                except queue.Empty:
                    tally.crashed = tally.crashed or "a worker process ended without a report"
                    break
        if progress is not None:
            now = _done(store.ledger_counts(plan.issue)) - start
            if now > reported:
                progress(now - reported)
                reported = now
    for p in processes:
        p.join(timeout=10)
    return tally, interrupted


def _done(counts: dict[str, int]) -> int:
    return counts["sent"] + counts["failed_temporary"] + counts["failed_permanent"]
