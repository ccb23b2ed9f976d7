"""Per-client and per-mailbox request limits for the web app: in-memory token buckets.

The web app's only defence against a script that subscribes strangers' addresses is to
answer slowly enough: `per_ip` bounds one client (an IPv6 client by its /64, which one
household or server usually holds whole), `per_address` bounds how often one mailbox
can be sent a confirmation mail, whoever asks: once per CONFIRMATION_INTERVAL. Delivery
has its own, unrelated sending rate (newsletter.delivery.ratelimit).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """A token bucket: `burst` requests at once, then one more every `every` seconds."""

    burst: int
    every: float


CONFIRMATION_INTERVAL = 24 * 3600.0  # at most one confirmation mail per mailbox in this many seconds


@dataclass(frozen=True)
class RateLimits:
    """The two limits on POST /subscribe: per client (IP, IPv6 /64), and per mailbox."""

    per_ip: Limit = Limit(burst=10, every=30.0)
    per_address: Limit = Limit(burst=1, every=CONFIRMATION_INTERVAL)


def client_key(ip: str) -> str:
    """The bucket a client address counts against: IPv4 as it is, IPv6 by its /64 prefix.

    An IPv6 host usually owns a whole /64 and can pick any address in it, so limiting
    single addresses would limit nothing.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class TokenBuckets:
    """One token bucket per key (client IP, address), in memory, thread-safe.

    Memory is bounded: when more than `max_keys` keys are held, buckets that have
    refilled completely (they carry no information) are dropped.
    """

    def __init__(
        self, limit: Limit, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens_left, at = self._buckets.get(key, (float(self.limit.burst), now))
            tokens_left = min(float(self.limit.burst), tokens_left + (now - at) / self.limit.every)
            if tokens_left < 1.0:
                self._buckets[key] = (tokens_left, now)
                return (1.0 - tokens_left) * self.limit.every
            self._buckets[key] = (tokens_left - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) / self.limit.every >= self.limit.burst
        ]
        for key in full:
            del self._buckets[key]
