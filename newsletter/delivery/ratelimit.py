"""A thread-safe token bucket that slows down when the provider says "too fast" (AIMD).

The sender takes one token per message. The bucket refills at `rate` tokens per second
up to a small burst, so sends are spread evenly instead of arriving in clumps that a
provider's own bucket (SES refuses, never queues, sends over the rate) would reject.

A throttled answer means our idea of the allowed rate is wrong (another sender shares
the account, or the quota changed): `throttled()` cuts the current rate multiplicatively,
and it then climbs back linearly toward the target — the additive-increase /
multiplicative-decrease rule TCP uses, which settles just under the real limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

DECREASE = 0.7  # multiply the current rate by this on a throttled answer
RECOVERY_SECONDS = 10.0  # time to climb from zero back to the target rate
MIN_RATE = 0.5  # never slow down below one message every two seconds
BURST_SECONDS = 0.1  # the bucket holds at most this much of a second's tokens (at least one)


class TokenBucket:
    """`rate` tokens per second (None: unlimited until the first throttle)."""

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate: expected a positive number of messages per second, got {rate}")
        self.target = rate
        self.current = rate
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._capacity()
        self._refilled = clock()
        self.throttles = 0
        # recent take times while unlimited: a first throttle sets the rate from what we achieved
        self._recent: deque[float] = deque()

    def _capacity(self) -> float:
        if self.current is None:
            return float("inf")
        if self._burst is not None:
            return max(1.0, self._burst)
        return max(1.0, self.current * BURST_SECONDS)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self._refilled = now
        if self.current is None or self.target is None:
            return
        if self.current < self.target:
            self.current = min(self.target, self.current + self.target * elapsed / RECOVERY_SECONDS)
        self._tokens = min(self._capacity(), self._tokens + elapsed * self.current)

    def take(self, n: int = 1) -> int:
        """Take up to `n` tokens without waiting; returns how many were taken."""
        with self._lock:
            now = self._clock()
            if self.current is None:
                self._remember(now, n)
                return n
            self._refill(now)
            got = min(n, int(self._tokens + 1e-9))  # 0.05 s × 100/s is 4.999… in floats
            self._tokens -= got
            return got

    def give_back(self, n: int) -> None:
        """Return unused tokens (claimed fewer rows than tokens taken)."""
        if n <= 0:
            return
        with self._lock:
            if self.current is not None:
                self._tokens = min(self._capacity(), self._tokens + n)

    def wait_time(self) -> float:
        """Seconds until one token is available (0: now)."""
        with self._lock:
            if self.current is None:
                return 0.0
            self._refill(self._clock())
            missing = 1.0 - self._tokens - 1e-9
            return 0.0 if missing <= 0 else missing / self.current

    def acquire(self, stop: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Wait for one token; False if `stop` was set (or `timeout` passed) first."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            if self.take(1):
                return True
            wait = self.wait_time()
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                wait = min(wait, left)
            wait = max(wait, 0.0005)
            if stop is not None:
                if stop.wait(wait):
                    return False
            else:
                time.sleep(wait)

    def throttled(self) -> None:
        """The provider refused a send as too fast: slow down now, recover gradually."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if self.current is None:
                # unlimited so far: start from what we actually achieved in the last second
                while self._recent and self._recent[0] < now - 1.0:
                    self._recent.popleft()
                achieved = max(MIN_RATE, float(len(self._recent)))
                self.target = achieved
                self.current = max(MIN_RATE, achieved * DECREASE)
                self._tokens = 0.0
                self._refilled = now
                self._recent.clear()
                return
            self._refill(now)
            self.current = max(MIN_RATE, self.current * DECREASE)
            self._tokens = min(self._tokens, 0.0)

    def _remember(self, now: float, n: int) -> None:
        self._recent.extend([now] * n)
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()


class SharedBucket(TokenBucket):
    """This sender's bucket, drawing every token it grants from a bucket all senders share too.

    Senders on several machines each pace themselves (and slow down on throttles) with their
    own bucket; `take_shared(n)` — a row in the shared database — grants at most the quota
    to all of them together, so N senders never send N × the rate. After a shortfall this
    sender waits for a few tokens' worth before asking the database again.
    """

    def __init__(self, rate: float, take_shared: Callable[[int], int], *, ask_for: int = 1) -> None:
        super().__init__(rate)
        self._take_shared = take_shared
        self._ask_for = max(1, ask_for)
        self._not_before = 0.0

    def take(self, n: int = 1) -> int:
        now = self._clock()
        if now < self._not_before:
            return 0
        got = super().take(n)
        if not got:
            return 0
        granted = self._take_shared(got)
        super().give_back(got - granted)
        if granted < got:
            # the others took the rest: come back when the shared bucket has refilled a little
            self._not_before = now + self._ask_for / (self.target or 1.0)
        return granted

    def wait_time(self) -> float:
        return max(super().wait_time(), self._not_before - self._clock())
