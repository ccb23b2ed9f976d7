"""The MIME message: built once per issue, personalised per reader by substitution.

`MessageTemplate.build()` encodes the whole message — headers, a text/plain part and
a text/html part, both UTF-8 quoted-printable — once. The per-reader markers
(`newsletter.mail.markers.Markers`) are kept on lines of their own in the encoded bytes
(between soft line breaks, which decoders remove), so `personalise()` is a join of
pre-encoded bytes with a few short encoded values: no re-render, no re-encoding of the
60–90 KB body. Only this issue's markers are split on: marker-like content stays text.
"""

from __future__ import annotations

import datetime as dt
import email.quoprimime
import hashlib
import html
import re
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import NamedTuple

from newsletter.config import Settings
from newsletter.mail.markers import (
    GREETING,
    MARKER_NAMES,
    MESSAGE_ID,
    PREFERENCES_URL,
    TO,
    TOKEN,
    UNSUBSCRIBE_URL,
    Markers,
    expect_markers,
)
from newsletter.mail.render import Rendered

_SOFT_BREAK = b"=\r\n"
CRLF = "\r\n"


class Recipient(NamedTuple):
    """One reader of one message: who, and the signed tokens of their unsubscribe and preferences links.

    A named tuple: a send makes one per reader, and a tuple is made in a fifth of a frozen
    dataclass's time.
    """

    email: str
    name: str | None = None
    token: str = "preview"
    preferences_token: str = "preview"


def unsubscribe_url(settings: Settings, token: str) -> str:
    """The HTTPS one-click URL (RFC 8058) when an endpoint is configured, else the mailto fallback."""
    url = settings.web(f"u/{token}")
    if url is not None:
        return url
    mailto = settings.unsubscribe_mailto or settings.sender_address.addr_spec
    return f"mailto:{mailto}?subject=unsubscribe%20{token}"


def preferences_url(settings: Settings, token: str) -> str:
    """The reader's preferences page (language, name, unsubscribe).

    The templates link it only when a web endpoint is configured; without one, the
    archive stands in, so a link is never empty.
    """
    return settings.web(f"p/{token}") or settings.base_url


# What quoted-printable leaves as it is: printable ASCII but '=', spaces but not at the end, on
# a line of at most 76 (a link, or a greeting such as "Hi Ada,": the common cases, per reader)
_QP_AS_IS = re.compile(r"(?:[ !-<>-~]{0,75}[!-<>-~])?")


def _qp(text: str) -> bytes:
    """Quoted-printable (UTF-8, CRLF, lines of at most 76 characters)."""
    if _QP_AS_IS.fullmatch(text):  # nothing to encode
        return text.encode("ascii")
    latin = text.encode("utf-8").decode("latin-1")
    return email.quoprimime.body_encode(latin, maxlinelen=76, eol=CRLF).encode("ascii")


def _marker_pattern(markers: Markers) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(markers[name]) for name in MARKER_NAMES))


def _segments(encoded_text: str, encode, pattern: re.Pattern[str], markers: Markers) -> list[bytes | str]:
    """Split `encoded_text` on markers: encoded static bytes interleaved with marker names.

    Each static piece that does not end a line ends with a soft line break, so every
    marker starts a line of its own and is never split by line wrapping.
    """
    names = {markers[name]: name for name in MARKER_NAMES}
    pieces: list[bytes | str] = []
    position = 0
    for match in pattern.finditer(encoded_text):
        pieces.append(_soft_end(encode(encoded_text[position : match.start()])))
        pieces.append(names[match.group(0)])
        position = match.end()
    pieces.append(encode(encoded_text[position:]))
    return pieces


def _soft_end(data: bytes) -> bytes:
    if not data or data.endswith(b"\r\n"):
        return data
    return data + _SOFT_BREAK


