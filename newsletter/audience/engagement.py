"""Opens and clicks: which SES Open and Click events are stored, and which look like a machine's.

Off by default (`ses.engagement`): with it off, an Open or Click event that still
arrives (the configuration set tracks, but the editor did not opt in) is counted as
ignored and not stored. With it on, each event of a message in the ledger is stored
with its time, the clicked link and the paper its link tag names; never the reader's IP
address or user agent, which are only looked at here, to tell machines from readers:
- Apple Mail Privacy Protection loads every image of a message through Apple's proxies
  as soon as it reaches the device, opened or not. Its requests come from Apple's
  network (17.0.0.0/8) with a bare ``Mozilla/5.0`` user agent (SocketLabs, "Identifying
  Apple MPP opens"; Word to the Wise, "Apple MPP", 2021), and often within seconds.
- Link scanners (mail security gateways) follow links before the reader sees them:
  within seconds of sending, or every link of the message at once.
Such events are stored with the reason, and reports count them apart, never as readers.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from newsletter.audience.notifications import Notification
from newsletter.store import Burst, Observation

if TYPE_CHECKING:
    from newsletter.store import Store

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
PROXY_USER_AGENT = "Mozilla/5.0"  # MPP's prefetch: no browser, no version
PREFETCH_SECONDS = 10  # an open this soon after sending is a prefetch, not a reader
SCAN_SECONDS = 10  # a click this soon after sending is a scanner's
SCANNER_BURST = Burst(seconds=5, links=3, reason="link scanner: 3 or more links clicked within 5 s")


def store_engagement(store: Store, notification: Notification) -> tuple[str, Observation | None]:
    """Store one Open or Click event, and what was stored of it.

    The outcome is "stored", "duplicate", "unknown" (not a message of the ledger) or
    "malformed" (no message id or time). A burst of clicks found later flags the
    earlier ones too (`SCANNER_BURST`).
    """
    observation = observe(notification)
    if observation is None:
        return "malformed", None
    burst = SCANNER_BURST if observation.type == "click" else None
    return store.record_engagement(observation, burst=burst), observation


def observe(notification: Notification) -> Observation | None:
    """What is stored of an Open or Click event (None when it lacks its message id or time)."""
    kind = notification.type.lower()
    section = notification.engagement or {}
    at = parse_time(section.get("timestamp"))
    if notification.message_id is None or at is None or kind not in ("open", "click"):
        return None
    sent = parse_time(notification.detail.get("mail_timestamp"))
    link = section.get("link") if isinstance(section.get("link"), str) else ""
    return Observation(
        type=kind,
        message_id=notification.message_id,
        at=at,
        link=link[:2000] if kind == "click" else "",
        paper=paper_tag(section.get("linkTags")) if kind == "click" else None,
        machine=machine_open(section, at, sent) if kind == "open" else machine_click(at, sent),
    )


def machine_open(section: dict[str, Any], at: datetime, sent: datetime | None) -> str | None:
    """Why an open looks like a privacy proxy's prefetch, or None."""
    if _apple_address(section.get("ipAddress")):
        return "privacy proxy: Apple network (17.0.0.0/8)"
    agent = section.get("userAgent")
    if isinstance(agent, str) and agent.strip() == PROXY_USER_AGENT:
        return "privacy proxy: bare Mozilla/5.0 user agent"
    if sent is not None and (at - sent).total_seconds() < PREFETCH_SECONDS:
        return f"prefetch: opened within {PREFETCH_SECONDS} s of sending"
    return None


def machine_click(at: datetime, sent: datetime | None) -> str | None:
    """Why a click looks like a link scanner's, or None (bursts are found by the store)."""
    if sent is not None and (at - sent).total_seconds() < SCAN_SECONDS:
        return f"link scanner: clicked within {SCAN_SECONDS} s of sending"
    return None


def paper_tag(tags: Any) -> str | None:
    """The ``paper`` link tag's value (`newsletter.mail.tracking`), when the link had one."""
    values = tags.get("paper") if isinstance(tags, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0][:256]
    return values[:256] if isinstance(values, str) else None


def parse_time(value: Any) -> datetime | None:
    """An SES timestamp ("2017-08-09T22:00:19.652Z") as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _apple_address(value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value.strip()) in APPLE_NETWORK
    except ValueError:
        return False
