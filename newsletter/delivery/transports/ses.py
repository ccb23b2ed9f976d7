"""Amazon SES v2 transport: SendEmail with Content.Raw, one recipient per call.

boto3 is imported inside the methods so that commands which never send start fast.
botocore's own retries are switched off: SendEmail has no idempotency token, so a
silent retry after a lost response could deliver twice. Each error is classified by
whether the request may have reached SES: throttles, refusals and connections never made
are *temporary* (safe to resend), lost answers (closed or reset after sending, read
timeouts, 5xx) are *uncertain*; the sender retries only the former, paced from `max_rate()`.

CPU per SendEmail bounds what one process sends (one GIL), so the client skips work that
cannot matter here: botocore's parameter validation (the transport builds every request
itself), and the JSON escaping pass over the base64 of the message. botocore serialises the
request with a short placeholder in `Content.Raw.Data`; a `before-call` handler (botocore's
documented event hook) then puts the message's base64 in its place. Base64 has no character
JSON escapes, so the bytes on the wire are those botocore would have built, and botocore
still signs (the payload hash covers the real body) and sends them.
"""

from __future__ import annotations

import base64
import os
import threading
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from newsletter.delivery.transports.base import SendResult, StopSending, Transport
from newsletter.errors import TransportError

if TYPE_CHECKING:
    from newsletter.config import Settings

CREDENTIALS_HINT = (
    "Give boto3 credentials the usual way: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or AWS_PROFILE naming a profile in ~/.aws/credentials, or an instance/SSO role."
)
THROTTLE_CODES = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException"}
)
PERMANENT_CODES = frozenset(
    {"MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException", "NotFoundException"}
)
STOP_CODES = frozenset({"SendingPausedException", "AccountSuspendedException"})
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AccessDeniedException",
        "AccessDenied",
        "ExpiredTokenException",
        "InvalidSignatureException",
    }
)


def _is_daily_quota(message: str) -> bool:
    text = message.lower()
    return "daily" in text and "quota" in text


