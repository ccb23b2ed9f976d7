"""Transports: how a finished message leaves (SES, SMTP, an outbox folder, or memory for tests)."""

from newsletter.delivery.transports.base import Outcome, SendResult, StopSending, Transport
from newsletter.delivery.transports.registry import (
    COMMAND_LINE_TRANSPORTS,
    REAL_TRANSPORTS,
    TRANSPORTS,
    make_transport,
)

__all__ = [
    "COMMAND_LINE_TRANSPORTS",
    "REAL_TRANSPORTS",
    "TRANSPORTS",
    "Outcome",
    "SendResult",
    "StopSending",
    "Transport",
    "make_transport",
]
