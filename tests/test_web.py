"""The subscription web app, served for real by waitress on 127.0.0.1 and used over HTTP."""

from __future__ import annotations

import email
import html
import http.client
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path
from urllib.parse import urljoin

import pytest
from click.testing import CliRunner

from newsletter import tokens
from newsletter.audience.lifecycle import change_status
from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store import Store
from newsletter.web.app import create_app
from newsletter.web.ratelimit import Limit, RateLimits
from tests.support.project import REPO
from tests.support.web import (
    SECRET,
    Answer,
    Served,
    autosubmit,
    browse,
    free_socket,
    path_of,
    write_newsletter,
)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@pytest.fixture
def web(serve_app) -> Served:
    return serve_app()


def confirm_link(message: email.message.EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"(http://\S+/confirm\?token=\S+)", text)
    assert match, text
    return match.group(1)


def press_confirm(web: Served, link: str) -> Answer:
    """Open the confirmation link's page, then press its button (POST the page's own form)."""
    page = web.request("GET", path_of(link))
    assert page.status == 200, page.body
    form = re.search(
        r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="token" value="([^"]+)">',
        page.body,
    )
    assert form, page.body
    action = urljoin(link, html.unescape(form.group(1)))
    return web.post_form(path_of(action), {"token": html.unescape(form.group(2))})


def add_active(web: Served, address: str, **kw) -> int:
    return web.store.add_subscriber(address, status="active", **kw).id


def unsubscribe_path(subscriber_id: int) -> str:
    return f"/u/{tokens.unsubscribe_token(SECRET.encode(), subscriber_id)}"


def multipart(fields: dict[str, str], boundary: str = "----newsletter-test-boundary") -> tuple[bytes, str]:
    lines = []
    for name, value in fields.items():
        lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode(), f"multipart/form-data; boundary={boundary}"


def status_events(web: Served, address: str) -> list[dict]:
    return web.store.list_events(email=address, type="status")


# --------------------------------------------------------------------------- basics


def test_healthz_and_security_headers_on_every_response(web: Served) -> None:
    answers = {
        "healthz": web.request("GET", "/healthz"),
        "form": web.request("GET", "/"),
        "404": web.request("GET", "/nope"),
        "405": web.request("HEAD", "/healthz"),
        "400": web.request("GET", "/u/forged.token"),
    }
    assert answers["healthz"].status == 200 and answers["healthz"].body == "ok\n"
    assert answers["404"].status == 404 and "This page does not exist." in answers["404"].body
    for name, answer in answers.items():
        for header, value in HEADERS.items():
            assert value in (answer.headers.get(header) or ""), (name, header, answer.headers)
        assert "style-src 'unsafe-inline'" in answer.headers["Content-Security-Policy"]
        assert answer.headers.get("Set-Cookie") is None


def test_head_and_unknown_methods_are_405_with_allow(web: Served) -> None:
    head = web.request("HEAD", "/u/anything")
    put = web.request("PUT", "/subscribe", b"x")
    delete = web.request("DELETE", "/confirm")
    assert head.status == 405 and head.headers["Allow"] == "GET, POST"
    assert put.status == 405 and put.headers["Allow"] == "GET, POST"
    assert delete.status == 405 and delete.headers["Allow"] == "GET, POST"
    assert "does not accept this kind of request" in put.body


