"""What a send did: the per-loop tally that workers hand back, and the report the editor reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from newsletter.store import UNCERTAIN

if TYPE_CHECKING:
    from newsletter.store import Delivery

FAILURES_KEPT = 200  # failures listed in a report (all of them stay in the ledger)
UNCERTAIN_SHOWN = 50  # uncertain addresses listed in the summary (`status` lists them all)


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
    uncertain: int = 0  # the provider may have the message; its answer was lost (left in `sending`)
    requeued: int = 0  # certainly not sent (stopped before or during retries); queued again
    retries: int = 0
    throttled: int = 0
    requests: int = 0  # requests the pacer let out, first sends and retries alike
    quota: float | None = None  # the rate the pacer started from (None: unpaced)
    final_rate: float | None = None  # the pacer's rate when the loop ended
    failures: list[Failure] = field(default_factory=list)
    stopped: str | None = None  # the StopSending message
    crashed: str | None = None  # an unexpected error (a bug): its rows are left uncertain

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.failed_temporary += other.failed_temporary
        self.failed_permanent += other.failed_permanent
        self.uncertain += other.uncertain
        self.requeued += other.requeued
        self.retries += other.retries
        self.throttled += other.throttled
        self.requests += other.requests
        # each worker paces its share of the rate: the send's rate is their sum
        self.quota = _sum(self.quota, other.quota)
        self.final_rate = _sum(self.final_rate, other.final_rate)
        self.failures.extend(other.failures[: max(0, FAILURES_KEPT - len(self.failures))])
        self.stopped = self.stopped or other.stopped
        self.crashed = self.crashed or other.crashed


def _sum(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


@dataclass
class SendReport:
    """The outcome of one `send_issue` run, and the ledger after it."""

    issue: str
    transport: str
    rate: float | None
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
        return t.sent + t.failed_permanent + t.failed_temporary + t.uncertain + self.skipped == 0

    @property
    def exit_code(self) -> int:
        if self.tally.stopped or self.tally.crashed:
            return 1
        if self.interrupted:
            return 130
        return 0

    def summary(self) -> str:
        """Lines for the editor: what happened, what is left, what to do next."""
        lines = self._what_happened() + self._what_is_left()
        if self.interrupted:
            lines.append("Stopped by Ctrl-C after the messages in flight were recorded.")
        return "\n".join(lines)

    def _what_happened(self) -> list[str]:
        t = self.tally
        c = self.counts
        if self.nothing_to_do and not self.interrupted and not t.stopped:
            if c.get("queued", 0) == 0 and sum(c.values()) > 0:
                return [f"Nothing to send: {self.issue} was already sent ({c.get('sent', 0)} sent)."]
            return [f"Nothing to send for {self.issue}."]
        speed = f" in {self.elapsed:.1f} s" + (
            f" ({t.sent / self.elapsed:.0f}/s)" if self.elapsed > 0 and t.sent else ""
        )
        lines = [f"Sent {t.sent} message(s) of {self.issue} via {self.transport}{speed}."]
        if t.failed_permanent or t.failed_temporary:
            lines.append(
                f"Failed: {t.failed_permanent} permanent, {t.failed_temporary} temporary (see `newsletter status`)."
            )
        if self.skipped:
            lines.append(f"Skipped {self.skipped} reader(s) who left the list since the send started.")
        if t.uncertain:
            lines.append(f"Uncertain: {t.uncertain} (the provider may have them: its answer was lost).")
        if t.retries or t.throttled:
            lines.append(f"Retries: {t.retries} ({t.throttled} throttled by the provider).")
        pace = self._pace()
        if pace:
            lines.append(pace)
        return lines

    def _pace(self) -> str | None:
        """Quota, rate achieved, throttles, and the rate the pacer ended at."""
        t = self.tally
        if t.quota is None and not t.throttled:
            return None
        achieved = t.sent / self.elapsed if self.elapsed > 0 else 0.0
        quota = "none (unpaced until the first throttle)" if self.rate is None else f"{self.rate:g}/s"
        final = "unpaced" if t.final_rate is None else f"{t.final_rate:.0f}/s"
        return (
            f"Rate: quota {quota}, achieved {achieved:.0f}/s, throttled {t.throttled} of {t.requests} "
            f"request(s), pacer's final rate {final}."
        )

    def _what_is_left(self) -> list[str]:
        c = self.counts
        lines: list[str] = []
        if self.requeued_uncertain:
            lines.append(f"Re-queued {self.requeued_uncertain} uncertain row(s) as asked.")
        if self.requeued_failed:
            lines.append(f"Re-queued {self.requeued_failed} temporary failure(s) as asked.")
        if self.uncertain:
            lost = sum(d.outcome == UNCERTAIN for d in self.uncertain)
            why = []
            if lost:
                why.append(f"{lost} whose answer from the provider was lost")
            if len(self.uncertain) > lost:
                why.append(f"{len(self.uncertain) - lost} in flight when an earlier send stopped")
            shown = ", ".join(d.email for d in self.uncertain[:UNCERTAIN_SHOWN])
            more = (
                f" and {len(self.uncertain) - UNCERTAIN_SHOWN} more (`newsletter status` lists them all)"
                if len(self.uncertain) > UNCERTAIN_SHOWN
                else ""
            )
            lines.append(
                f"Uncertain: {len(self.uncertain)} message(s) may or may not have arrived "
                f"({'; '.join(why)}): {shown}{more}.\n"
                "They are not resent automatically, not even by --retry-failed; "
                "resend them with --resend-uncertain."
            )
        if c.get("queued"):
            lines.append(f"Still queued: {c['queued']}; run the same command again to continue.")
        if c.get("failed_temporary") and not self.tally.stopped:
            lines.append(f"{c['failed_temporary']} temporary failure(s) can be retried with --retry-failed.")
        return lines
