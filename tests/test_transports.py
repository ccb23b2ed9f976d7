"""Transports: one contract suite over every transport, then each transport's own failure modes.

Every transport is exercised against a real counterpart: a folder, aiosmtpd, moto in
server mode, and a local HTTP stub that answers like SES (for quotas and throttling,
which moto does not implement).
"""

from __future__ import annotations

import email
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.config import SesSettings, Settings, SmtpSettings
from newsletter.delivery.transports import Outcome, SendResult, StopSending, Transport, make_transport
from newsletter.delivery.transports.file import TEMP_PREFIX, FileTransport, safe_file_part
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.delivery.transports.ses import SesTransport
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.errors import TransportError
from tests.support.aws import (
    FAKE_AWS_ENV,
    SesStub,
    moto_reset,
    moto_sent_messages,
    moto_server,
    ses_stub,
    verify_identity,
)
from tests.support.smtp import (
    RecordingHandler,
    SmtpServer,
    TlsFiles,
    smtp_server,
    smtp_tls_server,
    start_smtp_server,
    tls_files,
)

__all__ = [
    "moto_reset",
    "moto_server",
    "ses_stub",
    "smtp_server",
    "smtp_tls_server",
    "tls_files",
]  # fixtures, imported for pytest

SENDER = "editor@example.org"
SUBJECT = "Neue Arbeiten: 多语言模型 — résumé № 7"
TEXT = "Grüße aus Zürich!\nСегодня: 3 статьи о многоязычных моделях.\n日本語のテスト。\n"
HTML = "<html lang='de'><body><p>Grüße aus <b>Zürich</b>! مرحبا — 日本語</p></body></html>"


