"""Subscriber import and `newsletter subscribers …`, on real SQLite files through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience import imports as subscribers_module
from newsletter.audience.imports import ImportFileError, import_csv
from newsletter.cli import main
from newsletter.errors import ProblemsError
from newsletter.store import Store

SAMPLE = Path(__file__).resolve().parent.parent / "subscribers" / "sample.csv"

SETTINGS = """\
[newsletter]
name = "Test Digest"
base_url = "https://digest.example.org/"
postal_address = "1 Example Street, Berlin"

[email]
from = "Test Digest <digest@example.org>"
list_id = "test.digest.example.org"
"""


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'subscribers.db'}") as s:
        yield s


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    monkeypatch.delenv("NEWSLETTER_ROOT", raising=False)
    folder = tmp_path / "letter"
    folder.mkdir()
    (folder / "newsletter.toml").write_text(SETTINGS, encoding="utf-8")
    return folder


def run(root: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--root", str(root), "subscribers", *args], input=input)


def write(tmp_path: Path, text: str, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def statuses(store: Store) -> dict[str, str]:
    return {s.email: s.status for s in store.iter_subscribers()}


# ------------------------------------------------------------------ file formats


def test_sample_file_imports_everything(store: Store) -> None:
    report = import_csv(store, SAMPLE)
    assert (report.rows, report.added, report.refused) == (12, 12, [])
    assert store.count_by_status() == {
        "pending": 1,
        "active": 10,
        "unsubscribed": 1,
        "bounced": 0,
        "complained": 0,
    }
    omar = store.get_subscriber("omar.haddad@example.com")
    assert (omar.name, omar.language, omar.source) == ("عمر حداد", "ar", "import")
    assert store.get_subscriber("li.wei@example.com").name == "李伟"
    assert store.get_subscriber("juergen.mueller@example.com").name == "Jürgen Müller"
    again = import_csv(store, SAMPLE)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 12)


def test_bom_and_semicolons(tmp_path: Path, store: Store) -> None:
    path = write(
        tmp_path, "\ufeffE-Mail;Name;Language\r\nana@example.com;Ana Lúcia;PT_br\r\nbo@example.org;Bo;\r\n"
    )
    report = import_csv(store, path)
    assert (report.added, report.refused) == (2, [])
    ana = store.get_subscriber("ana@example.com")
    assert (ana.name, ana.language, ana.status) == ("Ana Lúcia", "pt-BR", "active")


def test_semicolons_with_commas_in_names(tmp_path: Path, store: Store) -> None:
    rows = "".join(f'p{i}@example.com;Doe, Jane {i};"de"\n' for i in range(40))
    path = write(tmp_path, "email;name;language\n" + rows)
    report = import_csv(store, path)
    assert (report.added, report.refused) == (40, [])
    assert store.get_subscriber("p7@example.com").name == "Doe, Jane 7"
    assert store.get_subscriber("p7@example.com").language == "de"


def test_tabs_and_utf16_from_excel(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path, "email\tname\nmei@example.com\t美\n", encoding="utf-16")
    report = import_csv(store, path)
    assert report.added == 1
    assert store.get_subscriber("mei@example.com").name == "美"


def test_mailchimp_exports(tmp_path: Path, store: Store) -> None:
    subscribed = write(
        tmp_path,
        '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,LEID,TAGS\n'
        '"greta@example.com","Greta","Groß",2,"2024-01-02 10:00:00","2024-01-02 10:05:00",123,"ai"\n',
        "subscribed_members_export.csv",
    )
    unsubscribed = write(
        tmp_path,
        '"Email Address","First Name","Last Name",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE\n'
        '"greta@example.com","Greta","Groß","2024-05-01 09:00:00","May digest"\n'
        '"old@example.com","Old","Reader","2023-05-01 09:00:00","May digest"\n',
        "unsubscribed_members_export.csv",
    )
    cleaned = write(
        tmp_path, '"Email Address",CLEAN_TIME\n"dead@example.com","2024-02-02 00:00:00"\n', "cleaned.csv"
    )
    assert import_csv(store, subscribed).added == 1
    greta = store.get_subscriber("greta@example.com")
    assert greta.name == "Greta Groß"
    assert greta.consent_at.isoformat() == "2024-01-02T10:00:00+00:00"  # OPTIN_TIME comes first
    assert greta.attributes == {"MEMBER_RATING": "2", "LEID": "123"}
    assert greta.tags == ("ai",)
    report = import_csv(store, unsubscribed)
    assert (report.added, report.updated) == (1, 1)
    import_csv(store, cleaned)
    assert statuses(store) == {
        "greta@example.com": "unsubscribed",
        "old@example.com": "unsubscribed",
        "dead@example.com": "bounced",
    }
    # importing the "subscribed" export again never brings Greta back
    assert import_csv(store, subscribed).unchanged == 1
    assert store.get_subscriber("greta@example.com").status == "unsubscribed"


def test_buttondown_and_substack_exports(tmp_path: Path, store: Store) -> None:
    buttondown = write(
        tmp_path,
        "id,email_address,creation_date,notes,tags,type\n"
        "1,bd1@example.com,2024-03-01T12:00:00Z,met at ACL,nlp,regular\n"
        "2,bd2@example.com,2024-03-02T12:00:00Z,,,unactivated\n"
        "3,bd3@example.com,2024-03-03T12:00:00Z,,,unsubscribed\n",
    )
    substack = write(
        tmp_path,
        "email,name,active_subscription,email_disabled,created_at\n"
        "ss1@example.com,Sam,false,false,2024-04-01T00:00:00.000Z\n"
        "ss2@example.com,,false,true,2024-04-02T00:00:00.000Z\n",
        "substack.csv",
    )
    import_csv(store, buttondown)
    import_csv(store, substack)
    assert statuses(store) == {
        "bd1@example.com": "active",
        "bd2@example.com": "pending",
        "bd3@example.com": "unsubscribed",
        "ss1@example.com": "active",
        "ss2@example.com": "unsubscribed",
    }
    assert store.get_subscriber("bd1@example.com").attributes == {"notes": "met at ACL"}
    assert store.get_subscriber("bd1@example.com").tags == ("nlp",)
    assert store.get_subscriber("ss1@example.com").consent_at.isoformat() == "2024-04-01T00:00:00+00:00"


# ------------------------------------------------------------------ rows


def test_idn_becomes_punycode_and_non_ascii_local_parts_are_refused(tmp_path: Path, store: Store) -> None:
    path = write(
        tmp_path,
        "email,name\nkarl@Bücher.example,Karl\njürgen@example.com,Jürgen\nnot-an-address,X\n,Empty\nok@example.org,Ok\n",
    )
    report = import_csv(store, path)
    assert report.added == 2
    assert sorted(statuses(store)) == ["karl@xn--bcher-kva.example", "ok@example.org"]
    assert [(r.line, r.reason) for r in report.refused] == [
        (
            3,
            "column 'email': 'jürgen@example.com' is not a usable address: the part before '@' has non-ASCII "
            "characters ('ü'); Amazon SES cannot send to such addresses",
        ),
        (4, "column 'email': 'not-an-address' is not a usable address: An email address must have an @-sign"),
        (5, "column 'email': empty"),
    ]


def test_bad_status_and_language_are_refused_with_the_column(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path, "email,status,language\na@example.com,maybe,en\nb@example.com,active,English\n")
    report = import_csv(store, path)
    assert [(r.line, r.reason) for r in report.refused] == [
        (
            2,
            "column 'status': expected one of active, pending, unsubscribed, bounced, complained, got 'maybe'",
        ),
        (3, "column 'language': expected a language tag like 'en' or 'pt-BR', got 'English'"),
    ]
    assert statuses(store) == {}


def test_duplicates_in_the_file_are_merged_even_across_batches(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscribers_module, "BATCH", 2)
    path = write(
        tmp_path,
        "email,name,status\n"
        "a@example.com,A,\n"
        "A@EXAMPLE.com,,unsubscribed\n"  # same batch
        "b@example.com,B,pending\n"
        "c@example.com,C,\n"
        "a@example.com,,active\n"  # later batch: must not re-activate
        "b@example.com,Bee,active\n",  # later batch: pending -> active
    )
    report = import_csv(store, path)
    assert (report.rows, report.added, report.updated, report.unchanged, report.duplicates) == (6, 3, 0, 0, 3)
    assert statuses(store) == {
        "a@example.com": "unsubscribed",
        "b@example.com": "active",
        "c@example.com": "active",
    }
    assert store.get_subscriber("b@example.com").name == "Bee"


def test_merge_rules_against_the_database(tmp_path: Path, store: Store) -> None:
    for email, status in [
        ("u@example.com", "unsubscribed"),
        ("b@example.com", "bounced"),
        ("c@example.com", "complained"),
        ("p@example.com", "pending"),
        ("q@example.com", "pending"),
    ]:
        store.add_subscriber(email, status=status)
    path = write(
        tmp_path,
        "email,status\nu@example.com,active\nb@example.com,\nc@example.com,subscribed\n"
        "p@example.com,\nq@example.com,active\nn@example.com,\n",
    )
    report = import_csv(store, path)
    assert (report.added, report.updated, report.unchanged) == (1, 1, 4)
    assert statuses(store) == {
        "u@example.com": "unsubscribed",
        "b@example.com": "bounced",
        "c@example.com": "complained",
        "p@example.com": "pending",
        "q@example.com": "active",
        "n@example.com": "active",
    }


def test_strict_writes_nothing(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path, "email\ngood@example.com\nbad@\n")
    with pytest.raises(ProblemsError) as err:
        import_csv(store, path, strict=True)
    assert err.value.format_message() == (
        f"Error: {path}:3: column 'email': 'bad@' is not a usable address: "
        "There must be something after the @-sign\n\n"
        "Nothing was imported (--strict). Fix or delete these rows, or import without --strict to skip them.\n\n"
        "Aborted with 1 error."
    )
    assert statuses(store) == {}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.csv", None, "{path}: no such file; expected a CSV file of subscribers"),
        ("empty.csv", b"", "{path}: the file is empty; expected a header line with an 'email' column"),
        (
            "photo.csv",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "{path}: expected a CSV text file, got binary data",
        ),
        (
            "names.csv",
            b"name,language\nAna,pt\n",
            "{path}:1: expected a header line with an 'email' column (or 'Email Address', 'email_address'), "
            "got 'name', 'language'",
        ),
        (
            "latin1.csv",
            "email,name\na@example.com,Jürgen\n".encode("latin-1"),
            "{path}:2: expected UTF-8 text, got byte 0xfc (offset 26)\n\n"
            "Save the file as 'CSV UTF-8' in your spreadsheet program.",
        ),
    ],
)
def test_unusable_files_write_nothing(
    tmp_path: Path, store: Store, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImportFileError) as err:
        import_csv(store, path)
    assert err.value.message == expected.format(path=path)
    assert statuses(store) == {}


def test_a_late_bad_byte_still_writes_nothing(tmp_path: Path, store: Store) -> None:
    rows = "".join(f"u{i}@example.com\n" for i in range(3000))
    path = tmp_path / "late.csv"
    path.write_bytes(("email\n" + rows).encode() + b"x\xff@example.com\n")
    with pytest.raises(ImportFileError, match=r"late\.csv:3002: expected UTF-8 text, got byte 0xff"):
        import_csv(store, path)
    assert statuses(store) == {}


def test_progress_is_reported(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscribers_module, "BATCH", 4)
    path = write(tmp_path, "email\n" + "".join(f"u{i}@example.com\n" for i in range(10)))
    calls: list[tuple[int, int]] = []
    import_csv(store, path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 10), (8, 10), (10, 10), (10, 10)]


# ------------------------------------------------------------------ the commands


def test_cli_add_list_unsubscribe_remove(root: Path) -> None:
    result = run(root, "add", "Ana@Bücher.example", "--name", "Ana", "--language", "PT-br")
    assert (result.exit_code, result.output) == (0, "Added Ana@xn--bcher-kva.example (active).\n")
    assert (root / "subscribers" / "subscribers.db").is_file()
    run(root, "add", "zed@example.com", "--status", "pending")
    result = run(root, "add", "ana@xn--bcher-kva.example")
    assert result.exit_code == 1
    assert result.output == "Error: subscriber 'ana@xn--bcher-kva.example' already exists (status active)\n"
    result = run(root, "add", "jürgen@example.com")
    assert result.exit_code == 1
    assert result.output == (
        "Error: EMAIL: expected a usable email address, got 'jürgen@example.com': the part before '@' has "
        "non-ASCII characters ('ü'); Amazon SES cannot send to such addresses\n"
    )
    result = run(root, "add", "x@example.com", "--language", "Deutsch")
    assert result.output == "Error: --language: expected a language tag like 'en' or 'pt-BR', got 'Deutsch'\n"

    assert (
        run(root, "list").output
        == "Ana@xn--bcher-kva.example\tactive\tpt-BR\tAna\nzed@example.com\tpending\t-\n"
    )
    listed = json.loads(run(root, "list", "--json", "--status", "pending").output)
    assert [(s["email"], s["status"], s["source"]) for s in listed] == [("zed@example.com", "pending", "cli")]
    assert json.loads(run(root, "list", "--json", "--status", "bounced").output) == []

    assert run(root, "unsubscribe", "ANA@xn--bcher-kva.example").output == (
        "Unsubscribed Ana@xn--bcher-kva.example (was active).\n"
    )
    assert run(root, "unsubscribe", "ana@xn--bcher-kva.example").output == (
        "Ana@xn--bcher-kva.example is already unsubscribed.\n"
    )
    assert run(root, "remove", "zed@example.com").output == (
        "Removed zed@example.com; its delivery records and events are anonymised.\n"
    )
    result = run(root, "remove", "zed@example.com")
    assert result.exit_code == 1
    assert result.output == (
        "Error: EMAIL: no subscriber 'zed@example.com'\n\nSee the list with `newsletter subscribers list`.\n"
    )
    assert run(root, "unsubscribe", "nobody@example.com").exit_code == 1


def test_cli_import_stats_and_export_roundtrip(root: Path, tmp_path: Path) -> None:
    result = run(root, "import", str(SAMPLE))
    assert result.exit_code == 0, result.output
    assert result.output == (
        "format: generic\n12 rows: 12 added, 0 updated, 0 unchanged, 0 duplicates merged, 0 refused\n"
    )
    assert run(root, "stats").output == (
        "pending             1\n"
        "active             10\n"
        "unsubscribed        1\n"
        "bounced             0\n"
        "complained          0\n"
        "total              12\n"
    )
    exported = run(root, "export", "--status", "active").output
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 10
    assert rows[1]["email"] == "omar.haddad@example.com"
    assert (rows[1]["name"], rows[1]["language"], rows[1]["status"]) == ("عمر حداد", "ar", "active")

    backup = tmp_path / "backup.csv"
    result = run(root, "export", str(backup))
    assert result.exit_code == 0
    assert "Exported 12 subscribers to" in result.output
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "newsletter.toml").write_text(SETTINGS, encoding="utf-8")
    assert run(fresh, "import", str(backup)).output.startswith("format: generic\n12 rows: 12 added")
    with Store.open(f"sqlite:///{fresh / 'subscribers' / 'subscribers.db'}") as copy:
        assert statuses(copy) == {e: s for e, s in ((x.email, x.status) for x in _all(root))}
        assert copy.get_subscriber("li.wei@example.com").name == "李伟"


def _all(root: Path):
    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        return list(store.iter_subscribers())


def test_cli_import_reports_refused_rows_and_strict_aborts(root: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "email\nfine@example.com\nmüller@example.com\n")
    result = run(root, "import", str(path), "--strict")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}:3: column 'email': 'müller@example.com' is not a usable address: the part before '@' "
        "has non-ASCII characters ('ü'); Amazon SES cannot send to such addresses\n\n"
        "Nothing was imported (--strict). Fix or delete these rows, or import without --strict to skip them.\n\n"
        "Aborted with 1 error.\n"
    )
    assert run(root, "stats").output.endswith("total               0\n")
    result = run(root, "import", str(path))
    assert result.exit_code == 0
    assert result.output == (
        "format: generic\n"
        f"refused    {path}:3: column 'email': 'müller@example.com' is not a usable address: the part before "
        "'@' has non-ASCII characters ('ü'); Amazon SES cannot send to such addresses\n"
        "2 rows: 1 added, 0 updated, 0 unchanged, 0 duplicates merged, 1 refused\n"
    )
    result = run(root, "import", str(tmp_path / "nope.csv"))
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {tmp_path / 'nope.csv'}: no such file; expected a CSV file of subscribers\n",
    )


def test_cli_reports_an_unusable_database(root: Path) -> None:
    (root / "subscribers").mkdir()
    (root / "subscribers" / "subscribers.db").write_text("hello\n" * 200)
    result = run(root, "stats")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {root.resolve() / 'subscribers' / 'subscribers.db'}: cannot use the database: file is not a database\n"
    )


@pytest.mark.parametrize(
    "command", ["add", "remove", "unsubscribe", "list", "export", "stats", "import", "purge-pending"]
)
def test_every_command_has_help_ending_with_an_example(root: Path, command: str) -> None:
    result = run(root, command, "--help")
    assert result.exit_code == 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    example = lines.index("  Example:")
    assert lines[example + 1].strip().startswith(f"newsletter subscribers {command}")


# ------------------------------------------------------------------ the lifecycle through the CLI


def _events(root: Path, tmp_path: Path, *bodies: dict) -> str:
    saved = tmp_path / "events.jsonl"
    saved.write_text("\n".join(json.dumps(b) for b in bodies) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--root", str(root), "events", "import", str(saved)])
    assert result.exit_code == 0, result.output
    return result.output


def _every_ses_event(address: str) -> list[dict]:
    """One notification of each kind SES sends, all for `address`."""
    mail = {"messageId": "m-1", "destination": [address]}
    recipient = [{"emailAddress": address}]
    return [
        {
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": recipient},
        },
        {
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {"bounceType": "Transient", "bouncedRecipients": recipient},
        },
        {
            "eventType": "Complaint",
            "mail": mail,
            "complaint": {"complainedRecipients": recipient, "complaintFeedbackType": "not-spam"},
        },
        {"eventType": "Complaint", "mail": mail, "complaint": {"complainedRecipients": recipient}},
        {"eventType": "Delivery", "mail": mail, "delivery": {"recipients": [address]}},
        {
            "eventType": "Subscription",
            "mail": mail,
            "subscription": {"newTopicPreferences": {"unsubscribeAll": True}},
        },
        {"eventType": "Open", "mail": mail, "open": {}},
    ]


@pytest.mark.parametrize("suppressed", ["bounced", "complained"])
def test_a_bounced_or_complained_address_stays_so(root: Path, tmp_path: Path, suppressed: str) -> None:
    run(root, "add", "gone@example.com", "--status", suppressed)

    result = run(root, "unsubscribe", "gone@example.com")
    assert (result.exit_code, result.output) == (
        0,
        f"gone@example.com stays {suppressed}: {suppressed} is a stronger reason not to write than unsubscribed.\n",
    )
    assert run(root, "list", "--status", suppressed).output == f"gone@example.com\t{suppressed}\t-\n"

    listing = write(tmp_path, "email,status\ngone@example.com,active\n")
    assert "0 added, 0 updated, 1 unchanged" in run(root, "import", str(listing)).output
    listing = write(tmp_path, "email,status\ngone@example.com,unsubscribed\n")
    assert "0 added, 0 updated, 1 unchanged" in run(root, "import", str(listing)).output
    assert run(root, "list", "--status", suppressed).output == f"gone@example.com\t{suppressed}\t-\n"

    # Every SES event kind, one after the other: only a complaint turns a bounce into a complaint.
    for n, body in enumerate(_every_ses_event("gone@example.com")):
        body["mail"]["messageId"] = f"m-{n}"
        _events(root, tmp_path, body)
        if body["eventType"] == "Complaint" and "complaintFeedbackType" not in body["complaint"]:
            suppressed = "complained"  # the one move allowed: a complaint is stronger than a bounce
        assert run(root, "list").output == f"gone@example.com\t{suppressed}\t-\n", body
    assert suppressed == "complained"


def test_set_status_brings_an_address_back_only_when_forced_and_records_who(
    root: Path, tmp_path: Path
) -> None:
    run(root, "add", "back@example.com")
    assert run(root, "unsubscribe", "back@example.com").exit_code == 0

    result = run(root, "set-status", "back@example.com", "active")
    assert result.exit_code == 1
    assert result.output == (
        "Error: back@example.com: expected a move to active, got a refusal: it is unsubscribed, and "
        "unsubscribed addresses come back only by an editor's --force-resubscribe\n\n"
        "To bring the address back anyway, add --force-resubscribe.\n"
    )
    result = run(root, "set-status", "BACK@example.com", "active", "--force-resubscribe", "--by", "Maria")
    assert (result.exit_code, result.output) == (0, "back@example.com: unsubscribed -> active (by Maria).\n")
    assert (
        run(root, "set-status", "back@example.com", "active").output
        == "back@example.com is already active.\n"
    )
    assert run(root, "set-status", "back@example.com", "bounced").exit_code == 0
    assert run(root, "set-status", "nobody@example.com", "active").exit_code == 1

    with Store.open(f"sqlite:///{root / 'subscribers' / 'subscribers.db'}") as store:
        ana = store.get_subscriber("back@example.com")
        assert (ana.status, ana.unsubscribed_at) == ("bounced", None)
        moves = [e["detail"] for e in store.list_events(type="status")]
        received = [e["received_at"] for e in store.list_events(type="status")]
    assert [(m["from"], m["to"], m["reason"]) for m in moves] == [
        ("active", "unsubscribed", "cli"),
        ("unsubscribed", "active", "cli set-status --force-resubscribe"),
        ("active", "bounced", "cli set-status"),
    ]
    assert moves[1]["by"] == "Maria"
    assert moves[0]["by"] and moves[2]["by"]  # the operating system's user name
    assert all(r is not None for r in received)
    shown = run(root, "history", "back@example.com").output.splitlines()
    assert [line.split("  ", 1)[1] for line in shown] == [
        f"status  active -> unsubscribed (cli, by {moves[0]['by']})",
        "status  unsubscribed -> active (cli set-status --force-resubscribe, by Maria)",
        f"status  active -> bounced (cli set-status, by {moves[2]['by']})",
    ]
    assert shown[0].startswith(received[0].isoformat(timespec="seconds"))
    assert run(root, "history", "nobody@example.com").exit_code == 1


# ------------------------------------------------------------------ unconfirmed sign-ups


def _age(database: Path, address: str, days: int) -> None:
    conn = sqlite3.connect(database)
    conn.execute(
        "UPDATE subscribers SET created_at = datetime('now', ?) WHERE email = ?", (f"-{days} days", address)
    )
    conn.commit()
    conn.close()


def test_purge_pending_erases_only_old_unconfirmed_web_sign_ups(root: Path) -> None:
    database = root / "subscribers" / "subscribers.db"
    with Store.open(f"sqlite:///{database}") as store:
        store.add_subscriber("old@example.org", status="pending", source="web")
        store.add_subscriber("new@example.org", status="pending", source="web")
        store.add_subscriber("imported@example.org", status="pending", source="import")
        store.add_subscriber("reader@example.org", status="active", source="web")
    for address in ("old@example.org", "imported@example.org", "reader@example.org"):
        _age(database, address, 8)
    result = run(root, "purge-pending")
    assert (result.exit_code, result.output) == (0, "1 pending sign-up(s) older than 168 hours erased.\n")
    with Store.open(f"sqlite:///{database}") as store:
        assert sorted(statuses(store)) == ["imported@example.org", "new@example.org", "reader@example.org"]
        _age(database, "new@example.org", 2)
    assert run(root, "purge-pending", "--older-than", "24").output.startswith("1 pending sign-up(s)")


def test_serve_purges_pending_sign_ups_when_it_starts(root: Path) -> None:
    import threading
    from datetime import timedelta

    from newsletter.cli.serve import _purge_pending

    database = root / "subscribers" / "subscribers.db"
    with Store.open(f"sqlite:///{database}") as store:
        store.add_subscriber("old@example.org", status="pending", source="web")
        _age(database, "old@example.org", 30)

        class App:
            pass

        app = App()
        app.store = store
        stop = threading.Event()
        stop.set()  # one round, then return
        _purge_pending(app, timedelta(days=7), stop)
        assert statuses(store) == {}