class SesTransport(Transport):
    """Sends through the SES v2 API; one boto3 client shared by all threads."""

    name = "ses"

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        sender: str | None = None,
        configuration_set: str | None = None,
        tags: dict[str, str] | None = None,
        endpoint_url: str | None = None,
        concurrency: int = 10,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ) -> None:
        self.region = region
        self.sender = sender  # the From address whose identity check() verifies
        self.configuration_set = configuration_set
        self.tags = dict(tags or {})
        self.endpoint_url = endpoint_url
        self.concurrency = max(1, concurrency)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client: Any = None
        self._lock = threading.Lock()
        # the message a thread is sending, for the before-call handler of that same thread
        self._sending = threading.local()
        # the placeholder botocore serialises instead of the message, and its base64 in the body;
        # random per transport, so nothing else in a request (an address) can be mistaken for it
        self._placeholder = os.urandom(24)
        self._placeholder_b64 = base64.b64encode(self._placeholder)

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int = 10) -> SesTransport:
        ses = settings.ses
        return cls(
            region=ses.region,
            sender=settings.sender_address.addr_spec,
            configuration_set=ses.configuration_set,
            tags=ses.tags,
            endpoint_url=ses.endpoint_url,
            concurrency=concurrency,
        )

    @property
    def where(self) -> str:
        return f"SES ({self.endpoint_url or self.region})"

    # -- connection -------------------------------------------------------------

    def open(self) -> None:
        self.client()

    def client(self) -> Any:
        """The shared sesv2 client, created on first use (boto3 clients are thread-safe)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                session = boto3.session.Session()
                if session.get_credentials() is None:
                    raise TransportError(f"{self.where}: no AWS credentials found\n\n{CREDENTIALS_HINT}")
                config = Config(
                    region_name=self.region,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    max_pool_connections=self.concurrency + 2,
                    # every request is built here, from checked values: validating it again
                    # costs CPU per call and finds nothing
                    parameter_validation=False,
                )
                client = session.client("sesv2", endpoint_url=self.endpoint_url, config=config)
                client.meta.events.register("before-call.sesv2.SendEmail", self._put_message)
                self._client = client
            return self._client

    def _put_message(self, params: dict[str, Any], **_: Any) -> None:
        """botocore's before-call hook: the message's base64 where the placeholder was serialised.

        Runs on the thread that called send_email, before signing and sending.
        """
        raw = getattr(self._sending, "raw", None)
        if raw is None:
            return  # not a send of ours (a direct client call): botocore serialised it whole
        body = params["body"]
        at = body.find(self._placeholder_b64) if isinstance(body, bytes) else -1
        if at < 0 or body.find(self._placeholder_b64, at + 1) >= 0:
            raise TransportError(f"{self.where}: cannot place the message in the request body")
        end = at + len(self._placeholder_b64)
        params["body"] = b"".join((body[:at], base64.b64encode(raw), body[end:]))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- sending -----------------------------------------------------------------

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        request: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": self._placeholder}},  # _put_message puts `raw` in its place
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        if self.tags:
            request["EmailTags"] = [{"Name": k, "Value": v} for k, v in self.tags.items()]
        client = self.client()
        self._sending.raw = raw
        try:
            response = client.send_email(**request)
        except TransportError as exc:
            # the message could not be put into the request, which therefore never left
            raise StopSending(str(exc)) from None
        except ClientError as exc:
            return self._client_error(exc, recipient)
        except NoCredentialsError:
            raise StopSending(f"{self.where}: no AWS credentials found\n\n{CREDENTIALS_HINT}") from None
        except ReadTimeoutError as exc:
            # The request went out; SES may have accepted it. Only the editor may resend.
            return SendResult.uncertain(
                f"{self.where}: no answer in time ({exc}); the message may have been sent"
            )
        except ConnectionError as exc:
            # Connecting failed (refused, DNS, connect timeout): nothing reached SES.
            return SendResult.temporary(f"{self.where}: cannot connect: {exc}")
        except BotoCoreError as exc:
            # The connection closed or was reset after the request went out: the answer is lost.
            return SendResult.uncertain(f"{self.where}: {exc}; the message may have been sent")
        finally:
            self._sending.raw = None
        return SendResult.sent(response.get("MessageId"))

    def _client_error(self, exc: Any, recipient: str) -> SendResult:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = error.get("Message", "") or code
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = f"{self.where}: {code}: {message}"
        if code in STOP_CODES or (code in THROTTLE_CODES and _is_daily_quota(message)):
            raise StopSending(
                f"{text}\n\nThe rest of the send stays queued; resume it when SES allows sending."
            )
        if code in CREDENTIAL_CODES:
            raise StopSending(f"{text}\n\n{CREDENTIALS_HINT}")
        if code in THROTTLE_CODES:
            return SendResult.temporary(text, throttled=True)
        if code in PERMANENT_CODES:
            return SendResult.permanent(f"{text} (recipient {recipient})")
        if status >= 500 or status == 0:
            # SES failed internally: whether it queued the message is unknown.
            return SendResult.uncertain(f"{text}; the message may have been sent")
        return SendResult.permanent(f"{text} (recipient {recipient})")

    # -- account ---------------------------------------------------------------

    def max_rate(self) -> float | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            quota = self.client().get_account()["SendQuota"]
            rate = float(quota["MaxSendRate"])
        except (ClientError, BotoCoreError, KeyError, TypeError, ValueError):
            return None  # the caller falls back to its configured or default rate
        return rate if rate > 0 else None

    def check(self, sender: str | None = None) -> None:
        """Credentials present, SES reachable, the sender's address or domain verified."""
        from botocore.exceptions import BotoCoreError, ClientError

        address = parseaddr(sender or self.sender or "")[1]
        if "@" not in address:
            raise TransportError(f"{self.where}: no sender address to check, got {sender or self.sender!r}")
        domain = address.rpartition("@")[2]
        client = self.client()
        found: list[str] = []
        for identity in (address, domain):
            try:
                answer = client.get_email_identity(EmailIdentity=identity)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "NotFoundException":
                    continue
                message = exc.response.get("Error", {}).get("Message", "")
                hint = f"\n\n{CREDENTIALS_HINT}" if code in CREDENTIAL_CODES else ""
                raise TransportError(
                    f"{self.where}: cannot look up identity '{identity}': {code}: {message}{hint}"
                ) from None
            except BotoCoreError as exc:
                raise TransportError(f"{self.where}: cannot reach SES: {exc}") from None
            if answer.get("VerifiedForSendingStatus") or answer.get("VerificationStatus") == "SUCCESS":
                self._check_account(client)
                return
            found.append(f"'{identity}' is {answer.get('VerificationStatus', 'not verified').lower()}")
        state = "; ".join(found) if found else "neither is an SES identity"
        raise TransportError(
            f"{self.where}: sender '{address}' is not verified for sending "
            f"(checked '{address}' and '{domain}': {state})\n\n"
            f"Verify the address or its domain in the SES console, or run "
            f"`aws sesv2 create-email-identity --email-identity {domain}`."
        )

    def _check_account(self, client: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            account = client.get_account()
        except (ClientError, BotoCoreError):
            return  # not every SES-compatible service answers GetAccount; sending will tell
        if account.get("SendingEnabled") is False:
            raise TransportError(f"{self.where}: sending is paused for this account")
