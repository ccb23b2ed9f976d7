"""`newsletter report`: its numbers against the ledger rows and events made here, its page in Chromium.

The events are SES's own examples (tests/fixtures/events/README.md), aimed at this
ledger's messages; the page is parsed with lxml and the figures read back from it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import lxml.html
import pytest

from newsletter.audience.events import process_notification
from newsletter.config import load_settings
from newsletter.content.translations import original_hash
from newsletter.store import Store, SubscriberRow
from newsletter.store.schema import deliveries
from tests.support.project import FIXTURES, make_newsletter, run
from tests.support.sending import ISSUE, SECRET

EVENTS = FIXTURES / "events"
ARABIC = "2024-01-17-arabic"
EVIL_ERROR = '550 <img src="https://tracker.example.net/x.png" onerror="alert(1)"> mailbox unknown'
LANGUAGES = ["en"] * 5 + ["ar"] * 3 + ["de"] * 2
TRANSLATIONS = {"ar": "العدد الأول", "de": "Die erste Ausgabe"}  # so readers get the issue in three languages


def event(name: str, row, *, after: float = 3600, **section: object) -> dict:
    """Fixture `name`, in its own wrapping, about `row`'s message and address, `after` seconds after it was sent."""
    data = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    if data.get("Type") == "Notification":
        record = json.loads(data["Message"])
    else:
        record = copy.deepcopy(data["detail"] if "detail-type" in data else data)
    kind = record["eventType"].lower()
    record["mail"]["messageId"] = row.message_id
    record["mail"]["timestamp"] = row.sent_at.isoformat().replace("+00:00", "Z")
    part = record[kind]
    part["timestamp"] = (row.sent_at + timedelta(seconds=after)).isoformat().replace("+00:00", "Z")
    if kind == "bounce":
        part["bouncedRecipients"] = [{**part["bouncedRecipients"][0], "emailAddress": row.email}]
    elif kind == "complaint":
        part["complainedRecipients"] = [{"emailAddress": row.email}]
    elif kind == "delivery":
        part["recipients"] = [row.email]
    part.update(section)
    if data.get("Type") == "Notification":
        return {**data, "Message": json.dumps(record)}
    return {**data, "detail": record} if "detail-type" in data else record


def lost_answer(store: Store, row_id: int) -> None:
    """The row as a send leaves it when SES's answer was lost: still `sending`, outcome uncertain."""
    with store.engine.begin() as conn:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id == row_id)
            .values(state="sending", outcome="uncertain", error="connection reset after DATA")
        )


def click(row, paper: str, *, after: float = 5400, link: str | None = None) -> dict:
    url = link or f"https://example.org/digest/papers/{paper}/"
    return event("click-paper-tag-sns.json", row, after=after, link=url, linkTags={"paper": [paper]})


@pytest.fixture
def newsletter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The first issue sent to 10 readers (5 en, 3 ar, 2 de), then the events of the send applied."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    folder = make_newsletter(tmp_path, extra_toml="\n[ses]\nengagement = true\n")
    made_from = original_hash(folder / "issues" / f"{ISSUE}.md")
    for language, title in TRANSLATIONS.items():
        (folder / "issues" / f"{ISSUE}.{language}.md").write_text(
            f'---\ntitle: "{title}"\nsubject: "{title}"\ntranslated_from: {made_from}\n---\n{title}.\n',
            encoding="utf-8",
        )
    settings = load_settings(folder, env={})
    with Store.open(settings.database_url) as store:
        store.upsert_many(
            [
                SubscriberRow(email=f"reader{n}@example.com", language=language, status="active")
                for n, language in enumerate(LANGUAGES)
            ]
        )
    args = ("send", ISSUE, "--transport", "file", "--outbox", str(tmp_path / "o"), "--yes", "--no-spam-score")
    result = run(folder, *args)
    assert result.exit_code == 0, result.output
    store = Store.open(settings.database_url)
    rows = sorted(store.ledger(ISSUE), key=lambda d: d.email)
    # what the send's answers would have said for two readers (a refusal, a lost answer)
    store.mark_failed(ISSUE, rows[9].subscriber_id, "permanent", EVIL_ERROR)
    lost_answer(store, rows[8].id)
    on = {"engagement": True}
    for row in rows[:6]:
        process_notification(store, event("delivery-eventbridge.json", row, after=2), **on)
    process_notification(store, event("bounce-permanent-sns.json", rows[6], after=5), **on)
    process_notification(store, event("complaint-sns.json", rows[7], after=7200), **on)
    for row in rows[:4]:
        process_notification(store, event("open-sns.json", row), **on)
    process_notification(store, event("open-sns.json", rows[4], ipAddress="17.58.63.200"), **on)  # Apple MPP
    process_notification(store, click(rows[0], "cjk-tokenizers"), **on)
    process_notification(store, click(rows[1], "cjk-tokenizers"), **on)
    process_notification(store, click(rows[2], "2401_00001"), **on)
    for n, paper in enumerate(
        ("cjk-tokenizers", "2401_00001", "arabic-dialects")
    ):  # a scanner, seconds after sending
        process_notification(store, click(rows[3], paper, after=2 + n * 0.2), **on)
    yield folder, store, rows
    store.close()


