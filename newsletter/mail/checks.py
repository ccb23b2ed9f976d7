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
from pathlib import Path

from newsletter.config import Settings
from newsletter.content.library import Issue, Library, Paper
from newsletter.mail.build import SAMPLE_READER, Built, build_message
from newsletter.mail.markers import BODY_MARKERS, marker_counts
from newsletter.mail.message import unsubscribe_url
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
    _check_markers(report, built, html + text + str(msg))

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


def _check_markers(report: CheckReport, built: Built, personalised: str) -> None:
    """Each part substitutes exactly the markers its template placed, and none is left over."""
    markers = built.rendered.markers
    placed = {"html": markers.html, "text": markers.text}
    encoded = built.template.marker_counts()
    problems = []
    for part in ("html", "text"):
        expected = {name: n for name, n in placed[part].items() if n}
        rendered = marker_counts(getattr(built.rendered, part), markers.nonce, BODY_MARKERS)
        if rendered != expected or encoded[part] != expected:
            problems.append(
                f"the {part} part has {_describe(encoded[part])}; its template placed {_describe(expected)}"
            )
    left = personalised.count(markers.nonce)
    if left:
        problems.append(f"{left} marker(s) left after personalisation")
    placed_total = sum(placed["html"].values()) + sum(placed["text"].values())
    report.check(
        not problems,
        f"every per-reader marker personalised ({placed_total} placed by the templates)",
        "per-reader markers: " + "; ".join(problems),
    )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items()) if n) or "no markers"


def _good_link(link: str) -> bool:
    return bool(re.match(r"^(https?://[^\s/]+|mailto:\S+@)", link))


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


def check_issue(library: Library, issue: Issue, *, spamassassin: bool = True) -> CheckReport:
    """Build `issue` (in memory) and check it, and its sources for text left from the scaffold."""
    built = build_message(library, issue)
    report = check_built(built, spamassassin=spamassassin)
    problems = scaffold_text(library.settings, issue, built.rendered.papers)
    report.check(
        not problems, "no scaffold text or placeholder addresses left", problems[0] if problems else ""
    )
    report.errors.extend(problems[1:])
    for language in library.translations.languages_of(issue)[1:]:
        check_translation(report, library, issue, language, spamassassin=spamassassin)
    return report


# ---------------------------------------------------------------------------
# Translations: each is built and checked like the original, and compared with it

MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<(https?://[^>\s]+)>")


def check_translation(
    report: CheckReport, library: Library, issue: Issue, language: str, *, spamassassin: bool = False
) -> None:
    """Check `issue` in `language`: the built message, its links against the original's, its age."""
    from newsletter.content.translations import original_hash

    translation = library.translations.issues[(issue.slug, language)]
    where = _shown(translation.path, library.settings.root)
    built = build_message(library, issue, language=language)
    own = check_built(built, spamassassin=spamassassin)
    report.passed.append(f"{language}: translation builds; {len(own.passed)} checks passed")
    report.warnings.extend(f"{where}: {line}" for line in own.warnings)
    report.errors.extend(f"{where}: {line}" for line in own.errors)
    original, translated = _links(issue.intro), _links(built.rendered.issue.intro)
    report.check(
        original == translated,
        f"{language}: the introduction links where the original does",
        f"{where}: links: expected the original's {sorted(original)}, got {sorted(translated)}",
        warning=True,
    )
    current = original_hash(issue.path)
    report.check(
        translation.translated_from == current,
        f"{language}: translated from the original as it is now",
        f"{where}: translated_from: expected {current} (the original changed since; review the "
        f"translation, then record the new hash), got {translation.translated_from or 'nothing'}",
        warning=True,
    )


def _links(markdown: str) -> set[str]:
    return {a or b for a, b in MARKDOWN_LINK.findall(markdown)}


# ---------------------------------------------------------------------------
# Text a new project or `newsletter issue new` writes for the editor to replace

SCAFFOLD_INTRO = ("Write your introduction here", "Write the introduction here")
SCAFFOLD_PAPER_TEXT = (
    "Replace this with the paper's abstract",
    "Why this paper matters, in a sentence or two",
)
SCAFFOLD_POSTAL_ADDRESS = "Your name · Street 1 · City · Country"
# RFC 2606 names: fine while trying things out with the file transport, never for readers
PLACEHOLDER_DOMAIN = re.compile(r"(?:https?://|mailto:|@)(?:[\w-]+\.)*example\.(?:org|com)\b", re.IGNORECASE)
REAL_TRANSPORTS = ("ses", "smtp")
SETTINGS_FIELDS = {
    "[newsletter] base_url": "base_url",
    "[email] from": "sender",
    "[email] reply_to": "reply_to",
    "[email] unsubscribe_mailto": "unsubscribe_mailto",
    "[web] url": "web_url",
}
PAPER_FIELDS = ("url", "pdf", "code", "project_page", "thumbnail", "abstract", "note")


def scaffold_text(settings: Settings, issue: Issue, papers: tuple[Paper, ...] | list[Paper]) -> list[str]:
    """Errors for scaffold text the editor has not replaced, each naming the file and field.

    Placeholder domains (example.org, example.com) only count when the transport reaches
    real readers (ses, smtp): the file transport is how a new project is tried out.
    """
    settings_file = "newsletter.toml"
    issue_file = _shown(issue.path, settings.root)
    problems = [
        f"{issue_file}: introduction: still the template text ({phrase!r}): expected your own introduction"
        for phrase in SCAFFOLD_INTRO
        if phrase.casefold() in issue.intro.casefold()
    ]
    if SCAFFOLD_POSTAL_ADDRESS.casefold() in settings.postal_address.casefold():
        problems.append(
            f"{settings_file}: [newsletter] postal_address: still the placeholder "
            f"{settings.postal_address!r}: expected the postal address readers can write to"
        )
    for paper in papers:
        paper_file = _shown(paper.path, settings.root)
        for field_name in ("abstract", "note"):
            text = getattr(paper, field_name) or ""
            problems += [
                f"{paper_file}: {field_name}: still the template text ({phrase!r}): expected the paper's own {field_name}"
                for phrase in SCAFFOLD_PAPER_TEXT
                if phrase.casefold() in text.casefold()
            ]
    if settings.transport not in REAL_TRANSPORTS:
        return problems
    why = f"expected a real address (the transport is {settings.transport})"
    for label, attribute in SETTINGS_FIELDS.items():
        value = getattr(settings, attribute) or ""
        if PLACEHOLDER_DOMAIN.search(value if "://" in value else "@" + value.split("@")[-1]):
            problems.append(f"{settings_file}: {label}: {value!r} is a placeholder domain: {why}")
    sources = [(issue_file, "introduction", issue.intro)] + [
        (_shown(p.path, settings.root), name, getattr(p, name) or "") for p in papers for name in PAPER_FIELDS
    ]
    for where, field_name, text in sources:
        found = PLACEHOLDER_DOMAIN.search(text)
        if found:
            problems.append(f"{where}: {field_name}: links to {found.group(0)}…, a placeholder domain: {why}")
    return problems


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
