"""Per-reader language: one issue, rendered once per translation, each reader's copy in their language.

The example newsletter's issue #1 has an Arabic and a German translation
(issues/2026-03-17-multilingual-llms.{ar,de}.md). Readers in en, ar, ar-EG, de, fr, pt-BR
and without a language get it through the file outbox, SES (the local stub) and worker
processes; each message is parsed back and checked for what its language decides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import shutil
import tomllib
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.config import SesSettings, load_settings
from newsletter.content.library import load_library
from newsletter.delivery.plan import plan_send
from newsletter.delivery.sending import send_issue, send_test
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.delivery.transports.ses import SesTransport
from newsletter.store import Store, SubscriberRow
from tests.support.aws import FAKE_AWS_ENV, SesStub
from tests.support.project import REPO, run
from tests.support.sending import SECRET, parse

ISSUE = "2026-03-17-multilingual-llms"
SENDER = "digest@example.org"

# reader -> (stored language, the translation they must get)
READERS = {
    "english@example.org": ("en", "en"),
    "arabic@example.org": ("ar", "ar"),
    "egyptian@example.org": ("ar-EG", "ar"),
    "german@example.org": ("de", "de"),
    "french@example.org": ("fr", "en"),
    "brazilian@example.org": ("pt-BR", "en"),
    "nobody@example.org": (None, "en"),
}
NAMES = {
    "english@example.org": "Ada Lovelace",
    "arabic@example.org": "ليلى منصور",
    "egyptian@example.org": "عمر حداد",
    "german@example.org": "Jürgen Müller",
    "french@example.org": "Élise Durand",
    "brazilian@example.org": "Ana Silva",
    "nobody@example.org": None,
}

# What each language's render decides, as the example's files and catalogues say it.
SUBJECTS = {
    "en": "Multilingual LLM Digest #1: 45 papers on LLMs beyond English",
    "ar": "النشرة متعددة اللغات #1: 45 ورقة عن نماذج لغوية تتجاوز الإنجليزية",
    "de": "Multilingual LLM Digest #1: 45 Artikel über LLMs jenseits des Englischen",
}
DIRECTIONS = {"en": "ltr", "ar": "rtl", "de": "ltr"}
GREETINGS = {
    "en": ("Hi {name},", "Hi,"),
    "ar": ("مرحبًا {name}،", "مرحبًا،"),
    "de": ("Hallo {name},", "Hallo,"),
}
DATES = {"en": "17 March 2026", "ar": "17 مارس 2026", "de": "17. März 2026"}  # CLDR month names
# CLDR plurals of 45: English "other", German "other", Arabic "many" (11–99; "few" would be أوراق)
PLURALS = {"en": "45 papers", "ar": "45 ورقة", "de": "45 Artikel"}
MASTHEADS = {"en": "Issue 1", "ar": "العدد 1", "de": "Ausgabe 1"}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example newsletter with an empty list."""
    root = tmp_path / "example"
    root.mkdir()
    for name in ("papers", "issues", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    (root / "subscribers").mkdir()
    return root


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    return SECRET.encode()


@pytest.fixture
def readers(example: Path, secret: bytes) -> Path:
    settings = load_settings(example, env={})
    with Store.open(settings.database_url) as store:
        store.upsert_many(
            [
                SubscriberRow(email=address, name=NAMES[address], language=language, status="active")
                for address, (language, _) in READERS.items()
            ]
        )
    return example


def visible(html_part: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_part)).split())