def figures(html: str) -> dict[str, str]:
    page = lxml.html.fromstring(html)
    return {cell.get("data-figure"): cell.text_content().strip() for cell in page.xpath("//*[@data-figure]")}


def write_report(folder: Path, *args: str) -> str:
    result = run(folder, "report", *args)
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1].removeprefix("Wrote "))
    path = path if path.is_absolute() else folder / path
    return path.read_text(encoding="utf-8")


def test_the_reports_numbers_are_the_ledgers(newsletter) -> None:
    folder, _, _ = newsletter
    html = write_report(folder, ISSUE, "--out", str(folder / "r.html"))
    found = figures(html)
    assert {
        k: found[k]
        for k in ("recipients", "sent", "delivered", "bounces", "complaints", "failed", "uncertain")
    } == {
        "recipients": "10",
        "sent": "8",
        "delivered": "6",
        "bounces": "1",
        "complaints": "1",
        "failed": "1",
        "uncertain": "1",
    }
    # rates are shares of the 8 sent; readers only: the Apple prefetch and the scanner are left out
    assert (found["delivery_rate"], found["bounce_rate"], found["complaint_rate"]) == (
        "75.0 %",
        "12.5 %",
        "12.5 %",
    )
    assert (found["open_rate"], found["click_rate"]) == ("50.0 %", "37.5 %")
    page = lxml.html.fromstring(html)
    # over SES's review thresholds: shown as a warning
    assert "warn" in page.xpath('//*[@data-figure="bounce_rate"]')[0].get("class")
    assert "1 machine" in page.text_content() and "3 machine clicks" in page.text_content()
    papers = {cell.get("data-paper"): cell.text_content() for cell in page.xpath("//*[@data-paper]")}
    assert papers == {"cjk-tokenizers": "2", "2401.00001": "1", "arabic-dialects": "0"}
    titles = [row.xpath("td[1]")[0].text_content() for row in page.xpath('//table[@id="papers"]/tr[td]')]
    assert titles[0].startswith("中文分词与多语言分词器")
    # an untrusted title is text, never markup
    assert "Cross-Lingual Transfer with <script>alert(1)</script> {{ 7*7 }} </mj-text>" in titles
    assert page.xpath("//script") == []
    languages = {cell.get("data-language"): cell.text_content() for cell in page.xpath("//*[@data-language]")}
    assert languages == {"ar": "3", "de": "0", "en": "5"}  # sent: both German readers failed or are uncertain
    problems = [
        [td.text_content() for td in row.xpath("td")] for row in page.xpath('//table[@id="problems"]/tr[td]')
    ]
    assert sorted(p[:3] for p in problems) == [
        ["reader8@example.com", "uncertain", "uncertain"],
        ["reader9@example.com", "failed", "permanent"],
    ]
    assert EVIL_ERROR in [p[3] for p in problems]
    assert page.xpath("//img") == []


