"""Pre-flight checks of a built issue: what would hurt delivery or readers, caught before sending.

Each check looks at the real thing a reader gets — the complete MIME message re-parsed
with the `email` package — not at the templates.
"""

from __future__ import annotations

import email
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from email import policy
from html.parser import HTMLParser

from newsletter.mail.build import SAMPLE_READER, Built
from newsletter.mail.message import unsubscribe_url
from newsletter.mail.render import PLACEHOLDERS
from newsletter.text import CONTROL_CHARS

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail clips a message whose HTML is larger than about this, as encoded
MIN_TEXT_SHARE = 0.25  # the text part should carry at least this share of the HTML's visible text
SPAM_THRESHOLD = 5.0


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def check(self, condition: bool, passed: str, failed: str, *, warning: bool = False) -> bool:
        if condition:
            self.passed.append(passed)
        else:
            (self.warnings if warning else self.errors).append(failed)
        return condition


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.html_attrs: dict[str, str | None] = {}
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag == "a" and a.get("href") is not None:
            self.links.append(a["href"] or "")
        elif tag == "img":
            self.images.append(a)
            self.links.append(a.get("src") or "")
        elif tag in ("style", "head", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "head", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def check_built(built: Built, *, spamassassin: bool = True) -> CheckReport:
    """Run every check on a built issue."""
    report = CheckReport()
    settings = built.template._settings
    raw = built.preview
    msg = email.message_from_bytes(raw, policy=policy.default)
    defects = [(part.get_content_type(), d) for part in msg.walk() for d in part.defects]
    report.check(
        not defects,
        "message re-parses with 0 MIME defects",
        f"the message has MIME defects when re-parsed: {defects[:3]}",
    )
    report.check(
        max(len(line) for line in raw.split(b"\r\n")) <= 998,
        "no line over 998 octets",
        "a line of the message is longer than 998 octets (RFC 5322)",
    )

    html_part = msg.get_body(("html",))
    text_part = msg.get_body(("plain",))
    if html_part is None or text_part is None:
        report.errors.append("the message lacks a text/plain or text/html part")
        return report
    html = html_part.get_content()
    text = text_part.get_content()
    encoded_html = _encoded_payload(raw, b"text/html", msg.get_boundary() or "")
    size = len(encoded_html)
    report.figures.update(
        html_bytes=size,
        text_bytes=len(text.encode()),
        message_bytes=len(raw),
        papers=len(built.rendered.papers),
    )
    limit = settings.max_html_kb * 1024
    report.check(
        size <= limit,
        f"encoded HTML part is {size / 1024:.1f} KB (limit {settings.max_html_kb} KB)",
        f"encoded HTML part is {size / 1024:.1f} KB, over the {settings.max_html_kb} KB limit: "
        "Gmail clips messages at about 102 KB (feature fewer papers or shorten excerpts)",
    )

    parser = _Links()
    parser.feed(html)
    report.check(
        bool(parser.html_attrs.get("lang")) and bool(parser.html_attrs.get("dir")),
        f"<html lang={parser.html_attrs.get('lang')} dir={parser.html_attrs.get('dir')}>",
        "<html> lacks lang or dir",
    )
    no_alt = [img.get("src") for img in parser.images if img.get("alt") is None]
    report.check(
        not no_alt,
        f"all {len(parser.images)} images have alt text",
        f"{len(no_alt)} image(s) without alt text: {', '.join(map(str, no_alt[:3]))}",
    )
    bad_links = sorted({link for link in parser.links if not _good_link(link)})
    report.check(
        not bad_links,
        f"all {len(parser.links)} links are absolute http(s) or mailto",
        f"{len(bad_links)} link(s) not absolute http(s): {', '.join(bad_links[:5])}",
    )

    url = unsubscribe_url(settings, SAMPLE_READER.token)
    escaped_url = url.replace("&", "&amp;").encode()
    position = _decoded_position(encoded_html, escaped_url)
    report.check(url in text, "unsubscribe link in the text part", "no unsubscribe link in the text part")
    report.check(
        position is not None and position < GMAIL_CLIP_BYTES,
        "unsubscribe link in the HTML part, before Gmail's clipping point",
        "no unsubscribe link in the part of the HTML that Gmail shows (first ~102 KB)",
    )
    report.check(
        bool(msg["List-Unsubscribe"]) and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
        "List-Unsubscribe and List-Unsubscribe-Post (RFC 8058)",
        "no HTTPS one-click unsubscribe: set [web] url in newsletter.toml (Gmail and Yahoo require "
        "RFC 8058 for bulk senders)",
        warning=True,
    )
    report.check(
        bool(built.rendered.preheader),
        "preheader present",
        "no preheader: set 'preheader' in the issue's front matter (inboxes show it after the subject)",
        warning=True,
    )
    controls = CONTROL_CHARS.findall(html + text + str(msg["Subject"]))
    report.check(
        not controls, "no control characters", f"{len(controls)} C0/C1 control character(s) in the message"
    )
    leftovers = [p for p in PLACEHOLDERS if p in html or p in text]
    report.check(
        not leftovers,
        "every placeholder personalised",
        f"placeholders left after personalisation: {', '.join(leftovers)}",
    )

    visible = " ".join("".join(parser.text).split())
    share = len(" ".join(text.split())) / max(1, len(visible))
    report.figures["text_share"] = round(share, 2)
    report.check(
        len(text) >= 200 and share >= MIN_TEXT_SHARE,
        f"plain-text part is substantial ({len(text)} characters)",
        f"plain-text part is thin ({len(text)} characters, {share:.0%} of the HTML's text)",
    )
    missing = [p.title for p in built.rendered.papers if _norm(p.title) not in _norm(text)]
    report.check(
        not missing,
        f"all {len(built.rendered.papers)} paper titles in the text part",
        f"{len(missing)} paper title(s) missing from the text part: {missing[:2]}",
    )

    if spamassassin:
        score = spam_score(raw)
        if score is not None:
            report.figures["spam_score"] = score
            report.check(
                score < SPAM_THRESHOLD,
                f"SpamAssassin score {score:.1f} (offline rules)",
                f"SpamAssassin score {score:.1f} is at or above {SPAM_THRESHOLD}",
            )
    return report


def _good_link(link: str) -> bool:
    return bool(re.match(r"^(https?://[^\s/]+|mailto:\S+@)", link)) or link in PLACEHOLDERS


def _norm(text: str) -> str:
    return " ".join(text.split())


def _encoded_payload(raw: bytes, content_type: bytes, boundary: str) -> bytes:
    """The encoded body of the first part of `content_type`, as it travels."""
    start = raw.find(b"Content-Type: " + content_type)
    body = raw.find(b"\r\n\r\n", start) + 4
    end = raw.find(b"\r\n--" + boundary.encode("ascii"), body)
    return raw[body:end]


def _decoded_position(encoded: bytes, needle: bytes) -> int | None:
    """Offset in the *encoded* part at which `needle` (decoded) starts, if present."""
    import quopri

    decoded = quopri.decodestring(encoded)
    index = decoded.find(needle)
    if index < 0:
        return None
    # encoding only grows text, so the decoded offset scaled by the growth is a fair estimate
    return int(index * len(encoded) / max(1, len(decoded)))


def spam_score(raw: bytes) -> float | None:
    """SpamAssassin's offline score for `raw`, or None when it is not installed.

    Uses the installed rules only (`-L` local tests, `-x` no user config); never
    runs sa-update, which fails offline and leaves an empty rules folder.
    """
    binary = shutil.which("spamassassin")
    if binary is None:
        return None
    try:
        result = subprocess.run(
            [binary, "-L", "-x", "-C", "/usr/share/spamassassin", "-t"],
            input=raw,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(rb"X-Spam-Status: \w+, score=(-?[\d.]+)", result.stdout)
    return float(match.group(1)) if match else None


def check_issue(library, issue, *, spamassassin: bool = True) -> CheckReport:
    """Build `issue` (in memory) and check it."""
    from newsletter.mail.build import build_message

    return check_built(build_message(library, issue), spamassassin=spamassassin)
