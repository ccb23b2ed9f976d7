"""One resolver for issue names: slug, short name, unique prefix, path; did-you-mean otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content.issue_refs import resolve_slug, short_name
from newsletter.errors import ContentError
from newsletter.store import Store
from tests.support.project import make_newsletter, run
from tests.support.sending import ISSUE, SECRET, add_people

SLUGS = ["2024-01-10-first", "2024-01-17-arabic", "2024-01-24-arabic-poetry", "2024-02-01-tokenizers"]


@pytest.mark.parametrize(
    ("ref", "slug"),
    [
        ("2024-01-10-first", "2024-01-10-first"),
        ("issues/2024-01-10-first.md", "2024-01-10-first"),
        ("first", "2024-01-10-first"),  # the short name `issue new` was given
        ("arabic", "2024-01-17-arabic"),  # exact short name wins over prefix of arabic-poetry
        ("2024-02", "2024-02-01-tokenizers"),  # unique prefix of the slug
        ("token", "2024-02-01-tokenizers"),  # unique prefix of the short name
        ("arabic-p", "2024-01-24-arabic-poetry"),
    ],
)
def test_resolves_slugs_short_names_and_unique_prefixes(ref: str, slug: str) -> None:
    assert resolve_slug(ref, SLUGS) == slug


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(ContentError) as caught:
        resolve_slug("2024-01", SLUGS)
    message = caught.value.format_message()
    assert (
        "2024-01: matches 3 issues (2024-01-10-first, 2024-01-17-arabic, 2024-01-24-arabic-poetry)" in message
    )
    assert "Type more of the slug." in message


def test_a_misspelled_name_gets_a_did_you_mean() -> None:
    with pytest.raises(ContentError) as caught:
        resolve_slug("tokenisers", SLUGS)
    message = caught.value.format_message()
    assert message.startswith(
        "tokenisers: no such issue; did you mean '2024-02-01-tokenizers'? (known issues: 2024-01-10-first,"
    )


def test_short_name_drops_only_a_leading_date() -> None:
    assert short_name("2024-02-01-tokenizers") == "tokenizers"
    assert short_name("tokenizers") == "tokenizers"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    return make_newsletter(tmp_path)


def test_every_command_takes_the_short_name_issue_new_gave(folder: Path, tmp_path: Path) -> None:
    (folder / "papers" / "byte-level-tokenizers.md").write_text(
        "---\nid: byte-level-tokenizers\ntitle: Byte-Level Tokenizers\npublished: 2024-01-30\n"
        "tags: [tokenization]\n---\n\nByte-level tokenizers treat every script alike.\n",
        encoding="utf-8",
    )
    created = run(folder, "issue", "new", "tokenizers", "--date", "2024-02-01", "--tag", "tokenization")
    assert created.exit_code == 0, created.output
    built = run(folder, "build", "tokenizers", "--out", str(tmp_path / "b"))
    assert built.exit_code == 0, built.output
    assert built.output.startswith("2024-02-01-tokenizers: ")
    assert (tmp_path / "b" / "2024-02-01-tokenizers" / "email.html").is_file()
    checked = run(folder, "check", "token", "--no-spam-score")
    assert checked.output.startswith("2024-02-01-tokenizers\n")


def test_send_and_status_take_a_prefix_and_a_typo_gets_a_did_you_mean(folder: Path, tmp_path: Path) -> None:
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 2)
    sent = run(
        folder,
        "send",
        "fir",
        "--transport",
        "file",
        "--outbox",
        str(tmp_path / "o"),
        "--yes",
        "--no-spam-score",
    )
    assert sent.exit_code == 0, sent.output
    assert f"Sent 2 message(s) of {ISSUE} via file" in sent.output
    status = run(folder, "status", "first", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["issue"] == ISSUE
    typo = run(folder, "send", "frist", "--transport", "file", "--yes")
    assert typo.exit_code == 1
    assert f"Error: frist: no such issue; did you mean '{ISSUE}'?" in typo.output
    assert "Traceback" not in typo.output


def _translate(folder: Path, language: str, front_matter: str) -> Path:
    path = folder / "issues" / f"{ISSUE}.{language}.md"
    path.write_text(f"---\ntitle: Erste Ausgabe\n{front_matter}---\n\nWillkommen.\n", encoding="utf-8")
    return path


def test_a_prefix_names_the_issue_not_its_translations_so_its_errors_stay_errors(folder: Path) -> None:
    _translate(folder, "de", "")
    issue = folder / "issues" / f"{ISSUE}.md"
    issue.write_text(
        issue.read_text(encoding="utf-8").replace("date: ", "date: not-a-date #", 1), encoding="utf-8"
    )
    checked = run(folder, "check", "fir", "--no-spam-score")
    assert checked.exit_code == 1
    assert f"Error: issues/{ISSUE}.md: date: expected a date YYYY-MM-DD, got 'not-a-date" in checked.output
    assert "no such issue" not in checked.output
    assert f"Warning: issues/{ISSUE}.md" not in checked.output
    assert "Traceback" not in checked.output


def test_a_broken_translation_of_the_issue_being_sent_stops_the_send(folder: Path, tmp_path: Path) -> None:
    with Store.open(load_settings(folder, env={}).database_url) as store:
        add_people(store, 2)
    _translate(folder, "de", "translated_from: [1, 2]\n")
    outbox = tmp_path / "o"
    sent = run(
        folder, "send", "fir", "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score"
    )
    assert sent.exit_code == 1
    assert (
        f"Error: issues/{ISSUE}.de.md: translated_from: expected a non-empty string, got a list ([1, 2])"
        in sent.output
    )
    assert not list(outbox.rglob("*.eml"))
    # a broken translation of another issue does not block this one
    (folder / "issues" / f"{ISSUE}.de.md").rename(folder / "issues" / "2024-05-01-other.de.md")
    (folder / "issues" / "2024-05-01-other.md").write_text(
        "---\ntitle: Other\ndate: 2024-05-01\nnumber: 9\nstatus: draft\n---\n\nLater.\n", encoding="utf-8"
    )
    sent = run(
        folder, "send", "fir", "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score"
    )
    assert sent.exit_code == 0, sent.output
    assert (
        "Warning: issues/2024-05-01-other.de.md: translated_from: expected a non-empty string" in sent.output
    )
    assert len(list(outbox.rglob("*.eml"))) == 2
