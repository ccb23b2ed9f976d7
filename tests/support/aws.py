"""Real AWS-compatible services for tests: moto in server mode, and a small SES v2 stub.

moto covers SendEmail and identities but not GetAccount (quotas) or throttling, so
`SesStub` answers those the way SES does on the wire (rest-json, `x-amzn-ErrorType`,
`{"message": ...}`), and botocore's real parser turns its answers into the modelled
exceptions (`client.exceptions.TooManyRequestsException`, ...).

tests/conftest.py registers the fixtures for every test module;
bench scripts use `SesStub` directly (see bench/ses_stub.py).
"""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

REGION = "us-east-1"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",  # never reach for the instance metadata address
}


# -- moto --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1 (free port) for the session; yields its endpoint URL.

    Sets fake AWS credentials in the environment for the session, so boto3 clients made
    anywhere (also inside the code under test) sign requests without real keys.
    """
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        for name, value in FAKE_AWS_ENV.items():
            env.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def moto_reset(moto_server: str) -> str:
    """The moto endpoint, emptied of all state (identities, sent messages) before the test."""
    reset_moto(moto_server)
    return moto_server


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def verify_identity(endpoint: str, identity: str, region: str = REGION) -> None:
    """Make `identity` (an address or a domain) a verified SES sender in moto.

    moto treats every identity created through sesv2 CreateEmailIdentity as verified
    (VerificationStatus SUCCESS) and lets SendEmail use it, or any address in that domain.
    """
    import boto3

    client = boto3.client("sesv2", region_name=region, endpoint_url=endpoint)
    client.create_email_identity(EmailIdentity=identity)


@dataclass(frozen=True)
class MotoSentMessage:
    message_id: str
    source: str
    destinations: list[str]
    raw: bytes


def moto_sent_messages(endpoint: str) -> list[MotoSentMessage]:
    """Raw messages moto accepted, read back over HTTP from /moto-api/data.json.

    Works with any moto server, not only one in this process; moto keeps them as
    `ses.RawMessage` instances (sesv2 SendEmail with Content.Raw goes through the v1 backend).
    moto appends the To/Cc header addresses to the envelope destinations; `destinations`
    holds the bare addresses of both, de-duplicated, in order.
    """
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as answer:
        data = json.load(answer)
    return [
        MotoSentMessage(
            m["id"],
            m["source"],
            list(dict.fromkeys(parseaddr(d)[1] for d in m["destinations"])),
            m["raw_data"].encode("utf-8"),
        )
        for m in data.get("ses", {}).get("RawMessage", [])
    ]


# -- SES v2 stub -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StubMessage:
    message_id: str
    from_address: str | None
    to: list[str]
    data: bytes  # Content.Raw.Data as it came: base64
    configuration_set: str | None
    tags: dict[str, str]

    @cached_property
    def raw(self) -> bytes:
        """The message, decoded when a test asks: a benchmark's stub never spends CPU on it."""
        return base64.b64decode(self.data)


@dataclass
class SesStubState:
    """What the stub answers; change attributes between or during sends (under `lock`)."""

    max_send_rate: float = 14.0  # token-bucket refill per second, like real SES
    burst: float | None = None  # bucket size; default: one second's worth
    max_24_hour_send: float = 50_000.0
    sent_last_24_hours: float = 0.0
    throttle_fraction: float = 0.0  # additionally refuse this share of sends with 429, at random
    # the rate really allowed (another sender shares the account): the bucket refills at this
    # while GetAccount still says max_send_rate; None: max_send_rate
    send_limit: float | None = None
    # accept and record this share of sends, then close the connection without answering
    drop_fraction: float = 0.0
    internal_error: bool = False  # answer every send 500 InternalFailure (whether SES queued it is unknown)
    paused: bool = False  # SendingPausedException for every send
    suspended: bool = False  # AccountSuspendedException
    rejected: set[str] = field(default_factory=set)  # recipients answered with MessageRejected
    verified: set[str] | None = None  # identities GetEmailIdentity knows; None: every one
    latency: float = 0.0  # seconds each SendEmail takes before answering
    seed: int = 0


