"""The subscription web app served for real (waitress on 127.0.0.1), and a real browser to use it.

`serve_app` starts the app on a free port over a fresh newsletter folder; `browse` loads a
page in headless Chromium, and `autosubmit` lets a page press its own button in it.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from newsletter.config import Settings, load_settings
from newsletter.delivery.transports.memory import MemoryTransport
from newsletter.store import Store
from newsletter.web.app import SubscriptionApp, create_app
from newsletter.web.ratelimit import RateLimits
from tests.support.project import REPO

SECRET = "test-secret-for-web-tests-0123456789abcdef"


def write_newsletter(
    root: Path, web_url: str, *, transport: str = "memory", templates: Path | None = None
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "newsletter.toml").write_text(
        f"""
[newsletter]
name = "Test Digest"
base_url = "https://digest.example.org/"
language = "en"
postal_address = "Test Digest, 1 Example Road, Springfield"

[email]
from = "Test Digest <digest@example.org>"
reply_to = "editor@example.org"
list_id = "test.digest.example.org"

[web]
url = "{web_url}"

[paths]
templates = "{templates or REPO / "templates"}"
outbox = "outbox"

[send]
transport = "{transport}"

[database]
url = "sqlite:///subscribers/subscribers.db"
""",
        encoding="utf-8",
    )


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str


@dataclass
class Served:
    """The app behind waitress, and what the tests need to look inside."""

    url: str
    settings: Settings
    store: Store
    transport: MemoryTransport
    app: SubscriptionApp

    def request(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        host, port = urlsplit(self.url).hostname, urlsplit(self.url).port
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(response.status, response.headers, response.read().decode("utf-8"))
        finally:
            conn.close()

    def post_form(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> Answer:
        """POST a form, then wait for any confirmation mail it queued to reach the transport."""
        answer = self.request(
            "POST",
            path,
            urlencode(fields),
            {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )
        self.app.flush()
        return answer

    def subscriber(self, address: str):
        return self.store.get_subscriber(address)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def serve_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory: start the app (with chosen limits) under waitress on a free port."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    monkeypatch.delenv("NEWSLETTER_TRANSPORT", raising=False)
    started: list[tuple[threading.Event, threading.Thread, Store, SubscriptionApp]] = []

    def start(
        limits: RateLimits | None = None,
        transport=None,
        *,
        wrap=None,
        content: Path | None = None,
        templates: Path | None = None,
        trusted_proxy: str | None = None,
    ) -> Served:
        """`wrap`: WSGI middleware around the app; `content`: a newsletter whose papers/ and
        issues/ to copy in; `templates`: another templates folder."""

        import waitress.server

        sock = free_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        root = tmp_path / f"nl{len(started)}"
        write_newsletter(root, url, templates=templates)
        if content is not None:
            for sub in ("papers", "issues"):
                shutil.copytree(content / sub, root / sub)
        settings = load_settings(root)
        store = Store.open(settings.database_url)
        transport = transport or MemoryTransport()
        app = create_app(
            settings, store=store, transport=transport, limits=limits, trusted_proxy=trusted_proxy
        )
        server = waitress.server.create_server(
            # as `newsletter serve` runs it: forwarded headers reach the app, which decides
            wrap(app) if wrap else app,
            sockets=[sock],
            threads=8,
            ident="test",
            clear_untrusted_proxy_headers=False,
        )
        stop = threading.Event()

        def run() -> None:
            # waitress's own run() cannot be stopped from another thread cleanly:
            # loop in short slices instead, and close the server from this thread.
            try:
                while not stop.is_set():
                    server.asyncore.loop(timeout=0.05, map=server._map, count=1)
            finally:
                server.close()
                server.task_dispatcher.shutdown(timeout=2)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.append((stop, thread, store, app))
        return Served(url, settings, store, transport, app)

    yield start
    for stop, thread, store, app in started:
        stop.set()
        thread.join(timeout=5)
        app.close()
        store.close()


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def autosubmit(scripts: dict[str, str]):
    """Middleware for the browser test: on `GET <path>?autosubmit=1`, add a script that
    presses the page's own button. Everything else the app sends (notably its
    Referrer-Policy, which decides the Origin the browser sends) is kept."""

    def wrap(app):
        def middleware(environ, start_response):
            path = environ["PATH_INFO"]
            script = scripts.get("/u" if path.startswith("/u/") else path)
            if environ["REQUEST_METHOD"] != "GET" or "autosubmit=1" not in environ.get("QUERY_STRING", ""):
                script = None
            if script is None:
                return app(environ, start_response)
            seen: dict = {}

            def capture(status, headers, exc_info=None):
                seen.update(status=status, headers=headers)

            body = b"".join(app(environ, capture))
            body = body.replace(b"</body>", f"<script>{script}</script></body>".encode())
            headers = [
                (k, v + "; script-src 'unsafe-inline'" if k == "Content-Security-Policy" else v)
                for k, v in seen["headers"]
                if k != "Content-Length"
            ]
            start_response(seen["status"], [*headers, ("Content-Length", str(len(body)))])
            return [body]

        return middleware

    return wrap


def browse(url: str, profile: Path) -> str:
    """The DOM headless Chromium ends on after loading `url` (and whatever the page submits)."""

    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
