"""Reading sources: a file path, or an http(s) URL fetched with retries, a deadline and a size cap."""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException, IncompleteRead
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from newsletter import __version__
from newsletter.ingest.candidates import SourceError

HF_DAILY_PAPERS = "https://huggingface.co/api/daily_papers"
ARXIV_API = "https://export.arxiv.org/api/query"
MAX_BODY_BYTES = 20 * 1024 * 1024  # a daily listing is ~100 kB; more means a wrong URL


def _user_agent() -> str:
    """'newsletter/VERSION', plus the project's home page when the installed package declares one."""
    from importlib import metadata

    try:
        meta = metadata.metadata("newsletter")
    except metadata.PackageNotFoundError:
        return f"newsletter/{__version__}"
    urls = [u.partition(",")[2].strip() for u in meta.get_all("Project-URL") or []]
    urls.append(meta.get("Home-page") or "")
    home = next((u for u in urls if u.startswith("https://")), None)
    return f"newsletter/{__version__}" + (f" (+{home})" if home else "")


USER_AGENT = _user_agent()


@dataclass(frozen=True)
class Fetched:
    body: bytes
    content_type: str | None = None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib also follows them to ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise SourceError(req.full_url, f"expected a redirect to an http(s) URL, got one to {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is ignored)."""
    if value and value.strip().isascii() and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    return None


def fetch(
    url: str,
    *,
    timeout: float = 30.0,
    deadline: float = 120.0,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """GET a URL; retry 429, 5xx, connection errors and truncated bodies `retries` times with backoff.

    `timeout` bounds each connect and read; `deadline` bounds one whole attempt, so a
    server that trickles bytes cannot hold the import forever. Raises SourceError naming
    the URL, what was expected and what came back.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    attempts = retries + 1
    last = ""
    for attempt in range(1, attempts + 1):
        wait = backoff * 2 ** (attempt - 1)
        try:
            with opener.open(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                body, last = _read_body(response, time.monotonic() + deadline, deadline)
                if len(body) > MAX_BODY_BYTES:
                    raise SourceError(
                        url, f"response larger than {MAX_BODY_BYTES // 2**20} MB; expected a paper listing"
                    )
                if not last and length is not None and length.isdigit() and int(length) != len(body):
                    last = (
                        f"truncated response: expected {int(length)} bytes (Content-Length), got {len(body)}"
                    )
                if not last:
                    return Fetched(body, response.headers.get("Content-Type"))
        except urllib.error.HTTPError as exc:
            status = f"HTTP {exc.code} {exc.reason}"
            exc.close()
            if exc.code not in RETRY_STATUSES:
                raise SourceError(url, f"expected HTTP 200, got {status}") from None
            last = f"expected HTTP 200, got {status}"
            wait = max(wait, _retry_after(exc.headers.get("Retry-After")) or 0.0)
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                last = f"no answer within {timeout:g} s (timeout)"
            else:
                last = f"cannot connect: {reason}"
        if attempt < attempts:
            sleep(wait)
    raise SourceError(url, f"{last} (after {attempts} attempts)")


def _read_body(response: Any, until: float, deadline: float) -> tuple[bytes, str]:
    """The body (at most MAX_BODY_BYTES + 1 bytes) and why it is incomplete ('' when it is not)."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        if time.monotonic() > until:
            return b"".join(chunks), f"the response took longer than {deadline:g} s"
        try:
            chunk = response.read1(min(64 * 1024, MAX_BODY_BYTES + 1 - size))  # one recv: see `until`
        except IncompleteRead as exc:  # the connection closed early (also without Content-Length)
            got = size + len(exc.partial)
            return b"".join(
                chunks
            ) + exc.partial, f"truncated response: the connection closed after {got} bytes"
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), ""


def read_source(source: str, **fetch_options: Any) -> Fetched:
    """The bytes of a file path or an http(s) URL."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return fetch(source, **fetch_options)
    if "://" in source:
        raise SourceError(source, f"expected a file or an http(s) URL, got a {scheme}: URL")
    path = Path(source)
    try:
        return Fetched(path.read_bytes())
    except FileNotFoundError:
        raise SourceError(source, "no such file") from None
    except IsADirectoryError:
        raise SourceError(source, "expected a file, got a folder") from None
    except OSError as exc:
        raise SourceError(source, f"cannot read: {exc.strerror}") from None


def hf_url(day: dt.date) -> str:
    return f"{HF_DAILY_PAPERS}?date={day.isoformat()}"


def arxiv_url(query: str, max_results: int = 50) -> str:
    return (
        f"{ARXIV_API}?search_query={quote(query, safe=':')}&start=0&max_results={max_results}"
        "&sortBy=submittedDate&sortOrder=descending"
    )
