"""Email addresses as the store keeps them: their identity (case-insensitive) and their valid form."""

from __future__ import annotations

import functools
import re


def email_key(email: str) -> str:
    """The case-insensitive identity of an address (what uniqueness is checked on)."""
    return email.strip().lower()


def normalize_email(address: str, *, check_dns: bool = False) -> str:
    """A valid, SES-sendable form of `address`, or ValueError with the reason.

    The domain is lowercased and IDNA-encoded (punycode); the local part keeps its case.
    Addresses whose local part is not ASCII are refused: they need SMTPUTF8, which
    Amazon SES does not offer.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if at and not local.isascii():
        odd = "".join(dict.fromkeys(c for c in local if not c.isascii()))
        raise ValueError(
            f"the part before '@' has non-ASCII characters ({odd!r}); Amazon SES cannot send to such addresses"
        )
    if not check_dns and _PLAIN_LOCAL.match(local) and len(address) <= 254:
        # Imports repeat a few domains many times: validating each domain once keeps
        # 100k-row imports fast. A plain dot-atom local part needs no further checks.
        plain = f"{local}@{_ascii_domain(domain)}"
        if len(plain) <= 254:
            return plain
    return _validate(address, check_dns)


# RFC 5322 dot-atom (ASCII), at most 64 characters: what email-validator accepts without question
_PLAIN_LOCAL = re.compile(
    r"^(?=.{1,64}$)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    return _validate(f"postmaster@{domain}", False).rpartition("@")[2]


def _validate(address: str, check_dns: bool) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(address, check_deliverability=check_dns, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc).rstrip(".")) from None
    return result.ascii_email or result.normalized