def test_subscribe_form_is_accessible_and_localised(web: Served) -> None:
    english = web.request("GET", "/subscribe")
    german = web.request("GET", "/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    arabic = web.request("GET", "/?language=ar")
    assert '<html lang="en" dir="ltr">' in english.body
    assert '<label for="email">Email address</label>' in english.body
    assert 'name="website"' in english.body and 'aria-hidden="true"' in english.body
    assert '<html lang="de" dir="ltr">' in german.body and "Abonnieren" in german.body
    assert '<html lang="ar" dir="rtl">' in arabic.body and "اشترك" in arabic.body


# --------------------------------------------------------------------------- subscribe and confirm


def test_subscribe_sends_a_confirmation_whose_link_activates(web: Served) -> None:
    answer = web.post_form("/subscribe", {"email": "Ann@Example.ORG", "name": "Ånn Ö", "language": "de"})
    assert answer.status == 200 and "Bitte sehen Sie in Ihr Postfach" in answer.body
    pending = web.subscriber("ann@example.org")
    assert pending.status == "pending" and pending.source == "web" and pending.consent_at is None
    assert pending.name == "Ånn Ö" and pending.language == "de"

    [sent] = web.transport.messages
    assert sent.sender == "digest@example.org" and sent.recipient == "Ann@example.org"
    msg = sent.message
    assert msg["From"] == "Test Digest <digest@example.org>"
    assert msg["To"] == "Ann@example.org"  # the name typed into the form is not mailed
    assert "Ånn" not in msg.get_body(("plain",)).get_content() and "Ånn".encode() not in sent.raw
    assert msg["Subject"] == "Bitte bestätigen Sie Ihr Abonnement von Test Digest"
    assert msg["Date"] and re.fullmatch(r"<[^<>@\s]+@example\.org>", msg["Message-ID"])
    assert msg["Content-Language"] == "de" and msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(not part.defects for part in msg.walk())
    assert b"\r\n" in sent.raw and all(len(line) <= 998 for line in sent.raw.split(b"\r\n"))
    assert sent.raw.count(b"MIME-Version:") == 1
    link = confirm_link(msg)
    assert link.startswith(web.url + "confirm?token=")
    assert f'href="{link}"' in msg.get_body(("html",)).get_content()

    # Opening the link (what a mail scanner does, too) only shows the button.
    for _ in range(2):
        page = web.request("GET", path_of(link))
        assert page.status == 200 and '<html lang="de" dir="ltr">' in page.body
        assert "Abonnement bestätigen</button>" in page.body and "Ann@example.org" in page.body
    assert web.subscriber("ann@example.org").status == "pending"
    assert status_events(web, "ann@example.org") == []

    confirmed = press_confirm(web, link)
    assert confirmed.status == 200 and "Ann@example.org" in confirmed.body
    active = web.subscriber("ann@example.org")
    assert active.status == "active" and active.consent_at is not None

    replay = web.post_form("/confirm", {"token": link.split("token=")[1]})  # the button, pressed again
    assert replay.status == 200 and "Ann@example.org" in replay.body
    assert web.subscriber("ann@example.org").consent_at == active.consent_at  # idempotent
    # Once active, the link's page says so instead of offering the button again.
    again = web.request("GET", path_of(link))
    assert again.status == 200 and "<form" not in again.body and "Ann@example.org" in again.body
    assert len(status_events(web, "ann@example.org")) == 1


def test_confirmation_through_the_file_transport(serve_app, tmp_path: Path) -> None:
    from newsletter.delivery.transports.file import FileTransport

    outbox = tmp_path / "outbox"
    web = serve_app(transport=FileTransport(outbox, fsync=False))
    assert web.post_form("/subscribe", {"email": "file@example.org"}).status == 200
    [eml] = list(outbox.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "file@example.org"
    assert press_confirm(web, confirm_link(message)).status == 200
    assert web.subscriber("file@example.org").status == "active"


def test_the_answer_is_the_same_whether_or_not_the_address_is_known(web: Served) -> None:
    add_active(web, "known@example.org")
    gone = add_active(web, "gone@example.org")
    change_status(web.store, gone, "unsubscribed", "editor", reason="test")
    bodies = {}
    for address in ("new@example.org", "known@example.org", "gone@example.org"):
        answer = web.post_form("/subscribe", {"email": address})
        assert answer.status == 200
        bodies[address] = answer.body.replace(address, "ADDRESS")
    assert len(set(bodies.values())) == 1
    # Only the new address gets mail; nothing is re-activated.
    assert web.transport.recipients == ["new@example.org"]
    assert web.subscriber("gone@example.org").status == "unsubscribed"
    assert web.subscriber("known@example.org").status == "active"


def test_a_second_subscribe_of_a_pending_address_within_a_day_mails_nothing(web: Served) -> None:
    answers = [web.post_form("/subscribe", {"email": "twice@example.org"}) for _ in range(2)]
    assert [a.status for a in answers] == [200, 200] and answers[0].body == answers[1].body
    assert web.transport.recipients == ["twice@example.org"]
    assert web.subscriber("twice@example.org").status == "pending"


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("not-an-address", "An email address must have an @-sign"),
        ("bad@", "There must be something after the @-sign"),
        ("josé@example.org", "non-ASCII characters"),
        ("", "Please enter your email address."),
    ],
)
def test_an_invalid_address_gets_400_naming_the_problem(web: Served, address: str, problem: str) -> None:
    answer = web.post_form("/subscribe", {"email": address})
    assert answer.status == 400
    assert problem in answer.body
    assert web.transport.messages == []


