"""The local preview server for a built site (`newsletter archive serve`)."""

from __future__ import annotations

import errno
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from newsletter.archive import ArchiveError


def site_server(out: Path | str, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False):
    """An HTTP server for a built site: folders answer with index.html, misses with 404.html.

    Returns a started-but-not-serving `ThreadingHTTPServer`; call `serve_forever()`.
    """
    root = Path(out)
    if not (root / "index.html").is_file():
        raise ArchiveError(
            f"{root}: no built site here (no index.html)\n\nRun `newsletter archive build` first."
        )

    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {
            **SimpleHTTPRequestHandler.extensions_map,
            ".html": "text/html; charset=utf-8",
            ".css": "text/css; charset=utf-8",
            ".json": "application/json; charset=utf-8",
            ".xml": "application/xml; charset=utf-8",
            ".txt": "text/plain; charset=utf-8",
        }

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            page = root / "404.html"
            if code != 404 or not page.is_file():
                super().send_error(code, message, explain)
                return
            body = page.read_bytes()
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

    try:
        server = ThreadingHTTPServer((host, port), partial(Handler, directory=str(root)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise  # the command may move on to the next free port
        raise ArchiveError(f"{host}:{port}: cannot listen there: {exc.strerror}") from None
    server.daemon_threads = True
    return server
