"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, recording every envelope.

tests/conftest.py registers the fixtures (`smtp_server`, `smtp_tls_server`) for every test module.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # the message as the server received it (dot-unstuffed, CRLF)


@dataclass
class RecordingHandler:
    """Accepts and records messages; answers chosen recipients with a chosen reply.

    `refuse` maps a recipient address to an SMTP reply, e.g. "454 4.7.0 Throttling failure"
    or "550 5.1.1 User unknown"; `refuse_data` does the same at the end of DATA.
    For a recipient in `drop_after_data` the message is recorded and the connection is
    closed without an answer; for one in `slow_after_data` the answer comes after that
    many seconds (a client with a shorter timeout never sees it).
    """

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    refuse_data: dict[str, str] = field(default_factory=dict)
    drop_after_data: set[str] = field(default_factory=set)
    slow_after_data: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue_ids: int = 0
    quits: int = 0  # connections the client ended with QUIT

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quits += 1
        return "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            if address in self.refuse_data:
                return self.refuse_data[address]
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
            self.queue_ids += 1
            answer = f"250 2.0.0 Ok: queued as Q{self.queue_ids:05d}"
        if self.drop_after_data & set(envelope.rcpt_tos):
            server.transport.abort()  # the message is taken; its answer is lost
        delay = max((self.slow_after_data.get(to, 0.0) for to in envelope.rcpt_tos), default=0.0)
        if delay:
            await asyncio.sleep(delay)
        return answer


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    controller: Any

    options: dict[str, Any] = field(default_factory=dict)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def restart(self) -> None:
        """Stop the server (dropping every client connection) and start it again on the same port."""
        from aiosmtpd.controller import Controller

        self.controller.stop()
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, **self.options)
        self.controller.start()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_smtp_server(handler: RecordingHandler | None = None, **smtp_options: Any) -> SmtpServer:
    """Start aiosmtpd on 127.0.0.1 (free port); call `.controller.stop()` when done.

    `smtp_options` go to aiosmtpd's SMTP class (e.g. authenticator=..., auth_require_tls=False).
    """
    from aiosmtpd.controller import Controller

    handler = handler or RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **smtp_options)
    controller.start()
    return SmtpServer("127.0.0.1", controller.port, handler, controller, smtp_options)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running aiosmtpd server that accepts everything and records what it got."""
    server = start_smtp_server()
    try:
        yield server
    finally:
        server.controller.stop()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # self-signed for 127.0.0.1; also the CA a client must trust
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throw-away self-signed certificate for 127.0.0.1 (cryptography, a moto dependency)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@pytest.fixture
def smtp_tls_server(tls_files: TlsFiles) -> Iterator[SmtpServer]:
    """aiosmtpd that requires STARTTLS before MAIL; trust `tls_files.client_context()`."""
    server = start_smtp_server(tls_context=tls_files.server_context(), require_starttls=True)
    try:
        yield server
    finally:
        server.controller.stop()