def test_the_honeypot_answers_like_success_and_does_nothing(web: Served) -> None:
    answer = web.post_form("/subscribe", {"email": "bot@example.org", "website": "http://spam.example"})
    assert answer.status == 200 and "Check your inbox" in answer.body
    assert web.subscriber("bot@example.org") is None
    assert web.transport.messages == []


def test_a_cross_site_subscribe_is_refused(web: Served) -> None:
    evil = web.post_form("/subscribe", {"email": "x@example.org"}, {"Origin": "https://evil.example"})
    null = web.post_form("/subscribe", {"email": "y@example.org"}, {"Origin": "null"})
    referer = web.post_form("/subscribe", {"email": "z@example.org"}, {"Referer": "https://evil.example/f"})
    assert (evil.status, null.status, referer.status) == (403, 403, 403)
    assert "can only be sent from https://digest.example.org/" in evil.body
    for address in ("x@example.org", "y@example.org", "z@example.org"):
        assert web.subscriber(address) is None
    # From the archive site (base_url) or the app itself: fine.
    archive = web.post_form(
        "/subscribe", {"email": "a@example.org"}, {"Origin": "https://digest.example.org"}
    )
    own = web.post_form("/subscribe", {"email": "b@example.org"}, {"Referer": web.url + "subscribe"})
    assert (archive.status, own.status) == (200, 200)
    assert web.transport.recipients == ["a@example.org", "b@example.org"]


def test_rate_limits_per_client_and_per_address(serve_app) -> None:
    web = serve_app(
        limits=RateLimits(per_ip=Limit(burst=4, every=3600), per_address=Limit(burst=1, every=3600))
    )
    assert web.post_form("/subscribe", {"email": "one@example.org"}).status == 200
    again = web.post_form("/subscribe", {"email": "ONE@example.org"})
    assert again.status == 200 and "Check your inbox" in again.body  # answered alike, nobody mailed
    assert web.post_form("/subscribe", {"email": "two@example.org"}).status == 200
    assert web.post_form("/subscribe", {"email": "three@example.org"}).status == 200
    over = web.post_form("/subscribe", {"email": "four@example.org"})  # fifth from this IP
    assert over.status == 429
    assert web.subscriber("four@example.org") is None
    assert web.transport.recipients == ["one@example.org", "two@example.org", "three@example.org"]


