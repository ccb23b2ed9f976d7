"""`newsletter digest`: a day of Hugging Face daily papers (served by a local HTTP server) → a checked
draft, or a published issue with a send_at that `send --due` mails; safe to run again, and a failed
fetch leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.store import Store
from tests.support.project import make_newsletter, run
from tests.support.sending import add_people
from tests.support.sources import FIXTURES, FixtureServer, Route, fixture_server  # noqa: F401 - a pytest fixture


@pytest.fixture
def server(fixture_server: FixtureServer) -> FixtureServer:  # noqa: F811
    """The local HTTP server that plays Hugging Face."""
    return fixture_server


DAY = "2025-03-11"  # the day of the documented response's papers
SLUG = f"{DAY}-trending"
# tests/fixtures/import/hf-daily-papers-documented.json: 3 papers, 87, 41 and 0 upvotes
DAILY = (FIXTURES / "hf-daily-papers-documented.json").read_bytes()


def _folder(tmp_path: Path, server: FixtureServer, digest: str = "", newsletter: str = "") -> Path:
    extra = f'\n[digest]\nsource_url = "{server.url}/api/daily_papers"\n{digest}'
    folder = make_newsletter(tmp_path, extra_toml=extra)
    if newsletter:  # keys of [newsletter], which the fixture's file opens with
        toml = folder / "newsletter.toml"
        toml.write_text(
            toml.read_text(encoding="utf-8").replace("[newsletter]\n", f"[newsletter]\n{newsletter}\n", 1)
        )
    return folder


def _serve(server: FixtureServer, day: str = DAY, body: bytes = DAILY, **route: object) -> str:
    return server.serve(f"/api/daily_papers?date={day}", Route(body=body, **route))


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of the content folders, by path (temporary files would show here too)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for name in ("papers", "issues")
        for p in sorted((folder / name).rglob("*"))
        if p.is_file()
    }


def _front(folder: Path, slug: str = SLUG) -> str:
    return (folder / "issues" / f"{slug}.md").read_text(encoding="utf-8")


def test_a_draft_for_review_with_the_top_papers_and_a_second_run_is_a_no_op(
    tmp_path: Path, server: FixtureServer
) -> None:
    folder = _folder(tmp_path, server)
    _serve(server)
    result = run(folder, "digest", "--hf-date", DAY, "--top", "2", "--no-spam-score")
    assert result.exit_code == 0, result.output
    assert f"Imported the 3 papers of {DAY}: 3 created, 0 updated, 0 unchanged" in result.output
    assert f"issues/{SLUG}.md (issue 3, 2 papers) and built it" in result.output
    assert f"Left {folder / 'issues' / (SLUG + '.md')} as a draft for review" in result.output
    text = _front(folder)
    assert "status: draft\n" in text and "send_at" not in text
    assert "select:\n  sort: upvotes\n  limit: 2\n  since: '2025-03-09'\n" in text
    assert "subject: 'Test Digest: 2 trending papers of 2025-03-11'\n" in text
    assert "preheader: The 2 papers with the most upvotes on Hugging Face on 2025-03-11\n" in text
    assert (folder / "papers" / "2503.06998.md").exists()
    email = (folder / "build" / SLUG / "email.txt").read_text(encoding="utf-8")
    assert "Sparse Mixture Routing" in email and "ArabicBench" in email  # 87 and 41 upvotes
    assert "Tiny Diffusion Policies" not in email  # 0 upvotes: third of three
    before = _files(folder)

    again = run(folder, "digest", "--hf-date", DAY, "--top", "2", "--no-spam-score")
    assert again.exit_code == 0, again.output
    assert (
        again.output
        == f"{folder / 'issues' / (SLUG + '.md')}: the digest of {DAY} exists already; nothing to do\n"
    )
    assert _files(folder) == before
    assert server.hits[f"/api/daily_papers?date={DAY}"] == 1  # not even fetched again
    assert sorted(p.name for p in (folder / "issues").glob("*trending*")) == [f"{SLUG}.md"]


def test_auto_publish_schedules_it_at_the_next_send_time_and_send_due_mails_it(
    tmp_path: Path, server: FixtureServer
) -> None:
    folder = _folder(
        tmp_path, server, 'auto_publish = true\nsend_time = "08:00"\n', 'timezone = "Europe/Berlin"'
    )
    _serve(server)
    with Store.open(load_settings(folder, env={}).database_url) as store:
        readers = add_people(store, 5)["active"]
    # 07:30 in Berlin (UTC+1 in March): today's 08:00 is still ahead
    result = run(folder, "digest", "--hf-date", DAY, "--now", "2025-03-11T06:30:00Z", "--no-spam-score")
    assert result.exit_code == 0, result.output
    assert "Published" in result.output and "with send_at 2025-03-11T08:00:00+01:00" in result.output
    text = _front(folder)
    assert "status: published\nsend_at: '2025-03-11T08:00:00+01:00'\n" in text
    assert "subject: 'Test Digest: 3 trending papers of 2025-03-11'\n" in text  # 3 of the default 10

    issues = json.loads(run(folder, "issues", "--json", "--now", "2025-03-11T06:30:00Z").output)
    assert next(r for r in issues if r["slug"] == SLUG)["status"] == "scheduled"
    early = run(folder, "send", "--due", "--now", "2025-03-11T06:59:00Z", "--no-spam-score")
    assert early.output.startswith("Nothing due") and not (folder / "outbox" / SLUG).exists()
    due = run(folder, "send", "--due", "--now", "2025-03-11T07:00:00Z", "--no-spam-score")
    assert due.exit_code == 0, due.output
    assert f"Sending {SLUG}" in due.output
    assert len(list((folder / "outbox" / SLUG).glob("*.eml"))) == len(readers)


def test_after_the_send_time_it_is_scheduled_for_the_next_day(tmp_path: Path, server: FixtureServer) -> None:
    folder = _folder(
        tmp_path, server, 'auto_publish = true\nsend_time = "07:15"\n', 'timezone = "Asia/Tokyo"'
    )
    _serve(server)
    result = run(folder, "digest", "--hf-date", DAY, "--now", "2025-03-11T09:00:00Z", "--no-spam-score")
    assert result.exit_code == 0, result.output
    assert "send_at: '2025-03-12T07:15:00+09:00'\n" in _front(folder)  # 18:00 in Tokyo: tomorrow


def test_the_day_defaults_to_today_in_the_newsletters_zone(tmp_path: Path, server: FixtureServer) -> None:
    folder = _folder(tmp_path, server, newsletter='timezone = "Europe/Berlin"')
    _serve(server)
    # 23:30 UTC on the 10th is already the 11th in Berlin
    result = run(folder, "digest", "--now", "2025-03-10T23:30:00Z", "--no-spam-score")
    assert result.exit_code == 0, result.output
    assert (folder / "issues" / f"{SLUG}.md").exists()


def test_subject_and_preheader_come_from_the_settings_templates(
    tmp_path: Path, server: FixtureServer
) -> None:
    folder = _folder(
        tmp_path,
        server,
        'title = "Hot on {date}"\nsubject = "Top {count} · {date}"\npreheader = "{name}, {count} papers"\nslug = "hot"\n',
    )
    _serve(server)
    result = run(folder, "digest", "--hf-date", DAY, "--top", "1", "--no-spam-score")
    assert result.exit_code == 0, result.output
    text = _front(folder, f"{DAY}-hot")
    assert "title: Hot on 2025-03-11\nsubject: Top 1 · 2025-03-11\n" in text
    assert "preheader: Test Digest, 1 papers\n" in text


def test_a_template_with_an_unknown_placeholder_is_a_settings_error(
    tmp_path: Path, server: FixtureServer
) -> None:
    folder = _folder(tmp_path, server, 'subject = "Papers of {when}"\n')
    result = run(folder, "digest", "--hf-date", DAY)
    assert result.exit_code == 1
    assert (
        "newsletter.toml: digest.subject: expected one line of text; placeholders {date}, {count} and "
        "{name} only, got 'Papers of {when}'"
    ) in result.output
    assert server.hits == {}


def test_a_wrong_zone_or_send_time_is_a_settings_error(tmp_path: Path, server: FixtureServer) -> None:
    folder = _folder(tmp_path, server, 'send_time = "8am"\n', 'timezone = "Berlin"')
    result = run(folder, "digest", "--hf-date", DAY)
    assert result.exit_code == 1
    assert (
        "newsletter.toml: newsletter.timezone: expected an IANA time zone name like 'Europe/Berlin' or 'UTC', "
        "got 'Berlin'"
    ) in result.output
    assert (
        "newsletter.toml: digest.send_time: expected a time of day HH:MM like '08:00', got '8am'"
        in result.output
    )


@pytest.mark.parametrize(
    ("route", "said"),
    [
        ({"status": 404}, "expected HTTP 200, got HTTP 404"),
        ({"body": b'[{"paper": {"id": "2503.07604"'}, "not valid JSON"),
        ({"body": b"<!doctype html><html>Sign in</html>", "content_type": "text/html"}, "got an HTML page"),
    ],
)
def test_a_failed_fetch_creates_nothing(
    tmp_path: Path, server: FixtureServer, route: dict, said: str
) -> None:
    folder = _folder(tmp_path, server, "auto_publish = true\n")
    _serve(server, **{"body": DAILY, **route})
    before = _files(folder)
    result = run(folder, "digest", "--hf-date", DAY, "--no-spam-score")
    assert result.exit_code == 1
    assert said in result.output and "nothing was created" in result.output
    assert "Traceback" not in result.output
    assert _files(folder) == before  # no issue, no paper, no temporary file
    assert not (folder / "build").exists()


def test_a_day_without_papers_creates_nothing_and_is_no_failure(
    tmp_path: Path, server: FixtureServer
) -> None:
    folder = _folder(tmp_path, server)
    _serve(server, "2025-03-15", b"[]")
    before = _files(folder)
    result = run(folder, "digest", "--hf-date", "2025-03-15")
    assert result.exit_code == 0, result.output
    assert result.output == "No papers on Hugging Face for 2025-03-15; nothing was created\n"
    assert _files(folder) == before


def test_an_issue_failing_its_checks_stays_a_draft_even_with_auto_publish(
    tmp_path: Path, server: FixtureServer
) -> None:
    folder = _folder(tmp_path, server, "auto_publish = true\n")
    toml = folder / "newsletter.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace("[web]", "max_html_kb = 1\n\n[web]"), encoding="utf-8"
    )
    _serve(server)
    result = run(folder, "digest", "--hf-date", DAY, "--no-spam-score")
    assert result.exit_code == 1
    assert "the checks failed; it stays a draft for review" in result.output
    assert "over the 1 KB limit" in result.output
    text = _front(folder)
    assert "status: draft\n" in text and "send_at" not in text
