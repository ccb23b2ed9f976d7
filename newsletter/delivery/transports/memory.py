"""A transport that keeps messages in memory, for tests of everything above the transport.

It receives the same raw bytes a real transport would, so header and MIME bugs still show
up in tests. It can be told to fail chosen recipients, temporarily or permanently, for a
number of attempts, or to stop the whole send, so the sender's retry and ledger logic can
be exercised without a network.
"""

from __future__ import annotations

import email
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from newsletter.delivery.transports.base import Outcome, SendResult, StopSending, Transport


@dataclass(frozen=True)
class SentMessage:
    sender: str
    recipient: str
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        """The raw bytes parsed with the modern email policy."""
        return email.message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class _Failure:
    result: SendResult | StopSending
    times: int | None  # None: always; else this many attempts, then success
    attempts: int = field(default=0)


class MemoryTransport(Transport):
    """Appends (sender, recipient, raw) to `messages`; thread-safe."""

    name = "memory"

    def __init__(self, *, rate: float | None = None, delay: float = 0.0) -> None:
        self.messages: list[SentMessage] = []
        self.attempts: dict[str, int] = {}  # recipient -> number of send calls, failed or not
        self.opened = 0
        self.closed = 0
        self.delay = delay  # seconds each send takes, to make concurrency observable
        self._rate = rate
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()

    def fail(
        self,
        recipient: str,
        outcome: Outcome | SendResult | StopSending = Outcome.PERMANENT,
        *,
        times: int | None = None,
        throttled: bool = False,
    ) -> None:
        """Make sends to `recipient` fail (the first `times` attempts, or always).

        `outcome` is a result kind, a complete SendResult, or a StopSending to raise.
        UNCERTAIN delivers the message and then loses the answer, as a dropped connection does.
        """
        if isinstance(outcome, Outcome):
            if outcome is Outcome.SENT:
                raise ValueError("fail() needs a failing outcome, got 'sent'")
            if outcome is Outcome.PERMANENT:
                outcome = SendResult.permanent(f"{recipient}: refused (memory transport)")
            elif outcome is Outcome.UNCERTAIN:
                outcome = SendResult.uncertain(
                    f"{recipient}: delivered, and the answer was lost (memory transport)"
                )
            else:
                outcome = SendResult.temporary(
                    f"{recipient}: try again later (memory transport)", throttled=throttled
                )
        with self._lock:
            self._failures[recipient] = _Failure(outcome, times)

    def open(self) -> None:
        with self._lock:
            self.opened += 1

    def close(self) -> None:
        with self._lock:
            self.closed += 1

    def max_rate(self) -> float | None:
        return self._rate

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        if not isinstance(raw, bytes):
            raise TypeError(f"raw must be bytes, got {type(raw).__name__}")
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.attempts[recipient] = self.attempts.get(recipient, 0) + 1
            failure = self._failures.get(recipient)
            if failure is not None and (failure.times is None or failure.attempts < failure.times):
                failure.attempts += 1
                if isinstance(failure.result, StopSending):
                    raise failure.result
                if failure.result.outcome is Outcome.UNCERTAIN:
                    self.messages.append(SentMessage(sender, recipient, raw))
                return failure.result
            self.messages.append(SentMessage(sender, recipient, raw))
            return SendResult.sent(f"memory-{len(self.messages)}")

    def to(self, recipient: str) -> list[SentMessage]:
        """The messages delivered to one recipient (a resend shows up as two)."""
        with self._lock:
            return [m for m in self.messages if m.recipient == recipient]

    @property
    def recipients(self) -> list[str]:
        with self._lock:
            return [m.recipient for m in self.messages]
