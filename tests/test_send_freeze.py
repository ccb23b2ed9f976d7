"""What `send` does with an issue's state: drafts refused, the first real send freezes, dry runs tell the truth.

Every test runs the real CLI over a copy of the fixture newsletter, a SQLite ledger and the
file transport (the outbox folder), so the message checked is the message a reader got.
"""

from __future__ import annotations

import email
import html
import re
import tomllib
from email import policy
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.store import Store, SubscriberRow
from tests.support.project import make_newsletter, run
from tests.support.sending import ISSUE, SECRET, add_people

DRAFT = "2024-01-17-arabic"
LATE_TITLE = "Dialect Identification for Gulf Arabic"
LISTING = f"""Jan 3

{LATE_TITLE}

We identify Gulf Arabic dialects in short social media posts with a small classifier and release a corpus of
twelve thousand annotated sentences, with baselines that any lab can reproduce on a laptop in an afternoon.
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    return make_newsletter(tmp_path)


@pytest.fixture
def store(folder: Path):
    with Store.open(load_settings(folder).database_url) as opened:
        add_people(opened, 8)
        yield opened


def send(folder: Path, outbox: Path, *args: str):
    return run(folder, "send", *args, "--transport", "file", "--outbox", str(outbox), "--no-spam-score")


def messages(outbox: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in sorted(outbox.glob("*.eml"))
    ]


def titles_in(text: str, titles: list[str]) -> list[str]:
    """Which of `titles` appear in a page or a message (HTML entities decoded)."""
    plain = html.unescape(text)
    return [t for t in titles if t in plain]


def all_titles(folder: Path) -> list[str]:
    found = []
    for path in sorted((folder / "papers").glob("*.md")):
        match = re.search(r'(?m)^title: "?(.*?)"?$', path.read_text(encoding="utf-8"))
        found.append(html.unescape(match.group(1)).replace('\\"', '"'))
    return found


def test_a_draft_is_refused_but_can_be_tried(folder: Path, store: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    refused = send(folder, outbox, DRAFT, "--yes")
    assert refused.exit_code == 1
    assert f"Error: {DRAFT}.md: status: draft; only published issues are sent to the list" in refused.output
    assert f"set 'status: published' in issues/{DRAFT}.md" in refused.output
    assert "Traceback" not in refused.output
    assert store.ledger(DRAFT) == [] and not list(outbox.glob("*.eml"))
    assert not (folder / "issues" / f"{DRAFT}.sent.toml").exists()

    dry = send(folder, outbox, DRAFT, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Status:     draft (a real send is refused until it is published)" in dry.output
    assert "Papers:     1" in dry.output and "Recipients: 8" in dry.output

    tried = send(folder, outbox, DRAFT, "--test", "me@example.net")
    assert tried.exit_code == 0, tried.output
    assert [m["To"] for m in messages(outbox)] == ["me@example.net"]
    assert not (folder / "issues" / f"{DRAFT}.sent.toml").exists()


def test_dry_run_and_prompt_show_status_subject_papers_and_recipients(
    folder: Path, store: Store, tmp_path: Path
) -> None:
    dry = send(folder, tmp_path / "o", ISSUE, "--dry-run")
    assert dry.exit_code == 0, dry.output
    for line in (
        f"Issue:      {ISSUE}",
        "Status:     published",
        "Subject:    Test Digest #1 — transfer, dialects & tokenizers",
        "Papers:     3",
        "Recipients: 8",
    ):
        assert line in dry.output
    assert not (folder / "issues" / f"{ISSUE}.sent.toml").exists()  # a dry run freezes nothing


def test_the_first_send_freezes_and_the_archive_keeps_what_readers_got(
    folder: Path, store: Store, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    sent = send(folder, outbox, ISSUE, "--yes")
    assert sent.exit_code == 0, sent.output
    record = tomllib.loads((folder / "issues" / f"{ISSUE}.sent.toml").read_text(encoding="utf-8"))
    assert record["papers"] == ["2401.00001", "cjk-tokenizers", "arabic-dialects"]
    assert record["subject"] == "Test Digest #1 — transfer, dialects & tokenizers"

    # a paper imported afterwards matches the issue's rules (tag arabic, published before it)
    listing = tmp_path / "listing.txt"
    listing.write_text(LISTING, encoding="utf-8")
    imported = run(folder, "papers", "import", str(listing), "--date", "2024-01-03", "--tag", "arabic")
    assert imported.exit_code == 0, imported.output
    titles = all_titles(folder)
    assert LATE_TITLE in titles

    built = run(folder, "archive", "build")
    assert built.exit_code == 0, built.output
    page = (load_settings(folder).site_dir / "issues" / ISSUE / "index.html").read_text(encoding="utf-8")
    message = messages(outbox)[0]
    in_message = titles_in(message.get_body(("html",)).get_content(), titles)
    assert len(in_message) == 3 and LATE_TITLE not in in_message
    assert titles_in(page, titles) == in_message

    # a resumed send (nothing left) and a rebuild use the frozen list too
    again = send(folder, outbox, ISSUE, "--yes")
    assert again.exit_code == 0 and len(messages(outbox)) == 8
    rebuilt = run(folder, "build", ISSUE, "--out", str(tmp_path / "build"))
    assert "3 papers" in rebuilt.output
    # another issue's rules do not take the frozen papers either, but do get the new one
    draft = folder / "issues" / f"{DRAFT}.md"
    draft.write_text(
        draft.read_text(encoding="utf-8").replace("include: [arabic-dialects]", "select: {tags: [arabic]}")
    )
    other = run(folder, "build", DRAFT, "--out", str(tmp_path / "build"))
    assert other.exit_code == 0, other.output
    assert f"{DRAFT}: 1 paper" in other.output
    assert LATE_TITLE in (tmp_path / "build" / DRAFT / "email.txt").read_text(encoding="utf-8")


def test_a_test_send_does_not_freeze(folder: Path, store: Store, tmp_path: Path) -> None:
    result = send(folder, tmp_path / "o", ISSUE, "--test", "me@example.net")
    assert result.exit_code == 0, result.output
    assert not (folder / "issues" / f"{ISSUE}.sent.toml").exists()


def test_dry_run_after_the_snapshot_counts_only_the_queued_rows(
    folder: Path, store: Store, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    canary = send(folder, outbox, ISSUE, "--yes", "--limit", "3")
    assert canary.exit_code == 0, canary.output
    # a canary snapshot is partial: readers who join now are still reached by the rest of the send
    store.upsert_many([SubscriberRow(email="early@example.com", status="active")])
    assert "Recipients: 6" in send(folder, outbox, ISSUE, "--dry-run").output

    # the full snapshot is taken when the rest starts; an interruption leaves queued rows
    store.create_ledger(ISSUE)
    store.upsert_many([SubscriberRow(email="late@example.com", status="active")])
    dry = send(folder, outbox, ISSUE, "--dry-run")
    assert "Recipients: 6" in dry.output, dry.output  # the late reader gets the next issue
    real = send(folder, outbox, ISSUE, "--yes")
    assert real.exit_code == 0, real.output
    assert "Sent 6 message(s)" in real.output
    assert "late@example.com" not in {m["To"] for m in messages(outbox)}
