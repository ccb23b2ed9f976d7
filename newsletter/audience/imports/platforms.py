"""The export formats subscribers are imported from: one table per platform.

Each `Platform` says how its export is recognised (header columns, and for Mailchimp
the file name), which column holds its status word, what each word means in our
statuses, which other columns signal an opt-out, which column holds its tags (and
how they are separated), and how it writes dates. The same
tables print the README's import table (`markdown_table`), so the two cannot drift.

An opt-out signal (a status word, a flag, an unsubscribe date, a blocklist, a
cleaned or bounced mark) always wins over "active": of all the statuses a row's
signals give, the strongest counts (complained > bounced > unsubscribed > pending >
active). A status word the table does not know refuses the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["PLATFORMS", "Platform", "Signal", "fold", "markdown_table", "strongest"]

# Our statuses from weakest to strongest: a stronger signal always wins.
STRENGTH = ("active", "pending", "unsubscribed", "bounced", "complained")


def fold(name: str) -> str:
    """A header name as the tables spell it: lowercase, runs of space, '_' and '-' as one space."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower()).strip()


def strongest(statuses: list[str]) -> str | None:
    return max(statuses, key=STRENGTH.index) if statuses else None


# --------------------------------------------------------------------------- dates


def iso_time(text: str) -> datetime | None:
    """ISO 8601 (`2024-03-01T09:30:00.000Z`, `2024-03-13 00:03:09.183465+00:00`); no zone means UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def utc_suffix_time(text: str) -> datetime | None:
    """beehiiv's `2023-03-24 10:23:10 UTC` (and plain ISO, should the export change)."""
    return iso_time(text[:-4] if text.endswith(" UTC") else text)


_GO_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([+-]\d{4})(?: \S+)?")


def go_time(text: str) -> datetime | None:
    """listmonk's Go `time.Time.String()`: `2024-07-29 05:31:31.478677 +0000 UTC`."""
    match = _GO_TIME.fullmatch(text)
    if not match:
        return iso_time(text)
    stamp, offset = match.groups()
    if "." in stamp:
        whole, fraction = stamp.split(".")
        stamp = f"{whole}.{(fraction + '000000')[:6]}"
    try:
        return datetime.fromisoformat(f"{stamp}{offset[:3]}:{offset[3:]}")
    except ValueError:
        return None


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Signal:
    """A column other than the status that marks a row: when its value is set, true, false or a word."""

    column: str  # folded header name
    when: str  # "set", "true", "false", or the exact word (lowercase)
    status: str

    def fires(self, value: str) -> bool:
        value = value.strip().lower()
        if self.when == "set":
            return bool(value)
        if self.when in ("true", "false"):
            return value in (_TRUE if self.when == "true" else _FALSE)
        return value == self.when

    def describe(self) -> str:
        column = f"`{self.column.replace(' ', '_')}`"
        if self.when == "set":
            return f"{column} not empty → {self.status}"
        return f"{column} `{self.when}` → {self.status}"


_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}


@dataclass(frozen=True)
class Platform:
    name: str  # what --format takes
    title: str
    statuses: dict[str, str]  # the platform's word -> our status: THE table of this platform
    status_columns: tuple[str, ...] = ()  # folded header names, first present wins; () = from the file name
    signals: tuple[Signal, ...] = ()
    consent_columns: tuple[str, ...] = ()  # folded; first present wins (before the common aliases)
    parse_time: Callable[[str], datetime | None] = iso_time
    needs: tuple[frozenset[str], ...] = ()  # recognised when the header has all of any one of these sets
    file_name: re.Pattern[str] | None = None  # Mailchimp: the status is in the file's name
    refuse_domains: tuple[str, ...] = ()  # placeholder addresses of deleted accounts
    expected: str = ""  # how a refusal lists the known words; default: the table's words
    tag_columns: tuple[str, ...] = ()  # folded; first present wins; () = the platform exports no tags
    tag_separator: str = ","  # between tags in one cell (a quoted tag may hold it: read as CSV)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def detects(self, header: set[str], file_name: str) -> bool:
        return any(need <= header for need in self.needs)

    def known_words(self) -> str:
        return self.expected or ", ".join(self.statuses)


