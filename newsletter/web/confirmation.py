"""The double opt-in mail: its content, and its sending off the request thread.

Owns the confirmation message (a signed, expiring confirm link in a text and an HTML
part, in the subscriber's language, with no text the requester typed) and the small worker pool that hands it to a
transport from newsletter.delivery. Failures are logged, never shown: the page a reader
sees must not differ between known and unknown addresses.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from newsletter import tokens
from newsletter.config import Settings
from newsletter.delivery.transports import StopSending, Transport
from newsletter.store import Subscriber
from newsletter.web.pages import Pages

log = logging.getLogger(__name__)

CONFIRM_TTL = 7 * 86400


def confirmation_message(
    settings: Settings,
    pages: Pages,
    secret: str,
    subscriber: Subscriber,
    language: str,
    *,
    ttl: int = CONFIRM_TTL,
    now: float | None = None,
) -> bytes:
    """The double opt-in message for `subscriber`, as CRLF bytes ready for a transport."""
    token = tokens.confirm_token(secret, subscriber.email, ttl=ttl, now=now)
    link = settings.web(f"confirm?token={token}")
    strings = pages.words(language, newsletter=settings.name)
    # Nothing the form's sender typed goes into this mail (the name waits for confirmation):
    # otherwise anyone could make the newsletter's domain mail their text to any address.
    greeting = strings("greeting_anonymous")
    context = {
        "link": link,
        "greeting": greeting,
        "days": max(1, ttl // 86400),
        "email": subscriber.email,
        "postal_address": settings.postal_address,
    }
    text = pages.render("confirm-email.txt.j2", language, **context)
    html = pages.render("confirm-email.html", language, **context)

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = settings.sender_address
    user, _, domain = subscriber.email.rpartition("@")
    msg["To"] = Address(username=user, domain=domain)
    if settings.reply_to:
        msg["Reply-To"] = settings.reply_to
    msg["Subject"] = strings("confirm_subject")
    msg["Date"] = format_datetime(datetime.fromtimestamp(now or time.time(), UTC))
    msg["Message-ID"] = make_msgid(domain=settings.sender_address.domain or None)
    # An automatic answer to a request: auto-responders must not reply to it (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # add_alternative() puts one on the new part; once is enough
    msg["Content-Language"] = language  # after the body: set_content drops Content-* headers
    return msg.as_bytes(policy=policy.SMTP)


class ConfirmationMailer:
    """Sends confirmation mails on worker threads, so the answer to /subscribe takes the same
    time whether or not a mail is sent (no enumeration by timing), and a slow provider does
    not hold a request thread."""

    def __init__(
        self, settings: Settings, pages: Pages, secret: str, transport: Transport, *, ttl: int = CONFIRM_TTL
    ) -> None:
        self.settings = settings
        self.pages = pages
        self.secret = secret
        self.transport = transport
        self.ttl = ttl
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="confirmation-mail")
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()

    def message(self, subscriber: Subscriber, language: str, *, now: float | None = None) -> bytes:
        return confirmation_message(
            self.settings, self.pages, self.secret, subscriber, language, ttl=self.ttl, now=now
        )

    def queue(self, subscriber: Subscriber, language: str) -> None:
        """Send the confirmation for `subscriber` soon, on a worker thread."""
        future = self._pool.submit(self._send_logged, subscriber, language)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until the mails queued so far have been handed to the transport."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout)

    def close(self) -> None:
        """Send what is queued, then stop the workers (the transport is the caller's to close)."""
        self._pool.shutdown(wait=True)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send_logged(self, subscriber: Subscriber, language: str) -> None:
        try:
            self.send(subscriber, language)
        except Exception:
            log.exception("confirmation to subscriber %s failed", subscriber.id)

    def send(self, subscriber: Subscriber, language: str) -> None:
        """Send the confirmation now, on this thread; a refusal is logged, not raised."""
        raw = self.message(subscriber, language)
        try:
            result = self.transport.send(self.settings.sender_address.addr_spec, subscriber.email, raw)
        except StopSending as exc:
            log.error("confirmation to subscriber %s not sent: %s", subscriber.id, exc)
            return
        if not result.ok:
            log.warning(
                "confirmation to subscriber %s not sent (%s): %s", subscriber.id, result.outcome, result.error
            )