def test_a_confirmation_flood_from_many_ips_sends_one_mail_without_the_senders_text(serve_app) -> None:
    web = serve_app(trusted_proxy="127.0.0.1")
    spam = "Visit https://spam.example now"
    variants = [
        "jane.doe@gmail.com",
        "Jane.Doe+news@gmail.com",
        "janedoe@googlemail.com",
        "JANEDOE@gmail.com",
    ]
    answers = []
    for i in range(12):
        address = variants[i % len(variants)]
        forwarded = {"X-Forwarded-For": f"198.51.100.{i + 1}"}  # twelve clients, as the proxy saw them
        answers.append(web.post_form("/subscribe", {"email": address, "name": spam}, forwarded))
    assert {a.status for a in answers} == {200}
    assert len({a.body.replace(variants[i % 4], "ADDRESS") for i, a in enumerate(answers)}) == 1
    [sent] = web.transport.messages
    assert sent.recipient == "jane.doe@gmail.com"
    assert b"spam.example" not in sent.raw and b"Visit" not in sent.raw
    assert sent.message["To"] == "jane.doe@gmail.com"
    assert web.subscriber("jane.doe@gmail.com").name == spam  # stored, for after confirmation


def test_mailbox_key_folds_gmail_dots_and_plus_tags() -> None:
    from newsletter.web.subscription import mailbox_key

    assert mailbox_key("Jane.Doe+news@GoogleMail.com") == "janedoe@gmail.com"
    assert mailbox_key("ann+x@example.org") == "ann@example.org"
    assert mailbox_key("a.nn@example.org") == "a.nn@example.org"  # dots count elsewhere
    assert mailbox_key("+tag@example.org") == "+tag@example.org"


def test_per_ip_limits_use_the_trusted_proxys_client_and_ipv6_slash_64(serve_app) -> None:
    web = serve_app(limits=RateLimits(per_ip=Limit(burst=1, every=3600)), trusted_proxy="127.0.0.1")

    def subscribe(address: str, client: str) -> int:
        return web.post_form(
            "/subscribe", {"email": address}, {"X-Forwarded-For": f"203.0.113.9, {client}"}
        ).status

    assert subscribe("a@example.org", "192.0.2.1") == 200
    assert subscribe("b@example.org", "192.0.2.2") == 200  # another client: not the proxy's one limit
    assert subscribe("c@example.org", "192.0.2.1") == 429
    assert subscribe("d@example.org", "2001:db8:1:2::1") == 200
    assert subscribe("e@example.org", "2001:db8:1:2:ffff::7") == 429  # same /64
    assert subscribe("f@example.org", "2001:db8:1:3::1") == 200


def test_forwarded_headers_from_an_untrusted_peer_are_ignored_and_logged(
    serve_app, caplog: pytest.LogCaptureFixture
) -> None:
    web = serve_app(limits=RateLimits(per_ip=Limit(burst=1, every=3600)))
    caplog.set_level("WARNING", logger="newsletter.web.app")
    first = web.post_form("/subscribe", {"email": "a@example.org"}, {"X-Forwarded-For": "192.0.2.1"})
    second = web.post_form("/subscribe", {"email": "b@example.org"}, {"X-Forwarded-For": "192.0.2.2"})
    assert (first.status, second.status) == (200, 429)  # both count as 127.0.0.1
    warnings = [r.getMessage() for r in caplog.records if "forwarded headers" in r.getMessage()]
    assert len(warnings) == 1 and "--trusted-proxy 127.0.0.1" in warnings[0]


