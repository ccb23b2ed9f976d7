"""Imports of every platform's export (tests/fixtures/import-subscribers/, sources in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience.imports import PLATFORMS, import_csv, markdown_table, plan_import
from newsletter.cli import main
from newsletter.store import Store

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "import-subscribers"
MAILCHIMP = [
    FIXTURES / f"{kind}_members_export_ef3462e259.csv" for kind in ("subscribed", "unsubscribed", "cleaned")
]
NON_ASCII = (
    "column 'email': 'ömil@example.com' is not a usable address: the part before '@' has non-ASCII "
    "characters ('ö'); Amazon SES cannot send to such addresses"
)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'subscribers.db'}") as s:
        yield s


def statuses(store: Store) -> dict[str, str]:
    return {s.email: s.status for s in store.iter_subscribers()}


def refusals(report) -> list[tuple[int, str]]:
    return [(r.line, r.reason) for r in report.refused]


def test_mailchimp_status_comes_from_the_file_name(store: Store) -> None:
    reports = [import_csv(store, path) for path in MAILCHIMP]
    assert [r.format for r in reports] == ["mailchimp"] * 3
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "fatima.alzahra@example.org": "active",
        "wang.fang@example.net": "active",
        "optout@example.com": "unsubscribed",
        "spam.report@example.org": "unsubscribed",
        "bounced.hard@example.net": "bounced",
    }
    wang = store.get_subscriber("wang.fang@example.net")
    assert wang.name == "王 芳"  # stray spaces trimmed
    assert wang.consent_at.isoformat() == "2019-12-31T23:59:59+00:00"  # OPTIN_TIME, as UTC
    # the subscribed file again never brings back the cleaned address, whatever its name says
    import_csv(store, MAILCHIMP[2])
    assert import_csv(store, MAILCHIMP[0]).unchanged == 4
    assert store.get_subscriber("bounced.hard@example.net").status == "bounced"


def test_mailchimp_file_renamed_without_a_status_is_refused(tmp_path: Path, store: Store) -> None:
    header = MAILCHIMP[0].read_text(encoding="utf-8").splitlines()[0].replace(",LAST_CHANGED", "")
    path = tmp_path / "audience.csv"
    path.write_text(header + "\nsomeone@example.com\n", encoding="utf-8")
    with pytest.raises(Exception) as err:
        import_csv(store, path)
    assert str(err.value).startswith(
        f"{path}: expected a Mailchimp export named subscribed_…, unsubscribed_… or cleaned_…"
    )
    assert statuses(store) == {}
    # told the format is generic, the rows are plain rows without a status
    assert import_csv(store, path, format="generic").added == 1


def test_substack_email_list_and_subscribers(store: Store) -> None:
    email_list = import_csv(store, FIXTURES / "substack_email_list.csv")
    assert email_list.format == "substack"
    assert refusals(email_list) == [
        (6, NON_ASCII),
        (8, "column 'email': 'x8f2k1@deletion-request.example.com' stands for a deleted substack account"),
        (
            9,
            "column 'plan': expected one of free, other, monthly, yearly, annually, annual, founding, paid, "
            "comp, gift, ios_app, got 'lifetime-beta'",
        ),
    ]
    subscribers = import_csv(store, FIXTURES / "substack_subscribers.csv")
    assert subscribers.format == "substack"
    assert refusals(subscribers) == [(4, NON_ASCII)]
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "fatima.alzahra@example.org": "unsubscribed",  # email_disabled=true, in both files
        "wang.fang@example.net": "active",  # comp
        "founder@example.org": "active",  # founding
        "odd.plan@example.net": "active",  # ios_app
    }
    jurgen = store.get_subscriber("jurgen.mueller@example.net")
    assert jurgen.consent_at.isoformat() == "2022-03-01T09:59:58.120000+00:00"


def test_buttondown_every_subscriber_type(store: Store) -> None:
    report = import_csv(store, FIXTURES / "buttondown.csv")
    assert report.format == "buttondown"
    assert refusals(report) == [
        (
            10,
            "column 'subscriber_type': expected one of "
            + ", ".join(PLATFORMS["buttondown"].statuses)
            + ", got 'vip'",
        )
    ]
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "optout@example.com": "unsubscribed",
        "fatima.alzahra@example.org": "complained",
        "bounced.hard@example.net": "bounced",
        "wang.fang@example.net": "pending",
        "banned@example.com": "unsubscribed",
        "legacy@example.org": "bounced",
    }
    ada = store.get_subscriber("reader.active@example.com")
    assert (ada.name, ada.language) == ("Ada", "en")  # from the metadata column (a Python dict)
    assert ada.consent_at.isoformat() == "2024-03-13T00:03:09.183465+00:00"
    assert ada.tags == ("python", "weekly") and "tags" not in ada.attributes  # `;`-separated
    jurgen = store.get_subscriber("jurgen.mueller@example.net")
    assert (jurgen.name, jurgen.language) == ("Jürgen Müller", "de")


def test_every_buttondown_type_has_a_status_and_only_mailable_ones_are_active() -> None:
    mailable = {
        "regular",
        "premium",
        "trialed",
        "gifted",
        "churning",
        "churned",
        "past_due",
        "paused",
        "upcoming",
    }
    table = PLATFORMS["buttondown"].statuses
    assert {word for word, status in table.items() if status == "active"} == mailable
    documented = mailable | {"unpaid", "unactivated", "unsubscribed", "removed", "blocked", "complained"}
    assert documented | {"undeliverable"} <= set(table)


def test_ghost_subscribed_to_emails(tmp_path: Path, store: Store) -> None:
    report = import_csv(store, FIXTURES / "ghost.csv")
    assert (report.format, report.refused) == ("ghost", [])
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "optout@example.com": "unsubscribed",
        "fatima.alzahra@example.org": "active",
        "wang.fang@example.net": "unsubscribed",
        "no.name@example.com": "active",
    }
    assert store.get_subscriber("fatima.alzahra@example.org").name == "فاطمة الزهراء"
    odd = tmp_path / "ghost-odd.csv"
    odd.write_text("id,email,name,subscribed_to_emails\n1,x@example.org,X,maybe\n", encoding="utf-8")
    assert refusals(import_csv(store, odd)) == [
        (2, "column 'subscribed_to_emails': expected one of true, false, got 'maybe'")
    ]


def test_kit_states(store: Store) -> None:
    report = import_csv(store, FIXTURES / "kit.csv")
    assert report.format == "kit"
    assert refusals(report) == [
        (8, "column 'state': expected one of active, inactive, cancelled, bounced, complained, got 'cold'")
    ]
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "optout@example.com": "unsubscribed",
        "fatima.alzahra@example.org": "complained",
        "wang.fang@example.net": "bounced",
        "not.confirmed@example.org": "pending",
    }
    ada = store.get_subscriber("reader.active@example.com")
    assert (ada.name, ada.language, ada.consent_at.isoformat()) == (
        "Ada Lovelace",
        "en",
        "2023-01-17T11:43:55+00:00",
    )


def test_beehiiv_statuses_unsubscribe_dates_and_utc_dates(tmp_path: Path, store: Store) -> None:
    report = import_csv(store, FIXTURES / "beehiiv.csv")
    assert report.format == "beehiiv"
    assert refusals(report) == [
        (
            9,
            "column 'status': expected one of active, pending, validating, needs_attention, inactive, invalid, "
            "got 'archived'",
        )
    ]
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "optout@example.com": "unsubscribed",
        "fatima.alzahra@example.org": "pending",
        "wang.fang@example.net": "pending",
        "bad.address@example.net": "bounced",
        "review.me@example.org": "pending",
    }
    ada = store.get_subscriber("reader.active@example.com")
    assert ada.consent_at.isoformat() == "2023-03-24T10:23:10+00:00"
    assert store.get_subscriber("jurgen.mueller@example.net").name == "Jürgen Müller"
    assert store.get_subscriber("fatima.alzahra@example.org").language == "ar"
    # an unsubscribe date on an otherwise active row wins
    late = tmp_path / "beehiiv-late.csv"
    late.write_text(
        "email,status,tier,created_at,unsubscribed_at\n"
        "late@example.org,active,free,2023-03-24 10:23:10 UTC,2024-02-29 16:20:00 UTC\n",
        encoding="utf-8",
    )
    import_csv(store, late)
    assert store.get_subscriber("late@example.org").status == "unsubscribed"


def test_listmonk_statuses_attributes_and_go_times(tmp_path: Path, store: Store) -> None:
    report = import_csv(store, FIXTURES / "listmonk.csv")
    assert report.format == "listmonk"
    assert refusals(report) == [
        (7, "column 'status': expected one of enabled, disabled, blocklisted, got 'paused'")
    ]
    assert statuses(store) == {
        "reader.active@example.com": "active",
        "jurgen.mueller@example.net": "active",
        "fatima.alzahra@example.org": "unsubscribed",
        "wang.fang@example.net": "unsubscribed",
        "bounced.hard@example.net": "unsubscribed",
    }
    ada = store.get_subscriber("reader.active@example.com")
    assert (ada.name, ada.language) == ("Ada Lovelace", "en")
    assert ada.consent_at.isoformat() == "2024-07-29T05:31:31.478677+00:00"
    assert ada.attributes["city"] == "London"
    # a list export with its subscription status added: unsubscribed from the list wins over enabled
    listed = tmp_path / "listmonk-list.csv"
    listed.write_text(
        "uuid,email,name,attributes,status,created_at,updated_at,subscription_status\n"
        "u1,left@example.org,Left,{},enabled,2024-08-02 07:00:00 +0530 IST,2024-08-02 07:00:00 +0000 UTC,unsubscribed\n",
        encoding="utf-8",
    )
    import_csv(store, listed)
    left = store.get_subscriber("left@example.org")
    assert left.status == "unsubscribed"
    assert left.consent_at.isoformat() == "2024-08-02T01:30:00+00:00"


def test_a_complaint_is_never_replaced_by_an_import(store: Store) -> None:
    store.add_subscriber("reader.active@example.com", status="complained")
    for name in ("ghost.csv", "kit.csv", "beehiiv.csv", "listmonk.csv", "buttondown.csv"):
        import_csv(store, FIXTURES / name)
    assert store.get_subscriber("reader.active@example.com").status == "complained"


def test_format_overrides_detection(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,status\ngone@example.org,inactive\n", encoding="utf-8")
    assert refusals(import_csv(store, path)) == [
        (
            2,
            "column 'status': expected one of active, pending, unsubscribed, bounced, complained, got 'inactive'",
        )
    ]
    assert import_csv(store, path, format="beehiiv").format == "beehiiv"
    assert store.get_subscriber("gone@example.org").status == "unsubscribed"


def test_dry_run_shows_format_mapping_and_counts_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "letter"
    root.mkdir()
    (root / "newsletter.toml").write_text(
        '[newsletter]\nname = "T"\nbase_url = "https://t.example.org/"\npostal_address = "1 Street"\n'
        '[email]\nfrom = "T <t@example.org>"\nlist_id = "t.example.org"\n',
        encoding="utf-8",
    )
    path = FIXTURES / "beehiiv.csv"
    result = CliRunner().invoke(
        main,
        ["--root", str(root), "subscribers", "import", str(path), "--dry-run"],
        env={"NEWSLETTER_DATABASE_URL": ""},
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "format: beehiiv (beehiiv)",
        "status column: 'status'",
        "  active           -> active",
        "  pending          -> pending",
        "  validating       -> pending",
        "  needs_attention  -> pending",
        "  inactive         -> unsubscribed",
        "  invalid          -> bounced",
        "opt-out column: unsubscribed_at not empty → unsubscribed",
        f"refused    {path}:9: column 'status': expected one of active, pending, validating, needs_attention, "
        "inactive, invalid, got 'archived'",
        "8 rows: 2 active, 1 bounced, 3 pending, 1 unsubscribed, 1 refused (dry run: nothing written)",
    ]
    assert not (root / "subscribers").exists()  # no database was even created
    mailchimp = plan_import(MAILCHIMP[1])
    assert (mailchimp.platform.name, mailchimp.file_status, dict(mailchimp.statuses)) == (
        "mailchimp",
        "unsubscribed",
        {"unsubscribed": 2},
    )


def test_readme_import_table_is_the_one_the_tables_make() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = markdown_table()
    assert table in readme, (
        "README.md's import table differs: paste newsletter.audience.imports.markdown_table()"
    )
    for platform in PLATFORMS.values():
        assert f"(`{platform.name}`)" in table


def test_an_address_list_with_a_state_column_is_not_taken_for_kit(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name,state\nann@example.org,Ann,CA\n", encoding="utf-8")
    report = import_csv(store, path)
    assert (report.format, report.refused) == ("generic", [])
    assert store.get_subscriber("ann@example.org").attributes == {"state": "CA"}
