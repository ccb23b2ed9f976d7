"""Pre-flight checks: the examples pass; each failing variant is a real message with one defect."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import shutil
from email import policy

import pytest

from newsletter.config import load_settings
from newsletter.content.library import load_library
from newsletter.mail.build import SAMPLE_READER, Built, build_message
from newsletter.mail.checks import check_built, check_issue, spam_score
from newsletter.mail.message import MessageTemplate
from tests.support.project import GOOD, REPO


@pytest.fixture(scope="module")
def library():
    return load_library(load_settings(GOOD))


@pytest.fixture(scope="module")
def english(library):
    return build_message(library, library.issue("2024-01-10-first"))


@pytest.fixture(scope="module")
def example_library():
    return load_library(load_settings(REPO))


def rebuild(built: Built, settings=None, **changes) -> Built:
    """The same issue as a real message again, after changing the rendered parts or the settings."""
    rendered = dataclasses.replace(built.rendered, **changes)
    settings = settings or built.template._settings
    template = MessageTemplate.build(rendered, settings, date=dt.datetime(2024, 1, 10, 8, tzinfo=dt.UTC))
    return Built(rendered=rendered, template=template, preview=template.personalise(SAMPLE_READER))


def encoded_html_kb(raw: bytes) -> float:
    boundary = email.message_from_bytes(raw, policy=policy.default).get_boundary().encode()
    start = raw.index(b"Content-Type: text/html")
    body = raw.index(b"\r\n\r\n", start) + 4
    return len(raw[body : raw.index(b"\r\n--" + boundary, body)]) / 1024


def test_every_example_issue_passes(example_library):
    for issue in example_library.issues:
        report = check_issue(example_library, issue, spamassassin=False)
        assert (report.errors, report.warnings) == ([], []), issue.slug
        assert report.ok
        assert "message re-parses with 0 MIME defects" in report.passed
        assert any(line.startswith("every per-reader marker personalised (") for line in report.passed)
        assert f"all {report.figures['papers']} paper titles in the text part" in report.passed
    first = check_issue(example_library, example_library.issues[0], spamassassin=False)
    assert first.figures["papers"] == 45
    assert first.figures["html_bytes"] < 95 * 1024
    assert "<html lang=en dir=ltr>" in first.passed
    second = check_issue(example_library, example_library.issues[1], spamassassin=False)
    assert "<html lang=ar dir=rtl>" in second.passed


@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="SpamAssassin is not installed")
def test_spamassassin_scores_the_45_paper_issue_below_5(example_library):
    built = build_message(example_library, example_library.issues[0])
    report = check_built(built, spamassassin=True)  # runs spamassassin once (~2 s)
    score = report.figures["spam_score"]
    assert isinstance(score, float)
    assert score < 5.0, score
    assert f"SpamAssassin score {score:.1f} (offline rules)" in report.passed
    assert report.errors == []


def test_spam_score_is_none_without_spamassassin(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert spam_score(b"Subject: x\r\n\r\nbody\r\n") is None


def test_size_over_the_limit_is_an_error_with_the_exact_text(english):
    settings = dataclasses.replace(english.template._settings, max_html_kb=10)
    built = rebuild(english, settings)
    report = check_built(built, spamassassin=False)
    size = encoded_html_kb(built.preview)
    assert size > 10
    assert report.errors == [
        f"encoded HTML part is {size:.1f} KB, over the 10 KB limit: Gmail clips messages at about 102 KB "
        "(feature fewer papers or shorten excerpts)"
    ]
    assert not report.ok


def test_image_without_alt(english):
    html = english.rendered.html.replace(' alt="A map of Arabic dialect regions"', "")
    assert html != english.rendered.html
    report = check_built(rebuild(english, html=html), spamassassin=False)
    assert report.errors == ["1 image(s) without alt text: https://example.org/img/arabic.png"]


def test_relative_link(english):
    html = english.rendered.html.replace(
        'href="https://example.org/digest/papers/cjk-tokenizers/"', 'href="/papers/cjk-tokenizers/"'
    )
    assert html != english.rendered.html
    report = check_built(rebuild(english, html=html), spamassassin=False)
    assert report.errors == ["1 link(s) not absolute http(s): /papers/cjk-tokenizers/"]


def test_missing_preheader_is_a_warning(english):
    report = check_built(rebuild(english, preheader=""), spamassassin=False)
    assert report.errors == []
    assert report.warnings == [
        "no preheader: set 'preheader' in the issue's front matter (inboxes show it after the subject)"
    ]
    assert report.ok


def test_no_web_endpoint_warns_about_rfc_8058(english):
    settings = dataclasses.replace(english.template._settings, web_url=None)
    report = check_built(rebuild(english, settings), spamassassin=False)
    assert report.errors == []
    assert report.warnings == [
        "no HTTPS one-click unsubscribe: set [web] url in newsletter.toml (Gmail and Yahoo require RFC 8058 "
        "for bulk senders)"
    ]


def test_missing_html_lang_and_dir(english):
    html = english.rendered.html.replace('<html lang="en" dir="ltr"', "<html", 1)
    report = check_built(rebuild(english, html=html), spamassassin=False)
    assert report.errors == ["<html> lacks lang or dir"]


def test_text_part_without_unsubscribe_link_or_titles(english):
    text = "Test Digest\n\nThis week we have papers for you. Read them online.\n"
    report = check_built(rebuild(english, text=text), spamassassin=False)
    assert report.errors[0] == "no unsubscribe link in the text part"
    assert report.errors[1] == (
        "per-reader markers: the text part has no markers; its template placed 1 GREETING, 1 PREFERENCES_URL, 1 UNSUBSCRIBE_URL"
    )
    assert report.errors[2].startswith("plain-text part is thin (")
    assert report.errors[3].startswith("3 paper title(s) missing from the text part: ")
    assert len(report.errors) == 4


def test_unsubscribe_link_missing_from_html(english):
    html = english.rendered.html.replace(
        english.rendered.markers.unsubscribe_url, "https://example.org/digest/"
    )
    report = check_built(rebuild(english, html=html), spamassassin=False)
    assert report.errors == [
        "no unsubscribe link in the part of the HTML that Gmail shows (first ~102 KB)",
        "per-reader markers: the html part has 1 GREETING, 1 PREFERENCES_URL; its template placed 1 GREETING, "
        "1 PREFERENCES_URL, 2 UNSUBSCRIBE_URL",
    ]


def test_control_characters(english):
    text = english.rendered.text.replace("Welcome to the first issue.", "Welcome\x07 to the first issue.")
    assert text != english.rendered.text
    report = check_built(rebuild(english, text=text), spamassassin=False)
    assert report.errors == ["1 C0/C1 control character(s) in the message"]


def test_check_command_prints_each_result(monkeypatch):
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["--root", str(GOOD), "check", "2024-01-10-first", "--no-spam-score"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "2024-01-10-first"
    assert "  ok    message re-parses with 0 MIME defects" in lines
    assert "  ok    all 3 paper titles in the text part" in lines
    assert not any(line.startswith(("  FAIL", "  warn")) for line in lines)


# ---------------------------------------------------------------------------
# Text the scaffold writes for the editor to replace


def test_check_names_each_unedited_scaffold_text_by_file_and_field(tmp_path):
    from click.testing import CliRunner

    from newsletter.cli import main

    root = tmp_path / "new"
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(root), "--name", "Speech Weekly"]).exit_code == 0

    def failures() -> list[str]:
        result = runner.invoke(main, ["--root", str(root), "check", "--all", "--no-spam-score"])
        assert "Traceback" not in result.output
        return [line for line in result.output.splitlines() if line.startswith("  FAIL")]

    scaffold = [
        "  FAIL  issues/2026-01-20-first-issue.md: introduction: still the template text "
        "('Write your introduction here'): expected your own introduction",
        "  FAIL  newsletter.toml: [newsletter] postal_address: still the placeholder "
        "'Your name · Street 1 · City · Country': expected the postal address readers can write to",
        "  FAIL  papers/example-paper.md: abstract: still the template text "
        "(\"Replace this with the paper's abstract\"): expected the paper's own abstract",
        "  FAIL  papers/example-paper.md: note: still the template text "
        "('Why this paper matters, in a sentence or two'): expected the paper's own note",
    ]
    assert failures() == scaffold  # the file transport: example.org is fine for trying things out

    toml = root / "newsletter.toml"
    toml.write_text(toml.read_text().replace('transport = "file"', 'transport = "smtp"'))
    why = "expected a real address (the transport is smtp)"
    assert failures() == [
        *scaffold,
        f"  FAIL  newsletter.toml: [newsletter] base_url: 'https://example.org/' is a placeholder domain: {why}",
        f"  FAIL  newsletter.toml: [email] from: 'Speech Weekly <newsletter@example.org>' is a placeholder "
        f"domain: {why}",
        f"  FAIL  newsletter.toml: [email] reply_to: 'editor@example.org' is a placeholder domain: {why}",
        f"  FAIL  newsletter.toml: [email] unsubscribe_mailto: 'unsubscribe@example.org' is a placeholder "
        f"domain: {why}",
        f"  FAIL  newsletter.toml: [web] url: 'https://example.org/api/' is a placeholder domain: {why}",
        f"  FAIL  papers/example-paper.md: url: links to https://example.org…, a placeholder domain: {why}",
        f"  FAIL  papers/example-paper.md: abstract: links to https://example.org…, a placeholder domain: {why}",
    ]

    toml.write_text(
        toml.read_text()
        .replace("example.org", "speech.example-lab.net")
        .replace("Your name · Street 1 · City · Country", "Speech Weekly · 2 Mill Lane · Leeds · UK")
    )
    issue = root / "issues" / "2026-01-20-first-issue.md"
    issue.write_text(issue.read_text().replace("Write your introduction here.", "Three papers on speech."))
    paper = root / "papers" / "example-paper.md"
    paper.write_text(
        paper.read_text()
        .replace("https://example.org/papers/example", "https://arxiv.org/abs/2401.00001")
        .split("\n---\n")[0]
        + "\n---\nWe study speech.\n\n## Editor's note\nWorth it.\n"
    )
    assert failures() == []


def test_a_marker_the_template_did_not_place_fails_the_check(english):
    markers = english.rendered.markers
    html = english.rendered.html.replace("A clear baseline", f"A clear baseline {markers.unsubscribe_url}", 1)
    assert html != english.rendered.html
    report = check_built(rebuild(english, html=html), spamassassin=False)
    assert report.errors == [
        "per-reader markers: the html part has 1 GREETING, 1 PREFERENCES_URL, 3 UNSUBSCRIBE_URL; "
        "its template placed 1 GREETING, 1 PREFERENCES_URL, 2 UNSUBSCRIBE_URL"
    ]
