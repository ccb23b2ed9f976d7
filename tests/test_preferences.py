"""Readers choose: the languages the subscribe form offers, and the preferences page every email links to."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from newsletter import tokens
from newsletter.content.library import load_library
from newsletter.delivery.plan import plan_send
from newsletter.delivery.sending import send_issue
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.web.preferences import offered_languages, preselected
from newsletter.web.ratelimit import Limit, RateLimits
from tests.support.project import GOOD
from tests.support.sending import parse
from tests.support.web import SECRET, Served, autosubmit, browse, path_of

ISSUE = "2024-01-10-first"
NEXT_ISSUE = "2024-01-17-arabic"


@pytest.fixture
def web(serve_app) -> Served:
    return serve_app(content=GOOD)


def preferences_path(subscriber_id: int, secret: str = SECRET) -> str:
    return f"/p/{tokens.preferences_token(secret.encode(), subscriber_id)}"


def add_reader(web: Served, address: str, **kw) -> int:
    return web.store.add_subscriber(address, status="active", **kw).id


def save(web: Served, path: str, fields: dict[str, str], headers: dict[str, str] | None = None):
    return web.post_form(path, {"save": "yes", **fields}, headers)


def selected(body: str) -> str:
    [value] = re.findall(r'<option value="([^"]+)"[^>]* selected>', body)
    return value


def status_events(web: Served, address: str) -> list[dict]:
    return web.store.list_events(email=address, type="status")


# --------------------------------------------------------------------------- the languages offered


def test_offered_languages_are_the_newsletters_own_then_catalogues_and_translations(web: Served) -> None:
    # templates/locale/ has ar, de, en, zh; the fixture issues have no translation yet
    assert offered_languages(web.settings) == ["en", "ar", "de", "zh"]
    (web.settings.issues_dir / f"{ISSUE}.fr.md").write_text("---\nsubject: Numéro 1\n---\nBonjour.\n")
    (web.settings.issues_dir / "notes.fr.md").write_text("not a translation: no original\n")
    assert offered_languages(web.settings) == ["en", "ar", "de", "fr", "zh"]


def test_preselection_follows_bcp_47_lookup() -> None:
    offered = ["en", "ar", "de", "zh-Hant"]
    assert preselected(offered, ["de-AT", "en"]) == "de"
    assert preselected(offered, ["pt-BR", "ar-EG"]) == "ar"  # the first wanted one we have
    assert preselected(offered, ["zh-Hans"]) == "en"  # never another script
    assert preselected(offered, [None]) == "en"


def test_the_subscribe_form_offers_the_languages_preselected_from_accept_language(web: Served) -> None:
    german = web.request("GET", "/subscribe", headers={"Accept-Language": "fr-CH, de-AT;q=0.8, en;q=0.5"})
    assert '<select id="language" name="language">' in german.body
    assert re.findall(r'<option value="([^"]+)"', german.body) == ["en", "ar", "de", "zh"]
    assert '<option value="de" lang="de" selected>Deutsch</option>' in german.body
    assert '<option value="ar" lang="ar">العربية</option>' in german.body
    assert selected(web.request("GET", "/", headers={"Accept-Language": "pt-BR"}).body) == "en"
    assert selected(web.request("GET", "/", headers={"Accept-Language": "ar-EG,ar;q=0.9"}).body) == "ar"

    answer = web.post_form("/subscribe", {"email": "lina@example.org", "language": "ar"})
    assert answer.status == 200
    pending = web.subscriber("lina@example.org")
    assert (pending.status, pending.language) == ("pending", "ar")


# --------------------------------------------------------------------------- the page


def test_every_email_links_to_the_readers_own_preferences_page(web: Served) -> None:
    sid = add_reader(web, "ada@example.org", name="Ada")
    sent = send(web, ISSUE)
    [message] = sent.messages
    text = message.message.get_body(("plain",)).get_content()
    html_part = message.message.get_body(("html",)).get_content()
    [link] = re.findall(r"Change your language or name: (\S+)", text)
    assert link.startswith(web.url + "p/") and f'<a href="{link}"' in html_part
    token = link.rsplit("/", 1)[1]
    assert tokens.read_token(SECRET.encode(), tokens.PREFERENCES, token) == str(sid)
    with pytest.raises(tokens.InvalidToken):  # not an unsubscribe link, nor the other way round
        tokens.read_token(SECRET.encode(), tokens.UNSUBSCRIBE, token)
    assert token not in str(message.message["List-Unsubscribe"])


def test_get_shows_language_and_name_in_the_readers_language_and_changes_nothing(web: Served) -> None:
    sid = add_reader(web, "omar@example.org", name="عمر", language="ar-EG")
    for _ in range(2):
        page = web.request("GET", preferences_path(sid))
        assert page.status == 200
        assert '<html lang="ar" dir="rtl">' in page.body and "تفضيلاتك" in page.body
        assert "omar@example.org" in page.body and 'value="عمر"' in page.body
        assert selected(page.body) == "ar"  # ar-EG is served by ar
        assert page.headers["Cache-Control"] == "no-store" and page.headers.get("Set-Cookie") is None
    reader = web.subscriber(sid)
    assert (reader.language, reader.name, reader.status) == ("ar-EG", "عمر", "active")
    assert status_events(web, "omar@example.org") == []


def test_post_changes_language_and_name_cleaned_and_capped(web: Served) -> None:
    sid = add_reader(web, "ana@example.org", name="Ana", language="en")
    answer = save(web, preferences_path(sid), {"language": "DE", "name": " Ana\x00 María\u0085 " + "x" * 300})
    assert answer.status == 200
    assert '<html lang="de" dir="ltr">' in answer.body and "Gespeichert." in answer.body
    reader = web.subscriber(sid)
    assert reader.language == "de"
    assert reader.name == ("Ana María " + "x" * 300)[:200] and "\x00" not in reader.name
    assert selected(answer.body) == "de"

    cleared = save(web, preferences_path(sid), {"language": "zh", "name": "  "})
    assert cleared.status == 200
    assert (web.subscriber(sid).language, web.subscriber(sid).name) == ("zh", None)


@pytest.mark.parametrize("language", ["fr", "xx-YY", "", "de<script>"])
def test_a_language_the_newsletter_does_not_offer_is_refused(web: Served, language: str) -> None:
    sid = add_reader(web, "ana@example.org", name="Ana", language="en")
    answer = save(web, preferences_path(sid), {"language": language, "name": "Eve"})
    assert answer.status == 400
    assert "Please choose one of the languages in the list." in answer.body
    assert "<script>" not in answer.body
    reader = web.subscriber(sid)
    assert (reader.language, reader.name) == ("en", "Ana")


def test_unsubscribing_from_the_page_goes_through_the_lifecycle(web: Served) -> None:
    sid = add_reader(web, "leo@example.org", language="de")
    answer = web.post_form(preferences_path(sid), {"unsubscribe": "yes"})
    assert answer.status == 200 and "Sie haben abbestellt" in answer.body
    assert web.subscriber(sid).status == "unsubscribed"
    [event] = status_events(web, "leo@example.org")
    assert event["detail"] == {"from": "active", "to": "unsubscribed", "reason": "preferences page"}
    # the page now says so, and a later save changes nothing
    assert "Sie haben abbestellt" in web.request("GET", preferences_path(sid)).body
    assert save(web, preferences_path(sid), {"language": "en"}).status == 200
    assert web.subscriber(sid).language == "de"


def test_every_bad_token_gets_the_same_page(web: Served) -> None:
    sid = add_reader(web, "safe@example.org", name="Safe")
    gone = add_reader(web, "gone@example.org")
    web.store.remove_subscriber(gone)
    paths = [
        preferences_path(sid, "not the secret, but long enough 0123456789"),
        f"/p/{tokens.unsubscribe_token(SECRET.encode(), sid)}",  # another purpose
        preferences_path(gone),  # a real link of an erased reader
        preferences_path(sid)[:-2] + "AA",
        "/p/x",
    ]
    bodies = set()
    for path in paths:
        for method in ("GET", "POST"):
            answer = web.request(method, path) if method == "GET" else save(web, path, {"language": "de"})
            assert answer.status == 400, (path, method)
            bodies.add(answer.body)
    assert len(bodies) == 1 and "This link is not valid." in bodies.pop()
    reader = web.subscriber(sid)
    assert (reader.language, reader.name, reader.status) == (None, "Safe", "active")


def test_a_cross_site_post_is_refused(web: Served) -> None:
    sid = add_reader(web, "ana@example.org", language="en")
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    ):
        assert save(web, preferences_path(sid), {"language": "de"}, headers).status == 403, headers
        assert web.post_form(preferences_path(sid), {"unsubscribe": "yes"}, headers).status == 403
    own = save(web, preferences_path(sid), {"language": "de"}, {"Origin": web.url.rstrip("/")})
    assert own.status == 200
    assert (web.subscriber(sid).language, web.subscriber(sid).status) == ("de", "active")


def test_posts_are_rate_limited_per_client(serve_app) -> None:
    web = serve_app(RateLimits(per_ip=Limit(burst=2, every=3600)), content=GOOD)
    sid = add_reader(web, "ana@example.org")
    assert [save(web, preferences_path(sid), {"language": "de"}).status for _ in range(3)] == [200, 200, 429]
    limited = save(web, preferences_path(sid), {"language": "ar"})
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    assert web.subscriber(sid).language == "de"


def test_an_unknown_form_changes_nothing(web: Served) -> None:
    sid = add_reader(web, "ana@example.org", language="en")
    assert web.post_form(preferences_path(sid), {"language": "de"}).status == 400  # no save=yes
    assert web.subscriber(sid).language == "en"


# --------------------------------------------------------------------------- in a real browser


def send(web: Served, slug: str) -> MemoryTransport:
    """A real send of `slug` to the list, through the ledger; the messages stay in memory."""
    library = load_library(web.settings)
    transport = MemoryTransport()
    send_issue(plan_send(web.settings, library, library.issue(slug), transport=transport), web.store)
    return transport


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_a_reader_changes_language_in_a_real_browser_and_the_next_send_follows(
    serve_app, tmp_path: Path
) -> None:
    scripts: dict[str, str] = {}
    web = serve_app(wrap=autosubmit(scripts), content=GOOD)
    sid = add_reader(web, "browser@example.org", name="Bea", language="en")
    [message] = send(web, ISSUE).messages
    assert parse(message.raw)["Content-Language"] == "en"
    [link] = re.findall(
        r"Change your language or name: (\S+)", message.message.get_body(("plain",)).get_content()
    )

    scripts[path_of(link)] = (
        "document.getElementById('language').value = 'de'; document.querySelector('form button').click()"
    )
    page = browse(link + "?autosubmit=1", tmp_path / "profile")
    assert "Gespeichert. Die nächste Ausgabe folgt diesen Einstellungen." in page, page
    assert '<html lang="de" dir="ltr">' in page
    reader = web.subscriber(sid)
    assert (reader.language, reader.name, reader.status) == ("de", "Bea", "active")

    # the next send reads the reader's language as it is now, and gives them its German translation
    (web.settings.issues_dir / f"{NEXT_ISSUE}.de.md").write_text(
        "---\nsubject: Ausgabe 2 — arabische Dialekte\n---\nWillkommen zur **zweiten Ausgabe**.\n",
        encoding="utf-8",
    )
    [message] = send(web, NEXT_ISSUE).messages
    [row] = web.store.ledger(NEXT_ISSUE)
    assert (row.email, row.language, row.state) == ("browser@example.org", "de", "sent")
    msg = parse(message.raw)
    assert (msg["Content-Language"], str(msg["Subject"])) == ("de", "Ausgabe 2 — arabische Dialekte")
    assert "Hallo Bea," in msg.get_body(("plain",)).get_content()