MAILCHIMP = Platform(
    name="mailchimp",
    title="Mailchimp (subscribed / unsubscribed / cleaned exports)",
    # Mailchimp writes one file per status and no status column: the file name says which.
    statuses={"subscribed": "active", "unsubscribed": "unsubscribed", "cleaned": "bounced"},
    signals=(Signal("unsub time", "set", "unsubscribed"), Signal("clean time", "set", "bounced")),
    consent_columns=("optin time", "confirm time"),
    needs=tuple(
        frozenset({"email address", column})
        for column in (
            "member rating",
            "optin time",
            "confirm time",
            "leid",
            "euid",
            "unsub time",
            "clean time",
        )
    ),
    file_name=re.compile(r"^(unsubscribed|subscribed|cleaned)(?![a-z])"),
    # TAGS holds each tag in double quotes, comma-separated: `"Editors","VIP"`
    tag_columns=("tags",),
    notes=(
        "The status comes from the file name (`subscribed_members_export_….csv`, `unsubscribed_…`, "
        "`cleaned_…`) or, failing that, from the `UNSUB_*` / `CLEAN_*` / `LAST_CHANGED` columns; "
        "import each file of the zip. Dates (`2018-02-12 10:54:27`) are taken as UTC.",
    ),
)

SUBSTACK = Platform(
    name="substack",
    title="Substack (email list and subscribers exports)",
    # `plan` (email list) and `type` (subscribers) name what a reader pays, not whether they
    # want mail: every known one is active unless `email_disabled` says otherwise.
    statuses={
        "free": "active",
        "other": "active",
        "monthly": "active",
        "yearly": "active",
        "annually": "active",
        "annual": "active",
        "founding": "active",
        "paid": "active",
        "comp": "active",
        "gift": "active",
        "ios_app": "active",
    },
    status_columns=("plan", "type"),
    signals=(Signal("email disabled", "true", "unsubscribed"),),
    needs=(
        frozenset({"email", "active subscription", "email disabled"}),
        frozenset({"email", "expiry", "email disabled"}),
    ),
    refuse_domains=("deletion-request.",),
    notes=(
        "Readers who unsubscribed are absent from Substack's exports; rows at a `deletion-request.` "
        "domain (deleted accounts) are refused.",
    ),
)

BUTTONDOWN = Platform(
    name="buttondown",
    title="Buttondown",
    statuses={
        "regular": "active",
        "premium": "active",
        "trialed": "active",
        "gifted": "active",
        "churning": "active",
        "churned": "active",
        "past_due": "active",
        "paused": "active",
        "upcoming": "active",
        "unpaid": "pending",
        "unactivated": "pending",
        "unsubscribed": "unsubscribed",
        "removed": "unsubscribed",
        "blocked": "unsubscribed",
        "disabled": "unsubscribed",
        "complained": "complained",
        "undeliverable": "bounced",
        "spammy": "bounced",
        "malformed": "bounced",
    },
    status_columns=("subscriber type", "type"),
    signals=(Signal("unsubscription date", "set", "unsubscribed"),),
    consent_columns=("subscription date", "creation date"),
    needs=(
        frozenset({"email", "subscriber type"}),
        frozenset({"email address", "subscriber type"}),
        frozenset({"email address", "creation date", "type"}),
        frozenset({"email", "creation date", "type"}),
    ),
    tag_columns=("tags",),
    tag_separator=";",  # `corporate;nyc`
    notes=(
        "Names and language are read from `metadata` (`name`, `first_name`, `last_name`, `language`). "
        "`spammy`, `malformed` and `disabled` appear only in exports from before July 2025.",
    ),
)

GHOST = Platform(
    name="ghost",
    title="Ghost members",
    # Ghost has no status column; `subscribed_to_emails` is its only opt-out mark.
    statuses={"true": "active", "false": "unsubscribed"},
    status_columns=("subscribed to emails",),
    needs=(frozenset({"email", "subscribed to emails"}),),
    tag_columns=("labels",),  # label names, comma-joined: `"VIP,Early adopter"`
    notes=("Ghost does not export its bounce and complaint flag; import its suppression list separately.",),
)

