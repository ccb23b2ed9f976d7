"""The subscriber lifecycle: the statuses, and the one rule for moving between them.

Every path that changes a subscriber's status asks `transition` first: an editor's
command, a CSV import, an SES event, a reader's confirm or unsubscribe link. The
store writes what the transition decided and never decides itself.

The rules, from weakest to strongest status (pending, active < unsubscribed <
bounced < complained):
- a suppression only ever gets stronger: an unsubscribed address can later bounce or
  complain, a bounced one can complain, a complained one stays complained;
- nobody who left, bounced or complained comes back to active or pending, except by
  an editor's explicit ``--force-resubscribe`` (which records who and when);
- pending becomes active when a reader confirms, an editor says so, or an import
  says active; active goes back to pending only when an editor says so;
- events only suppress; readers only confirm or unsubscribe.

This module imports nothing heavy: `--help` and the web app read STATUSES from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.store import Store

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
# Never mailed again, and not revived by a re-import or a new subscribe form.
SUPPRESSED = frozenset({"unsubscribed", "bounced", "complained"})
SOURCES = ("reader", "editor", "import", "event")
# Transient bounces since the last delivery after which an address counts as bounced.
SOFT_BOUNCE_LIMIT = 3

# How strong a reason not to write each status is; a suppression is only replaced by a stronger one.
_STRENGTH = {"pending": 0, "active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}


@dataclass(frozen=True)
class Transition:
    """What happens to one subscriber's status: the status afterwards, and the columns to set."""

    current: str
    status: str  # the status afterwards (== current when kept)
    changed: bool
    reason: str | None = None  # why the wanted status was not taken (None when changed or already there)
    columns: dict[str, Any] = field(default_factory=dict)  # status and timestamps to write


def transition(
    current: str,
    wanted: str,
    source: str,
    *,
    now: datetime,
    force: bool = False,
    consent_at: datetime | None = None,
) -> Transition:
    """Whether a subscriber in `current` may move to `wanted` when `source` asks, and what to write.

    `force` (editors only) brings back someone who left, bounced or complained.
    `consent_at`: when the source knows the reader consented (an import's opt-in time);
    otherwise activating a pending subscriber records `now` as the consent time.
    """
    for name, value, allowed in (("current", current, STATUSES), ("status", wanted, STATUSES)):
        if value not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {source!r}")
    if force and source != "editor":
        raise ValueError(f"force: only an editor may force a status change, not the {source}")
    keep = _refusal(current, wanted, source, force)
    if keep is not None:
        return Transition(current, current, False, keep or None)
    columns: dict[str, Any] = {"status": wanted}
    if wanted == "unsubscribed":
        columns["unsubscribed_at"] = now
    elif wanted in ("active", "pending") and current in SUPPRESSED:
        # a forced return: the old opt-out and bounce count belong to the time before
        columns.update(unsubscribed_at=None, soft_bounces=0)
    if wanted == "active" and current != "active":
        columns["consent_at"] = consent_at or now
    return Transition(current, wanted, True, None, columns)


def _refusal(current: str, wanted: str, source: str, force: bool) -> str | None:
    """Why the move is refused; "" when there is nothing to do; None when it is allowed."""
    if current == wanted:
        return ""
    if force:
        return None
    if source == "reader" and wanted not in ("active", "unsubscribed"):
        return f"a reader can only confirm or unsubscribe, not become {wanted}"
    if source == "event" and wanted not in SUPPRESSED:
        return f"an event only suppresses an address, it never makes it {wanted}"
    if current in SUPPRESSED and wanted not in SUPPRESSED:
        return f"{current} addresses come back only by an editor's --force-resubscribe"
    if wanted in SUPPRESSED:
        if _STRENGTH[wanted] < _STRENGTH[current]:
            return f"{current} is a stronger reason not to write than {wanted}"
        return None
    if wanted == "pending" and source != "editor":
        return "an active subscriber goes back to pending only when an editor says so"
    return None


def deciding(
    wanted: str, source: str, *, now: datetime, force: bool = False, consent_at: datetime | None = None
) -> Callable[[str], Transition]:
    """`transition` waiting for the current status, which the store reads inside its transaction."""

    def decide(current: str) -> Transition:
        return transition(current, wanted, source, now=now, force=force, consent_at=consent_at)

    return decide


def change_status(
    store: Store,
    email_or_id: str | int,
    wanted: str,
    source: str,
    *,
    now: datetime | None = None,
    reason: str | None = None,
    force: bool = False,
    by: str | None = None,
) -> Transition | None:
    """Move one subscriber towards `wanted` as `source` asks; None when there is no such subscriber.

    A change is recorded as a ``status`` event with the reason and, when given, who asked (`by`).
    """
    decide = deciding(wanted, source, now=now or datetime.now(UTC), force=force)
    return store.change_status(email_or_id, decide, reason=reason, by=by)


def import_decision(*, now: datetime) -> Callable[[str, Any], Transition]:
    """What an import row (with `.status` and `.consent_at`) does to a subscriber in `current`."""

    def decide(current: str, row: Any) -> Transition:
        wanted = row.status or current  # a row that names no status leaves it alone
        return transition(current, wanted, "import", now=now, consent_at=row.consent_at)

    return decide


def event_decision(
    wanted: str | None, reason: str | None, *, now: datetime, soft_bounce_limit: int | None = None
) -> Callable[[str, int], tuple[Transition, str | None] | None]:
    """What an SES event does to a subscriber, given its status and soft-bounce count.

    `wanted` is what the event asks for (None: nothing by itself); reaching `soft_bounce_limit`
    soft bounces asks for ``bounced``. Returns the transition and the reason to record.
    """

    def decide(current: str, soft_bounces: int) -> tuple[Transition, str | None] | None:
        target, why = wanted, reason
        if target is None and soft_bounce_limit is not None and soft_bounces >= soft_bounce_limit:
            target, why = "bounced", f"{soft_bounces} soft bounces"
        if target is None:
            return None
        return transition(current, target, "event", now=now), why

    return decide
