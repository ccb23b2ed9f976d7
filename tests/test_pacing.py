"""The rate controller's decisions and the pacer's bucket, on a simulated clock (no sleeps).

The simulated provider behaves like SES: a token bucket at its real limit holding one
second's worth (a request finding it empty is throttled, never queued), and optionally
a share of requests throttled at random whatever the rate.
"""

from __future__ import annotations

import random
import threading

import pytest

from newsletter.delivery.pacing import (
    MIN_SAMPLES,
    RETRY_CAP,
    RETRY_TOKENS,
    RETRY_UNPACED,
    Pacer,
    RateController,
)


class Provider:
    """SES's behaviour on a simulated clock: a hard limit (token bucket) and random throttles."""

    def __init__(self, limit: float | None = None, noise: float = 0.0, seed: int = 1) -> None:
        self.limit = limit
        self.noise = noise
        self.random = random.Random(seed)
        self.tokens = limit or 0.0
        self.last = 0.0

    def throttles(self, now: float) -> bool:
        if self.limit is not None:
            self.tokens = min(self.limit, self.tokens + (now - self.last) * self.limit)
            self.last = now
            if self.tokens < 1.0:
                return True
        if self.noise and self.random.random() < self.noise:
            return True
        if self.limit is not None:
            self.tokens -= 1.0
        return False


def run(
    controller: RateController, provider: Provider, start: float, seconds: float
) -> list[tuple[float, bool]]:
    """Send at the controller's rate from `start` for `seconds`; the requests and their answers."""
    now = start
    log = []
    while now < start + seconds:
        controller.request(now)
        throttled = provider.throttles(now)
        if throttled:
            controller.throttled(now)
        log.append((now, throttled))
        now += 1.0 / controller.rate
    return log


def accepted_rate(log: list[tuple[float, bool]], after: float) -> float:
    late = [(t, throttled) for t, throttled in log if t >= after]
    return sum(not throttled for _, throttled in late) / (late[-1][0] - late[0][0])


def throttled_share(log: list[tuple[float, bool]], after: float) -> float:
    late = [throttled for t, throttled in log if t >= after]
    return sum(late) / len(late)


def test_without_throttles_the_rate_stays_at_the_quota() -> None:
    controller = RateController(200.0)
    run(controller, Provider(), 0.0, 10.0)
    assert controller.rate == 200.0
    assert {d.kind for d in controller.decisions} == {"hold"}
    assert len(controller.decisions) == pytest.approx(10, abs=1)


def test_many_throttles_in_one_interval_decrease_the_rate_once() -> None:
    controller = RateController(100.0)
    for i in range(100):
        controller.request(i / 100)
    for i in range(60):  # a burst of throttles inside one interval
        controller.throttled(0.5 + i / 1000)
    assert controller.rate == 100.0  # nothing decided before the interval ends
    decision = controller.update(1.0)
    assert decision is not None and decision.kind == "decrease"
    # 40 of 100 accepted in one second: run just under 40/s, not at 100 × 0.7⁶⁰
    assert controller.rate == pytest.approx(40 * 0.95)
    assert controller.update(1.5) is None  # the next decision waits for the next interval


def test_a_lone_throttle_is_not_a_reason_to_slow_down() -> None:
    controller = RateController(200.0)
    for i in range(200):
        controller.request(i / 200)
    controller.throttled(0.5)
    decision = controller.update(1.0)
    assert decision is not None and decision.kind == "hold"
    assert controller.rate == 200.0


def test_a_real_limit_below_the_quota_is_found_and_held() -> None:
    controller = RateController(200.0)
    log = run(controller, Provider(limit=120.0), 0.0, 60.0)
    assert controller.limit == pytest.approx(120, rel=0.1)
    assert accepted_rate(log, after=10.0) >= 0.9 * 120
    assert throttled_share(log, after=10.0) < 0.02
    assert controller.noise < 0.005  # however the provider's burst made the start look


@pytest.mark.parametrize("noise", [0.05, 0.30])
def test_random_throttles_do_not_lower_the_rate(noise: float) -> None:
    controller = RateController(200.0)
    log = run(controller, Provider(noise=noise), 0.0, 30.0)
    kinds = [d.kind for d in controller.decisions]
    assert "random" in kinds  # a decrease was tried, the throttles did not fall, it was undone
    # a decrease now and then (chance clusters), undone at once: rarely below 90 % of the quota
    assert sum(d.rate < 0.9 * 200 for d in controller.decisions) <= len(controller.decisions) // 4
    assert controller.noise == pytest.approx(noise, abs=0.05)
    assert controller.rate >= 0.9 * 200
    assert accepted_rate(log, after=5.0) >= 0.9 * 200 * (1 - noise)


def test_a_limit_under_random_throttles_is_still_found() -> None:
    controller = RateController(200.0)
    log = run(controller, Provider(limit=120.0, noise=0.05, seed=3), 0.0, 60.0)
    assert accepted_rate(log, after=15.0) >= 0.9 * 120 * 0.95
    assert throttled_share(log, after=15.0) < 0.05 + 0.05  # the random share, and a little more


