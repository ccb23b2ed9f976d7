"""A local preview server: the email in desktop and 375 px mobile frames, plus the text part.

It rebuilds when a paper, issue, template or the settings change, and the page
reloads itself, so an editor can keep it open while writing.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from newsletter.config import Settings, load_settings
from newsletter.errors import NewsletterError

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {slug}</title>
<style>
body {{ margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #e5e7eb; color: #111827; }}
header {{ padding: 10px 16px; background: #111827; color: #f9fafb; display: flex; gap: 16px; align-items: baseline; }}
header small {{ color: #9ca3af; }}
main {{ display: flex; gap: 16px; padding: 16px; align-items: flex-start; }}
figure {{ margin: 0; }} figcaption {{ font-size: 12px; color: #4b5563; margin: 0 0 4px; }}
iframe {{ border: 0; background: #fff; box-shadow: 0 1px 4px rgba(0,0,0,.2); height: 85vh; }}
pre {{ background: #fff; padding: 12px; margin: 0; height: 85vh; overflow: auto; width: 80ch; white-space: pre-wrap; }}
.error {{ background: #fee2e2; color: #7f1d1d; padding: 12px 16px; white-space: pre-wrap; }}
</style></head>
<body><header><strong>{subject}</strong><small id="state">{slug} · build {version}</small></header>
{error}
<main>
<figure><figcaption>Desktop (640 px)</figcaption><iframe title="Desktop preview" src="email.html?v={version}" width="640"></iframe></figure>
<figure><figcaption>Phone (375 px)</figcaption><iframe title="Phone preview" src="email.html?v={version}" width="375"></iframe></figure>
<figure><figcaption>Plain text</figcaption><pre>{text}</pre></figure>
</main>
<script>
const seen = "{version}";
setInterval(async () => {{
  try {{ const r = await fetch("version"); if ((await r.text()) !== seen) location.reload(); }} catch (e) {{}}
}}, 1000);
</script></body></html>
"""


class Preview:
    """Builds one issue on demand, again whenever its inputs change."""

    def __init__(self, root: Path, ref: str) -> None:
        self.root = root
        self.ref = ref
        self._lock = threading.Lock()
        self._stamp: tuple = ()
        self.version = 0
        self.html = self.text = self.subject = ""
        self.error: str | None = None

    def _inputs(self, settings: Settings | None) -> tuple:
        paths = [self.root / "newsletter.toml"]
        if settings is not None:
            for folder in (settings.papers_dir, settings.issues_dir, settings.templates_dir):
                paths.extend(sorted(folder.rglob("*")) if folder.is_dir() else [])
        return tuple((str(p), p.stat().st_mtime_ns) for p in paths if p.exists())

    def refresh(self) -> None:
        from newsletter.content.library import load_library
        from newsletter.mail.build import SAMPLE_READER, build_message
        from newsletter.mail.message import preferences_url, unsubscribe_url
        from newsletter.mail.render import personalise_preview

        with self._lock:
            try:
                settings = load_settings(self.root)
            except NewsletterError as exc:
                settings, stamp = None, self._inputs(None)
                if stamp != self._stamp:
                    self._stamp, self.error, self.version = stamp, exc.format_message(), self.version + 1
                return
            stamp = self._inputs(settings)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            self.version += 1
            try:
                library = load_library(settings, only=self.ref)
                built = build_message(library, library.issue(self.ref))
            except NewsletterError as exc:
                self.error = exc.format_message()
                return
            url = unsubscribe_url(settings, SAMPLE_READER.token)
            self.html, self.text = personalise_preview(
                built.rendered,
                name=SAMPLE_READER.name,
                unsubscribe_url=url,
                preferences_url=preferences_url(settings, SAMPLE_READER.preferences_token),
            )
            self.subject = built.rendered.subject
            self.error = None

    def page(self) -> str:
        error = f'<div class="error" role="alert">{html.escape(self.error)}</div>' if self.error else ""
        return PAGE.format(
            slug=html.escape(self.ref),
            subject=html.escape(self.subject),
            version=self.version,
            error=error,
            text=html.escape(self.text),
        )


def make_server(preview: Preview, host: str, port: int) -> ThreadingHTTPServer:
    routes: dict[str, Callable[[], tuple[str, str]]] = {
        "/": lambda: ("text/html", preview.page()),
        "/email.html": lambda: ("text/html", preview.html),
        "/email.txt": lambda: ("text/plain", preview.text),
        "/version": lambda: ("text/plain", str(preview.version)),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.send_error(404)
                return
            preview.refresh()
            kind, body = route()
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)