def test_hsts_only_when_the_web_url_is_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.test import Client

    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    headers = {}
    for scheme in ("https", "http"):
        root = tmp_path / scheme
        write_newsletter(root, f"{scheme}://digest.example.org/api/")
        with Store.open(f"sqlite:///{tmp_path / scheme / 'list.db'}") as store:
            app = create_app(load_settings(root), store=store, transport=MemoryTransport())
            headers[scheme] = Client(app).get("/healthz").headers
            app.close()
    assert headers["https"]["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in headers["http"]


def test_an_erased_readers_old_link_never_acts_on_whoever_comes_next(web: Served) -> None:
    add_active(web, "first@example.org")
    erased = add_active(web, "erased@example.org")
    old_link = unsubscribe_path(erased)
    web.store.remove_subscriber(erased)
    newcomer = add_active(web, "newcomer@example.org")
    page = web.request("GET", old_link)
    assert page.status == 200 and "newcomer@example.org" not in page.body
    assert web.post_form(old_link, {"List-Unsubscribe": "One-Click"}).status == 200
    assert web.subscriber(newcomer).status == "active"


def test_links_signed_with_the_previous_secret_still_work(serve_app, monkeypatch: pytest.MonkeyPatch) -> None:
    old = "the-secret-before-the-rotation-0123456789"
    monkeypatch.setenv("NEWSLETTER_SECRET_OLD", old)
    web = serve_app()
    sid = add_active(web, "rotated@example.org")
    sent_before = f"/u/{tokens.unsubscribe_token(old.encode(), sid)}"
    forged = f"/u/{tokens.unsubscribe_token(b'another-secret-nobody-has-0123456789', sid)}"
    assert web.post_form(forged, {"List-Unsubscribe": "One-Click"}).status == 400
    assert web.subscriber(sid).status == "active"
    assert web.post_form(sent_before, {"List-Unsubscribe": "One-Click"}).status == 200
    assert web.subscriber(sid).status == "unsubscribed"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_expired_and_forged_confirm_tokens(web: Served, method: str) -> None:
    web.post_form("/subscribe", {"email": "late@example.org"})

    def confirm(token: str | None) -> Answer:
        if method == "GET":
            return web.request("GET", "/confirm" + (f"?token={token}" if token is not None else ""))
        return web.post_form("/confirm", {} if token is None else {"token": token})

    old = tokens.confirm_token(SECRET.encode(), "late@example.org", ttl=60, now=time.time() - 3600)
    expired = confirm(old)
    assert expired.status == 400 and "has expired" in expired.body
    forged = confirm(tokens.confirm_token(b"another secret", "late@example.org"))
    empty = confirm(None)
    wrong_purpose = confirm(tokens.unsubscribe_token(SECRET.encode(), 1))
    # the subject changed under a valid signature: the signature no longer matches
    good = tokens.confirm_token(SECRET.encode(), "late@example.org")
    signature = good.split(".")[1]
    other = tokens.make_token(SECRET.encode(), "c", "other@example.org", expires_at=2**40).split(".")[0]
    spliced = confirm(f"{other}.{signature}")
    for answer in (forged, empty, wrong_purpose, spliced):
        assert answer.status == 400 and "not valid" in answer.body
        assert "<form" not in answer.body
    assert web.subscriber("late@example.org").status == "pending"
    assert web.subscriber("other@example.org") is None


def test_a_replayed_confirm_never_reactivates(web: Served) -> None:
    web.post_form("/subscribe", {"email": "back@example.org"})
    link = confirm_link(web.transport.messages[0].message)
    assert press_confirm(web, link).status == 200
    change_status(web.store, "back@example.org", "unsubscribed", "editor", reason="test")
    replay = web.request("GET", path_of(link))
    assert replay.status == 409 and "editor@example.org" in replay.body and "<form" not in replay.body
    pressed = web.post_form("/confirm", {"token": link.split("token=")[1]})
    assert pressed.status == 409
    assert web.subscriber("back@example.org").status == "unsubscribed"


def test_sec_fetch_site_same_origin_is_our_own_form(web: Served) -> None:
    # What browsers send on a page's own POST when the referrer policy withholds the origin.
    own = web.post_form(
        "/subscribe", {"email": "own@example.org"}, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    )
    assert own.status == 200 and web.subscriber("own@example.org").status == "pending"
    for headers in (
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ):
        assert web.post_form("/subscribe", {"email": "csrf@example.org"}, headers).status == 403, headers
    assert web.subscriber("csrf@example.org") is None


def test_a_templates_folder_without_the_confirm_page_still_confirms(serve_app, tmp_path: Path) -> None:
    """Newsletters made by an older `newsletter init` have no web/confirm.html: a built-in page stands in."""
    import shutil

    old = tmp_path / "old-templates"
    shutil.copytree(REPO / "templates", old)
    (old / "web" / "confirm.html").unlink()
    web = serve_app(templates=old)
    web.post_form("/subscribe", {"email": "old@example.org"})
    link = confirm_link(web.transport.messages[0].message)
    assert "Confirm subscription</button>" in web.request("GET", path_of(link)).body
    assert press_confirm(web, link).status == 200
    assert web.subscriber("old@example.org").status == "active"


# --------------------------------------------------------------------------- a real browser


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_a_real_browser_subscribes_confirms_and_unsubscribes_with_the_pages_buttons(
    serve_app, tmp_path: Path
) -> None:
    press = "document.querySelector('form button').click()"
    web = serve_app(
        wrap=autosubmit(
            {
                "/subscribe": "document.getElementById('email').value = 'browser@example.org'; " + press,
                "/confirm": press,
                "/u": press,
            }
        )
    )
    subscribed = browse(web.url + "subscribe?autosubmit=1", tmp_path / "profile")
    assert "Check your inbox" in subscribed, subscribed
    web.app.flush()
    assert web.subscriber("browser@example.org").status == "pending"

    link = confirm_link(web.transport.messages[0].message)
    confirmed = browse(link + "&autosubmit=1", tmp_path / "profile")
    assert "You are subscribed" in confirmed, confirmed
    subscriber = web.subscriber("browser@example.org")
    assert subscriber.status == "active"

    unsubscribed = browse(
        web.url + unsubscribe_path(subscriber.id)[1:] + "?autosubmit=1", tmp_path / "profile"
    )
    assert "You are unsubscribed" in unsubscribed, unsubscribed
    assert web.subscriber("browser@example.org").status == "unsubscribed"


# --------------------------------------------------------------------------- unsubscribe


def test_get_never_unsubscribes(web: Served) -> None:
    sid = add_active(web, "reader@example.org")
    for _ in range(3):
        page = web.request("GET", unsubscribe_path(sid))
        assert page.status == 200
        assert '<form method="post">' in page.body and "reader@example.org" in page.body
    assert web.subscriber(sid).status == "active"
    assert status_events(web, "reader@example.org") == []


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes(web: Served, encoding: str) -> None:
    sid = add_active(web, "click@example.org", language="zh")
    if encoding == "multipart":
        body, content_type = multipart({"List-Unsubscribe": "One-Click"})
    else:
        body, content_type = b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    # Mail providers post cross-site, without cookies: the token is the authority.
    headers = {"Content-Type": content_type, "Origin": "https://mail.provider.example"}
    for _ in range(2):  # idempotent
        answer = web.request("POST", unsubscribe_path(sid), body, headers)
        assert answer.status == 200 and "Location" not in answer.headers
        assert "已退订" in answer.body and answer.headers.get("Set-Cookie") is None
    assert web.subscriber(sid).status == "unsubscribed"
    [event] = status_events(web, "click@example.org")
    assert event["detail"]["reason"] == "one-click (RFC 8058)"


def test_the_page_form_unsubscribes(web: Served) -> None:
    sid = add_active(web, "form@example.org")
    answer = web.post_form(unsubscribe_path(sid), {"unsubscribe": "yes"})
    assert answer.status == 200 and "You are unsubscribed" in answer.body
    assert web.subscriber(sid).status == "unsubscribed"
    # the page now says so instead of offering the button again
    assert "You are unsubscribed" in web.request("GET", unsubscribe_path(sid)).body


def test_forged_token_or_empty_body_changes_nothing(web: Served) -> None:
    sid = add_active(web, "safe@example.org")
    forged = tokens.unsubscribe_token(b"not the secret", sid)
    confirm = tokens.confirm_token(SECRET.encode(), str(sid))
    tampered = unsubscribe_path(sid)[:-2] + ("AA" if not unsubscribe_path(sid).endswith("AA") else "BB")
    for path in (f"/u/{forged}", f"/u/{confirm}", tampered, "/u/x"):
        answer = web.post_form(path, {"List-Unsubscribe": "One-Click"})
        assert answer.status == 400 and "not valid" in answer.body, path
    empty = web.request("POST", unsubscribe_path(sid), b"", {"Content-Type": "text/plain"})
    assert empty.status == 400
    assert web.subscriber(sid).status == "active"
    assert status_events(web, "safe@example.org") == []


def test_bounced_or_complained_stays_so(web: Served) -> None:
    sid = add_active(web, "hard@example.org")
    change_status(web.store, sid, "complained", "editor", reason="test")
    answer = web.post_form(unsubscribe_path(sid), {"List-Unsubscribe": "One-Click"})
    assert answer.status == 200
    assert web.subscriber(sid).status == "complained"


def test_concurrent_one_click_posts_change_state_once(web: Served) -> None:
    sid = add_active(web, "race@example.org")
    path = unsubscribe_path(sid)
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def click() -> None:
        barrier.wait()
        statuses.append(web.post_form(path, {"List-Unsubscribe": "One-Click"}).status)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert statuses == [200] * 8
    assert web.subscriber(sid).status == "unsubscribed"
    assert len(status_events(web, "race@example.org")) == 1


def test_an_erased_subscriber_gets_the_same_answer(web: Served) -> None:
    sid = add_active(web, "erased@example.org")
    web.store.remove_subscriber(sid)
    answer = web.post_form(unsubscribe_path(sid), {"List-Unsubscribe": "One-Click"})
    assert answer.status == 200 and "You are unsubscribed" in answer.body


def one_click(web: Served, url: str) -> Answer:
    return web.request(
        "POST",
        path_of(url),
        b"List-Unsubscribe=One-Click",
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://mail.provider.example"},
    )


def test_an_address_unsubscribed_mid_send_gets_nothing_from_the_resumed_send(serve_app) -> None:
    """Across features: a canary send, one-click unsubscribes over HTTP, then the send resumes."""
    from newsletter.content.library import load_library
    from newsletter.delivery.plan import plan_send
    from newsletter.delivery.sending import send_issue
    from newsletter.mail.message import unsubscribe_url

    web = serve_app(content=REPO / "tests" / "fixtures" / "good" / "digest")
    ids = [add_active(web, f"reader{i}@example.org") for i in range(6)]
    library = load_library(web.settings)
    issue = library.issue("2024-01-10-first")
    outbox = MemoryTransport()  # the issue's transport (the app has its own for confirmations)

    def send(progress=None, stop_event=None, **options):
        plan = plan_send(web.settings, library, issue, transport=outbox, **options)
        return send_issue(plan, web.store, progress=progress, stop_event=stop_event)

    send(limit=2)  # the canary: a partial snapshot of the ledger
    assert outbox.recipients == ["reader0@example.org", "reader1@example.org"]
    # The List-Unsubscribe link the sender wrote points at this app, and works one-click.
    header = outbox.messages[1].message["List-Unsubscribe"]
    [https] = re.findall(r"<(http[^>]+)>", header)
    assert https.startswith(web.url + "u/") and outbox.messages[1].message["List-Unsubscribe-Post"]
    assert one_click(web, https).status == 200
    assert web.subscriber("reader1@example.org").status == "unsubscribed"

    # reader4 unsubscribes before the snapshot is completed...
    assert (
        one_click(
            web, unsubscribe_url(web.settings, tokens.unsubscribe_token(SECRET.encode(), ids[4]))
        ).status
        == 200
    )
    stop = threading.Event()
    send(threads=1, stop_event=stop, progress=lambda done, _: done and stop.set())  # one more, then stop
    assert outbox.recipients[2:] == ["reader2@example.org"]
    queued = {d.email for d in web.store.ledger("2024-01-10-first") if d.state == "queued"}
    assert queued == {"reader3@example.org", "reader5@example.org"}
    # ...and reader5 after it, while its ledger row waits in the queue.
    assert (
        one_click(
            web, unsubscribe_url(web.settings, tokens.unsubscribe_token(SECRET.encode(), ids[5]))
        ).status
        == 200
    )

    report = send()  # the resume
    assert outbox.recipients == [
        "reader0@example.org",
        "reader1@example.org",
        "reader2@example.org",
        "reader3@example.org",
    ]
    assert report.sent == 1
    rows = {d.email: d for d in web.store.ledger("2024-01-10-first")}
    assert "reader4@example.org" not in rows
    assert (rows["reader5@example.org"].state, rows["reader5@example.org"].error) == (
        "failed",
        "skipped: unsubscribed",
    )
    assert send().sent == 0  # and a further run sends nothing to anyone
    assert len(outbox.messages) == 4


# --------------------------------------------------------------------------- failure and start-up


def test_a_server_error_shows_a_page_and_no_traceback(web: Served, caplog: pytest.LogCaptureFixture) -> None:
    sid = add_active(web, "boom@example.org")
    database = web.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:  # break the database for real
        conn.execute("DROP TABLE events")
        conn.execute("ALTER TABLE subscribers RENAME TO gone")
    answer = web.post_form(unsubscribe_path(sid), {"List-Unsubscribe": "One-Click"})
    assert answer.status == 500
    assert "Something went wrong on our side" in answer.body
    for leak in ("Traceback", "sqlite", "OperationalError", 'File "', "no such table"):
        assert leak not in answer.body
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "no such table" in caplog.text  # the cause is logged for the operator...
    assert unsubscribe_path(sid).removeprefix("/u/") not in caplog.text  # ...but not the reader's token


def test_an_oversized_body_is_refused(web: Served) -> None:
    answer = web.post_form("/subscribe", {"email": "big@example.org", "name": "x" * 100_000})
    assert answer.status == 413
    assert web.subscriber("big@example.org") is None


def test_the_app_refuses_to_start_without_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    write_newsletter(tmp_path, "https://digest.example.org/api/")
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "serve", "--port", "1"])
    assert result.exit_code == 1
    assert "NEWSLETTER_SECRET is not set" in result.output
    assert "Traceback" not in result.output


