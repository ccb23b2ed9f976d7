"""Ctrl-C for long-running commands (`send`, `events poll`): the first one asks to stop, the second one stops.

A KeyboardInterrupt raised in the middle of a blocking call (an HTTP request, an SMTP
conversation) can be swallowed by the library making it, and where it is not, it leaves
the work in hand half done. So the first Ctrl-C only sets an event that the loop checks
between units of work (a batch of notifications, a claimed message); the second raises
KeyboardInterrupt for an editor who does not want to wait.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

REDELIVERY_DELAY = 0.01  # seconds


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
        self._previous_hook: Callable | None = None
        self._installed = False
        # the second Ctrl-C raised KeyboardInterrupt: what the command ends with now is that
        # interrupt, even when it landed where Python turns it into another error (an import
        # that fails while the interrupt is raised can end in a TypeError)
        self.quit = False

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            # a third Ctrl-C during clean-up should interrupt that too
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.quit = True
            raise KeyboardInterrupt
        self.event.set()
        if self.on_first is not None:
            self.on_first()

    def _unraisable(self, unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # The second Ctrl-C landed in code whose exceptions Python ignores (a weakref
            # callback, a __del__, run by the garbage collector): deliver it again, so that
            # it interrupts the command rather than printing "Exception ignored". Sent a
            # moment later from another thread: sent from here, its handler would run at
            # once, still inside this hook, and be ignored again.
            main = threading.main_thread().ident
            threading.Timer(REDELIVERY_DELAY, signal.pthread_kill, (main, signal.SIGINT)).start()
            return
        (self._previous_hook or sys.__unraisablehook__)(unraisable)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
            self._installed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._previous_hook
            self._installed = False