def test_the_page_is_self_contained_with_inline_svg_charts(newsletter) -> None:
    folder, _, _ = newsletter
    html = write_report(folder, ISSUE)
    assert (folder / "build" / ISSUE / "report.html").is_file()
    page = lxml.html.fromstring(html)
    assert len(page.xpath("//svg")) == 4  # sent per minute, rates, clicks per paper, languages
    assert page.xpath('//svg[@aria-label="Clicks per paper"]//text')
    fetched = page.xpath(
        "//@src | //link/@href | //@xlink:href", namespaces={"xlink": "http://www.w3.org/1999/xlink"}
    )
    assert [u for u in fetched if not u.startswith("#")] == []
    assert [h for h in page.xpath("//a/@href") if h.startswith(("http:", "https:", "//"))] == []
    assert re.findall(r"url\((?!#)", html) == [] and "@import" not in html  # only the page's own #ids
    csp = page.xpath('//meta[@http-equiv="Content-Security-Policy"]/@content')
    assert csp and "default-src 'none'" in csp[0]
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html and "<metadata>" not in html


def test_a_right_to_left_issue_keeps_its_language_and_direction(newsletter) -> None:
    folder, store, _ = newsletter
    store.create_ledger(ARABIC)
    for row in store.ledger(ARABIC)[:2]:
        store.mark_sent(ARABIC, row.subscriber_id, f"ar-{row.subscriber_id}")
    page = lxml.html.fromstring(write_report(folder, ARABIC))
    assert page.get("lang") == "en" and page.get("dir") == "ltr"  # the report's own words
    [title] = page.xpath("//h1/bdi")
    assert (title.get("lang"), title.get("dir"), title.text_content()) == ("ar", "rtl", "العدد الثاني")
    assert figures(lxml.html.tostring(page, encoding="unicode"))["sent"] == "2"


def test_every_issue_over_time(newsletter) -> None:
    folder, store, rows = newsletter
    assert run(folder, "subscribers", "unsubscribe", rows[0].email).exit_code == 0
    store.create_ledger(ARABIC)
    for row in store.ledger(ARABIC)[:3]:
        store.mark_sent(ARABIC, row.subscriber_id, f"ar-{row.subscriber_id}")
    html = write_report(folder, "--all")
    page = lxml.html.fromstring(html)
    lines = {
        row.get("data-issue"): {c.get("data-figure"): c.text_content() for c in row.xpath("td[@data-figure]")}
        for row in page.xpath('//table[@id="issues"]/tr[@data-issue]')
    }
    assert lines[ISSUE] == {
        "sent": "8",
        "open_rate": "50.0 %",
        "click_rate": "37.5 %",
        "list_size": "10",
        "unsubscribes": "1",
    }
    assert lines[ARABIC] == {
        "sent": "3",
        "open_rate": "–",
        "click_rate": "–",
        "list_size": "9",
        "unsubscribes": "0",
    }
    assert page.xpath('//svg[contains(@aria-label, "per issue")]')


def test_usage_mistakes_are_one_line_errors(newsletter) -> None:
    folder, _, _ = newsletter
    neither = run(folder, "report")
    assert neither.exit_code == 1 and "name one ISSUE, or pass --all" in neither.output
    unsent = run(folder, "report", ARABIC)
    assert unsent.exit_code == 1
    assert f"{ARABIC}: no send recorded for this issue" in unsent.output
    assert "Traceback" not in unsent.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_chromium_draws_the_report_with_the_network_blocked(newsletter, tmp_path: Path) -> None:
    from PIL import Image

    folder, _, _ = newsletter
    write_report(folder, ISSUE, "--out", str(tmp_path / "report.html"))
    shot = tmp_path / "report.png"
    blocked = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"]
    common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *blocked,
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,2400"]  # fmt: skip
    result = subprocess.run(
        [*common, f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (900, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 50  # drawn: text, bars and lines, not a blank page
    assert any(r < 60 and g < 130 and b > 200 for _, (r, g, b) in colours)  # the charts' blue bars
    dom = subprocess.run(
        [*common, "--dump-dom", (tmp_path / "report.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0
    rendered = lxml.html.fromstring(dom.stdout)
    assert len(rendered.xpath("//svg")) == 4
    assert figures(dom.stdout)["sent"] == "8"
