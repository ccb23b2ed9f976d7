"""Audiences: subscriber tags (imported, set by command, listed, exported) and an issue's `audience:`."""

from __future__ import annotations

import csv
import email
import io
import json
from collections import Counter
from email import policy
from pathlib import Path

import pytest

from newsletter.audience.imports import import_csv
from newsletter.config import load_settings
from newsletter.store import Audience, Store, SubscriberRow
from tests.support.project import FIXTURES, make_newsletter, run

PLATFORM_EXPORTS = FIXTURES / "import-subscribers"  # sources named in its README.md
ISSUE = "2024-01-10-first"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_newsletter(tmp_path)


@pytest.fixture
def store(folder: Path):
    with Store.open(load_settings(folder, env={}).database_url) as s:
        yield s


def tags(store: Store) -> dict[str, tuple[str, ...]]:
    return {s.email: s.tags for s in store.iter_subscribers() if s.tags}


# --------------------------------------------------------------------------- tags from imports


def test_mailchimp_tags_and_ghost_labels_are_imported_as_tags(store: Store) -> None:
    # Mailchimp's TAGS: each tag in double quotes, comma-separated ("Newsletter","VIP")
    report = import_csv(store, PLATFORM_EXPORTS / "subscribed_members_export_ef3462e259.csv")
    assert report.format == "mailchimp"
    mailchimp = tags(store)
    assert mailchimp["reader.active@example.com"] == ("newsletter", "vip")
    assert mailchimp["jurgen.mueller@example.net"] == ("newsletter",)
    ada = store.get_subscriber("reader.active@example.com")
    assert "TAGS" not in ada.attributes  # a column of its own now, not an attribute

    # Ghost's labels, comma-joined in one cell ("VIP,Early adopter"): added to what Mailchimp gave
    report = import_csv(store, PLATFORM_EXPORTS / "ghost.csv")
    assert report.format == "ghost"
    merged = tags(store)
    assert merged["reader.active@example.com"] == ("early adopter", "newsletter", "vip")
    assert merged["jurgen.mueller@example.net"] == ("lang:de", "newsletter")
    assert report.updated >= 2  # a row that only brings a tag counts as an update


def test_kit_and_buttondown_tags_use_their_own_separators(store: Store) -> None:
    import_csv(store, PLATFORM_EXPORTS / "kit.csv")
    assert tags(store)["reader.active@example.com"] == ("newsletter", "python")
    import_csv(store, PLATFORM_EXPORTS / "buttondown.csv")  # `python;weekly`
    assert tags(store)["reader.active@example.com"] == ("newsletter", "python", "weekly")