KIT = Platform(
    name="kit",
    title="Kit (ConvertKit)",
    statuses={
        "active": "active",
        "inactive": "pending",
        "cancelled": "unsubscribed",
        "bounced": "bounced",
        "complained": "complained",
    },
    status_columns=("state",),
    # `email,state` alone could be any address list (a US state column): not enough to say Kit
    needs=(frozenset({"email address", "state"}), frozenset({"email", "state", "first name", "created at"})),
    tag_columns=("tags",),  # comma-separated in one cell
    notes=(
        "Kit's CSV header is not documented: columns are matched by name (`email_address` or `email`, "
        "`state`, `first_name`, `created_at`); the state values are Kit's documented ones.",
    ),
)

BEEHIIV = Platform(
    name="beehiiv",
    title="beehiiv",
    statuses={
        "active": "active",
        "pending": "pending",
        "validating": "pending",
        "needs_attention": "pending",
        "inactive": "unsubscribed",
        "invalid": "bounced",
    },
    status_columns=("status",),
    signals=(Signal("unsubscribed at", "set", "unsubscribed"),),
    parse_time=utc_suffix_time,
    needs=(frozenset({"email", "status", "tier"}),),
    notes=("Dates look like `2023-03-24 10:23:10 UTC`.",),
)

LISTMONK = Platform(
    name="listmonk",
    title="listmonk",
    statuses={"enabled": "active", "disabled": "unsubscribed", "blocklisted": "unsubscribed"},
    status_columns=("status",),
    # listmonk's CSV has no per-list column; a `subscription_status` column added to the file
    # (an export filtered by list) is read too.
    signals=(
        Signal("subscription status", "unsubscribed", "unsubscribed"),
        Signal("subscription status", "unconfirmed", "pending"),
    ),
    parse_time=go_time,
    needs=(frozenset({"uuid", "email", "attributes", "status"}),),
    notes=(
        "Language is read from `attributes` (`lang` or `language`). The export has no per-list status: "
        "export each list filtered by subscription status and add a `subscription_status` column "
        "(`unsubscribed` → unsubscribed, `unconfirmed` → pending) before importing.",
    ),
)

GENERIC = Platform(
    name="generic",
    title="Generic CSV (and this tool's own export)",
    statuses={
        "active": "active",
        "subscribed": "active",
        "confirmed": "active",
        "pending": "pending",
        "unconfirmed": "pending",
        "unsubscribed": "unsubscribed",
        "bounced": "bounced",
        "cleaned": "bounced",
        "complained": "complained",
    },
    status_columns=("status", "subscriber status", "subscription status"),
    signals=(
        Signal("unsub time", "set", "unsubscribed"),
        Signal("email disabled", "true", "unsubscribed"),
        Signal("clean time", "set", "bounced"),
    ),
    expected="active, pending, unsubscribed, bounced, complained",
    tag_columns=("tags", "labels"),
    notes=(
        "Any CSV with an `email` column (or `Email Address`, `email_address`); optional `name` (or first "
        "and last name), `language`, `status`, `consent_at`, `tags` (comma-separated). Rows without a "
        "status are active.",
    ),
)

# Detection order: the most specific header first; the generic format matches everything.
PLATFORMS: dict[str, Platform] = {
    p.name: p for p in (MAILCHIMP, SUBSTACK, BUTTONDOWN, GHOST, KIT, BEEHIIV, LISTMONK, GENERIC)
}


def markdown_table() -> str:
    """The README's import table: every platform's words and signals, from the tables above."""
    lines = [
        "| Format (`--format`) | Platform value → our status | Also opts out | Tags |",
        "|---|---|---|---|",
    ]
    for platform in PLATFORMS.values():
        column = (
            "file name"
            if platform.file_name
            else " / ".join(f"`{c.replace(' ', '_')}`" for c in platform.status_columns[:2])
        )
        words = ", ".join(f"`{word}` → {status}" for word, status in platform.statuses.items())
        signals = "; ".join(s.describe() for s in platform.signals) or "—"
        tags = (
            f"`{platform.tag_columns[0]}` (`{platform.tag_separator}`-separated)"
            if platform.tag_columns
            else "—"
        )
        lines.append(f"| {platform.title} (`{platform.name}`) | {column}: {words} | {signals} | {tags} |")
    lines.append("")
    for platform in PLATFORMS.values():
        for note in platform.notes:
            lines.append(f"- **{platform.name}**: {note}")
    return "\n".join(lines)