class SesStub:
    """A local HTTP server that answers sesv2 GetAccount, GetEmailIdentity and SendEmail like SES.

    Use as a context manager or start()/stop(); `endpoint_url` goes to boto3.
    `messages` holds what was accepted (Raw.Data decoded); `calls` counts requests by
    operation; `throttled` counts 429 answers; `answers` has each SendEmail's time and
    status; `dropped` holds the recipients of accepted
    messages whose answer was never sent (the connection was closed instead).
    """

    def __init__(self, **state: Any) -> None:
        self.state = SesStubState(**state)
        self.lock = threading.Lock()
        self.messages: list[StubMessage] = []
        self.calls: Counter[str] = Counter()
        self.throttled = 0
        self.dropped: list[str] = []
        self.answers: list[tuple[float, int]] = []  # (time.monotonic(), HTTP status) per SendEmail
        self._random = random.Random(self.state.seed)
        self._tokens = self._capacity()
        self._refilled = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> SesStub:
        stub = self

        class Handler(_SesHandler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="ses-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SesStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start() the stub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self, **state: Any) -> None:
        """Forget messages and counters; optionally change the state."""
        with self.lock:
            for name, value in state.items():
                setattr(self.state, name, value)
            self.messages.clear()
            self.calls.clear()
            self.throttled = 0
            self.dropped.clear()
            self.answers.clear()
            self._tokens = self._capacity()
            self._refilled = time.monotonic()

    def recipients(self) -> list[str]:
        with self.lock:
            return [to for m in self.messages for to in m.to]

    # -- behaviour

    def _limit(self) -> float:
        s = self.state
        return s.send_limit if s.send_limit is not None else s.max_send_rate

    def _capacity(self) -> float:
        return self.state.burst if self.state.burst is not None else max(1.0, self._limit())

    def _take_token(self) -> bool:
        """Token bucket at the real limit: SES rejects, never queues, sends over the rate."""
        now = time.monotonic()
        self._tokens = min(self._capacity(), self._tokens + (now - self._refilled) * self._limit())
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def account(self) -> tuple[int, dict[str, Any]]:
        s = self.state
        return 200, {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendQuota": {
                "Max24HourSend": s.max_24_hour_send,
                "MaxSendRate": s.max_send_rate,
                "SentLast24Hours": s.sent_last_24_hours + len(self.messages),
            },
            "SendingEnabled": not s.paused,
            "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        }

    def identity(self, identity: str) -> tuple[int, dict[str, Any]]:
        known = self.state.verified
        if known is not None and identity not in known:
            return _error(404, "NotFoundException", f"Email identity {identity} does not exist.")
        return 200, {
            "IdentityType": "EMAIL_ADDRESS" if "@" in identity else "DOMAIN",
            "FeedbackForwardingStatus": True,
            "VerifiedForSendingStatus": True,
            "VerificationStatus": "SUCCESS",
            "DkimAttributes": {"SigningEnabled": False, "Status": "NOT_STARTED"},
            "Policies": {},
            "Tags": [],
        }

    def send_email(self, body: dict[str, Any], data: bytes | None = None) -> tuple[int, dict[str, Any]]:
        """Answer one SendEmail; `data` is Content.Raw.Data when the handler took it out of `body`."""
        s = self.state
        if s.suspended:
            return _error(400, "AccountSuspendedException", "Your account has been suspended.")
        if s.paused:
            return _error(400, "SendingPausedException", "Sending is paused for this account.")
        if s.internal_error:
            return _error(
                500, "InternalFailure", "The request processing has failed because of an unknown error."
            )
        if s.sent_last_24_hours + len(self.messages) >= s.max_24_hour_send:
            return _error(400, "LimitExceededException", "Daily message quota exceeded.")
        if not self._take_token() or (s.throttle_fraction and self._random.random() < s.throttle_fraction):
            self.throttled += 1
            return _error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        to = list(body.get("Destination", {}).get("ToAddresses", []))
        if not to:
            return _error(400, "BadRequestException", "Missing required parameter Destination.")
        for address in to:
            if address in s.rejected:
                return _error(
                    400, "MessageRejected", f"Email address is not verified or is refused: {address}"
                )
        raw_data = data if data is not None else body.get("Content", {}).get("Raw", {}).get("Data")
        if raw_data is None:
            return _error(400, "BadRequestException", "Only Content.Raw is supported by this stub.")
        message_id = f"0100{uuid.uuid4().hex}-000000"
        if s.drop_fraction and self._random.random() < s.drop_fraction:
            self.dropped.extend(to)
            message_id = DROP  # recorded below; the handler closes the connection instead of answering
        self.messages.append(
            StubMessage(
                message_id=message_id,
                from_address=body.get("FromEmailAddress"),
                to=to,
                data=raw_data.encode("ascii") if isinstance(raw_data, str) else raw_data,
                configuration_set=body.get("ConfigurationSetName"),
                tags={t["Name"]: t["Value"] for t in body.get("EmailTags", [])},
            )
        )
        return 200, {"MessageId": message_id}


DROP = "dropped"  # a MessageId the handler never sends: it closes the connection instead


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    # botocore's rest-json parser takes the code from x-amzn-ErrorType (set by the handler
    # from "__type") and the message from the body's "message".
    return status, {"__type": code, "message": message}


_DATA_KEY = b'"Data":'


def _split_data(payload: bytes) -> tuple[dict[str, Any], bytes | None]:
    """A SendEmail body as JSON, with Content.Raw.Data taken out as it came (base64 bytes).

    The stub stands in for a remote service, yet shares the sender's machine: decoding and
    copying ~150 KB per request would charge the sender's benchmarks for the stub's work.
    Base64 has no character JSON escapes, so the value is the bytes between its quotes.
    """
    key = payload.find(_DATA_KEY)
    start = payload.find(b'"', key + len(_DATA_KEY)) + 1 if key >= 0 else 0
    end = payload.find(b'"', start) if start else -1
    if key < 0 or end < 0 or payload.find(_DATA_KEY, end) >= 0:
        return json.loads(payload), None  # not the shape botocore sends: parse it whole
    return json.loads(payload[:start] + payload[end:]), payload[start:end]


class _SesHandler(BaseHTTPRequestHandler):
    owner: SesStub
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms), which would cap a single thread at ~25 requests/s.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        code = body.pop("__type", None)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if code:
            self.send_header(
                "x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.coral.service/"
            )
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        stub = self.owner
        path = self.path.split("?", 1)[0]
        with stub.lock:
            if path == "/v2/email/account":
                stub.calls["GetAccount"] += 1
                answer = stub.account()
            elif path.startswith("/v2/email/identities/"):
                stub.calls["GetEmailIdentity"] += 1
                answer = stub.identity(unquote(path.removeprefix("/v2/email/identities/")))
            else:
                answer = _error(404, "NotFoundException", f"The stub does not answer GET {path}")
        self._answer(*answer)

    def do_POST(self) -> None:
        stub = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body, data = _split_data(self.rfile.read(length) or b"{}")
        path = self.path.split("?", 1)[0]
        if path != "/v2/email/outbound-emails":
            self._answer(*_error(404, "NotFoundException", f"The stub does not answer POST {path}"))
            return
        if stub.state.latency:
            time.sleep(stub.state.latency)
        with stub.lock:
            stub.calls["SendEmail"] += 1
            answer = stub.send_email(body, data)
            stub.answers.append((time.monotonic(), answer[0]))
        if answer[1].get("MessageId") == DROP:
            # accepted and recorded, and the answer is lost: the client sees the connection close
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(*answer)


@pytest.fixture
def ses_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStub]:
    """A started SesStub (14/s, everything verified) with fake AWS credentials in the environment."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with SesStub() as stub:
        yield stub