def test_a_tag_that_cannot_be_stored_refuses_its_row(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "ours.csv"
    path.write_text(f"email,tags\nok@example.org,a; b\nlong@example.org,{'x' * 101}\n", encoding="utf-8")
    report = import_csv(store, path)
    assert [(r.line, r.reason) for r in report.refused] == [
        (3, "column 'tags': expected a tag of at most 100 characters, got 101")
    ]
    assert tags(store) == {"ok@example.org": ("a; b",)}
    assert store.get_subscriber("long@example.org") is None


# --------------------------------------------------------------------------- the tag command


def test_tag_command_adds_removes_lists_and_exports(folder: Path, store: Store, tmp_path: Path) -> None:
    store.upsert_many(
        [
            SubscriberRow(email="ana@example.org", name="Ana", language="pt-BR"),
            SubscriberRow(email="omar@example.org", language="ar"),
        ]
    )
    result = run(
        folder, "subscribers", "tag", "ana@example.org", "OMAR@example.org", "--add", " Beta  Readers"
    )
    assert result.exit_code == 0, result.output
    assert result.output == "ana@example.org: beta readers\nOMAR@example.org: beta readers\n"
    result = run(folder, "subscribers", "tag", "ana@example.org", "--add", "vip", "--remove", "beta readers")
    assert result.output == "ana@example.org: vip\n"

    listed = run(folder, "subscribers", "list").output
    assert (
        listed == "ana@example.org\tactive\tpt-BR\tAna\tvip\nomar@example.org\tactive\tar\t\tbeta readers\n"
    )
    as_json = json.loads(run(folder, "subscribers", "list", "--json").output)
    assert [s["tags"] for s in as_json] == [["vip"], ["beta readers"]]

    exported = run(folder, "subscribers", "export").output
    rows = {r["email"]: r["tags"] for r in csv.DictReader(io.StringIO(exported))}
    assert rows == {"ana@example.org": "vip", "omar@example.org": "beta readers"}

    # the export imports again with its tags
    copy = make_newsletter(tmp_path / "copy")
    backup = tmp_path / "backup.csv"
    backup.write_text(exported, encoding="utf-8")
    assert run(copy, "subscribers", "import", str(backup)).exit_code == 0
    with Store.open(load_settings(copy, env={}).database_url) as other:
        assert tags(other) == {"ana@example.org": ("vip",), "omar@example.org": ("beta readers",)}


def test_tag_command_refuses_unknown_addresses_and_bad_tags_and_changes_nothing(
    folder: Path, store: Store
) -> None:
    store.upsert_many([SubscriberRow(email="ana@example.org")])
    result = run(folder, "subscribers", "tag", "ana@example.org", "nobody@example.org", "--add", "vip")
    assert result.exit_code == 1
    assert result.output.startswith("Error: EMAIL: no subscriber 'nobody@example.org'\n")
    result = run(folder, "subscribers", "tag", "ana@example.org", "--add", "a,b")
    assert (result.exit_code, result.output) == (
        1,
        "Error: --add: expected a tag without commas, got 'a,b'\n",
    )
    result = run(folder, "subscribers", "tag", "ana@example.org")
    assert (result.exit_code, result.output) == (
        1,
        "Error: tag: expected --add TAG or --remove TAG, got neither\n",
    )
    assert tags(store) == {}


def test_erasing_a_subscriber_erases_their_tags(store: Store) -> None:
    store.upsert_many([SubscriberRow(email="ana@example.org", tags=("vip",))])
    ana = store.get_subscriber("ana@example.org")
    assert ana.tags == ("vip",)
    store.remove_subscriber("ana@example.org")
    with store.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM subscriber_tags").scalar() == 0


# --------------------------------------------------------------------------- the snapshot


LIST = [
    ("en@example.org", "en", ()),
    ("none@example.org", None, ()),
    ("ar@example.org", "ar", ("beta",)),
    ("ar-eg@example.org", "ar-EG", ()),
    ("arn@example.org", "arn", ("beta",)),
    ("de@example.org", "de", ("beta", "vip")),
    ("fr@example.org", "fr", ("vip",)),
    ("pt-br@example.org", "pt-BR", ()),
]


def readers(store: Store, suppressed: bool = True) -> None:
    rows = [SubscriberRow(email=e, language=lang, tags=t) for e, lang, t in LIST]
    if suppressed:  # they match every audience below, and must never be mailed
        rows += [
            SubscriberRow(email="gone-ar@example.org", language="ar", status="unsubscribed", tags=("beta",)),
            SubscriberRow(email="bounced-de@example.org", language="de", status="bounced", tags=("beta",)),
            SubscriberRow(email="pending-de@example.org", language="de", status="pending", tags=("beta",)),
        ]
    store.upsert_many(rows)


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        (Audience(languages=("ar",)), {"ar@example.org", "ar-eg@example.org"}),
        (Audience(languages=("AR-eg", "de")), {"ar-eg@example.org", "de@example.org"}),
        # readers without a language get the newsletter's, so an English audience has them
        (Audience(languages=("en",)), {"en@example.org", "none@example.org"}),
        (Audience(languages=("pt",)), {"pt-br@example.org"}),
        (Audience(tags=("vip",)), {"de@example.org", "fr@example.org"}),
        (
            Audience(tags=("beta", "vip")),
            {"ar@example.org", "arn@example.org", "de@example.org", "fr@example.org"},
        ),
        (Audience(languages=("ar", "de"), tags=("beta",)), {"ar@example.org", "de@example.org"}),
    ],
)
def test_the_snapshot_takes_only_the_audience(store: Store, audience: Audience, expected: set[str]) -> None:
    readers(store)
    assert store.reachable("i", audience=audience) == len(expected)
    assert store.create_ledger("i", audience=audience) == len(expected)
    assert {d.email for d in store.ledger("i")} == expected
    # the snapshot is taken once: a reader who joins the audience later gets the next issue
    store.tag_subscribers(["en@example.org"], add=["vip", "beta"])
    assert store.create_ledger("i", audience=audience) == 0


