"""`newsletter init`, `newsletter demo` and `newsletter preview`, run for real."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections import Counter
from pathlib import Path
from threading import Thread

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.mail.preview import Preview, make_server
from newsletter.store import Store
from tests.support.project import REPO, copy_newsletter
from tests.support.sending import parse


def test_init_scaffolds_a_newsletter_that_builds_and_passes_its_checks(tmp_path: Path) -> None:
    target = tmp_path / "speech"
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(target), "--name", 'Speech "Papers" Weekly'])
    assert result.exit_code == 0, result.output
    assert (target / "templates" / "email" / "issue.mjml.j2").is_file()
    assert (target / "templates" / "site" / "site.css").is_file()
    assert 'name = "Speech \\"Papers\\" Weekly"' in (target / "newsletter.toml").read_text(encoding="utf-8")
    assert load_settings(target).name == 'Speech "Papers" Weekly'
    built = runner.invoke(main, ["--root", str(target), "build", "--all", "--out", str(tmp_path / "out")])
    assert built.exit_code == 0, built.output
    text = (tmp_path / "out" / "2026-01-20-first-issue" / "email.txt").read_text(encoding="utf-8")
    assert "An Example Paper on Multilingual Models" in text
    checked = runner.invoke(main, ["--root", str(target), "check", "--all", "--no-spam-score"])
    assert checked.exit_code == 1, checked.output  # until the editor replaces the scaffold's own text
    assert "  FAIL  newsletter.toml: [newsletter] postal_address: still the placeholder" in checked.output
    again = runner.invoke(main, ["init", str(target)])
    assert again.exit_code == 1
    assert f"Error: {target}: expected an empty or new folder, found files in it" in again.output


def test_demo_builds_sends_to_the_outbox_once_and_builds_the_archive(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "example"
    root.mkdir()
    for name in ("papers", "issues", "templates"):
        shutil.copytree(REPO / name, root / name)
    (root / "subscribers").mkdir()
    shutil.copy(REPO / "subscribers" / "sample.csv", root / "subscribers" / "sample.csv")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    monkeypatch.chdir(root)
    runner = CliRunner()
    first = runner.invoke(main, ["demo"])
    assert first.exit_code == 0, first.output
    outbox = sorted((root / "outbox" / "2026-03-17-multilingual-llms").glob("*.eml"))
    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        active = store.count_by_status()["active"]
        assert store.ledger_counts("2026-03-17-multilingual-llms")["sent"] == active == len(outbox)
    # each reader in their language: ar and ar-EG get the Arabic translation, de and de-AT the German
    languages = Counter(parse(path.read_bytes())["Content-Language"] for path in outbox)
    assert languages == {"ar": 2, "de": 2, "en": active - 4}
    assert (
        "Readers by language (the translation they got, and their own languages): ar 2 (ar, ar-EG); "
        "de 2 (de, de-AT); en 6 (es, hi, ja, pt-BR, zh)." in first.output
    )
    assert (root / "site" / "issues" / "2026-03-17-multilingual-llms" / "index.html").is_file()
    assert (root / "build" / "2026-03-24-translation-ar" / "preview.eml").is_file()
    report = (root / "build" / "report.html").read_text(encoding="utf-8")
    assert 'id="synthetic"' in report and "made up by <code>newsletter demo</code>" in report
    assert 'data-figure="sent">10<' in report and report.count("<svg ") >= 3
    second = runner.invoke(main, ["demo"])
    assert second.exit_code == 0, second.output
    assert "Nothing to send: 2026-03-17-multilingual-llms was already sent" in second.output
    assert len(list((root / "outbox").rglob("*.eml"))) == len(outbox)  # nobody mailed twice
    assert "0 synthetic events stored" in second.output  # the made-up events are not made twice


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


def test_preview_serves_frames_and_rebuilds_when_an_issue_changes(tmp_path: Path) -> None:
    root = copy_newsletter(Path(__file__).parent / "fixtures" / "good" / "digest", tmp_path / "digest")
    state = Preview(root, "2024-01-10-first")
    state.refresh()
    server = make_server(state, "127.0.0.1", 0)
    Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        page = _get(base)
        assert 'width="640"' in page and 'width="375"' in page  # desktop and phone frames
        assert "Test Digest #1 — transfer, dialects &amp; tokenizers" in page
        assert "Hi Ada Lovelace," in _get(base + "email.txt")
        assert 'lang="en" dir="ltr"' in _get(base + "email.html")
        version = _get(base + "version")

        issue = root / "issues" / "2024-01-10-first.md"
        time.sleep(0.01)  # a new mtime
        issue.write_text(issue.read_text(encoding="utf-8").replace("first issue", "opening issue"), "utf-8")
        assert _get(base + "version") != version
        assert "Welcome to the opening issue." in _get(base + "email.txt")

        issue.write_text("---\ntitle: [broken\n---\n", encoding="utf-8")
        assert "front matter is not valid YAML" in _get(base)  # shown in the page, the server lives on
    finally:
        server.shutdown()
        server.server_close()


SETTINGS = """\
[newsletter]
name = "Test Digest"
base_url = "https://digest.example.org"
postal_address = "1 Example Street, Berlin"
language = "{language}"

[email]
from = "Test Digest <digest@example.org>"
list_id = "test.digest.example.org"
"""


def test_every_setting_in_the_table_fills_a_settings_field() -> None:
    import dataclasses

    from newsletter.config import OPTIONS, DigestSettings, EventsSettings, SesSettings, Settings, SmtpSettings

    tables = {
        "": Settings,
        "ses.": SesSettings,
        "smtp.": SmtpSettings,
        "events.": EventsSettings,
        "digest.": DigestSettings,
    }
    for option in OPTIONS:
        prefix = option.attr.rpartition(".")[0] + "." if "." in option.attr else ""
        names = {f.name for f in dataclasses.fields(tables[prefix])}
        assert option.attr.removeprefix(prefix) in names, option.key


def test_settings_defaults_and_environment_overrides(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(SETTINGS.format(language="pt-BR"))
    env = {"NEWSLETTER_TRANSPORT": "ses", "NEWSLETTER_SES_ENDPOINT_URL": "http://127.0.0.1:9/"}
    settings = load_settings(tmp_path, env=env)
    assert (settings.base_url, settings.language, settings.max_html_kb) == (
        "https://digest.example.org/",
        "pt-BR",
        95,
    )
    assert (settings.transport, settings.ses.endpoint_url, settings.smtp.port) == (
        "ses",
        "http://127.0.0.1:9/",
        587,
    )
    assert settings.papers_dir == (tmp_path / "papers").resolve()


def test_settings_errors_name_the_file_key_or_variable(tmp_path: Path) -> None:
    from newsletter.errors import ProblemsError

    (tmp_path / "newsletter.toml").write_text(SETTINGS.format(language="Portuguese (Brazil)"))
    env = {"NEWSLETTER_TRANSPORT": "pigeon", "NEWSLETTER_SES_ENDPOINT_URL": "localhost:4566"}
    with pytest.raises(ProblemsError) as caught:
        load_settings(tmp_path, env=env)
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'newsletter.toml'}: newsletter.language: expected a language tag like 'en' or 'pt-BR', "
        "got 'Portuguese (Brazil)'",
        "environment: NEWSLETTER_TRANSPORT: expected one of file, ses, smtp, memory, got 'pigeon'",
        "environment: NEWSLETTER_SES_ENDPOINT_URL: expected an absolute http(s) URL, got 'localhost:4566'",
    ]
