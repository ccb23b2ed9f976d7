"""Ctrl-C for long-running commands (`send`, `events poll`): the first one asks to stop, the second one stops.

A KeyboardInterrupt raised in the middle of a blocking call (an HTTP request, an SMTP
conversation) can be swallowed by the library making it, and where it is not, it leaves
the work in hand half done. So the first Ctrl-C only sets an event that the loop checks
between units of work (a batch of notifications, a claimed message); the second raises
KeyboardInterrupt for an editor who does not want to wait.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType


class GracefulStop:
    """While active (``with GracefulStop() as stop:``), SIGINT sets ``stop.event`` once, then interrupts.

    `on_first` runs when the first Ctrl-C arrives (e.g. to tell the editor what happens
    now). Outside the main thread signals cannot be handled, so the handler is not
    installed there and only ``event`` works (another thread may still set it).
    """

    def __init__(
        self, event: threading.Event | None = None, *, on_first: Callable[[], None] | None = None
    ) -> None:
        self.event = event if event is not None else threading.Event()
        self.on_first = on_first
        self._previous: Callable | int | None = None
        self._installed = False

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            # a third Ctrl-C during clean-up should interrupt that too
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.event.set()
        if self.on_first is not None:
            self.on_first()

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
