"""HMAC-signed tokens for unsubscribe, preferences and confirmation links, and the rules for their secret.

A token is ``<payload>.<signature>``, both base64url without padding. The payload
is ``purpose:subject[:expiry]``; the signature is HMAC-SHA256 over it with the
newsletter's secret (NEWSLETTER_SECRET). Tokens carry no secret data, but cannot
be forged or moved from one purpose to another.

Each token has exactly one spelling: padding, a changed letter case, trailing bits in
the last character or characters outside base64url are refused, so a link can be
compared, logged and rate-limited as the string it is. Verification accepts a list of
secrets (the current one first, then NEWSLETTER_SECRET_OLD) so links in mail already
sent keep working while the key is rotated; new tokens are always signed with the first.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Sequence

UNSUBSCRIBE = "u"
PREFERENCES = "p"
CONFIRM = "c"
MIN_SECRET_BYTES = 32
GENERATE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_SIG_BYTES = 16  # 128-bit truncated HMAC: unforgeable, and keeps URLs short
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class InvalidToken(ValueError):
    """The token is malformed, forged, for another purpose, or expired."""


def check_secret(name: str, value: bytes) -> str | None:
    """Why `value` cannot sign links (too short), with how to make a good one; None when it can."""
    if len(value) >= MIN_SECRET_BYTES:
        return None
    return (
        f"{name}: expected a secret of at least {MIN_SECRET_BYTES} bytes, got {len(value)} bytes\n\n"
        f"Generate one with:\n\n    {GENERATE_SECRET}"
    )


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    # base64.urlsafe_b64encode, without its Python-level wrapper (a send encodes four per reader)
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Decode unpadded base64url, refusing every spelling but the one `_b64` writes."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if _b64(data) != text:  # trailing bits set, or an impossible length
        raise ValueError("not the canonical spelling")
    return data


@functools.lru_cache(maxsize=8)
def _keyed(secret: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's inner and outer hashes with `secret` already absorbed (RFC 2104)."""
    key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
    key = key.ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(k ^ 0x36 for k in key)),
        hashlib.sha256(bytes(k ^ 0x5C for k in key)),
    )


def _sign(secret: bytes, payload: bytes) -> bytes:
    # HMAC-SHA256 from copies of the keyed hashes: a send signs two links per reader, and this
    # spares the key set-up of hmac.digest() each time (tests check it gives hmac's bytes)
    inner, outer = _keyed(secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(payload)
    outer.update(inner.digest())
    return outer.digest()[:_SIG_BYTES]


def make_token(secret: bytes, purpose: str, subject: str, *, expires_at: int | None = None) -> str:
    """Sign `subject` (e.g. a subscriber id or address) for `purpose`."""
    payload = f"{purpose}:{subject}" + (f":{expires_at}" if expires_at is not None else "")
    data = payload.encode("utf-8")
    return f"{_b64(data)}.{_b64(_sign(secret, data))}"


def read_token(
    secrets: bytes | Sequence[bytes], purpose: str, token: str, *, now: float | None = None
) -> str:
    """Return the subject of a valid token, or raise InvalidToken.

    `secrets` is one key or several (current first, older after): a token signed with
    any of them is valid.
    """
    keys = [secrets] if isinstance(secrets, bytes) else [s for s in secrets if s]
    try:
        payload_b64, sig_b64 = token.split(".")
        data, sig = _unb64(payload_b64), _unb64(sig_b64)
        payload = data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed token") from None
    # every key is tried, so the time taken does not say which one matched
    matched = [hmac.compare_digest(sig, _sign(key, data)) for key in keys]
    if not any(matched):
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
    """The token in a subscriber's unsubscribe links; stable for that subscriber.

    Subscriber ids are never reused (see newsletter.store.schema), so the token names
    one subscriber forever: after an erasure it names nobody.
    """
    return make_token(secret, UNSUBSCRIBE, str(subscriber_id))


def preferences_token(secret: bytes, subscriber_id: int | str) -> str:
    """The token in a subscriber's preferences link; stable for that subscriber, like `unsubscribe_token`.

    Its own purpose: a link that changes a language or a name is not an unsubscribe link,
    so neither can be turned into the other.
    """
    return make_token(secret, PREFERENCES, str(subscriber_id))


def confirm_token(secret: bytes, email: str, *, ttl: int = 7 * 86400, now: float | None = None) -> str:
    """The token in a double opt-in confirmation link; expires after `ttl` seconds."""
    return make_token(secret, CONFIRM, email, expires_at=int((time.time() if now is None else now) + ttl))
