"""`newsletter issues` / `issue list`: every issue with its state, papers and ledger figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.store import Store
from tests.support.project import make_newsletter, run
from tests.support.sending import ISSUE, SECRET, add_people


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    return make_newsletter(tmp_path)


def rows(folder: Path, *command: str) -> dict[str, dict]:
    result = run(folder, *command, "--json")
    assert result.exit_code == 0, result.output
    return {row["slug"]: row for row in json.loads(result.output)}


def test_lists_drafts_and_published_issues_before_any_send(folder: Path) -> None:
    found = rows(folder, "issues")
    assert list(found) == ["2024-01-10-first", "2024-01-17-arabic"]
    first, arabic = found["2024-01-10-first"], found["2024-01-17-arabic"]
    assert (first["number"], first["date"], first["status"], first["papers"]) == (
        1,
        "2024-01-10",
        "published",
        3,
    )
    assert (arabic["status"], arabic["papers"], arabic["recipients"]) == ("draft", 1, 0)
    assert (
        first["opens"] is None and first["clicks"] is None
    )  # nothing recorded: no figure pretends otherwise


def test_a_send_with_readers_left_is_sending_then_sent(folder: Path, tmp_path: Path) -> None:
    settings = load_settings(folder, env={})
    with Store.open(settings.database_url) as store:
        add_people(store, 5)
        store.create_ledger(ISSUE)  # a send began (the snapshot) and stopped before any message left
    first = rows(folder, "issue", "list")[ISSUE]
    assert (first["status"], first["recipients"], first["sent"]) == ("sending", 5, 0)

    args = ("send", ISSUE, "--transport", "file", "--outbox", str(tmp_path / "o"), "--yes", "--no-spam-score")
    assert run(folder, *args).exit_code == 0
    first = rows(folder, "issues")[ISSUE]
    assert (first["status"], first["recipients"], first["sent"], first["delivered"], first["bounces"]) == (
        "sent",
        5,
        5,
        0,
        0,
    )
    assert rows(folder, "issues")["2024-01-17-arabic"]["status"] == "draft"


def test_the_table_has_a_header_and_leaves_ledger_columns_blank_before_a_send(folder: Path) -> None:
    result = run(folder, "issues")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "#",
        "date",
        "slug",
        "status",
        "papers",
        "recipients",
        "sent",
        "delivered",
        "bounces",
        "complaints",
        "opens",
        "clicks",
    ]
    assert lines[1].split() == ["1", "2024-01-10", "2024-01-10-first", "published", "3"]
    assert lines[2].split() == ["2", "2024-01-17", "2024-01-17-arabic", "draft", "1"]
    assert lines[-1] == "2 issues"


def test_an_issue_file_with_errors_is_left_out_with_a_warning(folder: Path) -> None:
    (folder / "issues" / "2024-02-01-broken.md").write_text("---\ntitle: x\n---\nno date\n", encoding="utf-8")
    result = run(folder, "issues")
    assert result.exit_code == 0, result.output
    assert "Warning: issues/2024-02-01-broken.md: date: missing (required) (left out)" in result.output
    assert "2024-01-10-first" in result.output and "2 issues" in result.output
