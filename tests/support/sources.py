"""A real HTTP server on 127.0.0.1 that serves import fixtures and misbehaves on request."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "import"


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    content_length: int | None = None  # None: the real length; larger: a truncated body
    fail_first: int = 0  # answer 503 this many times before the real answer
    headers: dict[str, str] = field(default_factory=dict)  # extra headers (Retry-After, Location)
    trickle: float = 0.0  # seconds to wait before each byte of the body
    chunked: bool = False  # Transfer-Encoding: chunked; with content_length set, stop mid-chunk


@dataclass
class FixtureServer:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter = field(default_factory=Counter)
    user_agents: list[str] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)

    def serve(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url + path

    def serve_fixture(self, name: str, content_type: str = "application/json", **kwargs: object) -> str:
        return self.serve(
            f"/{name}", Route(body=(FIXTURES / name).read_bytes(), content_type=content_type, **kwargs)
        )


def _handler(server: FixtureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # close after each response, so a short body is truncated

        def do_GET(self) -> None:
            path = self.path
            server.hits[path] += 1
            server.user_agents.append(self.headers.get("User-Agent", ""))
            route = server.routes.get(path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            if server.hits[path] <= route.fail_first:
                self.send_error(503, "Service Unavailable")
                return
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # one chunk announcing the full size, then the body cut short: the connection closes
                size = route.content_length if route.content_length is not None else len(route.body)
                self.wfile.write(f"{size:x}\r\n".encode() + route.body)
                if route.content_length is None:
                    self.wfile.write(b"\r\n0\r\n\r\n")
                return
            length = route.content_length if route.content_length is not None else len(route.body)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if not route.trickle:
                self.wfile.write(route.body)
                return
            for i in range(len(route.body)):
                if server.closing.wait(route.trickle):
                    return
                try:
                    self.wfile.write(route.body[i : i + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def fixture_server() -> Iterator[FixtureServer]:
    state = FixtureServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
