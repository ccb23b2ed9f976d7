"""Per-reader markers: the text a rendered issue carries where each reader's own values go.

`Markers` explains why no content can produce one; `newsletter.mail.render` places them
and checks them, `newsletter.mail.message` substitutes them, `newsletter.mail.checks`
counts them again in the finished message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from newsletter.errors import RenderError

# The per-reader values a message carries. The body markers are placed by the email
# templates, the others by the message headers (newsletter.mail.message).
UNSUBSCRIBE_URL = "UNSUBSCRIBE_URL"
GREETING = "GREETING"
PREFERENCES_URL = "PREFERENCES_URL"
TO = "TO"
MESSAGE_ID = "MESSAGE_ID"
TOKEN = "TOKEN"
MARKER_NAMES = (UNSUBSCRIBE_URL, GREETING, PREFERENCES_URL, TO, MESSAGE_ID, TOKEN)
BODY_MARKERS = (UNSUBSCRIBE_URL, GREETING, PREFERENCES_URL)
NONCE_CHARS = 16  # hex digits: 64 bits
MAX_NONCE_TRIES = 64


@dataclass(frozen=True)
class Markers:
    """The per-reader markers of one rendered issue, `%%NAME-<nonce>%%`, and where the templates put them.

    Content is untrusted and passes through Markdown, HTML entity decoding (markdown-it,
    lxml) and more, so any fixed marker text could be produced by an abstract, a title or
    a note (`\\%\\%UNSUBSCRIBE_URL\\%\\%`, `&#37;&#37;…`) and would then be filled in with
    a reader's own unsubscribe URL. The nonce makes the markers text no content holds:

    - The templates are first rendered with every marker replaced by its bare name
      (`%%UNSUBSCRIBE_URL%%`): that output is all the content, as the reader will see it.
    - The nonce is a hash of that output and a counter, and the counter goes up until the
      nonce occurs nowhere in it. So a nonce is *checked* absent from the content, and
      content cannot aim at it: to contain the nonce, a text would have to contain (an
      encoding of) a hash of itself.
    - Rendering again with the real markers must give the first output back once each
      marker is replaced by its bare name — proof that markers stand only where a template
      put one — and each marker must be found exactly as often after MJML and CSS inlining.

    The nonce is not random: the same inputs give the same nonce, so `build/` output stays
    byte-identical between builds. A random nonce would be just as unforgeable, but would
    change every file that carries markers at every build.
    """

    nonce: str
    html: dict[str, int]  # marker name -> how many times the email template placed it
    text: dict[str, int]  # marker name -> how many times the text template placed it

    def __getitem__(self, name: str) -> str:
        return marker(name, self.nonce)

    @property
    def unsubscribe_url(self) -> str:
        return self[UNSUBSCRIBE_URL]

    @property
    def greeting(self) -> str:
        return self[GREETING]

    @property
    def preferences_url(self) -> str:
        return self[PREFERENCES_URL]


def marker(name: str, nonce: str) -> str:
    """`%%NAME-nonce%%`: plain ASCII without '=', spaces or URL-special characters, so that
    MJML, premailer/lxml (which escape some characters in href values), header folding and
    quoted-printable encoding leave it byte-for-byte intact."""
    return f"%%{name}-{nonce}%%" if nonce else f"%%{name}%%"


def choose_nonce(*rendered: str) -> str:
    """The first hash of `rendered` (and a counter) that occurs in none of it (see `Markers`)."""
    digest = hashlib.sha256()
    for part in rendered:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    for counter in range(MAX_NONCE_TRIES):
        candidate = digest.copy()
        candidate.update(str(counter).encode("ascii"))
        nonce = candidate.hexdigest()[:NONCE_CHARS]
        if not any(nonce in part for part in rendered):
            return nonce
    raise RenderError("could not choose per-reader markers that the content does not contain")


def placed_markers(output: str, bare: str, nonce: str, template: str) -> dict[str, int]:
    """How often `template` placed each marker in `output`, checked against its bare rendering."""
    counts = {name: output.count(marker(name, nonce)) for name in BODY_MARKERS}
    restored = output
    for name in BODY_MARKERS:
        restored = restored.replace(marker(name, nonce), marker(name, ""))
    if restored != bare or nonce in restored:
        # a template that treats a marker as a value (a filter, a test, slicing) changes the text
        raise RenderError(
            f"templates/{template}: the per-reader values greeting, unsubscribe_url and preferences_url "
            "must be output as they are (no filters or tests on them)"
        )
    return counts


def marker_counts(text: str, nonce: str, names: tuple[str, ...] = MARKER_NAMES) -> dict[str, int]:
    """How often each marker of `nonce` occurs in `text` (names with none left out)."""
    counts = {name: text.count(marker(name, nonce)) for name in names}
    return {name: n for name, n in counts.items() if n}


def expect_markers(output: str, markers: Markers, expected: dict[str, int], where: str) -> None:
    found = marker_counts(output, markers.nonce)
    strays = output.count(markers.nonce) - sum(found.values())
    if found != {k: v for k, v in expected.items() if v} or strays:
        raise RenderError(
            f"{where}: per-reader markers placed {_describe(expected)}, found {_describe(found)}"
            + (f" and {strays} broken one(s)" if strays else "")
        )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} × {name}" for name, n in sorted(counts.items()) if n) or "none"