class MessageTemplate:
    """A complete message with per-reader placeholders, encoded once."""

    def __init__(
        self,
        head: list[bytes | str],
        text: list[bytes | str],
        html_: list[bytes | str],
        boundary: str,
        rendered: Rendered,
        settings: Settings,
        slug: str,
    ) -> None:
        self._head = head
        self._text = text
        self._html = html_
        self._rendered = rendered
        self._settings = settings
        self._slug = slug
        self._domain = settings.sender_address.domain
        b = boundary.encode("ascii")
        self._between = b"\r\n--" + b + b"\r\n"
        self._end = b"\r\n--" + b + b"--\r\n"
        self._text_headers = (
            b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
            + f"Content-Language: {rendered.language}\r\n\r\n".encode("ascii")
        )
        self._html_headers = (
            b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
            + f"Content-Language: {rendered.language}\r\n\r\n".encode("ascii")
        )
        # The whole message as one flat list: fixed bytes, and slots (index, part, marker) that
        # each reader's values fill; a reader's message is then a single join.
        self._pieces: list[bytes] = []
        self._slots: list[tuple[int, str, str]] = []  # (index in _pieces, part, marker name)
        fixed = False  # whether the last piece is fixed bytes (not a slot)
        for part, pieces in (
            ("head", [*head, b"This is a multi-part message in MIME format.\r\n", self._between]),
            ("text", [self._text_headers, *text, self._between]),
            ("html", [self._html_headers, *html_, self._end]),
        ):
            for piece in pieces:
                if isinstance(piece, str):
                    self._slots.append((len(self._pieces), part, piece))
                    self._pieces.append(b"")
                elif fixed:
                    self._pieces[-1] += piece  # fixed bytes next to fixed bytes: one piece
                else:
                    self._pieces.append(piece)
                fixed = not isinstance(piece, str)
        # each slot's value, as an index into the tuple personalise() makes (None: a marker this
        # part has no value for, which personalise() reports as the KeyError it is)
        self._fill = [(index, _VALUES.get((part, name))) for index, part, name in self._slots]
        # the links' fixed beginnings: a reader's link is one of these and their token (both
        # functions end their link with the token; without a web endpoint, preferences_url
        # gives the archive, with no token)
        self._unsubscribe_prefix = unsubscribe_url(settings, "")
        self._preferences_prefix = settings.web("p/")

    @classmethod
    def build(
        cls,
        rendered: Rendered,
        settings: Settings,
        *,
        date: dt.datetime | None = None,
        subject_prefix: str = "",
    ) -> MessageTemplate:
        """Encode `rendered` into a message template; `date` defaults to now (SES overwrites it anyway)."""
        slug = rendered.issue.slug
        markers = rendered.markers
        date = date or dt.datetime.now(dt.UTC)
        body_hash = hashlib.sha256((rendered.html + rendered.text).encode("utf-8")).hexdigest()
        boundary = f"=_nl_{body_hash[:24]}"  # "=_" can never occur in quoted-printable text

        head = EmailMessage(policy=policy.SMTP)
        head["From"] = settings.sender
        head["To"] = markers[TO]
        head["Subject"] = subject_prefix + rendered.subject
        head["Date"] = format_datetime(date)
        head["Message-ID"] = markers[MESSAGE_ID]
        if settings.reply_to:
            head["Reply-To"] = settings.reply_to
        head["List-Id"] = f"{settings.name} <{settings.list_id}>"
        head["List-Unsubscribe"] = LIST_UNSUBSCRIBE_SLOT
        if settings.web_url:
            head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        head["List-Archive"] = f"<{settings.base_url}>"
        head["Feedback-ID"] = settings.feedback_id_value
        head["Content-Language"] = rendered.language
        head["MIME-Version"] = "1.0"
        head["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        # the header block alone, markers intact (they contain no spaces, so folding keeps them whole)
        head_text = head.as_bytes(policy=policy.SMTP).decode("ascii").split("\r\n\r\n", 1)[0] + "\r\n\r\n"
        slot_line = (
            f"\r\nList-Unsubscribe: {LIST_UNSUBSCRIBE_SLOT}\r\n"  # a whole line: no subject matches it
        )
        links_line = f"\r\nList-Unsubscribe: {_list_unsubscribe(settings, markers)}\r\n"
        head_text = head_text.replace(slot_line, links_line, 1)
        header_markers = {TO: 1, MESSAGE_ID: 1, TOKEN: 1, UNSUBSCRIBE_URL: 1 if settings.web_url else 0}
        # the settings and the subject prefix were not part of the content the nonce was
        # checked against: count the header block's markers too
        expect_markers(head_text, markers, header_markers, "the message headers")
        pattern = _marker_pattern(markers)
        head_pieces = _segments(head_text, lambda s: s.encode("ascii"), pattern, markers)
        head_pieces = [p for p in head_pieces if p != b""]
        return cls(
            head=_merge_plain(head_pieces),
            text=_segments(rendered.text, _qp, pattern, markers),
            html_=_segments(rendered.html, _qp, pattern, markers),
            boundary=boundary,
            rendered=rendered,
            settings=settings,
            slug=slug,
        )

    @property
    def rendered(self) -> Rendered:
        return self._rendered

    def marker_counts(self) -> dict[str, dict[str, int]]:
        """How many markers of each name each part of the encoded message substitutes."""
        parts = {"headers": self._head, "text": self._text, "html": self._html}
        counts: dict[str, dict[str, int]] = {}
        for part, pieces in parts.items():
            names = [p for p in pieces if isinstance(p, str)]
            counts[part] = {name: names.count(name) for name in dict.fromkeys(names)}
        return counts

    def message_id(self, recipient: Recipient) -> str:
        """A stable Message-ID per (issue, reader): a resend of the same message keeps it."""
        digest = hashlib.sha256(f"{self._slug}\0{recipient.email.lower()}".encode()).hexdigest()[:20]
        return f"<{self._slug}.{digest}@{self._domain}>"

    def personalise(self, recipient: Recipient) -> bytes:
        """The complete message for one reader, as bytes with CRLF line ends."""
        token = recipient.token
        url = self._unsubscribe_prefix + token  # = unsubscribe_url(settings, token)
        greeting = self._rendered.greeting(recipient.name)
        prefix = self._preferences_prefix  # = preferences_url(settings, token)
        preferences = self._settings.base_url if prefix is None else prefix + recipient.preferences_token
        url_text = _soft_end(_qp(url))
        greeting_text = _soft_end(_qp(greeting))
        preferences_text = _soft_end(_qp(preferences))
        # a token is base64url and a greeting usually plain: most often nothing to escape, one encoding
        escaped_url, escaped_greeting, escaped_preferences = _html(url), _html(greeting), _html(preferences)
        values = (  # in _VALUES' order
            _to_header(recipient).encode("ascii"),
            self.message_id(recipient).encode("ascii"),
            url.encode("ascii"),
            token.encode("ascii"),
            url_text,
            greeting_text,
            preferences_text,
            url_text if escaped_url is url else _soft_end(_qp(escaped_url)),
            greeting_text if escaped_greeting is greeting else _soft_end(_qp(escaped_greeting)),
            preferences_text if escaped_preferences is preferences else _soft_end(_qp(escaped_preferences)),
        )
        pieces = self._pieces.copy()
        for index, value in self._fill:
            if value is None:
                raise KeyError(next(name for i, _, name in self._slots if i == index))
            pieces[index] = values[value]
        return b"".join(pieces)


# Where each (part, marker) of a template takes its value from the tuple personalise() makes.
_VALUES = {
    ("head", TO): 0,
    ("head", MESSAGE_ID): 1,
    ("head", UNSUBSCRIBE_URL): 2,
    ("head", TOKEN): 3,
    ("text", UNSUBSCRIBE_URL): 4,
    ("text", GREETING): 5,
    ("text", PREFERENCES_URL): 6,
    ("html", UNSUBSCRIBE_URL): 7,
    ("html", GREETING): 8,
    ("html", PREFERENCES_URL): 9,
}
_HTML_SPECIAL = re.compile("[&<>\"']")


def _html(text: str) -> str:
    """`html.escape(text)`, without its five passes when there is nothing to escape (most values):
    then `text` itself, so a caller can tell by identity."""
    return html.escape(text) if _HTML_SPECIAL.search(text) else text


def _merge_plain(pieces: list[bytes | str]) -> list[bytes | str]:
    # header pieces carry no soft breaks: remove the ones _segments added
    return [p[: -len(_SOFT_BREAK)] if isinstance(p, bytes) and p.endswith(_SOFT_BREAK) else p for p in pieces]


# List-Unsubscribe is folded here, one link a line: the email package would fold a link
# longer than 78 characters into RFC 2047 encoded words, which no client reads as a URL.
LIST_UNSUBSCRIBE_SLOT = "list-unsubscribe-links"


def _list_unsubscribe(settings: Settings, markers: Markers) -> str:
    mailto = settings.unsubscribe_mailto or settings.sender_address.addr_spec
    mail_link = f"<mailto:{mailto}?subject=unsubscribe%20{markers[TOKEN]}>"
    if settings.web_url:
        return f"<{markers[UNSUBSCRIBE_URL]}>,\r\n {mail_link}"
    return mail_link


NAME_LIMIT = 200  # characters of a display name kept in the To header; an unbroken word can't fold
# A display name that needs neither quotes nor encoding (RFC 5322 atext and spaces), short enough
# for one line: most readers' names, written as they are
_PLAIN_NAME = re.compile(r"[A-Za-z0-9 !#$%&'*+/=?^_`{|}~-]{1,45}")


def _to_header(recipient: Recipient) -> str:
    if not recipient.name:
        return recipient.email
    name = " ".join(recipient.name.split())[:NAME_LIMIT]  # no CR/LF or runs of spaces in a header
    if _PLAIN_NAME.fullmatch(name):
        return f"{name} <{recipient.email}>"  # what formataddr makes of it, at a fifth of the cost
    if len(name.encode("utf-8")) <= 45:
        # quotes specials; a non-ASCII name fits one RFC 2047 word (at most 75 characters)
        return formataddr((name, recipient.email), charset="utf-8")
    # Longer names: the email package folds them into several short encoded words (~0.4 ms, rare)
    header = policy.SMTP.header_factory("To", str(Address(display_name=name, addr_spec=recipient.email)))
    return header.fold(policy=policy.SMTP).removeprefix("To: ").removesuffix("\r\n")
