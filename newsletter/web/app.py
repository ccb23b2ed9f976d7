"""The subscription endpoint behind `newsletter serve`: subscribe, confirm, one-click unsubscribe.

A small WSGI application (Werkzeug request/response objects, no framework). It holds no
session state and sets no cookies: every state change is authorised either by a signed
token (tokens.py) or, for /subscribe, by the double opt-in mail itself.

Routes (relative to settings.web_url):

    GET  /healthz          200 "ok"
    GET  /  , /subscribe   the subscribe form
    POST /subscribe        email [, name, language]; honeypot `website` must be empty
    GET  /confirm?token=   a page with a button; never confirms by itself (link scanners)
    POST /confirm          token: double opt-in, pending -> active (the page's button)
    GET  /u/<token>        a confirmation page; never unsubscribes by itself (link scanners)
    POST /u/<token>        RFC 8058 one-click (`List-Unsubscribe=One-Click`) or the page's form

Any other method on a known path is 405 (HEAD included: nothing here is worth caching and
a HEAD must never be mistaken for a click). Pages come from templates/web/*.html; their
words from templates/web/strings.toml, falling back per key to the base language, then English.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from newsletter import tokens
from newsletter.audience.lifecycle import SUPPRESSED, change_status
from newsletter.config import Settings, text_direction
from newsletter.errors import ConfigError
from newsletter.text import ALL_CONTROL_CHARS, is_language_tag

if TYPE_CHECKING:
    from newsletter.delivery.transports import Transport
    from newsletter.store import Store, Subscriber

log = logging.getLogger(__name__)

WEB_STRINGS = "web/strings.toml"
CONFIRM_TTL = 7 * 86400
MAX_BODY = 64 * 1024  # a subscribe form or a one-click POST is tiny; refuse anything larger
MAX_NAME = 200
# templates/web/confirm.html, for templates folders that predate it
CONFIRM_PAGE = """{% extends "web/base.html" %}
{% block title %}{{ t.confirm_button }}{% endblock %}
{% block content %}
<p>{{ t("confirm_intro", email=email) }}</p>
<form method="post" action="confirm">
  <input type="hidden" name="token" value="{{ token }}">
  <button type="submit">{{ t.confirm_button }}</button>
