"""The subscriber lifecycle: every (current, wanted, source) pair, and what each change writes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.audience.lifecycle import (
    SOURCES,
    STATUSES,
    event_decision,
    import_decision,
    transition,
)

NOW = datetime(2026, 3, 17, 9, 30, tzinfo=UTC)

# Rows: the current status; columns: the wanted status, in STATUSES order
# (pending, active, unsubscribed, bounced, complained).
# "=" already there (nothing to write), "->" changes, "x" refused (the current status is kept).
EXPECTED = {
    "reader": {
        "pending": ("=", "->", "->", "x", "x"),
        "active": ("x", "=", "->", "x", "x"),
        "unsubscribed": ("x", "x", "=", "x", "x"),
        "bounced": ("x", "x", "x", "=", "x"),
        "complained": ("x", "x", "x", "x", "="),
    },
    "editor": {
        "pending": ("=", "->", "->", "->", "->"),
        "active": ("->", "=", "->", "->", "->"),
        "unsubscribed": ("x", "x", "=", "->", "->"),
        "bounced": ("x", "x", "x", "=", "->"),
        "complained": ("x", "x", "x", "x", "="),
    },
    "import": {
        "pending": ("=", "->", "->", "->", "->"),
        "active": ("x", "=", "->", "->", "->"),
        "unsubscribed": ("x", "x", "=", "->", "->"),
        "bounced": ("x", "x", "x", "=", "->"),
        "complained": ("x", "x", "x", "x", "="),
    },
    "event": {
        "pending": ("=", "x", "->", "->", "->"),
        "active": ("x", "=", "->", "->", "->"),
        "unsubscribed": ("x", "x", "=", "->", "->"),
        "bounced": ("x", "x", "x", "=", "->"),
        "complained": ("x", "x", "x", "x", "="),
    },
    # An editor's --force-resubscribe: every move is taken.
    "editor --force": {
        "pending": ("=", "->", "->", "->", "->"),
        "active": ("->", "=", "->", "->", "->"),
        "unsubscribed": ("->", "->", "=", "->", "->"),
        "bounced": ("->", "->", "->", "=", "->"),
        "complained": ("->", "->", "->", "->", "="),
    },
}

CASES = [
    (source, current, wanted, EXPECTED[source][current][column])
    for source in EXPECTED
    for current in STATUSES
    for column, wanted in enumerate(STATUSES)
]


def test_the_table_covers_every_pair() -> None:
    assert set(EXPECTED) == {*SOURCES, "editor --force"}
    assert len(CASES) == 5 * 5 * 5
    assert all(set(rows) == set(STATUSES) for rows in EXPECTED.values())


@pytest.mark.parametrize(("source", "current", "wanted", "expected"), CASES)
def test_transition(source: str, current: str, wanted: str, expected: str) -> None:
    force = source.endswith("--force")
    result = transition(current, wanted, source.split()[0], now=NOW, force=force)
    assert result.current == current
    if expected == "->":
        assert (result.changed, result.status, result.reason) == (True, wanted, None)
        assert result.columns["status"] == wanted
    elif expected == "=":
        assert (result.changed, result.status, result.reason, result.columns) == (False, current, None, {})
    else:
        assert (result.changed, result.status, result.columns) == (False, current, {})
        assert result.reason  # a refusal always says why


def test_the_timestamps_each_change_sets() -> None:
    assert transition("pending", "active", "reader", now=NOW).columns == {
        "status": "active",
        "consent_at": NOW,
    }
    assert transition("active", "unsubscribed", "reader", now=NOW).columns == {
        "status": "unsubscribed",
        "unsubscribed_at": NOW,
    }
    assert transition("active", "bounced", "event", now=NOW).columns == {"status": "bounced"}
    assert transition("active", "pending", "editor", now=NOW).columns == {"status": "pending"}
    opted_in = datetime(2025, 1, 2, tzinfo=UTC)
    imported = transition("pending", "active", "import", now=NOW, consent_at=opted_in)
    assert imported.columns == {"status": "active", "consent_at": opted_in}
    # A forced return starts afresh: new consent, no opt-out time, no soft bounces counted.
    back = transition("bounced", "active", "editor", now=NOW, force=True)
    assert back.columns == {"status": "active", "unsubscribed_at": None, "soft_bounces": 0, "consent_at": NOW}


def test_refusals_say_why() -> None:
    assert transition("complained", "unsubscribed", "editor", now=NOW).reason == (
        "complained is a stronger reason not to write than unsubscribed"
    )
    assert transition("bounced", "active", "import", now=NOW).reason == (
        "bounced addresses come back only by an editor's --force-resubscribe"
    )
    assert transition("active", "bounced", "reader", now=NOW).reason == (
        "a reader can only confirm or unsubscribe, not become bounced"
    )
    assert transition("pending", "active", "event", now=NOW).reason == (
        "an event only suppresses an address, it never makes it active"
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="only an editor may force a status change, not the import"):
        transition("bounced", "active", "import", now=NOW, force=True)
    with pytest.raises(ValueError, match="source: expected one of reader, editor, import, event, got 'web'"):
        transition("active", "unsubscribed", "web", now=NOW)
    with pytest.raises(ValueError, match=r"status: expected one of .*, got 'gone'"):
        transition("active", "gone", "editor", now=NOW)


def test_soft_bounces_reach_the_limit_as_a_bounce() -> None:
    decide = event_decision(None, None, now=NOW, soft_bounce_limit=3)
    assert decide("active", 2) is None
    change, reason = decide("active", 3)
    assert (change.status, change.changed, reason) == ("bounced", True, "3 soft bounces")
    change, _ = decide("complained", 5)
    assert (change.status, change.changed) == ("complained", False)
    assert event_decision(None, None, now=NOW)("active", 99) is None  # no limit given


def test_an_import_row_without_a_status_changes_nothing() -> None:
    class Row:
        status = None
        consent_at = None

    assert import_decision(now=NOW)("pending", Row()).changed is False
