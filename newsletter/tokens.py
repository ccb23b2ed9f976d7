"""HMAC-signed tokens for unsubscribe and confirmation links.

A token is ``<payload>.<signature>``, both base64url without padding. The payload
is ``purpose:subject[:expiry]``; the signature is HMAC-SHA256 over it with the
newsletter's secret (NEWSLETTER_SECRET). Tokens carry no secret data, but cannot
be forged or moved from one purpose to another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

UNSUBSCRIBE = "u"
CONFIRM = "c"
_SIG_BYTES = 16  # 128-bit truncated HMAC: unforgeable, and keeps URLs short


class InvalidToken(ValueError):
    """The token is malformed, forged, for another purpose, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_SIG_BYTES]


def make_token(secret: bytes, purpose: str, subject: str, *, expires_at: int | None = None) -> str:
    """Sign `subject` (e.g. a subscriber id or address) for `purpose`."""
    payload = f"{purpose}:{subject}" + (f":{expires_at}" if expires_at is not None else "")
    data = payload.encode("utf-8")
    return f"{_b64(data)}.{_b64(_sign(secret, data))}"


def read_token(secret: bytes, purpose: str, token: str, *, now: float | None = None) -> str:
    """Return the subject of a valid token, or raise InvalidToken."""
    try:
        payload_b64, sig_b64 = token.split(".")
        data, sig = _unb64(payload_b64), _unb64(sig_b64)
        payload = data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(sig, _sign(secret, data)):
        raise InvalidToken("bad signature")
    kind, _, rest = payload.partition(":")
    if kind != purpose:
        raise InvalidToken("token is for another purpose")
    if purpose == CONFIRM:
        subject, _, expiry = rest.rpartition(":")
        if not expiry.isdigit():
            raise InvalidToken("malformed token")
        if (time.time() if now is None else now) > int(expiry):
            raise InvalidToken("token has expired")
        return subject
    return rest


def unsubscribe_token(secret: bytes, subscriber_id: int | str) -> str:
    """The token in a subscriber's unsubscribe links; stable for that subscriber."""
    return make_token(secret, UNSUBSCRIBE, str(subscriber_id))


def confirm_token(secret: bytes, email: str, *, ttl: int = 7 * 86400, now: float | None = None) -> str:
    """The token in a double opt-in confirmation link; expires after `ttl` seconds."""
    return make_token(secret, CONFIRM, email, expires_at=int((time.time() if now is None else now) + ttl))