def build_message(recipient: str, name: str = "Jürgen Weiß", n: int = 1) -> bytes:
    """A newsletter-shaped multipart/alternative message with non-ASCII everywhere."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address("Zoë Ñandú", addr_spec=SENDER)
    user, _, domain = recipient.partition("@")
    msg["To"] = Address(name, user, domain)
    msg["Subject"] = f"{SUBJECT} #{n}"
    msg["Message-ID"] = f"<issue-7.{n}.{user}@example.org>"
    msg["Date"] = "Tue, 17 Mar 2026 09:00:00 +0000"
    msg["List-Id"] = "Multilingual Digest <digest.example.org>"
    msg["List-Unsubscribe"] = (
        f"<https://example.org/u/TOKEN{n}>, <mailto:unsubscribe@example.org?subject=TOKEN{n}>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(TEXT + f"Nummer {n}\n")
    msg.add_alternative(HTML.replace("</p>", f" #{n}</p>"), subtype="html")
    return msg.as_bytes(policy=policy.SMTP)


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def settings(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "root": tmp_path,
        "name": "Multilingual Digest",
        "base_url": "https://example.org/",
        "sender": f"Zoë Ñandú <{SENDER}>",
        "reply_to": None,
        "list_id": "digest.example.org",
        "postal_address": "1 Main Street, Zürich",
        "outbox_dir": tmp_path / "outbox",
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


# -- the contract: every transport --------------------------------------------------------


@dataclass
class Case:
    transport: Transport
    received: Callable[[], list[tuple[str | None, bytes]]]  # (envelope recipient if known, raw bytes)


@pytest.fixture(params=["file", "memory", "smtp", "ses"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    kind = request.param
    if kind == "file":
        outbox = tmp_path / "outbox"
        transport: Transport = FileTransport(outbox)

        def received() -> list[tuple[str | None, bytes]]:
            return [(None, p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]

    elif kind == "memory":
        transport = memory = MemoryTransport()

        def received() -> list[tuple[str | None, bytes]]:
            return [(m.recipient, m.raw) for m in memory.messages]

    elif kind == "smtp":
        server: SmtpServer = request.getfixturevalue("smtp_server")
        transport = SmtpTransport(server.host, server.port, security="none", timeout=5)

        def received() -> list[tuple[str | None, bytes]]:
            return [(to, r.raw) for r in server.received for to in r.rcpt_tos]

    else:
        endpoint: str = request.getfixturevalue("moto_reset")
        verify_identity(endpoint, SENDER)
        transport = SesTransport(endpoint_url=endpoint, sender=SENDER, concurrency=4)

        def received() -> list[tuple[str | None, bytes]]:
            return [(to, m.raw) for m in moto_sent_messages(endpoint) for to in m.destinations]

    with transport:
        yield Case(transport, received)


def test_sends_a_multipart_non_ascii_message_unchanged(case: Case) -> None:
    raw = build_message("reader@example.com")
    result = case.transport.send(SENDER, "reader@example.com", raw)

    assert result == SendResult(Outcome.SENT, message_id=result.message_id)
    assert result.message_id
    [(recipient, got)] = case.received()
    assert recipient in (None, "reader@example.com")
    # No transport may re-encode or re-wrap the message: the bytes arrive as built.
    assert got == raw
    message = parse(got)
    assert message.defects == []
    assert message["Subject"] == f"{SUBJECT} #1"
    assert message["From"].addresses[0].display_name == "Zoë Ñandú"
    assert message["To"].addresses[0] == Address("Jürgen Weiß", "reader", "example.com")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://example.org/u/TOKEN1>")
    text, html = (part for part in message.walk() if not part.is_multipart())
    assert text.get_content_type() == "text/plain"
    assert "Сегодня: 3 статьи" in text.get_content()
    assert "مرحبا — 日本語" in html.get_content()


def test_sends_from_several_threads_each_message_exactly_once(case: Case) -> None:
    recipients = [f"reader{i}@example.com" for i in range(12)]
    messages = {to: build_message(to, n=i) for i, to in enumerate(recipients)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda to: case.transport.send(SENDER, to, messages[to]), recipients))

    assert [r.outcome for r in results] == [Outcome.SENT] * 12
    assert len({r.message_id for r in results}) == 12
    got = case.received()
    by_to = {parse(raw)["To"].addresses[0].addr_spec: raw for _, raw in got}
    assert sorted(by_to) == sorted(recipients)
    assert len(got) == 12
    assert by_to == messages


def test_check_passes_and_close_is_idempotent(case: Case) -> None:
    case.transport.check()
    case.transport.send(SENDER, "reader@example.com", build_message("reader@example.com"))
    case.transport.close()
    case.transport.close()
    assert len(case.received()) == 1


def test_a_thread_that_releases_what_it_holds_can_still_send_later(case: Case) -> None:
    """What a sending thread that leaves the pool does; a later thread may send again."""

    def send_then_release(to: str) -> SendResult:
        try:
            return case.transport.send(SENDER, to, build_message(to))
        finally:
            case.transport.release_thread()
            case.transport.release_thread()  # idempotent

    recipients = ["first@example.com", "second@example.com"]
    for to in recipients:  # each on a thread of its own, one after the other
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(send_then_release, to).result().outcome is Outcome.SENT
    assert sorted(parse(raw)["To"].addresses[0].addr_spec for _, raw in case.received()) == recipients


# -- the failure contract: every transport, every outcome -------------------------------------
# Each transport has a hook that provokes an outcome for the next message to VICTIM; the
# contract says how every transport must report it, because the sending loop and the ledger
# act on the report alone. The line that matters is whether the request may have reached
# the provider: only what certainly did not may be sent again without asking the editor.
#   refused        -> permanent: give up on this reader, not on the send
#   throttled      -> temporary and marked throttled: back off, then resend
#   not_connected  -> temporary: nothing reached the provider, resending cannot duplicate
#   stopped        -> StopSending raised: the whole send stops, the rest stays queued
#   answer_lost    -> the provider took the message and the connection closed before its
#                     answer: uncertain (never resent silently); a transport that can look
#                     (the file outbox) finds the message and says sent
#   no_answer      -> the request went out and no answer came in time: uncertain

VICTIM = "victim@example.com"
OUTCOMES = ("refused", "throttled", "not_connected", "stopped", "answer_lost", "no_answer")
Received = Callable[[], list[str]]  # the recipients the provider has a message for


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


def _provoke_memory(
    outcome: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Transport, Received]:
    transport = MemoryTransport()
    if outcome == "refused":
        transport.fail(VICTIM)
    elif outcome == "throttled":
        transport.fail(VICTIM, Outcome.TEMPORARY, throttled=True)
    elif outcome == "not_connected":
        transport.fail(VICTIM, Outcome.TEMPORARY)
    elif outcome == "stopped":
        transport.fail(VICTIM, StopSending("sending paused (memory transport)"))
    elif outcome == "answer_lost":
        transport.fail(VICTIM, Outcome.UNCERTAIN)
    else:
        pytest.skip("the memory transport answers at once or loses the answer (answer_lost)")
    return transport, lambda: transport.recipients


def _provoke_file(outcome: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Transport, Received]:
    outbox = tmp_path / "outbox"
    if outcome == "stopped":
        outbox.write_text("a file where the folder should be")
    elif outcome == "answer_lost":
        # A rename over NFS whose reply is lost is retried by the client and then fails
        # (the source is gone) although it happened: the outbox is where to look.
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        real_replace = os.replace

        def replace_then_fail(src: str, dst: Path) -> None:
            real_replace(src, dst)
            raise FileNotFoundError(2, "No such file or directory", src)

        monkeypatch.setattr(os, "replace", replace_then_fail)
    else:
        pytest.skip(f"an outbox folder has no provider that could answer {outcome!r}")

    def received() -> list[str]:
        return [parse(p.read_bytes())["To"].addresses[0].addr_spec for p in outbox.glob("*.eml")]

    return FileTransport(outbox), received


def _provoke_smtp(outcome: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Transport, Received]:
    server: SmtpServer = request.getfixturevalue("smtp_server")
    transport = smtp_for(server)
    if outcome == "refused":
        server.handler.refuse[VICTIM] = "550 5.1.1 User unknown"
    elif outcome == "throttled":
        server.handler.refuse[VICTIM] = "454 4.7.0 Throttling failure"
    elif outcome == "not_connected":
        transport = SmtpTransport("127.0.0.1", _closed_port(), security="none", timeout=5)
    elif outcome == "stopped":
        # the server cannot give what the settings demand: no message may leave
        transport = SmtpTransport(server.host, server.port, security="starttls", timeout=5)
    elif outcome == "answer_lost":
        server.handler.drop_after_data.add(VICTIM)
    else:
        server.handler.slow_after_data[VICTIM] = 3.0
        transport = SmtpTransport(server.host, server.port, security="none", timeout=1)
    return transport, lambda: [to for r in server.received for to in r.rcpt_tos]


def _provoke_ses(outcome: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Transport, Received]:
    stub: SesStub = request.getfixturevalue("ses_stub")
    transport = ses_for(stub, read_timeout=1.0)
    if outcome == "refused":
        stub.reset(rejected={VICTIM})
    elif outcome == "throttled":
        stub.reset(max_send_rate=0.01, burst=1.0)
        assert transport.send(SENDER, "first@example.com", build_message("first@example.com")).ok
    elif outcome == "not_connected":
        transport = SesTransport(endpoint_url=f"http://127.0.0.1:{_closed_port()}", connect_timeout=2)
    elif outcome == "stopped":
        stub.reset(paused=True)
    elif outcome == "answer_lost":
        stub.reset(drop_fraction=1.0)
    else:
        stub.reset(latency=3.0)
    return transport, lambda: [to for to in stub.recipients() if to != "first@example.com"]


# what the editor reads in the failure's reason (the provider's own words, where there is one)
REASON = {
    ("memory", "refused"): "refused (memory transport)",
    ("memory", "throttled"): "try again later",
    ("memory", "not_connected"): "try again later",
    ("memory", "answer_lost"): "the answer was lost",
    ("smtp", "refused"): "550 5.1.1 User unknown (recipient victim@example.com)",
    ("smtp", "throttled"): "RCPT TO refused: 454 4.7.0 Throttling failure",
    ("smtp", "not_connected"): "cannot connect",
    ("smtp", "answer_lost"): "connection lost during DATA",
    ("smtp", "no_answer"): "the message may have been sent",
    ("ses", "refused"): "MessageRejected",
    ("ses", "throttled"): "TooManyRequestsException",
    ("ses", "not_connected"): "cannot connect",
    ("ses", "answer_lost"): "the message may have been sent",
    ("ses", "no_answer"): "no answer in time",
    ("memory", "stopped"): "sending paused",
    ("file", "stopped"): "outbox: cannot create the outbox folder",
    ("smtp", "stopped"): "does not offer STARTTLS",
    ("ses", "stopped"): "SendingPausedException: Sending is paused",
}
PROVOKE = {"memory": _provoke_memory, "file": _provoke_file, "smtp": _provoke_smtp, "ses": _provoke_ses}
# what the provider holds for VICTIM afterwards: the message, nothing, or either (None)
ARRIVED = {"refused": 0, "throttled": 0, "not_connected": 0, "answer_lost": 1, "no_answer": None}


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("kind", sorted(PROVOKE))
def test_failure_contract(kind: str, outcome: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    transport, received = PROVOKE[kind](outcome, request, tmp_path)
    raw = build_message(VICTIM)
    if outcome == "stopped":  # raised by open() or by send(): either way nothing more leaves
        with pytest.raises(StopSending) as stopped, transport:
            transport.send(SENDER, VICTIM, raw)
        assert REASON[kind, outcome] in stopped.value.format_message()
        return
    with transport:
        result = transport.send(SENDER, VICTIM, raw)
    if ARRIVED[outcome] is not None:
        assert received().count(VICTIM) == ARRIVED[outcome]
    if kind == "file":  # the outbox looked, found the message, and says so
        assert (result.outcome, result.error) == (Outcome.SENT, None)
        return
    assert result.error and REASON[kind, outcome] in result.error
    expected = {
        "refused": (Outcome.PERMANENT, False),
        "throttled": (Outcome.TEMPORARY, True),
        "not_connected": (Outcome.TEMPORARY, False),
        "answer_lost": (Outcome.UNCERTAIN, False),
        "no_answer": (Outcome.UNCERTAIN, False),
    }[outcome]
    assert (result.outcome, result.throttled) == expected
    if outcome == "refused":  # a refusal concerns one reader: the next one still gets the message
        with transport:
            assert transport.send(SENDER, "other@example.com", build_message("other@example.com")).ok


# -- make_transport -------------------------------------------------------------------------


def test_make_transport_builds_each_kind_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "s3cret")
    s = settings(
        tmp_path,
        ses=SesSettings(region="eu-west-1", configuration_set="digest", tags={"campaign": "issue-7"}),
        smtp=SmtpSettings(host="mail.example.org", port=465, security="ssl", username="editor"),
    )

    file = make_transport(s)
    assert isinstance(file, FileTransport) and file.outbox == tmp_path / "outbox"
    assert isinstance(make_transport(s, "file", outbox=tmp_path / "elsewhere"), FileTransport)
    assert make_transport(s, "file", outbox=tmp_path / "elsewhere").outbox == tmp_path / "elsewhere"  # type: ignore[attr-defined]
    assert isinstance(make_transport(s, "memory"), MemoryTransport)
    ses = make_transport(s, "ses", concurrency=16)
    assert isinstance(ses, SesTransport)
    assert (ses.region, ses.configuration_set, ses.tags, ses.sender, ses.concurrency) == (
        "eu-west-1",
        "digest",
        {"campaign": "issue-7"},
        SENDER,
        16,
    )
    smtp = make_transport(s, "smtp")
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.host, smtp.port, smtp.security, smtp.username, smtp.password) == (
        "mail.example.org",
        465,
        "ssl",
        "editor",
        "s3cret",
    )
    with pytest.raises(TransportError, match=r"expected one of file, memory, ses, smtp, got 'pigeon'"):
        make_transport(s, "pigeon")


# -- file -----------------------------------------------------------------------------------


def test_file_transport_names_files_by_sequence_and_recipient_and_leaves_no_temp_files(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "new" / "outbox"
    with FileTransport(outbox) as transport:
        first = transport.send(
            SENDER, "a.reader+news@example.com", build_message("a.reader+news@example.com")
        )
        second = transport.send(SENDER, "../../etc/passwd@x", build_message("b@example.com", n=2))

    names = sorted(p.name for p in outbox.iterdir())
    assert names == sorted([first.message_id, second.message_id])
    assert first.message_id.endswith("-000001-a.reader+news@example.com.eml")  # type: ignore[union-attr]
    assert second.message_id.endswith("-000002-etc_passwd@x.eml")  # type: ignore[union-attr]
    assert (outbox / first.message_id).read_bytes().startswith(b"From: =?utf-8?")  # type: ignore[operator]
    assert safe_file_part("  Zoë <z@ex.org> ") == "Zo_z@ex.org"


def test_file_transport_removes_the_temp_file_when_a_write_fails(tmp_path: Path) -> None:
    with FileTransport(tmp_path) as transport:
        with pytest.raises(TypeError):
            transport.send(SENDER, "a@example.com", "not bytes")  # type: ignore[arg-type]
        assert list(tmp_path.iterdir()) == []
        transport.send(SENDER, "a@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert [p.suffix for p in tmp_path.iterdir()] == [".eml"]


def test_file_transport_readers_never_see_a_partial_message(tmp_path: Path) -> None:
    """A reader polling the outbox while 8 threads write sees only complete messages."""
    big = build_message("reader@example.com") + b"x" * 200_000 + b"\r\n"
    seen: dict[str, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for path in tmp_path.glob("*.eml"):
                seen[path.name] = len(path.read_bytes())

    watcher = threading.Thread(target=watch)
    watcher.start()
    with FileTransport(tmp_path) as transport, ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: transport.send(SENDER, f"r{i}@example.com", big), range(40)))
    done.set()
    watcher.join()

    assert len({r.message_id for r in results}) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(r.message_id for r in results)  # type: ignore[type-var]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert set(seen.values()) <= {len(big)}


# -- memory ---------------------------------------------------------------------------------


def test_memory_transport_fails_chosen_recipients_then_recovers() -> None:
    transport = MemoryTransport(rate=3.0)
    transport.fail("gone@example.com")
    transport.fail("busy@example.com", Outcome.TEMPORARY, times=2, throttled=True)
    transport.fail("stop@example.com", StopSending("sending paused"))
    raw = build_message("x@example.com")

    assert transport.send(SENDER, "gone@example.com", raw).outcome is Outcome.PERMANENT
    busy = [transport.send(SENDER, "busy@example.com", raw) for _ in range(3)]
    assert [(r.outcome, r.throttled) for r in busy] == [
        (Outcome.TEMPORARY, True),
        (Outcome.TEMPORARY, True),
        (Outcome.SENT, False),
    ]
    with pytest.raises(StopSending, match="sending paused"):
        transport.send(SENDER, "stop@example.com", raw)
    assert transport.send(SENDER, "ok@example.com", raw).ok
    assert transport.recipients == ["busy@example.com", "ok@example.com"]
    assert transport.attempts == {
        "gone@example.com": 1,
        "busy@example.com": 3,
        "stop@example.com": 1,
        "ok@example.com": 1,
    }
    assert transport.to("ok@example.com")[0].message["Subject"] == f"{SUBJECT} #1"
    assert transport.max_rate() == 3.0


# -- SES against the stub ---------------------------------------------------------------------


def ses_for(stub: SesStub, **options: object) -> SesTransport:
    return SesTransport(endpoint_url=stub.endpoint_url, sender=SENDER, **options)  # type: ignore[arg-type]


def test_ses_stub_speaks_the_wire_format_botocore_expects(ses_stub: SesStub) -> None:
    import boto3

    ses_stub.reset(max_send_rate=1.0, burst=1.0)
    from botocore.config import Config

    # botocore's default retries would wait for the bucket to refill and hide the 429.
    config = Config(retries={"total_max_attempts": 1})
    client = boto3.client("sesv2", region_name="us-east-1", endpoint_url=ses_stub.endpoint_url, config=config)
    raw = build_message("reader@example.com")
    content = {"Raw": {"Data": raw}}
    client.send_email(
        FromEmailAddress=SENDER, Destination={"ToAddresses": ["reader@example.com"]}, Content=content
    )
    with pytest.raises(client.exceptions.TooManyRequestsException, match="Maximum sending rate exceeded"):
        client.send_email(
            FromEmailAddress=SENDER, Destination={"ToAddresses": ["reader@example.com"]}, Content=content
        )
    assert ses_stub.messages[0].raw == raw


def test_ses_request_body_is_the_one_botocore_builds_whole(ses_stub: SesStub) -> None:
    # The transport has botocore serialise a placeholder and puts the message's base64 in its
    # place (no JSON escaping pass over ~150 KB): the wire must not tell the difference.
    import boto3

    raw = build_message("reader@example.com")
    transport = ses_for(ses_stub, configuration_set="digest", tags={"campaign": "march"})
    bodies: list[bytes] = []

    def keep(request: object, **_: object) -> None:
        bodies.append(request.body)  # type: ignore[attr-defined]

    transport.client().meta.events.register("before-send.sesv2.SendEmail", keep)
    assert transport.send(SENDER, "reader@example.com", raw).ok
    plain = boto3.client("sesv2", region_name="us-east-1", endpoint_url=ses_stub.endpoint_url)
    plain.meta.events.register("before-send.sesv2.SendEmail", keep)
    plain.send_email(
        FromEmailAddress=SENDER,
        Destination={"ToAddresses": ["reader@example.com"]},
        Content={"Raw": {"Data": raw}},
        ConfigurationSetName="digest",
        EmailTags=[{"Name": "campaign", "Value": "march"}],
    )

    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert [m.raw for m in ses_stub.messages] == [raw, raw]


def test_ses_stops_before_sending_when_the_message_cannot_be_placed(ses_stub: SesStub) -> None:
    transport = ses_for(ses_stub)

    def lose_placeholder(params: dict, **_: object) -> None:
        params["body"] = re.sub(rb'"Data": "[^"]*"', b'"Data": ""', params["body"])

    transport.client().meta.events.register_first("before-call.sesv2.SendEmail", lose_placeholder)
    with pytest.raises(StopSending, match="cannot place the message in the request body"):
        transport.send(SENDER, "reader@example.com", build_message("reader@example.com"))
    assert ses_stub.calls["SendEmail"] == 0


def test_ses_max_rate_comes_from_get_account(ses_stub: SesStub) -> None:
    ses_stub.reset(max_send_rate=7.5)
    assert ses_for(ses_stub).max_rate() == 7.5
    assert ses_stub.calls["GetAccount"] == 1


def test_ses_max_rate_is_none_when_get_account_is_not_answered(moto_reset: str) -> None:
    # moto does not implement GetAccount: the caller must fall back to its own rate.
    assert SesTransport(endpoint_url=moto_reset).max_rate() is None


def test_ses_throttling_is_temporary_and_never_retried_by_botocore(ses_stub: SesStub) -> None:
    ses_stub.reset(max_send_rate=0.5, burst=2.0)
    transport = ses_for(ses_stub)
    results = [
        transport.send(SENDER, f"r{i}@example.com", build_message(f"r{i}@example.com")) for i in range(4)
    ]

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.TEMPORARY, Outcome.TEMPORARY]
    assert results[2].throttled
    assert "TooManyRequestsException: Maximum sending rate exceeded." in results[2].error  # type: ignore[operator]
    # One HTTP request per send: botocore must not retry behind the sender's back.
    assert ses_stub.calls["SendEmail"] == 4
    assert ses_stub.throttled == 2


def test_ses_paused_suspended_and_daily_quota_stop_the_send(ses_stub: SesStub) -> None:
    transport = ses_for(ses_stub)
    raw = build_message("reader@example.com")
    ses_stub.reset(paused=True)
    with pytest.raises(StopSending, match="SendingPausedException: Sending is paused"):
        transport.send(SENDER, "reader@example.com", raw)
    ses_stub.reset(paused=False, suspended=True)
    with pytest.raises(StopSending, match="AccountSuspendedException"):
        transport.send(SENDER, "reader@example.com", raw)
    ses_stub.reset(suspended=False, max_24_hour_send=1)
    assert transport.send(SENDER, "reader@example.com", raw).ok
    with pytest.raises(StopSending, match="LimitExceededException: Daily message quota exceeded"):
        transport.send(SENDER, "second@example.com", raw)


def test_ses_sends_configuration_set_and_tags_from_settings(ses_stub: SesStub, tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        ses=SesSettings(
            configuration_set="digest-events",
            tags={"issue": "2026-03-17"},
            endpoint_url=ses_stub.endpoint_url,
        ),
    )
    with make_transport(s, "ses") as transport:
        transport.check()
        result = transport.send(SENDER, "reader@example.com", build_message("reader@example.com"))

    [sent] = ses_stub.messages
    assert result.message_id == sent.message_id
    assert (sent.from_address, sent.to, sent.configuration_set, sent.tags) == (
        SENDER,
        ["reader@example.com"],
        "digest-events",
        {"issue": "2026-03-17"},
    )


def test_ses_check_refuses_a_paused_account(ses_stub: SesStub) -> None:
    ses_stub.reset(paused=True)
    with pytest.raises(TransportError, match="sending is paused for this account"):
        ses_for(ses_stub).check()


def test_ses_server_error_is_uncertain(ses_stub: SesStub) -> None:
    ses_stub.reset(internal_error=True)
    result = ses_for(ses_stub).send(SENDER, "reader@example.com", build_message("reader@example.com"))

    assert (result.outcome, result.throttled) == (Outcome.UNCERTAIN, False)
    assert "InternalFailure" in result.error and "may have been sent" in result.error  # type: ignore[operator]


def test_ses_unreachable_endpoint_is_temporary_and_has_no_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = SesTransport(endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=1)
    result = transport.send(SENDER, "reader@example.com", build_message("reader@example.com"))

    assert result.outcome is Outcome.TEMPORARY
    assert "cannot connect" in result.error  # type: ignore[operator]
    assert transport.max_rate() is None


# -- SES against moto ---------------------------------------------------------------------------


def test_ses_message_is_readable_back_from_moto_with_headers_intact(moto_reset: str) -> None:
    verify_identity(moto_reset, "example.org")  # the domain: any address in it may send
    raw = build_message("reader@example.com")
    with SesTransport(endpoint_url=moto_reset, sender=SENDER) as transport:
        transport.check()
        result = transport.send(SENDER, "reader@example.com", raw)

    [sent] = moto_sent_messages(moto_reset)
    assert (sent.message_id, sent.source, sent.destinations) == (
        result.message_id,
        SENDER,
        ["reader@example.com"],
    )
    message, original = parse(sent.raw), parse(raw)
    for header in (
        "Message-ID",
        "Subject",
        "From",
        "To",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ):
        assert message[header] == original[header], header


def test_ses_check_names_an_unverified_sender(moto_reset: str) -> None:
    verify_identity(moto_reset, "someone-else@example.org")
    transport = SesTransport(endpoint_url=moto_reset, sender="Zoë <editor@example.org>")
    with pytest.raises(TransportError) as caught:
        transport.check()
    assert caught.value.message.startswith(
        f"SES ({moto_reset}): sender 'editor@example.org' is not verified for sending "
        "(checked 'editor@example.org' and 'example.org': neither is an SES identity)"
    )
    assert "aws sesv2 create-email-identity --email-identity example.org" in caught.value.message


def test_ses_unverified_sender_is_refused_permanently_by_moto(moto_reset: str) -> None:
    with SesTransport(endpoint_url=moto_reset) as transport:
        result = transport.send(SENDER, "reader@example.com", build_message("reader@example.com"))
    assert result.outcome is Outcome.PERMANENT
    assert "MessageRejected: Did not have authority to send from email editor@example.org" in result.error  # type: ignore[operator]


def test_ses_without_credentials_says_how_to_give_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("BOTO_CONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    transport = SesTransport(endpoint_url="http://127.0.0.1:9", sender=SENDER)

    for attempt in (transport.check, transport.open):
        with pytest.raises(TransportError) as caught:
            attempt()
        assert caught.value.message.startswith("SES (http://127.0.0.1:9): no AWS credentials found\n\n")
        assert "AWS_ACCESS_KEY_ID" in caught.value.message and "AWS_PROFILE" in caught.value.message


# -- SMTP -------------------------------------------------------------------------------------


def smtp_for(server: SmtpServer, **options: object) -> SmtpTransport:
    return SmtpTransport(server.host, server.port, security="none", timeout=5, **options)  # type: ignore[arg-type]


def test_smtp_454_is_throttled_550_permanent_and_the_connection_keeps_working(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.refuse.update(
        {"busy@example.com": "454 4.7.0 Throttling failure", "gone@example.com": "550 5.1.1 User unknown"}
    )
    with smtp_for(smtp_server) as transport:
        busy = transport.send(SENDER, "busy@example.com", build_message("busy@example.com"))
        gone = transport.send(SENDER, "gone@example.com", build_message("gone@example.com"))
        ok = transport.send(SENDER, "ok@example.com", build_message("ok@example.com"))

    assert (busy.outcome, busy.throttled) == (Outcome.TEMPORARY, True)
    assert "RCPT TO refused: 454 4.7.0 Throttling failure" in busy.error  # type: ignore[operator]
    assert gone.outcome is Outcome.PERMANENT
    assert "550 5.1.1 User unknown (recipient gone@example.com)" in gone.error  # type: ignore[operator]
    assert ok.ok and ok.message_id == "Q00001"
    assert [(r.mail_from, r.rcpt_tos) for r in smtp_server.received] == [(SENDER, ["ok@example.com"])]


def test_smtp_refusal_at_end_of_data(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse_data.update(
        {"later@example.com": "451 4.3.0 Try again later", "spam@example.com": "554 5.7.1 Message refused"}
    )
    with smtp_for(smtp_server) as transport:
        later = transport.send(SENDER, "later@example.com", build_message("later@example.com"))
        spam = transport.send(SENDER, "spam@example.com", build_message("spam@example.com"))

    assert (later.outcome, later.throttled) == (Outcome.TEMPORARY, False)
    assert "end of DATA refused: 451 4.3.0 Try again later" in later.error  # type: ignore[operator]
    assert spam.outcome is Outcome.PERMANENT
    assert smtp_server.received == []


def test_smtp_reconnects_after_the_server_dropped_the_connection(smtp_server: SmtpServer) -> None:
    with smtp_for(smtp_server) as transport:
        assert transport.send(SENDER, "a@example.com", build_message("a@example.com")).ok
        smtp_server.restart()  # closes every client connection
        second = transport.send(SENDER, "b@example.com", build_message("b@example.com"))

    assert second.ok, second.error
    assert [r.rcpt_tos for r in smtp_server.received] == [["a@example.com"], ["b@example.com"]]


def test_smtp_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = SmtpTransport("127.0.0.1", port, security="none", timeout=2)

    result = transport.send(SENDER, "a@example.com", build_message("a@example.com"))
    assert result.outcome is Outcome.TEMPORARY
    with pytest.raises(TransportError) as caught:
        transport.check()
    assert caught.value.message == (
        f"SMTP 127.0.0.1:{port}: cannot connect: Connection refused\n\nCheck smtp.host, smtp.port and smtp.security."
    )


def test_smtp_requires_starttls_when_configured(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(smtp_server.host, smtp_server.port, security="starttls", timeout=5)
    with pytest.raises(TransportError, match="the server does not offer STARTTLS"):
        transport.check()
    with pytest.raises(StopSending, match="does not offer STARTTLS"):
        transport.send(SENDER, "a@example.com", build_message("a@example.com"))


@pytest.fixture
def smtp_auth_server() -> Iterator[SmtpServer]:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"editor", b"right")
        return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers 535 itself

    server = start_smtp_server(RecordingHandler(), authenticator=authenticate, auth_require_tls=False)
    try:
        yield server
    finally:
        server.controller.stop()


def test_smtp_password_comes_only_from_the_environment(
    smtp_auth_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(
        tmp_path,
        smtp=SmtpSettings(
            host=smtp_auth_server.host, port=smtp_auth_server.port, security="none", username="editor"
        ),
    )
    monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD", raising=False)
    with pytest.raises(TransportError, match=r"smtp\.username is set but NEWSLETTER_SMTP_PASSWORD is empty"):
        make_transport(s, "smtp").check()

    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "right")
    with make_transport(s, "smtp") as transport:
        transport.check()
        assert transport.send(SENDER, "a@example.com", build_message("a@example.com")).ok
    assert [r.rcpt_tos for r in smtp_auth_server.received] == [["a@example.com"]]


def test_smtp_login_failure_stops_the_send(smtp_auth_server: SmtpServer) -> None:
    transport = SmtpTransport(
        smtp_auth_server.host, smtp_auth_server.port, security="none", username="editor", password="wrong"
    )
    with pytest.raises(
        TransportError, match=r"login as 'editor' refused: 535 5\.7\.8 Authentication credentials invalid"
    ):
        transport.check()
    with pytest.raises(StopSending, match=r"Check smtp\.username and NEWSLETTER_SMTP_PASSWORD"):
        transport.send(SENDER, "a@example.com", build_message("a@example.com"))
    assert smtp_auth_server.received == []


def test_smtp_starttls_with_a_trusted_certificate(smtp_tls_server: SmtpServer, tls_files: TlsFiles) -> None:
    raw = build_message("a@example.com")
    trusted = SmtpTransport(
        smtp_tls_server.host,
        smtp_tls_server.port,
        security="starttls",
        timeout=5,
        context=tls_files.client_context(),
    )
    with trusted:
        trusted.check()
        assert trusted.send(SENDER, "a@example.com", raw).ok
    assert [r.raw for r in smtp_tls_server.received] == [raw]

    untrusted = SmtpTransport(smtp_tls_server.host, smtp_tls_server.port, security="starttls", timeout=5)
    with pytest.raises(
        StopSending, match=r"the server's TLS certificate is not valid: self-signed certificate"
    ):
        untrusted.send(SENDER, "b@example.com", build_message("b@example.com"))
    with pytest.raises(TransportError, match="TLS certificate is not valid"):
        untrusted.check()


def test_smtp_refuses_to_send_in_the_clear_to_a_server_that_requires_starttls(
    smtp_tls_server: SmtpServer,
) -> None:
    with pytest.raises(StopSending) as caught:
        smtp_for(smtp_tls_server).send(SENDER, "a@example.com", build_message("a@example.com"))
    assert caught.value.message == (
        f"SMTP 127.0.0.1:{smtp_tls_server.port}: MAIL FROM refused: 530 Must issue a STARTTLS command first\n\n"
        "Check smtp.security, smtp.username and NEWSLETTER_SMTP_PASSWORD."
    )
    assert smtp_tls_server.received == []


# -- the names ------------------------------------------------------------------------------


def test_transport_names_are_declared_once_and_settings_accept_exactly_them():
    from newsletter import config
    from newsletter.delivery.transports import COMMAND_LINE_TRANSPORTS, REAL_TRANSPORTS, TRANSPORTS

    assert set(config.TRANSPORTS) == set(TRANSPORTS) == {"file", "memory", "ses", "smtp"}
    assert {"ses", "smtp"} == REAL_TRANSPORTS
    assert "memory" not in COMMAND_LINE_TRANSPORTS and set(COMMAND_LINE_TRANSPORTS) < set(TRANSPORTS)
