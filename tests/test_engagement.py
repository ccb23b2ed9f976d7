"""Engagement (opt-in `ses.engagement`): link tags in the email, Open and Click events stored per message.

Events are SES's own examples (tests/fixtures/events/README.md) with their message id
replaced by one of the ledger's: the store keeps an event only for a message it sent.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter.audience.events import process_notification
from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.content.selection import plan
from newsletter.mail.render import render_issue
from newsletter.mail.tracking import link_tag
from newsletter.store import Store
from tests.support.project import FIXTURES, make_newsletter, run
from tests.support.sending import ISSUE, SECRET, add_people

EVENTS = FIXTURES / "events"
ON = "\n[ses]\nengagement = true\n"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def record(name: str) -> dict:
    """The SES event record of a fixture, whatever its wrapping (SNS envelope, EventBridge, raw)."""
    data = load(name)
    if data.get("Type") == "Notification":
        return json.loads(data["Message"])
    return data["detail"] if "detail-type" in data else data


def aimed(name: str, message_id: str, sent, *, after: float, **section: object) -> dict:
    """Fixture `name`, in its own wrapping, about `message_id` sent at `sent`, happening `after` seconds later."""
    data = load(name)
    event = copy.deepcopy(record(name))
    kind = event["eventType"].lower()
    event["mail"]["messageId"] = message_id
    event["mail"]["timestamp"] = sent.isoformat().replace("+00:00", "Z")
    event[kind]["timestamp"] = (sent + timedelta(seconds=after)).isoformat().replace("+00:00", "Z")
    event[kind].update(section)
    if data.get("Type") == "Notification":
        return {**data, "Message": json.dumps(event)}
    if "detail-type" in data:
        return {**data, "detail": event}
    return event


@pytest.fixture
def sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A newsletter with engagement on, its first issue sent to 6 readers through the outbox."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    folder = make_newsletter(tmp_path, extra_toml=ON)
    settings = load_settings(folder, env={})
    with Store.open(settings.database_url) as store:
        add_people(store, 6, suppressed=False)
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(tmp_path / "o"), "--yes", "--no-spam-score")
    result = run(folder, *args)
    assert result.exit_code == 0, result.output
    store = Store.open(settings.database_url)
    yield folder, store, [d for d in store.ledger(ISSUE) if d.state == "sent"]
    store.close()


# --------------------------------------------------------------------------- the email


def render(folder: Path, **changes: object):
    settings = load_settings(folder, env={})
    ses = replace(settings.ses, **{k: v for k, v in changes.items() if k == "engagement"})
    settings = replace(settings, ses=ses, transport=str(changes.get("transport", settings.transport)))
    library = replace(load_library(settings), settings=settings)
    issue = library.issue(ISSUE)
    return render_issue(library, issue, plan(library)[ISSUE]), settings


def anchors(html: str) -> list[str]:
    return re.findall(r"<a\s[^>]*>", html)


def test_with_engagement_on_every_paper_link_names_its_paper_and_unsubscribe_is_never_tracked(
    tmp_path: Path,
) -> None:
    rendered, settings = render(make_newsletter(tmp_path), engagement=True)
    links = anchors(rendered.html)
    for paper in rendered.papers:
        tagged = [a for a in links if f'href="{paper.link(settings)}"' in a]
        assert tagged, paper.id
        assert all(f'ses:tags="paper:{link_tag(paper.id)};"' in a for a in tagged)
    # SES link tag values allow letters, digits, _ and - only (the SES developer guide)
    assert link_tag("2401.00001") == "2401_00001"
    assert all(
        re.fullmatch(r"[A-Za-z0-9_-]+", v) for v in re.findall(r'ses:tags="paper:([^;"]*);"', rendered.html)
    )
    unsubscribe = [a for a in links if rendered.markers.unsubscribe_url in a]
    assert len(unsubscribe) == 2 and all("ses:no-track" in a for a in unsubscribe)


def test_with_engagement_off_an_ses_email_marks_every_link_untracked(tmp_path: Path) -> None:
    rendered, _ = render(make_newsletter(tmp_path), engagement=False, transport="ses")
    links = anchors(rendered.html)
    assert len(links) > 5
    assert all("ses:no-track" in a for a in links), [a for a in links if "ses:no-track" not in a]
    assert "ses:tags" not in rendered.html


def test_other_transports_get_the_links_as_they_are(tmp_path: Path) -> None:
    rendered, _ = render(make_newsletter(tmp_path), engagement=False, transport="file")
    assert "ses:" not in rendered.html


def test_the_setting_is_checked(tmp_path: Path) -> None:
    folder = make_newsletter(tmp_path, extra_toml='\n[ses]\nengagement = "yes"\n')
    result = run(folder, "issues")
    assert result.exit_code == 1
    assert "ses.engagement: expected true or false, got 'yes'" in result.output


# --------------------------------------------------------------------------- events


def test_off_by_default_open_and_click_events_are_not_kept(sent) -> None:
    _, store, rows = sent
    first = rows[0]
    for name in ("open-sns.json", "click-paper-tag-sns.json", "open-eventbridge.json"):
        summary = process_notification(store, aimed(name, first.message_id, first.sent_at, after=3600))
        assert (summary.processed, summary.ignored, summary.opens, summary.clicks) == (1, 1, 0, 0)
    assert store.engagement_rows(ISSUE) == []
    assert store.list_events() == []  # not in the address's history either


def test_a_readers_open_and_click_are_stored_per_message_without_ip_or_user_agent(sent) -> None:
    _, store, rows = sent
    first = rows[0]
    opened = process_notification(
        store, aimed("open-sns.json", first.message_id, first.sent_at, after=3600), engagement=True
    )
    clicked = process_notification(
        store, aimed("click-paper-tag-sns.json", first.message_id, first.sent_at, after=3700), engagement=True
    )
    assert (opened.opens, opened.machine, clicked.clicks, clicked.machine) == (1, 0, 1, 0)
    stored = store.engagement_rows(ISSUE)
    assert [(r["type"], r["message_id"], r["paper"], r["machine"]) for r in stored] == [
        ("open", first.message_id, None, None),
        ("click", first.message_id, "cjk-tokenizers", None),
    ]
    assert stored[1]["link"] == "https://example.org/digest/papers/cjk-tokenizers/"
    assert abs((stored[0]["at"] - first.sent_at).total_seconds() - 3600) < 0.01  # the event's own time
    kept = json.dumps([list(r.values()) for r in stored], default=str)
    assert "192.0.2.1" not in kept and "Chrome" not in kept and "iPhone" not in kept
    assert store.list_events() == []
    assert store.engagement_counts(ISSUE) == {
        "opened": 1,
        "opens": 1,
        "machine_opens": 0,
        "clicked": 1,
        "clicks": 1,
        "machine_clicks": 0,
    }


def test_eventbridge_and_raw_forms_are_stored_too(sent) -> None:
    _, store, rows = sent
    for name, row in (("open-eventbridge.json", rows[0]), ("open-aws-raw.json", rows[1]), ("click-eventbridge.json", rows[2]), ("click-aws-raw.json", rows[3])):  # fmt: skip
        summary = process_notification(
            store, aimed(name, row.message_id, row.sent_at, after=1800), engagement=True
        )
        assert summary.opens + summary.clicks == 1, (name, summary)
    stored = store.engagement_rows(ISSUE)
    assert sorted((r["message_id"], r["type"]) for r in stored) == sorted(
        [
            (rows[0].message_id, "open"),
            (rows[1].message_id, "open"),
            (rows[2].message_id, "click"),
            (rows[3].message_id, "click"),
        ]
    )
    # AWS's sample link tags name no paper: the click counts, attributed to no paper
    assert {r["paper"] for r in stored} == {None}


@pytest.mark.parametrize(
    ("section", "after", "reason"),
    [
        ({"ipAddress": "17.58.63.200"}, 3600, "Apple network"),
        ({"userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.9"}, 3600, "bare Mozilla/5.0"),
        ({}, 2, "within 10 s of sending"),
    ],
)
def test_machine_opens_are_flagged_and_not_counted_as_readers(
    sent, section: dict, after: float, reason: str
) -> None:
    _, store, rows = sent
    row = rows[0]
    summary = process_notification(
        store, aimed("open-sns.json", row.message_id, row.sent_at, after=after, **section), engagement=True
    )
    assert (summary.opens, summary.machine) == (1, 1)
    [stored] = store.engagement_rows(ISSUE)
    assert reason in stored["machine"]
    counts = store.engagement_counts(ISSUE)
    assert (counts["opened"], counts["machine_opens"]) == (0, 1)


def test_link_scanners_are_flagged_soon_after_sending_or_when_every_link_is_clicked_at_once(sent) -> None:
    _, store, rows = sent
    early, burst, reader = rows[0], rows[1], rows[2]
    process_notification(store, aimed("click-paper-tag-sns.json", early.message_id, early.sent_at, after=3), engagement=True)  # fmt: skip
    for n, link in enumerate(("https://example.org/a", "https://example.org/b", "https://example.org/c")):
        process_notification(
            store,
            aimed(
                "click-paper-tag-sns.json", burst.message_id, burst.sent_at, after=7200 + n * 0.5, link=link
            ),
            engagement=True,
        )
    process_notification(store, aimed("click-paper-tag-sns.json", reader.message_id, reader.sent_at, after=7200), engagement=True)  # fmt: skip
    machines = {(r["message_id"], r["link"]): r["machine"] for r in store.engagement_rows(ISSUE)}
    assert "within 10 s" in machines[(early.message_id, "https://example.org/digest/papers/cjk-tokenizers/")]
    # the first two clicks of the burst looked like a reader's until the third came
    assert all(
        "3 or more links" in (machines[(burst.message_id, f"https://example.org/{x}")] or "") for x in "abc"
    )
    assert machines[(reader.message_id, "https://example.org/digest/papers/cjk-tokenizers/")] is None
    counts = store.engagement_counts(ISSUE)
    assert (counts["clicked"], counts["clicks"], counts["machine_clicks"]) == (1, 1, 4)


def test_a_redelivered_event_is_stored_once_and_other_mail_not_at_all(sent) -> None:
    _, store, rows = sent
    row = rows[0]
    body = aimed("open-sns.json", row.message_id, row.sent_at, after=600)
    first, again = (process_notification(store, body, engagement=True) for _ in range(2))
    assert (first.opens, again.opens, again.duplicates) == (1, 0, 1)
    other = process_notification(store, aimed("open-sns.json", "not-our-message", row.sent_at, after=600), engagement=True)  # fmt: skip
    assert (other.opens, other.ignored) == (0, 1)
    assert len(store.engagement_rows(ISSUE)) == 1


def test_an_event_without_its_time_is_malformed(sent) -> None:
    _, store, rows = sent
    event = record("open-aws-raw.json")
    event["mail"]["messageId"] = rows[0].message_id
    del event["open"]["timestamp"]
    summary = process_notification(store, event, engagement=True)
    assert summary.malformed == 1 and "expected mail.messageId and a timestamp" in summary.errors[0]


def test_issues_shows_readers_who_opened_and_clicked(sent) -> None:
    folder, store, rows = sent
    for n, row in enumerate(rows[:4]):
        process_notification(store, aimed("open-sns.json", row.message_id, row.sent_at, after=900 + n), engagement=True)  # fmt: skip
    process_notification(store, aimed("open-sns.json", rows[4].message_id, rows[4].sent_at, after=1, ), engagement=True)  # fmt: skip
    process_notification(store, aimed("click-paper-tag-sns.json", rows[0].message_id, rows[0].sent_at, after=999), engagement=True)  # fmt: skip
    result = run(folder, "issues", "--json")
    assert result.exit_code == 0, result.output
    first = next(r for r in json.loads(result.output) if r["slug"] == ISSUE)
    assert (first["opens"], first["clicks"]) == (4, 1)  # the prefetch open is not a reader
    table = run(folder, "issues").output.splitlines()
    assert table[0].split()[-2:] == ["opens", "clicks"]
    assert next(line for line in table if ISSUE in line).split()[-2:] == ["4", "1"]


# --------------------------------------------------------------------------- the store, on both back-ends


def test_the_store_keeps_engagement_on_sqlite_and_postgresql(database_url: str) -> None:
    from datetime import UTC, datetime

    from newsletter.audience.engagement import SCANNER_BURST
    from newsletter.store import Observation

    with Store.open(database_url) as store:
        add_people(store, 3, suppressed=False)
        store.create_ledger(ISSUE)
        rows = store.ledger(ISSUE)
        for row in rows:
            store.mark_sent(ISSUE, row.subscriber_id, f"m-{row.subscriber_id}")
        at = datetime(2026, 3, 17, 10, 0, 0, 123000, tzinfo=UTC)
        first, second = f"m-{rows[0].subscriber_id}", f"m-{rows[1].subscriber_id}"
        assert store.record_engagement(Observation("open", first, at)) == "stored"
        assert store.record_engagement(Observation("open", first, at)) == "duplicate"
        assert store.record_engagement(Observation("open", "elsewhere", at)) == "unknown"
        assert store.record_engagement(Observation("open", second, at, machine="privacy proxy")) == "stored"
        assert store.record_engagement(Observation("open", second, at, synthetic=True)) == "duplicate"
        for n in range(3):
            click = Observation(
                "click", second, at + timedelta(seconds=n), link=f"https://example.org/{n}", paper="p"
            )
            assert store.record_engagement(click, burst=SCANNER_BURST) == "stored"
        stored = store.engagement_rows(ISSUE)
        assert [(r["type"], r["message_id"], r["at"]) for r in stored[:2]] == [
            ("open", first, at),
            ("open", second, at),
        ]
        assert [r["machine"] for r in stored if r["type"] == "click"] == [SCANNER_BURST.reason] * 3
        assert store.engagement_counts(ISSUE) == {
            "opened": 1,
            "opens": 1,
            "machine_opens": 1,
            "clicked": 0,
            "clicks": 0,
            "machine_clicks": 3,
        }
        assert store.engagement_counts("2024-01-17-arabic") == {}
        started = store.send_started(ISSUE)
        assert started is not None and started.tzinfo is not None
        assert sorted(p["status"] for p in store.subscriber_dates()) == ["active"] * 3
        summary = store.send_summary(ISSUE)
        assert summary.states == {(None, "sent"): (3, 0)}
        assert sum(n for _, n in summary.minutes) == 3 and summary.minutes[0][0].tzinfo is not None
        assert all(m.second == 0 and m.microsecond == 0 for m, _ in summary.minutes)
        assert summary.opened == {None: 1} and summary.failed == []


def test_events_import_follows_the_setting(sent, tmp_path: Path) -> None:
    folder, store, rows = sent
    saved = tmp_path / "saved.json"
    saved.write_text(
        json.dumps([aimed("open-sns.json", rows[0].message_id, rows[0].sent_at, after=600)]), encoding="utf-8"
    )
    result = run(folder, "events", "import", str(saved))
    assert result.exit_code == 0, result.output
    assert "1 opens, 0 clicks" in result.output
    assert len(store.engagement_rows(ISSUE)) == 1