# --------------------------------------------------------------------------- the issue's `audience:`


def set_front_matter(folder: Path, lines: str) -> None:
    path = folder / "issues" / f"{ISSUE}.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("status: published\n", f"status: published\n{lines}", 1), encoding="utf-8")


def outbox_recipients(outbox: Path) -> Counter[str]:
    return Counter(
        email.message_from_bytes(f.read_bytes(), policy=policy.default)["To"].addresses[0].addr_spec
        for f in (outbox / ISSUE).glob("*.eml")
    )


def send(folder: Path, outbox: Path, *extra: str):
    return run(
        folder, "send", ISSUE, "--transport", "file", "--outbox", str(outbox), "--no-spam-score", *extra
    )


def test_an_issue_with_an_audience_goes_only_to_matching_active_readers(
    folder: Path, store: Store, tmp_path: Path
) -> None:
    readers(store)
    set_front_matter(folder, "audience:\n  languages: [ar, de]\n  tags: [beta]\n")
    outbox = tmp_path / "out"
    dry = send(folder, outbox, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Audience:   languages ar, de; tags beta\nRecipients: 2\n" in dry.output
    assert store.ledger(ISSUE) == []

    sent = send(folder, outbox, "--yes")
    assert sent.exit_code == 0, sent.output
    assert outbox_recipients(outbox) == Counter({"ar@example.org": 1, "de@example.org": 1})
    assert {d.email for d in store.ledger(ISSUE)} == {"ar@example.org", "de@example.org"}


def test_an_audience_by_language_takes_regional_variants(folder: Path, store: Store, tmp_path: Path) -> None:
    readers(store)
    set_front_matter(folder, "audience: {languages: [ar]}\n")
    outbox = tmp_path / "out"
    assert send(folder, outbox, "--yes").exit_code == 0
    assert outbox_recipients(outbox) == Counter({"ar@example.org": 1, "ar-eg@example.org": 1})


def test_without_an_audience_every_active_reader_gets_it(folder: Path, store: Store, tmp_path: Path) -> None:
    readers(store)
    outbox = tmp_path / "out"
    dry = send(folder, outbox, "--dry-run")
    assert "Audience:   every active subscriber\nRecipients: 8\n" in dry.output
    assert send(folder, outbox, "--yes").exit_code == 0
    assert outbox_recipients(outbox) == Counter({e: 1 for e, _, _ in LIST})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "audience: [ar, de]\n",
            "audience: expected a mapping with languages and/or tags, got a list (['ar', 'de'])",
        ),
        ("audience: {}\n", "audience: expected a mapping with languages and/or tags, got a mapping"),
        ("audience: {languages: ar}\n", "audience.languages: expected a list like [\"ar\"], got 'ar'"),
        (
            "audience: {languages: [Deutsch]}\n",
            "audience.languages: expected a list of language tags like [ar, de], got a list (['Deutsch'])",
        ),
        (
            "audience: {languages: []}\n",
            "audience.languages: expected a list of language tags like [ar, de], got a list ([])",
        ),
        (
            'audience: {tags: ["a,b"]}\n',
            "audience.tags: expected a list of subscriber tags like [vip] (no commas, at most 100 characters "
            "each), got a list (['a,b'])",
        ),
        (
            "audience: {language: [ar]}\n",
            "audience.language: unknown field; did you mean 'audience.languages'?",
        ),
        ("audience: {people: [ar]}\n", "audience.people: unknown field (expected one of audience.languages"),
    ],
)
def test_bad_audiences_are_refused_with_where_what_and_expected(
    folder: Path, store: Store, tmp_path: Path, lines: str, message: str
) -> None:
    readers(store, suppressed=False)
    set_front_matter(folder, lines)
    outbox = tmp_path / "out"
    result = send(folder, outbox, "--yes")
    assert result.exit_code == 1
    assert f"issues/{ISSUE}.md: {message}" in result.output, result.output
    assert "Traceback" not in result.output
    assert store.ledger(ISSUE) == [] and not outbox.exists()
