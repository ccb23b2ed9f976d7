"""Transports: how a finished message leaves (SES, SMTP, an outbox folder, or memory for tests)."""

from newsletter.delivery.transports.base import Outcome, SendResult, StopSending, Transport, make_transport

__all__ = ["Outcome", "SendResult", "StopSending", "Transport", "make_transport"]