def test_app_from_env_reads_newsletter_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.test import Client

    from newsletter.web.app import app_from_env

    write_newsletter(tmp_path, "https://digest.example.org/api/")
    monkeypatch.setenv("NEWSLETTER_ROOT", str(tmp_path))
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    app = app_from_env()
    try:
        assert app.settings.root == tmp_path.resolve()
        assert Client(app).get("/healthz").status_code == 200
    finally:
        app.close()
    assert (tmp_path / "subscribers" / "subscribers.db").is_file()


def test_serve_runs_waitress_over_http(tmp_path: Path) -> None:
    """`newsletter serve` itself, as a subprocess, answering on its port."""
    import os
    import subprocess
    import sys

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    write_newsletter(tmp_path, f"http://127.0.0.1:{port}/")
    env = {**os.environ, "NEWSLETTER_SECRET": SECRET}
    env.pop("NEWSLETTER_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "--root", str(tmp_path), "serve", "--port", str(port)]
        if (REPO / "newsletter" / "cli" / "__main__.py").exists()
        else [
            sys.executable,
            "-c",
            "from newsletter.cli import main; main()",
            "--root",
            str(tmp_path),
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "newsletter serve did not start"
                time.sleep(0.1)
        assert response.status == 200 and response.read() == b"ok\n"
        assert response.getheader("X-Content-Type-Options") == "nosniff"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEWSLETTER_ROOT", raising=False)
    yield
