"""Pacing a send: the rate controller that finds the rate the provider really allows, and the
token bucket that spreads sends evenly at that rate.

A provider's quota (SES GetAccount's MaxSendRate) is a ceiling, not a promise: another
application may share the account (a real limit below the quota), and some throttles
come at random whatever the rate (a transient hiccup). Halving the rate on every throttle,
as TCP-style AIMD does per loss, collapses a send to its floor under random throttles:
with 5 % of answers throttled, a 200/s account sends a throttle every 100 ms.

So the controller decides once per control interval, from what the interval showed
(requests made, throttles answered), never per throttle:

* throttles no more than the known random share explains: probe up toward the quota,
  quickly while far below the last limit seen, gently near it;
* significantly more: lower the rate to just under what the provider accepted;
* if the interval after a decrease throttles as much as before, the throttles are not
  about our rate (they did not fall when the rate fell): the decrease is undone and
  their share becomes the random share that later intervals are judged against.

:class:`RateController` is pure (every call takes the time), so its decisions are tested
on a simulated clock; :class:`Pacer` is the thread-safe token bucket the send loop uses.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL = 1.0  # seconds between decisions
MIN_SAMPLES = 20  # an interval with fewer requests is extended (up to MAX_INTERVALS)
MAX_INTERVALS = 5
Z = 3.0  # throttles beyond the random share by this many standard deviations mean "too fast"
BELOW_LIMIT = 0.95  # after a decrease, run this far below the rate the provider accepted
PROBE_FAR = 1.25  # multiply the rate by this per quiet interval while well below the last limit
# add this share of the quota per quiet interval near the last limit: above a provider's limit its
# bucket (a second's worth of tokens) runs dry after about sqrt(2 × limit / step) seconds, and the
# overshoot by then is what gets throttled. Against a limit of 120/s under a quota of 200/s on the
# simulated clock, 1 % throttled 0.9 % of requests after the first 10 s, 0.75 % 0.5 %, 0.5 % 0.3 %
# (but found a limit under random throttles too slowly: tests/test_pacing.py).
PROBE_NEAR = 0.0075
FORGET = 15  # quiet intervals in a row after which the last limit seen is forgotten
NEAR = 0.9  # "near the last limit": at or above this share of it
USED = 0.8  # probe up only after an interval that used at least this share of the rate
NOISE_WEIGHT = 0.2  # weight of a quiet interval's throttle share in the random share
MIN_RATE = 0.5  # never slow down below one message every two seconds
BURST_SECONDS = 0.1  # the bucket holds at most this much of a second's tokens (at least one)
# A throttled request is retried after this many tokens' time at the current rate, doubled per
# attempt, with jitter: the bucket already holds the rate (retries take tokens), so the wait only
# spreads retries out. A fixed 50 ms doubling held a sending slot idle for ~40 % of the time
# under 30 % random throttles at 200/s (a slot may not take another reader meanwhile).
RETRY_TOKENS = 2.0
RETRY_UNPACED = 0.05  # seconds before the first retry while the rate is unknown
RETRY_CAP = 5.0


@dataclass(frozen=True)
class Decision:
    """What the controller did at the end of one interval, and what it saw."""

    at: float
    kind: str  # probe | hold | decrease | random | start
    rate: float  # the rate from now on
    requests: int
    throttles: int


class RateController:
    """The rate to send at, decided once per interval from requests made and throttles seen.

    `quota` is the provider's ceiling (None: unknown; no pacing until the first throttle,
    then the rate achieved in that interval becomes the ceiling).
    """

    def __init__(
        self, quota: float | None, *, now: float = 0.0, interval: float = INTERVAL, floor: float = MIN_RATE
    ) -> None:
        if quota is not None and quota <= 0:
            raise ValueError(f"rate: expected a positive number of messages per second, got {quota}")
        self.quota = quota
        self.rate = quota
        self.interval = interval
        self.floor = floor
        self.noise = 0.0  # share of requests throttled whatever the rate
        self.limit: float | None = None  # the rate the provider accepted when we last hit a limit
        self.throttles = 0  # all throttles seen
        self.requests = 0  # all requests counted
        self.decisions: list[Decision] = []
        self._start = now
        self._requests = 0  # in the current interval
        self._throttles = 0
        self._after_decrease: _AfterDecrease | None = None
        self._just_judged_random = False
        self._quiet = 0  # quiet intervals in a row
        self._achieved = 0.0  # requests per second in the last interval while unpaced

    # -- observations

    def request(self, now: float, n: int = 1) -> None:
        """`n` requests (first sends and retries alike) are about to go out."""
        self.update(now)
        self._requests += n
        self.requests += n

    def cancel(self, n: int) -> None:
        """`n` of the requests counted did not go out after all."""
        n = min(n, self._requests)
        self._requests -= n
        self.requests -= n

    def throttled(self, now: float) -> None:
        """The provider answered one request with "too fast"."""
        self.update(now)
        self._throttles += 1
        self.throttles += 1
        if self.rate is None:
            self._start_pacing(now)

    # -- decisions

    def update(self, now: float) -> Decision | None:
        """Close the interval if it is over, and decide; None if it is not over yet."""
        elapsed = now - self._start
        if elapsed < self.interval:
            return None
        if self._requests < MIN_SAMPLES and elapsed < self.interval * MAX_INTERVALS:
            return None
        requests, throttles = self._requests, self._throttles
        self._start, self._requests, self._throttles = now, 0, 0
        if self.rate is None or self.quota is None:
            self._achieved = requests / elapsed
            return None
        if requests == 0:
            return None  # nothing was sent: nothing learnt (the sender may be idle or finishing)
        kind = self._decide(requests, throttles, elapsed)
        decision = Decision(now, kind, self.rate, requests, throttles)
        self.decisions.append(decision)
        return decision

    def _decide(self, requests: int, throttles: int, elapsed: float) -> str:
        assert self.rate is not None and self.quota is not None
        share = throttles / requests
        judged_random, self._just_judged_random = self._just_judged_random, False
        after, self._after_decrease = self._after_decrease, None
        if after is not None:
            after = dataclasses.replace(
                after, requests=after.requests + requests, throttles=after.throttles + throttles
            )
            verdict = after.verdict()
            # One decrease that did not help may not have got under the limit yet (the
            # provider's burst inflated what it accepted): random after two in a row, or
            # after one when the throttles since are within the random share anyway.
            too_many = self._too_many(requests, throttles, self.noise)
            if verdict == "random" and (after.steps >= 2 or not too_many):
                # The rate fell and the throttles did not: they are not about our rate.
                self.noise = min(after.throttles / after.requests, after.share_before)
                self.rate = after.rate_before
                # nor was the limit they suggested: probing near it crept back at 1 % a second
                self.limit = after.limit_before
                self._just_judged_random = True
                self._quiet = 0
                return "random"
            if verdict == "unknown":
                # Too few throttles yet to tell whether they fell: hold and count on. Deciding
                # again on one interval's handful (5 % of 200) read as "too many" each time
                # and walked the rate down step by step to 40 % of the quota.
                self._after_decrease = after
                return "hold"
        if not self._too_many(requests, throttles, self.noise):
            self._quiet += 1
            if share < self.noise:
                # only downward: a share creeping up as the rate does is a limit, not noise
                self.noise += NOISE_WEIGHT * (share - self.noise)
            if requests / elapsed < self.rate * USED:
                # the sender did not use the rate it had (CPU, threads): a higher one tells
                # nothing about the provider and would only allow bursts beyond its limit
                return "hold"
            return self._probe()
        self._quiet = 0
        if judged_random:
            # Back at the old rate, more throttles than the random share: the verdict was
            # wrong (a limit the first decrease did not get under, its burst hiding it).
            self.noise = 0.0
        accepted = (requests - throttles) / elapsed
        # a decrease right after a decrease is judged against this interval, but undone to the first's rate
        if after is not None:
            # another decrease in a row: judged against the highest share that caused one, and
            # undone (if random) to the rate and limit before the first
            self._after_decrease = _AfterDecrease(
                after.rate_before,
                max(after.share_before, share),
                steps=after.steps + 1,
                limit_before=after.limit_before,
            )
        else:
            self._after_decrease = _AfterDecrease(self.rate, share, steps=1, limit_before=self.limit)
        self.limit = accepted / (1.0 - min(self.noise, 0.9))
        self.rate = max(self.floor, min(self.rate, self.limit) * BELOW_LIMIT)
        return "decrease"

    def _probe(self) -> str:
        assert self.rate is not None and self.quota is not None
        if self.rate >= self.quota:
            return "hold"
        if self._quiet > FORGET:
            self.limit = None  # quiet for long: whatever limited us has gone, probe quickly
        if self.limit is not None and self.rate >= self.limit * NEAR:
            self.rate = min(self.quota, self.rate + self.quota * PROBE_NEAR)
        else:
            self.rate = min(self.quota, self.rate * PROBE_FAR)
        if self.limit is not None and self.rate > self.limit:
            self.limit = self.rate  # no throttles at the old limit: it has moved up
        return "probe"

    def _start_pacing(self, now: float) -> None:
        """The first throttle without a known quota: what we achieved becomes the ceiling."""
        elapsed = max(now - self._start, self.interval)
        achieved = max(self.floor, self._achieved, self._requests / elapsed)
        self.quota = achieved
        self.limit = achieved
        self.rate = max(self.floor, achieved * BELOW_LIMIT)
        self.decisions.append(Decision(now, "start", self.rate, self._requests, self._throttles))
        self._start, self._requests, self._throttles = now, 0, 0

    @staticmethod
    def _too_many(requests: int, throttles: int, noise: float) -> bool:
        """More throttles than the random share explains (binomial, Z standard deviations)."""
        expected = requests * noise
        spread = math.sqrt(max(expected * (1.0 - noise), 1.0))
        return throttles > expected + Z * spread


@dataclass(frozen=True)
class _AfterDecrease:
    """What the intervals since a decrease showed, to tell random throttles from a limit."""

    rate_before: float  # before the first decrease of a run of them: what "random" restores
    share_before: float  # the highest throttled share of the intervals that caused them
    steps: int  # decreases in a row
    limit_before: float | None = None  # the controller's limit before the first: what "random" restores
    requests: int = 0  # since the last one
    throttles: int = 0

    def verdict(self) -> str:
        """random (the share did not fall), limit (it fell), or unknown (too few to tell yet).

        A real limit the rate fell under leaves (almost) no throttles; random ones keep
        their share. "Fell" means Z standard deviations under the share before.
        """
        expected = self.requests * self.share_before
        spread = math.sqrt(max(expected * (1.0 - self.share_before), 1.0))
        if self.throttles < expected - Z * spread:
            return "limit"
        if expected - Z * spread <= 0:
            return "unknown"
        return "random"


class Pacer:
    """A thread-safe token bucket at the controller's rate: one token per request, retries too.

    The bucket refills at the current rate up to a small burst, so sends are spread evenly
    instead of arriving in clumps that a provider's own bucket (SES refuses, never queues,
    sends over the rate) would reject.
    """

    def __init__(
        self,
        quota: float | None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._burst = burst
        self.controller = RateController(quota, now=clock(), interval=interval)
        self.started = clock()
        self._tokens = self._capacity()
        self._refilled = self.started

    # -- what the summary reports

    @property
    def quota(self) -> float | None:
        return self.controller.quota

    @property
    def rate(self) -> float | None:
        return self.controller.rate

    @property
    def throttles(self) -> int:
        return self.controller.throttles

    @property
    def requests(self) -> int:
        return self.controller.requests

    # -- the bucket

    def _capacity(self) -> float:
        rate = self.controller.rate
        if rate is None:
            return float("inf")
        if self._burst is not None:
            return max(1.0, self._burst)
        return max(1.0, rate * BURST_SECONDS)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self._refilled = now
        before = self.controller.rate
        self.controller.update(now)
        rate = self.controller.rate
        if rate is None:
            return
        self._tokens = min(self._capacity(), self._tokens + elapsed * (before or rate))

    def take(self, n: int = 1) -> int:
        """Take up to `n` tokens without waiting; returns how many were taken."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if self.controller.rate is None:
                got = n
            else:
                got = min(n, int(self._tokens + 1e-9))  # 0.05 s × 100/s is 4.999… in floats
                self._tokens -= got
            if got:
                self.controller.request(now, got)
            return got

    def give_back(self, n: int) -> None:
        """Return unused tokens (claimed fewer rows than tokens taken): those requests never went out."""
        if n <= 0:
            return
        with self._lock:
            self.controller.cancel(n)
            if self.controller.rate is not None:
                self._tokens = min(self._capacity(), self._tokens + n)

    def wait_time(self) -> float:
        """Seconds until one token is available (0: now)."""
        with self._lock:
            self._refill(self._clock())
            rate = self.controller.rate
            if rate is None:
                return 0.0
            missing = 1.0 - self._tokens - 1e-9
            return 0.0 if missing <= 0 else missing / rate

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

    def retry_delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds a request throttled at its `attempt`-th send waits before the next (and its token).

        RETRY_TOKENS tokens' time at the current rate, doubled per attempt, times a jitter
        drawn from [0.5, 1) so that retries throttled together do not come back together.
        """
        rate = self.controller.rate
        first = RETRY_TOKENS / rate if rate else RETRY_UNPACED
        return min(RETRY_CAP, first * 2 ** (max(1, attempt) - 1)) * (0.5 + 0.5 * draw())

    def throttled(self) -> None:
        """The provider refused a request as too fast (the controller decides what to do about it)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            before = self.controller.rate
            self.controller.throttled(now)
            if before is None and self.controller.rate is not None:
                self._tokens = 0.0
                self._refilled = now


class SharedPacer(Pacer):
    """This sender's pacer, drawing every token it grants from a bucket all senders share too.

    Senders on several machines each pace themselves (and slow down on throttles) with their
    own pacer; `take_shared(n)` — a row in the shared database — grants at most the quota
    to all of them together, so N senders never send N × the rate. After a shortfall this
    sender waits for a few tokens' worth before asking the database again.
    """

    def __init__(
        self,
        quota: float | None,
        take_shared: Callable[[int], int],
        *,
        ask_for: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(quota, clock=clock)
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
            self._not_before = now + self._ask_for / (self.rate or self.quota or 1.0)
        return granted

    def wait_time(self) -> float:
        return max(super().wait_time(), self._not_before - self._clock())