def check_message(msg: EmailMessage, address: str) -> None:
    """Everything the reader's language decides, read back from the parsed message."""
    language = READERS[address][1]
    name = NAMES[address]
    assert msg["To"].addresses[0].addr_spec == address
    assert msg["Subject"] == SUBJECTS[language], address
    assert msg["Content-Language"] == language, address
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html_part = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in msg.iter_parts():
        assert part["Content-Language"] == language
    tag = re.search(r"<html[^>]*>", html_part)
    assert tag is not None
    assert f'lang="{language}"' in tag.group(0) and f'dir="{DIRECTIONS[language]}"' in tag.group(0), address
    named, anonymous = GREETINGS[language]
    greeting = named.format(name=name) if name else anonymous
    assert greeting in text.splitlines(), address
    shown = visible(html_part)
    assert greeting in shown
    assert f"{MASTHEADS[language]} · {DATES[language]} · {PLURALS[language]}" in shown, address
    assert f"{MASTHEADS[language]} · {DATES[language]}" in text
    # "view in browser" leads to the reader's language's archive page
    page = f"https://digest.example.org/{'' if language == 'en' else language + '/'}issues/{ISSUE}/"
    assert page in text.splitlines() and f'href="{page}"' in html_part, address
    # the other languages' words are nowhere in this copy
    for other in {"en", "ar", "de"} - {language}:
        assert SUBJECTS[other] not in text and DATES[other] not in shown


