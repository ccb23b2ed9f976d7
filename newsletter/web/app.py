"""The subscription endpoint behind `newsletter serve`: subscribe, confirm, one-click unsubscribe, preferences.

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
    GET  /p/<token>        the reader's preferences: language and name, and an unsubscribe button
    POST /p/<token>        the page's forms: `save` (language, name) or `unsubscribe`

Any other method on a known path is 405 (HEAD included: nothing here is worth caching and
a HEAD must never be mistaken for a click). Pages come from templates/web/*.html; their
words from templates/web/strings.toml (web/pages.py). This module owns the HTTP side:
routes, methods, headers, error pages. The rules live in web/subscription.py, the double
opt-in mail in web/confirmation.py, the languages a reader may choose and the checks of
the preferences form in web/preferences.py, the request limits in web/ratelimit.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from newsletter import tokens
from newsletter.audience.lifecycle import SUPPRESSED
from newsletter.config import Settings, load_settings
from newsletter.delivery.transports import Transport, make_transport
from newsletter.errors import ConfigError
from newsletter.store import Store, Subscriber, normalize_email
from newsletter.text import is_language_tag
from newsletter.web.confirmation import CONFIRM_TTL, ConfirmationMailer
from newsletter.web.pages import Pages
from newsletter.web.preferences import language_names, offered_languages, preselected, read_preferences
from newsletter.web.ratelimit import RateLimits, TokenBuckets, client_key
from newsletter.web.subscription import Subscriptions, clean_name, mailbox_key

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a subscribe form or a one-click POST is tiny; refuse anything larger

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
TOKEN_PATHS = ("/u/", "/p/")  # the rest of the path is a token: a capability, never logged
HSTS = "max-age=31536000"  # only when [web] url is https: a year of HTTPS-only for this host
# Headers a reverse proxy adds; from anyone but the trusted proxy they are ignored.
FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


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
        trusted_proxy: str | None = None,
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
        self.verify_secrets = settings.verify_secrets  # the current secret, then NEWSLETTER_SECRET_OLD
        self.trusted_proxy = trusted_proxy
        self.headers = dict(SECURITY_HEADERS)
        if settings.web_url.startswith("https://"):
            self.headers["Strict-Transport-Security"] = HSTS
        self._warned: set[str] = set()
        self.pages = Pages(settings)
        self._own: list[Any] = []
        if store is None:
            store = Store.open(settings.database_url)
            self._own.append(store)
        if transport is None:
            transport = make_transport(settings)
            transport.open()
            self._own.append(transport)
        self.store = store
        self.transport = transport
        self.subscriptions = Subscriptions(store)
        self.mailer = ConfirmationMailer(settings, self.pages, secret, transport, ttl=confirm_ttl)
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
        self.mailer.flush(timeout)

    def close(self) -> None:
        """Send what is queued, then close the store and transport this app opened (not ones passed in)."""
        self.mailer.close()
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
            shown = request.path[:3] + "…" if request.path.startswith(TOKEN_PATHS) else request.path
            log.exception("%s %s failed", request.method, shown)
            response = self.server_error()
        for name, value in self.headers.items():
            response.headers[name] = value
        return response(environ, start_response)

    def client_ip(self, request: Request) -> str:
        """The client's address: the peer, or what the trusted proxy says the peer was.

        Behind a proxy every request comes from the proxy: without `trusted_proxy` the
        per-IP limit becomes one limit for everyone. Forwarded headers from any other
        peer are ignored (anyone can send them) and logged once per peer, so a proxy
        left unconfigured shows in the log.
        """
        environ = request.environ
        peer = environ.get("REMOTE_ADDR") or "unknown"
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if self.trusted_proxy and peer == self.trusted_proxy and forwarded:
            # the proxy appends the address it saw last; earlier entries are the client's to forge
            return forwarded.split(",")[-1].strip() or peer
        if any(environ.get(h) for h in FORWARDED_HEADERS) and peer not in self._warned:
            if len(self._warned) < 1000:
                self._warned.add(peer)
            log.warning(
                "forwarded headers from %s, which is not the trusted proxy (%s): ignored. Behind a "
                "reverse proxy, start `newsletter serve --trusted-proxy %s`, or per-IP limits count "
                "every reader as one client",
                peer,
                self.trusted_proxy or "none set",
                peer,
            )
        return peer

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith(TOKEN_PATHS) and path.count("/") == 2:
            handlers: dict[str, Callable[[Request, str], Response]] = (
                {"GET": self.unsubscribe_page, "POST": self.unsubscribe}
                if path.startswith("/u/")
                else {"GET": self.preferences_page, "POST": self.preferences}
            )
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
        offered = offered_languages(self.settings)
        wanted = [request.args.get("language")] + [tag for tag, _ in request.accept_languages]
        return self.html(
            200,
            "subscribe.html",
            language,
            email="",
            name="",
            form_language=preselected(offered, wanted),
            languages=language_names(offered),
        )

    def subscribe(self, request: Request, _: str) -> Response:
        if not self.same_site(request):
            return self.page(request, 403, "forbidden_title", "forbidden")
        form = request.form
        raw_language = form.get("language", "").strip()
        if raw_language and not is_language_tag(raw_language):
            return self.page(request, 400, "bad_request_title", "invalid_language", got=raw_language[:40])
        language = self.pages.language_of(
            raw_language or request.accept_languages.best_match(self.pages.languages)
        )
        client = self.client_ip(request)
        wait = self.ip_buckets.take(client_key(client))
        if wait:
            return self.too_many(request, language, wait)
        if form.get("website", ""):
            # A bot filled the hidden field: answer as if all went well, do nothing.
            log.info("subscribe: honeypot filled from %s; ignored", client)
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
        name = clean_name(form.get("name", ""))
        to_confirm = self.subscriptions.request(address, name=name, language=raw_language or None)
        # One confirmation per mailbox per interval, whoever asks from wherever: a request
        # beyond it is answered like any other, and nobody is mailed.
        if to_confirm is not None and not self.address_buckets.take(mailbox_key(address)):
            self.mailer.queue(to_confirm, language)
        # The same page whether a mail left or not (known, active or suppressed address).
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
        subscriber = self.subscriptions.confirm(subscriber)
        if subscriber.status == "active":
            return self.page(
                request, 200, "confirmed_title", "confirmed", language=language, email=subscriber.email
            )
        return self.page(request, 409, "link_title", "confirm_suppressed", language=language)

    def confirm_subscriber(self, request: Request, token: str) -> Response | tuple[Subscriber, str]:
        """The pending or active subscriber a confirmation token names, or the error page to answer."""
        try:
            address = tokens.read_token(self.verify_secrets, tokens.CONFIRM, token)
        except tokens.InvalidToken as exc:
            message = "confirm_expired" if "expired" in str(exc) else "confirm_invalid"
            return self.page(request, 400, "link_title", message)
        subscriber = self.subscriptions.to_confirm(address)
        language = self.pages.language_of(subscriber.language if subscriber else None)
        if subscriber is None:
            return self.page(request, 400, "link_title", "confirm_gone", language=language)
        if subscriber.status in SUPPRESSED:
            return self.page(request, 409, "link_title", "confirm_suppressed", language=language)
        return subscriber, language

    def read_unsubscribe(self, token: str) -> str | None:
        try:
            return tokens.read_token(self.verify_secrets, tokens.UNSUBSCRIBE, token)
        except tokens.InvalidToken:
            return None

    def unsubscribe_page(self, request: Request, token: str) -> Response:
        subject = self.read_unsubscribe(token)
        if subject is None:
            return self.page(request, 400, "link_title", "unsubscribe_invalid")
        subscriber = self.subscriptions.unsubscribing(subject)
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
        subscriber = self.subscriptions.unsubscribing(subject)
        # Erased or already suppressed: the answer is the same.
        self.subscriptions.unsubscribe(subscriber, reason)
        language = self.pages.language_of(subscriber.language if subscriber else None)
        return self.page(request, 200, "unsubscribed_title", "unsubscribed", language=language)

    # -- preferences

    def read_preferences_token(self, request: Request, token: str) -> Response | Subscriber:
        """The subscriber a preferences token names, or the one page every bad or unknown token gets."""
        try:
            subject = tokens.read_token(self.verify_secrets, tokens.PREFERENCES, token)
        except tokens.InvalidToken:
            subject = None
        subscriber = self.subscriptions.unsubscribing(subject) if subject else None
        if subscriber is None:  # forged, malformed, or naming an erased reader: the same answer
            return self.page(request, 400, "link_title", "preferences_invalid")
        return subscriber

    def preferences_form(
        self, status: int, subscriber: Subscriber, *, saved: bool = False, problem: str | None = None
    ) -> Response:
        language = self.pages.language_of(subscriber.language)
        offered = offered_languages(self.settings)
        return self.html(
            status,
            "preferences.html",
            language,
            email=subscriber.email,
            name=subscriber.name or "",
            form_language=preselected(offered, [subscriber.language]),
            languages=language_names(offered),
            saved=saved,
            problem=problem,
        )

    def preferences_page(self, request: Request, token: str) -> Response:
        """The reader's language and name, and a form to change them or leave. A GET changes nothing."""
        found = self.read_preferences_token(request, token)
        if isinstance(found, Response):
            return found
        if found.status in SUPPRESSED:
            language = self.pages.language_of(found.language)
            return self.page(request, 200, "unsubscribed_title", "unsubscribed", language=language)
        return self.preferences_form(200, found)

    def preferences(self, request: Request, token: str) -> Response:
        """The preferences page's forms: save a language and name, or unsubscribe."""
        found = self.read_preferences_token(request, token)
        if isinstance(found, Response):
            return found
        language = self.pages.language_of(found.language)
        if not self.same_site(request):
            return self.page(request, 403, "forbidden_title", "forbidden", language=language)
        wait = self.ip_buckets.take(client_key(self.client_ip(request)))
        if wait:
            return self.too_many(request, language, wait)
        if found.status in SUPPRESSED:
            return self.page(request, 200, "unsubscribed_title", "unsubscribed", language=language)
        form = request.form
        if form.get("unsubscribe") == "yes":
            self.subscriptions.unsubscribe(found, "preferences page")
            return self.page(request, 200, "unsubscribed_title", "unsubscribed", language=language)
        if form.get("save") != "yes":
            return self.page(request, 400, "bad_request_title", "bad_request", language=language)
        choice = read_preferences(form, offered_languages(self.settings))
        if choice.problem is not None:
            return self.preferences_form(400, found, problem=choice.problem)
        changed = self.subscriptions.set_preferences(found, language=choice.language, name=choice.name)
        if changed is None:  # erased meanwhile
            return self.page(request, 400, "link_title", "preferences_invalid")
        return self.preferences_form(200, changed, saved=True)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    transport: Transport | None = None,
    limits: RateLimits | None = None,
    confirm_ttl: int = CONFIRM_TTL,
    trusted_proxy: str | None = None,
) -> SubscriptionApp:
    """The WSGI app for `settings`; opens the store and transport itself when not given.

    `trusted_proxy`: the reverse proxy's address, whose X-Forwarded-For names the client.
    Raises ConfigError without NEWSLETTER_SECRET or without web.url.
    """
    return SubscriptionApp(
        settings,
        store=store,
        transport=transport,
        limits=limits,
        confirm_ttl=confirm_ttl,
        trusted_proxy=trusted_proxy,
    )


def app_from_env() -> SubscriptionApp:
    """The app for any WSGI host, e.g. `waitress-serve --call newsletter.web.app:app_from_env`.

    Settings come from $NEWSLETTER_ROOT (default: the current folder).
    """
    return create_app(load_settings(Path(os.environ.get("NEWSLETTER_ROOT", "."))))
