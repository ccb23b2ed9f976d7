"""One transport interface: send one complete message to one recipient, say what happened.

Modelled on Django's email backends (open/close/context manager, one contract test suite
over every backend) and on Mailman 3's split of delivery results into *sent*, *temporary*
(retry later) and *permanent* (give up on this recipient), with a fourth, *uncertain*
(the provider may have the message; its answer was lost), because the ledger records
exactly that. A failure that concerns the whole send, not one recipient, is raised as
:class:`StopSending` instead of being returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from types import TracebackType
from typing import ClassVar, NamedTuple, Self

from newsletter.errors import TransportError


class Outcome(StrEnum):
    """What a transport knows about one message after handing it over.

    The line between *temporary* and *uncertain* is whether the request may have reached
    the provider: only a message that certainly did not may be sent again without asking.
    """

    SENT = "sent"
    # not sent, and known not to have reached the provider (throttled, refused before the
    # message was taken, connection never made): trying again later cannot duplicate it
    TEMPORARY = "temporary"
    PERMANENT = "permanent"  # this recipient cannot be reached with this message
    # the request may have reached the provider and its answer was lost (connection closed
    # or reset after sending, no answer in time, a server error): only the editor resends
    UNCERTAIN = "uncertain"


class SendResult(NamedTuple):
    """What happened to one message for one recipient.

    A named tuple, not a frozen dataclass: every message of a send makes one, and a frozen
    dataclass sets each field through object.__setattr__ (2.7 µs against 0.8 µs).
    """

    outcome: Outcome
    message_id: str | None = None  # the provider's id: SES MessageId, SMTP queue id, outbox file name
    error: str | None = None  # human-readable reason for failures
    throttled: bool = False  # TEMPORARY because the provider asked us to slow down: back off, then retry

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT

    @classmethod
    def sent(cls, message_id: str | None = None) -> SendResult:
        return cls(Outcome.SENT, message_id=message_id)

    @classmethod
    def temporary(cls, error: str, *, throttled: bool = False) -> SendResult:
        return cls(Outcome.TEMPORARY, error=error, throttled=throttled)

    @classmethod
    def permanent(cls, error: str) -> SendResult:
        return cls(Outcome.PERMANENT, error=error)

    @classmethod
    def uncertain(cls, error: str) -> SendResult:
        return cls(Outcome.UNCERTAIN, error=error)


class StopSending(TransportError):
    """The whole send must stop (sending paused, account suspended, daily quota, auth failure).

    Messages already handed over stay sent; the rest stay queued for a later resume.
    """


class Transport(ABC):
    """Sends complete RFC 5322 messages, one recipient at a time.

    ``send`` may be called from several threads at once between ``open`` and ``close``.
    """

    name: ClassVar[str]

    def open(self) -> None:  # noqa: B027 - most transports need no set-up
        """Acquire what sending needs (client, connection, folder); idempotent."""

    def close(self) -> None:  # noqa: B027 - most transports hold nothing
        """Release connections; idempotent."""

    def release_thread(self) -> None:  # noqa: B027 - most transports hold nothing per thread
        """The calling thread sends no more: release what it holds (its own connection); idempotent."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abstractmethod
    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        """Hand one message (complete, CRLF line endings) for one envelope recipient to the provider.

        `sender` and `recipient` are bare envelope addresses ("a@example.org", no display
        name); the headers inside `raw` carry names. Raises StopSending when no further
        message can be sent either.
        """

    def max_rate(self) -> float | None:
        """Messages per second the provider allows, or None when it does not say."""
        return None

    def check(self) -> None:  # noqa: B027 - nothing to check for local transports
        """Pre-flight: raise TransportError with a clear message if sending cannot work."""