def test_each_reader_gets_their_translation_through_the_outbox(readers: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--no-spam-score")

    dry = run(readers, *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Recipients: 7\n" in dry.output
    groups = dry.output.split("Languages:", 1)[1]
    assert (
        f"  en (4 readers: en 1, fr 1, pt-BR 1, no language 1) → the original, issues/{ISSUE}.md\n" in groups
    )
    assert f"  ar (2 readers: ar 1, ar-EG 1) → issues/{ISSUE}.ar.md\n" in groups
    assert f"  de (1 reader: de) → issues/{ISSUE}.de.md\n" in groups
    assert not list(tmp_path.glob("outbox/**/*.eml"))

    sent = run(readers, *args, "--yes")
    assert sent.exit_code == 0, sent.output
    files = sorted((outbox / ISSUE).glob("*.eml"))
    assert len(files) == len(READERS)
    for path in files:
        msg = parse(path.read_bytes())
        check_message(msg, msg["To"].addresses[0].addr_spec)

    settings = load_settings(readers, env={})
    with Store.open(settings.database_url) as store:
        recorded = {d.email: d.sent_language for d in store.ledger(ISSUE)}
    assert recorded == {address: wanted for address, (_, wanted) in READERS.items()}

    status = run(readers, "status", ISSUE, "--json")
    assert status.exit_code == 0, status.output
    by_language = {row["language"]: row for row in json.loads(status.output)["languages"]}
    assert by_language == {
        "ar": {"language": "ar", "sent": 2, "failed": 0, "uncertain": 0},
        "de": {"language": "de", "sent": 1, "failed": 0, "uncertain": 0},
        "en": {"language": "en", "sent": 4, "failed": 0, "uncertain": 0},
    }
    text = run(readers, "status", ISSUE)
    assert "Languages:\n  ar: 2 sent, 0 failed, 0 uncertain\n  de: 1 sent" in text.output


def test_ses_copies_are_in_each_readers_language(readers: Path, secret: bytes, monkeypatch) -> None:
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(readers, env={})
    library = load_library(settings)
    with SesStub(max_send_rate=500.0) as stub, Store.open(settings.database_url) as store:
        ses = dataclasses.replace(settings, ses=SesSettings(endpoint_url=stub.endpoint_url))
        transport = SesTransport(sender=SENDER, endpoint_url=stub.endpoint_url, concurrency=4)
        plan = plan_send(ses, library, library.issue(ISSUE), transport=transport, secret=secret, threads=4)
        assert sorted(plan.templates) == ["ar", "de", "en"]
        report = send_issue(plan, store)
        assert report.sent == len(READERS)
        messages = list(stub.messages)
    assert sorted(m.to[0] for m in messages) == sorted(READERS)
    for m in messages:
        check_message(parse(m.raw), m.to[0])


def test_worker_processes_get_every_translation(readers: Path, secret: bytes, tmp_path: Path) -> None:
    settings = load_settings(readers, env={})
    library = load_library(settings)
    outbox = tmp_path / "outbox"
    with Store.open(settings.database_url) as store:
        transport = make_transport(settings, "file", outbox=outbox)
        plan = plan_send(
            settings, library, library.issue(ISSUE), transport=transport, secret=secret, workers=2
        )
        report = send_issue(plan, store)
    assert report.sent == len(READERS) and report.exit_code == 0
    files = list(outbox.glob("*.eml"))
    assert len(files) == len(READERS)
    for path in files:
        msg = parse(path.read_bytes())
        check_message(msg, msg["To"].addresses[0].addr_spec)


def test_a_canary_and_the_rest_choose_by_the_same_rule(readers: Path, secret: bytes) -> None:
    settings = load_settings(readers, env={})
    library = load_library(settings)
    issue = library.issue(ISSUE)
    transport = MemoryTransport()
    with Store.open(settings.database_url) as store:
        first = send_issue(
            plan_send(settings, library, issue, transport=transport, secret=secret, limit=3), store
        )
        assert first.sent == 3
        # a fresh plan, as a re-run after a crash makes: the same rule, the same templates
        rest = send_issue(plan_send(settings, library, issue, transport=transport, secret=secret), store)
        assert rest.sent == len(READERS) - 3
        recorded = {d.email: d.sent_language for d in store.ledger(ISSUE)}
    assert recorded == {address: wanted for address, (_, wanted) in READERS.items()}
    assert sorted(transport.recipients) == sorted(READERS)
    for address in READERS:
        (one,) = transport.to(address)
        check_message(one.message, address)


def test_a_test_copy_to_a_subscriber_is_in_their_language(readers: Path, secret: bytes) -> None:
    settings = load_settings(readers, env={})
    library = load_library(settings)
    transport = MemoryTransport()
    with Store.open(settings.database_url) as store:
        results = send_test(
            settings,
            library,
            library.issue(ISSUE),
            ["egyptian@example.org", "editor@example.net"],
            transport=transport,
            store=store,
            secret=secret,
        )
    assert [(r.email, r.language) for r in results] == [
        ("egyptian@example.org", "ar"),
        ("editor@example.net", "en"),  # not a subscriber: the original
    ]
    (arabic,) = transport.to("egyptian@example.org")
    assert arabic.message["Subject"] == "[TEST] " + SUBJECTS["ar"]
    assert arabic.message["Content-Language"] == "ar"


def test_an_unknown_placeholder_in_a_catalogue_is_an_error_not_a_traceback(
    readers: Path, tmp_path: Path
) -> None:
    catalogue = readers / "templates" / "locale" / "de" / "LC_MESSAGES" / "messages.po"
    text = catalogue.read_text(encoding="utf-8")
    assert 'msgstr "Hallo {name},"' in text
    catalogue.write_text(text.replace('msgstr "Hallo {name},"', 'msgstr "Hallo {nom},"'), encoding="utf-8")
    expected = (
        "Error: templates/locale/de/LC_MESSAGES/messages.po: 'Hi {name},': "
        "expected only the placeholders {name}, got {nom}"
    )
    outbox = tmp_path / "outbox"
    for args in (
        ("check", ISSUE),
        ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score"),
    ):
        result = run(readers, *args)
        assert result.exit_code == 1, result.output
        assert expected in result.output
        assert "Traceback" not in result.output
    assert not list(tmp_path.glob("outbox/**/*.eml"))
    settings = load_settings(readers, env={})
    with Store.open(settings.database_url) as store:
        assert store.ledger(ISSUE) == []


def test_the_first_send_freezes_its_translations_and_later_runs_keep_to_them(
    readers: Path, tmp_path: Path
) -> None:
    issues = readers / "issues"
    (issues / f"{ISSUE}.sent.toml").unlink()  # as if never sent: the first send writes the record
    outbox = tmp_path / "outbox"
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score")
    canary = run(readers, *args, "--limit", "1")  # the English reader, first in the list
    assert canary.exit_code == 0, canary.output
    record = tomllib.loads((issues / f"{ISSUE}.sent.toml").read_text(encoding="utf-8"))
    assert record["translations"] == {
        lang: hashlib.sha256((issues / f"{ISSUE}.{lang}.md").read_bytes()).hexdigest()
        for lang in ("ar", "de")
    }

    # a French translation appears mid-send: the French reader still gets what a first-run reader would
    german = issues / f"{ISSUE}.de.md"
    (issues / f"{ISSUE}.fr.md").write_text(
        '---\nsubject: "Multilingual LLM Digest #1 : 45 articles"\n---\nBienvenue.\n', encoding="utf-8"
    )
    german.write_text(german.read_text(encoding="utf-8") + "\nKorrektur.\n", encoding="utf-8")
    checked = run(readers, "check", ISSUE, "--no-spam-score")
    assert f"{ISSUE}.fr.md was added after the issue was sent" in checked.output
    assert f"{ISSUE}.de.md changed since it was sent" in checked.output

    rest = run(readers, *args)
    assert rest.exit_code == 0, rest.output
    assert f"Warning: issues/{ISSUE}.fr.md: not sent: {ISSUE} was first sent before it existed" in rest.output
    for path in (outbox / ISSUE).glob("*.eml"):
        msg = parse(path.read_bytes())
        check_message(msg, msg["To"].addresses[0].addr_spec)  # French: the original, as the rule said


def test_a_send_refuses_to_go_on_without_a_translation_it_began_in(readers: Path, tmp_path: Path) -> None:
    issues = readers / "issues"
    (issues / f"{ISSUE}.sent.toml").unlink()
    outbox = tmp_path / "outbox"
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score")
    assert run(readers, *args, "--limit", "2").exit_code == 0
    (issues / f"{ISSUE}.ar.md").unlink()
    refused = run(readers, *args)
    assert refused.exit_code == 1
    assert (
        f"Error: issues/{ISSUE}.ar.md: expected the ar translation {ISSUE} was first sent in "
        f"(recorded in {ISSUE}.sent.toml), got no such file" in refused.output
    )
    assert f"newsletter issue refreeze {ISSUE}" in refused.output
    assert len(list((outbox / ISSUE).glob("*.eml"))) == 2


def test_refreeze_records_a_new_translation_and_the_rest_of_the_send_uses_it(
    readers: Path, tmp_path: Path
) -> None:
    issues = readers / "issues"
    (issues / f"{ISSUE}.sent.toml").unlink()
    outbox = tmp_path / "outbox"
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--yes", "--no-spam-score")
    assert run(readers, *args, "--limit", "1").exit_code == 0
    french = issues / f"{ISSUE}.fr.md"
    french.write_text(
        '---\nsubject: "Multilingual LLM Digest #1 : 45 articles"\n---\nBienvenue.\n', encoding="utf-8"
    )

    refrozen = run(readers, "issue", "refreeze", ISSUE, "--yes")
    assert refrozen.exit_code == 0, refrozen.output
    assert f"{ISSUE}.fr.md was added after the issue was sent" in refrozen.output
    record = tomllib.loads((issues / f"{ISSUE}.sent.toml").read_text(encoding="utf-8"))
    assert record["translations"]["fr"] == hashlib.sha256(french.read_bytes()).hexdigest()
    assert sorted(record["translations"]) == ["ar", "de", "fr"]

    rest = run(readers, *args)
    assert rest.exit_code == 0, rest.output
    assert "not sent" not in rest.output
    (path,) = (p for p in (outbox / ISSUE).glob("*.eml") if "french@" in p.name)
    msg = parse(path.read_bytes())
    assert msg["Subject"] == "Multilingual LLM Digest #1 : 45 articles"
    assert msg["Content-Language"] == "fr"
    assert "17 mars 2026" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
