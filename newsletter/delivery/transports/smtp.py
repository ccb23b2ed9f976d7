"""SMTP transport: one connection per sending thread, one recipient per transaction.

The transaction is driven step by step (MAIL, RCPT, DATA) rather than through
`smtplib.SMTP.sendmail`, so a failure is known to have happened before or after the
server took the message: only the former is safe to retry (*temporary*); a connection
lost during DATA leaves the message *uncertain*.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from newsletter.delivery.transports.base import SendResult, StopSending, Transport
from newsletter.errors import TransportError

if TYPE_CHECKING:
    from newsletter.config import Settings

PASSWORD_VARIABLE = "NEWSLETTER_SMTP_PASSWORD"
_QUEUE_ID = re.compile(rb"queued as ([A-Za-z0-9._-]+)", re.IGNORECASE)
_AUTH_CODES = frozenset({530, 535, 534, 538})


class _BeforeData(Exception):
    """The connection failed before the server accepted the message (safe to retry)."""


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


class SmtpTransport(Transport):
    name = "smtp"

    def __init__(
        self,
        host: str = "localhost",
        port: int = 587,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "ssl", "none"):
            raise TransportError(f"smtp.security: expected one of starttls, ssl, none, got {security!r}")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        # Certificates are verified against the system CAs unless a context says otherwise.
        self.context = context or ssl.create_default_context()
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []  # every thread's connection, so close() can end them all
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> SmtpTransport:
        """Settings from newsletter.toml; the password only from NEWSLETTER_SMTP_PASSWORD."""
        env = os.environ if env is None else env
        smtp = settings.smtp
        return cls(
            smtp.host,
            smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=env.get(PASSWORD_VARIABLE) or None,
            timeout=smtp.timeout,
        )

    @property
    def where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    # -- connections -----------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        """A new, logged-in connection; raises StopSending for auth failures, OSError otherwise."""
        if self.username and not self.password:
            raise StopSending(
                f"{self.where}: smtp.username is set but {PASSWORD_VARIABLE} is empty\n\n"
                f"Export the SMTP password as {PASSWORD_VARIABLE} (it is never read from newsletter.toml)."
            )
        context = self.context
        try:
            if self.security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise StopSending(
                f"{self.where}: the server's TLS certificate is not valid: {exc.verify_message}"
            ) from None
        try:
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise StopSending(
                        f"{self.where}: the server does not offer STARTTLS\n\n"
                        "Set smtp.security to 'ssl' (port 465) or, for a local relay only, 'none'."
                    )
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            reply = _reply(exc.smtp_code, exc.smtp_error)
            raise StopSending(
                f"{self.where}: login as '{self.username}' refused: {reply}\n\n"
                f"Check smtp.username and {PASSWORD_VARIABLE}."
            ) from None
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise StopSending(
                f"{self.where}: the server's TLS certificate is not valid: {exc.verify_message}"
            ) from None
        except smtplib.SMTPNotSupportedError:
            conn.close()
            raise StopSending(
                f"{self.where}: the server does not offer AUTH, but smtp.username is set"
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self, *, polite: bool = False) -> None:
        """Forget this thread's connection: QUIT first when `polite`, else just close it."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is None:
            return
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        if polite:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
        with contextlib.suppress(OSError):
            conn.close()

    def release_thread(self) -> None:
        """A sending thread that leaves the pool says QUIT on its connection: servers limit
        how many a client may hold, and a long send's pool grows and shrinks many times."""
        self._drop(polite=True)

    def open(self) -> None:
        """Nothing to do up front: each sending thread connects on its first message."""

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        self._local = threading.local()

    # -- sending -----------------------------------------------------------------

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        for attempt in (1, 2):
            try:
                return self._transaction(sender, recipient, raw)
            except _BeforeData as exc:
                self._drop()
                # A reused connection the server has since closed fails on MAIL: reconnect once.
                if attempt == 2 or not exc.args[1]:
                    return SendResult.temporary(f"{self.where}: {exc.args[0]}")
        raise AssertionError("unreachable")

    def _transaction(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        reused = getattr(self._local, "conn", None) is not None
        try:
            conn = self._connection()
        except (OSError, smtplib.SMTPException) as exc:
            raise _BeforeData(f"cannot connect: {exc}", False) from None
        options: list[str] = []
        if conn.has_extn("size"):
            options.append(f"SIZE={len(raw)}")
        if conn.has_extn("8bitmime") and any(b > 0x7F for b in raw):
            options.append("BODY=8BITMIME")
        try:
            code, text = conn.mail(sender, options)
            if code == 250:
                code, text = conn.rcpt(recipient)
                stage = "RCPT TO"
            else:
                stage = "MAIL FROM"
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _BeforeData(f"connection lost before the message was sent: {exc}", reused) from None
        if code not in (250, 251):
            return self._refused(conn, stage, code, text, sender, recipient)
        try:
            code, text = conn.data(raw)
        except smtplib.SMTPDataError as exc:
            # The server refused to start DATA (354 not given): the message was not taken.
            return self._refused(conn, "DATA", exc.smtp_code, exc.smtp_error, sender, recipient)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return SendResult.uncertain(
                f"{self.where}: connection lost during DATA ({exc}); the message may have been sent"
            )
        if code != 250:
            return self._refused(conn, "end of DATA", code, text, sender, recipient)
        found = _QUEUE_ID.search(text)
        return SendResult.sent(found.group(1).decode() if found else None)

    def _refused(
        self, conn: smtplib.SMTP, stage: str, code: int, text: bytes | str, sender: str, recipient: str
    ) -> SendResult:
        reply = _reply(code, text)
        message = f"{self.where}: {stage} refused: {reply}"
        if code == 421 or code < 0:
            self._drop()  # the server is closing this connection
        else:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        if code in _AUTH_CODES:
            # 530 is also "STARTTLS first": either way no message can go out on these settings.
            raise StopSending(f"{message}\n\nCheck smtp.security, smtp.username and {PASSWORD_VARIABLE}.")
        if 400 <= code < 500 or code == 421 or code < 0:
            # A 4xx reply is the server saying "not now": it did not take the message.
            return SendResult.temporary(message + f" (recipient {recipient})", throttled=code == 454)
        if stage == "MAIL FROM":
            # The envelope sender is refused for every recipient alike.
            raise StopSending(f"{message}\n\nThe server does not accept mail from '{sender}'.")
        return SendResult.permanent(message + f" (recipient {recipient})")

    # -- pre-flight ----------------------------------------------------------------

    def check(self) -> None:
        """Connect, negotiate TLS and log in once, then disconnect."""
        try:
            conn = self._connect()
        except StopSending as exc:
            raise TransportError(exc.message) from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            )
            if isinstance(exc, socket.timeout):
                reason = f"no answer within {self.timeout:g} s"
            raise TransportError(
                f"{self.where}: cannot connect: {reason}\n\nCheck smtp.host, smtp.port and smtp.security."
            ) from None
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