def test_the_rate_climbs_back_when_the_limit_goes_away() -> None:
    controller = RateController(200.0)
    provider = Provider(limit=60.0)
    run(controller, provider, 0.0, 20.0)
    assert controller.rate is not None and controller.rate < 70
    provider.limit = None  # the other sender on the account stopped
    run(controller, Provider(), 20.0, 40.0)
    assert controller.rate == 200.0


def test_random_throttles_that_stop_are_forgotten() -> None:
    controller = RateController(200.0)
    run(controller, Provider(noise=0.2), 0.0, 10.0)
    assert controller.noise > 0.1
    run(controller, Provider(), 10.0, 20.0)
    assert controller.noise < 0.02


def test_a_short_interval_waits_for_enough_requests() -> None:
    controller = RateController(5.0)
    for i in range(5):
        controller.request(i * 0.2)
    assert controller.update(1.0) is None  # 5 < MIN_SAMPLES requests: keep counting
    for i in range(MIN_SAMPLES):
        controller.request(1.0 + i * 0.2)
    assert [d.requests for d in controller.decisions] == [MIN_SAMPLES]


def test_without_a_quota_the_first_throttle_sets_one_from_the_rate_achieved() -> None:
    controller = RateController(None)
    for i in range(250):
        controller.request(i / 250)
    controller.throttled(0.999)
    assert controller.quota == pytest.approx(250, rel=0.05)
    assert controller.rate == pytest.approx(0.95 * controller.quota)
    assert controller.decisions[-1].kind == "start"


def test_a_quota_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate: expected a positive number"):
        RateController(0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_spreads_tokens_at_the_rate() -> None:
    clock = Clock()
    pacer = Pacer(100.0, clock=clock)
    assert pacer.take(50) == 10  # a burst of 0.1 s, not the whole second
    assert pacer.take(1) == 0
    assert pacer.wait_time() == pytest.approx(0.01)
    clock.now = 0.05
    assert pacer.take(50) == 5


def test_the_pacer_counts_requests_and_tokens_given_back_are_not_requests() -> None:
    clock = Clock()
    pacer = Pacer(100.0, clock=clock)
    assert pacer.take(10) == 10
    pacer.give_back(4)
    assert pacer.controller.requests == 6
    assert pacer.take(4) == 4  # the tokens are there again


def test_the_pacer_follows_the_controller_and_reports_it() -> None:
    clock = Clock()
    pacer = Pacer(100.0, clock=clock)
    taken = 0
    for step in range(99):
        clock.now = step / 100
        taken += pacer.take(100)
    clock.now = 0.995
    for _ in range(60):
        pacer.throttled()
    clock.now = 1.0
    pacer.take(1)  # the interval is over: the controller decides
    assert pacer.rate == pytest.approx((taken - 60) * 0.95, rel=0.05)
    assert (pacer.quota, pacer.throttles) == (100.0, 60)


def test_the_unpaced_pacer_gives_every_token_until_a_throttle() -> None:
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    assert pacer.take(1000) == 1000
    assert pacer.wait_time() == 0.0
    clock.now = 1.5
    pacer.throttled()
    assert pacer.rate == pytest.approx(1000 / 1.5 * 0.95)  # what it achieved, just under
    assert pacer.take(1000) == 0  # the bucket starts empty once paced


def test_a_throttled_retry_waits_a_few_tokens_time_doubling_with_jitter() -> None:
    pacer = Pacer(200.0, clock=Clock())
    first = RETRY_TOKENS / 200.0
    # the jitter spans [0.5, 1) of the wait: retries throttled together come back apart
    assert pacer.retry_delay(1, draw=lambda: 0.0) == pytest.approx(first * 0.5)
    assert pacer.retry_delay(1, draw=lambda: 0.999) == pytest.approx(first * 0.9995)
    assert pacer.retry_delay(3, draw=lambda: 0.0) == pytest.approx(first * 4 * 0.5)
    assert pacer.retry_delay(30, draw=lambda: 0.0) == pytest.approx(RETRY_CAP * 0.5)
    draws = {pacer.retry_delay(1) for _ in range(20)}
    assert len(draws) > 1 and all(first * 0.5 <= d < first for d in draws)
    # a slower account waits longer: the wait is counted in its tokens
    assert Pacer(14.0).retry_delay(1, draw=lambda: 0.0) == pytest.approx(RETRY_TOKENS / 14.0 * 0.5)
    assert Pacer(None).retry_delay(2, draw=lambda: 0.0) == pytest.approx(RETRY_UNPACED * 2 * 0.5)


def test_the_pacer_stops_waiting_when_told_to() -> None:
    pacer = Pacer(1.0)
    assert pacer.acquire() is True
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert pacer.acquire(stop) is False


def test_a_rate_the_sender_does_not_use_is_not_raised() -> None:
    controller = RateController(200.0)
    for i in range(100):
        controller.request(i / 100)
    for i in range(60):
        controller.throttled(0.5 + i / 1000)
    controller.update(1.0)
    lowered = controller.rate
    assert lowered is not None and lowered < 100
    for i in range(10):  # the sender manages only 10/s: no reason to allow more
        controller.request(1.0 + i / 10)
    for second in range(2, 8):
        for i in range(20):
            controller.request(second + i / 20)
    assert {d.kind for d in controller.decisions[1:]} == {"hold"}
    assert controller.rate == lowered