</form>
{% endblock %}
"""

SECURITY_HEADERS = {
    # Pages carry only inline CSS: no scripts, images, fonts or frames from anywhere.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Never leak a token to another site in a Referer header. Not "no-referrer": with it,
    # browsers send `Origin: null` on the page's own form POSTs, which same_site() must refuse.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # pages may show an address or carry a token
}


# --------------------------------------------------------------------------- rate limiting


@dataclass(frozen=True)
class Limit:
    """A token bucket: `burst` requests at once, then one more every `every` seconds."""

    burst: int
    every: float


@dataclass(frozen=True)
class RateLimits:
    per_ip: Limit = Limit(burst=10, every=30.0)
    per_address: Limit = Limit(burst=3, every=600.0)


class TokenBuckets:
    """One token bucket per key (client IP, address), in memory, thread-safe.

    Memory is bounded: when more than `max_keys` keys are held, buckets that have
    refilled completely (they carry no information) are dropped.
    """

    def __init__(
        self, limit: Limit, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens_left, at = self._buckets.get(key, (float(self.limit.burst), now))
            tokens_left = min(float(self.limit.burst), tokens_left + (now - at) / self.limit.every)
            if tokens_left < 1.0:
                self._buckets[key] = (tokens_left, now)
                return (1.0 - tokens_left) * self.limit.every
            self._buckets[key] = (tokens_left - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) / self.limit.every >= self.limit.burst
        ]
        for key in full:
            del self._buckets[key]


# --------------------------------------------------------------------------- pages and words


class Pages:
    """Renders templates/web/*.html with the web strings of one language."""

    def __init__(self, settings: Settings) -> None:
        from jinja2 import ChoiceLoader, DictLoader

        from newsletter.mail.render import jinja_environment

        self.settings = settings
        self.env = jinja_environment(settings.templates_dir)
        # Newsletters made before the confirmation page existed have no web/confirm.html.
        self.env.loader = ChoiceLoader([self.env.loader, DictLoader({"web/confirm.html": CONFIRM_PAGE})])
        path = settings.templates_dir / WEB_STRINGS
        try:
            self.table: dict[str, dict[str, Any]] = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: the web pages' strings are missing\n\n"
                "Copy templates/web/ from the newsletter repository into your templates folder."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        if "en" not in self.table:
            raise ConfigError(f"{path}: expected a table [en] of page strings, found none")
        for name in ("base.html", "page.html", "subscribe.html", "unsubscribe.html"):
            if not (settings.templates_dir / "web" / name).is_file():
                raise ConfigError(f"{settings.templates_dir / 'web' / name}: page template missing")

    @cached_property
    def languages(self) -> list[str]:
        return list(self.table)

    def strings(self, language: str) -> dict[str, Any]:
        """The web pages' words for `language`, over the shared chrome strings (templates/strings.toml).

        Layers, lowest first: web English, the shared strings (already resolved for the
        language), then the web strings of the base language and of the language itself.
        """
        from newsletter.errors import NewsletterError
        from newsletter.mail.render import load_strings

        merged: dict[str, Any] = dict(self.table["en"])
        with contextlib.suppress(NewsletterError):  # the web strings alone are complete in English
            merged.update(load_strings(self.settings, language))
        for lang in dict.fromkeys([language.split("-")[0], language]):
            if lang != "en":
                merged.update(self.table.get(lang, {}))
        return merged

    def language_of(self, wanted: str | None) -> str:
        """The best language we have pages in for `wanted` (a tag), else the newsletter's."""
        for candidate in (wanted, (wanted or "").split("-")[0]):
            if candidate and candidate in self.table:
                return candidate
        return self.settings.language if self.settings.language in self.table else "en"

    def render(self, template: str, language: str, **context: Any) -> str:
        from newsletter.mail.render import render_template

        strings = self.strings(language)
        words = {
            "newsletter": self.settings.name,
            "site": self.settings.base_url,
            "contact": self.settings.reply_to or self.settings.sender_address.addr_spec,
        }
        base = {
            "lang": language,
            "dir": text_direction(language),
            "t": _Words(strings, words),
            "newsletter": self.settings.name,
            "archive_url": self.settings.base_url,
            "web_url": self.settings.web_url,
        }
        return render_template(self.env, f"web/{template}", {**base, **context})


class _Words:
    """`t.key` or `t("key", email=...)` in templates: a string, formatted with the newsletter's words."""

    def __init__(self, strings: dict[str, Any], words: dict[str, str]) -> None:
        self._strings = strings
        self._words = words

    def __call__(self, key: str, **values: Any) -> str:
        return str(self._strings[key]).format(**{**self._words, **values})

    def __getattr__(self, key: str) -> str:
        if key.startswith("_") or key not in self._strings:
            raise AttributeError(key)  # Jinja probes attributes (jinja_pass_arg); a miss is Undefined
        return self(key)


# --------------------------------------------------------------------------- the application


class SubscriptionApp:
    """The WSGI application; see the module docstring for the routes."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        transport: Transport | None = None,
        limits: RateLimits | None = None,
        confirm_ttl: int = CONFIRM_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        secret = settings.secret
        if not secret:
            raise ConfigError(
                "environment: NEWSLETTER_SECRET is not set; the web app needs it to sign and check links\n\n"
                "Set it to a long random value (for example `openssl rand -hex 32`), the same one "
                "`newsletter send` uses."
            )
        if not settings.web_url:
            raise ConfigError(
                "newsletter.toml: web.url: missing; the web app needs its public URL for confirmation links"
            )
        self.settings = settings
        self.secret = secret
        self.confirm_ttl = confirm_ttl
        self.pages = Pages(settings)
        self._own: list[Any] = []
        if store is None:
            from newsletter.store import Store

            store = Store.open(settings.database_url)
            self._own.append(store)
        if transport is None:
            from newsletter.delivery.transports import make_transport

            transport = make_transport(settings)
            transport.open()
            self._own.append(transport)
        self.store = store
        self.transport = transport
        # Confirmation mail leaves on a worker thread, so the answer to /subscribe takes
        # the same time whether or not a mail is sent (no enumeration by timing), and a
        # slow provider does not hold a request thread.
        self._mailer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="confirmation-mail")
        self._mail_lock = threading.Lock()
        self._mail_pending: set[Future[None]] = set()
        limits = limits or RateLimits()
        self.ip_buckets = TokenBuckets(limits.per_ip, clock=clock)
        self.address_buckets = TokenBuckets(limits.per_address, clock=clock)
        self.allowed_hosts = {
            h for h in (urlsplit(settings.web_url).hostname, urlsplit(settings.base_url).hostname) if h
        }
        self.routes: dict[str, dict[str, Callable[[Request, str], Response]]] = {
            "/healthz": {"GET": self.healthz},
            "/": {"GET": self.subscribe_form},
            "/subscribe": {"GET": self.subscribe_form, "POST": self.subscribe},
            "/confirm": {"GET": self.confirm_page, "POST": self.confirm},
        }

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until the confirmation mails accepted so far have been handed to the transport."""
        with self._mail_lock:
            pending = list(self._mail_pending)
        wait(pending, timeout=timeout)

    def close(self) -> None:
        """Send what is queued, then close the store and transport this app opened (not ones passed in)."""
        self._mailer.shutdown(wait=True)
        for thing in reversed(self._own):
            thing.close()
        self._own.clear()

    # -- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        request.max_form_memory_size = MAX_BODY
        try:
            response = self.dispatch(request)
        except Exception:
            # The client gets a page, the log gets the traceback; never the other way round.
            # The token in /u/<token> is a capability: keep it out of the log.
            shown = "/u/…" if request.path.startswith("/u/") else request.path
            log.exception("%s %s failed", request.method, shown)
            response = self.server_error()
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/u/") and path.count("/") == 2:
            handlers: dict[str, Callable[[Request, str], Response]] = {
                "GET": self.unsubscribe_page,
                "POST": self.unsubscribe,
            }
            argument = path[3:]
        else:
            handlers = self.routes.get(path.rstrip("/") or "/", {})
            argument = ""
        if not handlers:
            return self.page(request, 404, "not_found_title", "not_found")
        handler = handlers.get(request.method)
        if handler is None:
            response = self.page(request, 405, "method_title", "method")
            response.headers["Allow"] = ", ".join(handlers)
            return response
        try:
            return handler(request, argument)
        except RequestEntityTooLarge:
            return self.page(request, 413, "too_large_title", "too_large")
        except HTTPException as exc:  # a malformed form body, for instance
            return self.page(request, exc.code or 400, "bad_request_title", "bad_request")

    # -- pages

    def html(self, status: int, template: str, language: str, **context: Any) -> Response:
        body = self.pages.render(template, language, **context)
        return Response(body, status=status, content_type="text/html; charset=utf-8")

    def page(
        self,
        request: Request | None,
        status: int,
        title: str,
        message: str,
        *,
        language: str | None = None,
        **values: Any,
    ) -> Response:
        """A simple page: a heading and one paragraph, both keys of the web strings."""
        language = language or self.request_language(request)
        return self.html(status, "page.html", language, title_key=title, message_key=message, values=values)

    def server_error(self) -> Response:
        try:
            return self.page(None, 500, "server_error_title", "server_error")
        except Exception:
            log.exception("the error page itself failed")
            return Response("Internal server error\n", status=500, content_type="text/plain; charset=utf-8")

    def request_language(self, request: Request | None) -> str:
        if request is None:
            return self.pages.language_of(None)
        wanted = request.values.get("language") if request.method == "GET" else None
        best = request.accept_languages.best_match(self.pages.languages)
        return self.pages.language_of(wanted or best)

    # -- handlers

    def healthz(self, request: Request, _: str) -> Response:
        return Response("ok\n", content_type="text/plain; charset=utf-8")

    def subscribe_form(self, request: Request, _: str) -> Response:
        language = self.request_language(request)
        return self.html(200, "subscribe.html", language, email="", name="", form_language=language)

    def subscribe(self, request: Request, _: str) -> Response:
        from newsletter.store import StoreError, normalize_email

        if not self.same_site(request):
            return self.page(request, 403, "forbidden_title", "forbidden")
        form = request.form
        raw_language = form.get("language", "").strip()
        if raw_language and not is_language_tag(raw_language):
            return self.page(request, 400, "bad_request_title", "invalid_language", got=raw_language[:40])
        language = self.pages.language_of(
            raw_language or request.accept_languages.best_match(self.pages.languages)
        )
        wait = self.ip_buckets.take(request.remote_addr or "unknown")
        if wait:
            return self.too_many(request, language, wait)
        if form.get("website", ""):
            # A bot filled the hidden field: answer as if all went well, do nothing.
            log.info("subscribe: honeypot filled from %s; ignored", request.remote_addr)
            return self.check_inbox(language, form.get("email", "")[:320])
        raw_email = form.get("email", "").strip()
        if not raw_email:
            return self.page(request, 400, "bad_request_title", "missing_email", language=language)
        try:
            address = normalize_email(raw_email)
        except ValueError as exc:
            return self.page(
                request,
                400,
                "bad_request_title",
                "invalid_email",
                language=language,
                email=raw_email[:320],
                reason=str(exc),
            )
        wait = self.address_buckets.take(address.lower())
        if wait:
            return self.too_many(request, language, wait)
        name = ALL_CONTROL_CHARS.sub("", form.get("name", "")).strip()[:MAX_NAME] or None
        subscriber = self.store.get_subscriber(address)
        if subscriber is None:
            try:
                subscriber = self.store.add_subscriber(
                    address, name=name, language=raw_language or None, status="pending", source="web"
                )
            except StoreError:  # a concurrent request added it first
                subscriber = self.store.get_subscriber(address)
        # Only a pending address gets mail. Active ones need nothing, and suppressed ones
        # (unsubscribed, bounced, complained) are never re-activated from the web: the
        # editor re-adds them by hand. The page below is the same in every case.
        if subscriber is not None and subscriber.status == "pending":
            self.queue_confirmation(subscriber, language)
        return self.check_inbox(language, address)

    def check_inbox(self, language: str, email: str) -> Response:
        """The one answer to every accepted subscribe request, known address or not."""
        return self.html(
            200, "page.html", language, title_key="check_title", message_key="check", values={"email": email}
        )

    def too_many(self, request: Request, language: str, wait: float) -> Response:
        response = self.page(request, 429, "too_many_title", "too_many", language=language)
        response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response

    def same_site(self, request: Request) -> bool:
        """False when the browser says the form was posted from another site.

        `Sec-Fetch-Site: same-origin` (set by the browser, never by a page) is our own
        form. Otherwise browsers send Origin on POSTs; without it, Referer (when the
        user's settings allow it). Neither: a non-browser client, which the token bucket limits.
        """
        if request.headers.get("Sec-Fetch-Site") == "same-origin":
            return True
        origin = request.headers.get("Origin")
        if origin is not None:
            return origin != "null" and urlsplit(origin).hostname in self.allowed_hosts
        referer = request.headers.get("Referer")
        if referer:
            return urlsplit(referer).hostname in self.allowed_hosts
        return True

    def confirm_page(self, request: Request, _: str) -> Response:
        """The confirmation link's page: a button that POSTs. A GET never confirms.

        Mail security scanners fetch every link in a message; if a GET confirmed, anyone
        could subscribe someone else's address and the scanner would confirm it for them.
        """
        token = request.args.get("token", "")
        found = self.confirm_subscriber(request, token)
        if isinstance(found, Response):
            return found
        subscriber, language = found
        if subscriber.status == "active":
            return self.page(
                request, 200, "confirmed_title", "confirmed", language=language, email=subscriber.email
            )
        return self.html(200, "confirm.html", language, email=subscriber.email, token=token)

    def confirm(self, request: Request, _: str) -> Response:
        """The confirmation page's button: pending -> active. Idempotent."""
        found = self.confirm_subscriber(request, request.form.get("token", ""))
        if isinstance(found, Response):
            return found
        subscriber, language = found
        if subscriber.status == "pending":
            change_status(self.store, subscriber.id, "active", "reader", reason="confirmed by link (web)")
            subscriber = self.store.get_subscriber(subscriber.id) or subscriber
        if subscriber.status == "active":
            return self.page(
                request, 200, "confirmed_title", "confirmed", language=language, email=subscriber.email
            )
        return self.page(request, 409, "link_title", "confirm_suppressed", language=language)

    def confirm_subscriber(self, request: Request, token: str) -> Response | tuple[Subscriber, str]:
        """The pending or active subscriber a confirmation token names, or the error page to answer."""
        try:
            address = tokens.read_token(self.secret, tokens.CONFIRM, token)
        except tokens.InvalidToken as exc:
            message = "confirm_expired" if "expired" in str(exc) else "confirm_invalid"
            return self.page(request, 400, "link_title", message)
        subscriber = self.store.get_subscriber(address)
        language = self.pages.language_of(subscriber.language if subscriber else None)
        if subscriber is None:
            return self.page(request, 400, "link_title", "confirm_gone", language=language)
        if subscriber.status in SUPPRESSED:
            return self.page(request, 409, "link_title", "confirm_suppressed", language=language)
        return subscriber, language

    def read_unsubscribe(self, token: str) -> str | None:
        try:
            return tokens.read_token(self.secret, tokens.UNSUBSCRIBE, token)
        except tokens.InvalidToken:
            return None

    def unsubscribe_page(self, request: Request, token: str) -> Response:
        subject = self.read_unsubscribe(token)
        if subject is None:
            return self.page(request, 400, "link_title", "unsubscribe_invalid")
        subscriber = self.store.get_subscriber(subject) if subject.isdigit() else None
        language = self.pages.language_of(subscriber.language if subscriber else None)
        if subscriber is None or subscriber.status in SUPPRESSED:
            return self.page(request, 200, "unsubscribed_title", "unsubscribed", language=language)
        return self.html(200, "unsubscribe.html", language, email=subscriber.email)

    def unsubscribe(self, request: Request, token: str) -> Response:
        subject = self.read_unsubscribe(token)
        if subject is None:
            return self.page(request, 400, "link_title", "unsubscribe_invalid")
        form = request.form
        if form.get("List-Unsubscribe") == "One-Click":
            reason = "one-click (RFC 8058)"
        elif form.get("unsubscribe") == "yes":
            reason = "unsubscribe page"
        else:
            return self.page(request, 400, "bad_request_title", "unsubscribe_body")
        subscriber = self.store.get_subscriber(subject) if subject.isdigit() else None
        # Erased, or already suppressed: nothing to change, and the answer is the same
        # (bounced or complained is kept: it says more than "unsubscribed").
        if subscriber is not None and subscriber.status not in SUPPRESSED:
            change_status(self.store, subscriber.id, "unsubscribed", "reader", reason=reason)
        language = self.pages.language_of(subscriber.language if subscriber else None)
        return self.page(request, 200, "unsubscribed_title", "unsubscribed", language=language)

    # -- the confirmation mail

    def confirmation_message(
        self, subscriber: Subscriber, language: str, *, now: float | None = None
    ) -> bytes:
        """The double opt-in message for `subscriber`, as CRLF bytes ready for a transport."""
        token = tokens.confirm_token(self.secret, subscriber.email, ttl=self.confirm_ttl, now=now)
        link = self.settings.web(f"confirm?token={token}")
        strings = _Words(self.pages.strings(language), {"newsletter": self.settings.name})
        greeting = (
            strings("greeting", name=subscriber.name) if subscriber.name else strings("greeting_anonymous")
        )
        context = {
            "link": link,
            "greeting": greeting,
            "days": max(1, self.confirm_ttl // 86400),
            "email": subscriber.email,
            "postal_address": self.settings.postal_address,
        }
        text = self.pages.render("confirm-email.txt.j2", language, **context)
        html = self.pages.render("confirm-email.html", language, **context)

        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = self.settings.sender_address
        user, _, domain = subscriber.email.rpartition("@")
        msg["To"] = Address(display_name=subscriber.name or "", username=user, domain=domain)
        if self.settings.reply_to:
            msg["Reply-To"] = self.settings.reply_to
        msg["Subject"] = strings("confirm_subject")
        msg["Date"] = format_datetime(datetime.fromtimestamp(now or time.time(), UTC))
        msg["Message-ID"] = make_msgid(domain=self.settings.sender_address.domain or None)
        # An automatic answer to a request: auto-responders must not reply to it (RFC 3834).
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text, charset="utf-8", cte="quoted-printable")
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
        for part in msg.iter_parts():
            del part["MIME-Version"]  # add_alternative() puts one on the new part; once is enough
        msg["Content-Language"] = language  # after the body: set_content drops Content-* headers
        return msg.as_bytes(policy=policy.SMTP)

    def queue_confirmation(self, subscriber: Subscriber, language: str) -> None:
        future = self._mailer.submit(self._send_logged, subscriber, language)
        with self._mail_lock:
            self._mail_pending.add(future)
        future.add_done_callback(self._mail_done)

    def _mail_done(self, future: Future[None]) -> None:
        with self._mail_lock:
            self._mail_pending.discard(future)

    def _send_logged(self, subscriber: Subscriber, language: str) -> None:
        try:
            self.send_confirmation(subscriber, language)
        except Exception:
            log.exception("confirmation to subscriber %s failed", subscriber.id)

    def send_confirmation(self, subscriber: Subscriber, language: str) -> None:
        from newsletter.delivery.transports import StopSending

        raw = self.confirmation_message(subscriber, language)
        try:
            result = self.transport.send(self.settings.sender_address.addr_spec, subscriber.email, raw)
        except StopSending as exc:
            log.error("confirmation to subscriber %s not sent: %s", subscriber.id, exc)
            return
        if not result.ok:
            # Logged, not shown: the page must not differ between known and unknown addresses.
            log.warning(
                "confirmation to subscriber %s not sent (%s): %s", subscriber.id, result.outcome, result.error
            )


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    transport: Transport | None = None,
    limits: RateLimits | None = None,
    confirm_ttl: int = CONFIRM_TTL,
) -> SubscriptionApp:
    """The WSGI app for `settings`; opens the store and transport itself when not given.

    Raises ConfigError without NEWSLETTER_SECRET or without web.url.
    """
    return SubscriptionApp(settings, store=store, transport=transport, limits=limits, confirm_ttl=confirm_ttl)


def app_from_env() -> SubscriptionApp:
    """The app for any WSGI host, e.g. `waitress-serve --call newsletter.web.app:app_from_env`.

    Settings come from $NEWSLETTER_ROOT (default: the current folder).
    """
    import os

    from newsletter.config import load_settings

    return create_app(load_settings(Path(os.environ.get("NEWSLETTER_ROOT", "."))))
