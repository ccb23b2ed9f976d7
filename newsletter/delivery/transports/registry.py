"""The transport names, declared once, and the factory that turns a name into a transport.

Every other place that lists transports (settings validation, the `send --transport`
choice, the rule that real transports need NEWSLETTER_SECRET) derives its list from
:data:`TRANSPORTS` here. The factory lives here rather than in ``base.py`` so that the
concrete transports import the interface and the interface imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.delivery.transports.base import Transport
from newsletter.delivery.transports.file import FileTransport
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.delivery.transports.ses import SesTransport
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.errors import TransportError

if TYPE_CHECKING:
    from newsletter.config import Settings


@dataclass(frozen=True)
class TransportKind:
    """One transport name and what the rest of the program needs to know about it."""

    name: str
    real: bool  # mail leaves the machine: unsubscribe links need the real secret
    command_line: bool  # offered by `send --transport` (memory exists only inside one process)


KINDS = (
    TransportKind("file", real=False, command_line=True),
    TransportKind("ses", real=True, command_line=True),
    TransportKind("smtp", real=True, command_line=True),
    TransportKind("memory", real=False, command_line=False),
)
TRANSPORTS: tuple[str, ...] = tuple(k.name for k in KINDS)
REAL_TRANSPORTS: frozenset[str] = frozenset(k.name for k in KINDS if k.real)
COMMAND_LINE_TRANSPORTS: tuple[str, ...] = tuple(k.name for k in KINDS if k.command_line)


def make_transport(
    settings: Settings, name: str | None = None, *, outbox: Path | None = None, concurrency: int = 10
) -> Transport:
    """The transport named `name` (default: settings.transport), configured from settings.

    `outbox` overrides the file transport's folder; `concurrency` is the number of threads
    that will call `send` at once (SES sizes its connection pool for it).
    """
    chosen = name or settings.transport
    if chosen == "file":
        return FileTransport(outbox or settings.outbox_dir)
    if chosen == "memory":
        return MemoryTransport()
    if chosen == "ses":
        return SesTransport.from_settings(settings, concurrency=concurrency)
    if chosen == "smtp":
        return SmtpTransport.from_settings(settings)
    raise TransportError(f"transport: expected one of {', '.join(sorted(TRANSPORTS))}, got {chosen!r}")
