"""The sending threads of one loop: as many as the answers' latency needs (Little's law), never more than `threads`.

The concurrency a send needs is its rate times the time a message holds a sender. A transport
that answers in microseconds (in memory, without a disk flush) needs one thread, and that
thread is the loop's own: it sends between claims with no hand-over at all (through eight
threads, such a send switched context 0.7 times per message; on the loop's thread, 0.05).
SES at 200/s answering in 50 ms needs about ten, and the outbox, which flushes each file to
disk, several. So a send starts on the loop's thread and moves to a pool once answers prove
slow; then a thread is added for each claimed row that waits for a free one (claims wait for
the rate's tokens first, so rows wait only while rate × latency exceeds the threads), with
`threads` as the ceiling; a thread idle for IDLE_RETIRE seconds leaves (one always stays).
The move goes both ways: when the pool's last QUICK_SAMPLES messages took a local transport's
time again (the slowness was a busy moment of the machine, not the transport), the loop's
thread takes the sending back.

None of this widens what a crash can leave: the loop claims no more rows than `threads`
whichever thread sends them (see newsletter.delivery.loop).
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

# A message is slow when it holds its sender this long: a network round trip or a disk flush,
# not a local transport's tens of microseconds (nor a busy machine's preemption of one, which
# SLOW_SAMPLES consecutive slow messages rule out). One message as slow as VERY_SLOW is enough:
# the loop's thread should not wait for a second one.
SLOW_ANSWER = 0.0005  # seconds
SLOW_SAMPLES = 2
VERY_SLOW = 0.02  # seconds
IDLE_RETIRE = 1.0  # seconds a pool thread waits for work before it leaves (one always stays)
# Messages the pool sends before it asks whether their median time is quick again (below SLOW_ANSWER)
QUICK_SAMPLES = 32


class SendingPool:
    """Sending threads started as they are needed, each running `deliver` on what `put` hands over."""

    def __init__(
        self,
        deliver: Callable[[Any], Any],
        answers: queue.SimpleQueue,
        ceiling: int,
        leave: Callable[[], None] = lambda: None,
    ) -> None:
        self._deliver = deliver
        self._leave = leave  # runs on a thread as it ends (the transport releases its connection)
        self._answers = answers
        self.ceiling = max(1, ceiling)
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.size = 0  # threads alive (while answers are quick, the loop's own thread sends)
        self.peak = 0  # the most threads alive at once
        self._slow_in_a_row = 0  # messages sent on the loop's thread that were slow, the last ones
        # seconds each of the pool's last messages held its thread
        self._held: deque[float] = deque(maxlen=QUICK_SAMPLES)

    # -- what the answers take

    def waited(self, wall: float) -> bool:
        """One message sent on the loop's own thread took `wall` seconds: whether answers are
        now `slow` (the loop's thread should hand messages to a pool)."""
        if wall > VERY_SLOW:
            self._slow_in_a_row = SLOW_SAMPLES
        elif wall > SLOW_ANSWER:
            self._slow_in_a_row += 1
        else:
            self._slow_in_a_row = 0
        return self._slow_in_a_row >= SLOW_SAMPLES

    @property
    def slow(self) -> bool:
        """Whether answers keep the loop's thread waiting: SLOW_SAMPLES slow messages in a row, or a very slow one."""
        return self._slow_in_a_row >= SLOW_SAMPLES

    def quick_again(self) -> bool:
        """Whether the pool's last QUICK_SAMPLES messages held their threads no longer than a quick
        answer, in the median: then the loop's own thread sends again (`slow` is False) until answers
        prove slow once more. A "no" waits for as many new messages before it is asked again."""
        if len(self._held) < QUICK_SAMPLES:
            return False
        quick = statistics.median(self._held) <= SLOW_ANSWER
        self._held.clear()
        if quick:
            self._slow_in_a_row = 0
        return quick

    # -- the threads

    def grow(self, waiting: int) -> int:
        """Start a thread for each claimed row that waits for one, up to the ceiling; how many started.

        This is Little's law at work: rows wait for a thread only while the threads there are
        do not keep up with the rate (rate × time a message holds a thread); the rate's tokens
        came first, so an unpaced send grows to the ceiling and a paced one to what it needs.
        """
        with self._lock:
            add = max(0, min(self.ceiling - self.size, waiting))
            for _ in range(add):
                thread = threading.Thread(target=self._run, name=f"send-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                self.size += 1
                thread.start()
            self.peak = max(self.peak, self.size)
        return add

    def put(self, item: Any) -> None:
        self._work.put(item)

    def close(self) -> None:
        """Let every thread finish what it holds, then end them."""
        with self._lock:
            alive = self.size
        for _ in range(alive):
            self._work.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        """A pool thread: deliver what the loop hands over until it hands over None, or it idles too long."""
        try:
            while True:
                try:
                    item = self._work.get(timeout=IDLE_RETIRE)
                except queue.Empty:
                    with self._lock:
                        if self.size > 1:  # one thread always stays, so handed-over work is always taken
                            self.size -= 1
                            return
                    continue
                if item is None:
                    return
                start = time.perf_counter()
                answer = self._deliver(item)
                self._held.append(time.perf_counter() - start)
                self._answers.put(answer)
        finally:
            self._leave()
