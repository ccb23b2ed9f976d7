"""One source's bytes → `Parsed`: the format is given or detected, then its parser runs."""

from __future__ import annotations

import datetime as dt
import json

from newsletter.ingest.arxiv import parse_arxiv
from newsletter.ingest.candidates import Parsed, SourceError
from newsletter.ingest.huggingface import parse_hf
from newsletter.ingest.listing import parse_listing

FORMATS = ("listing", "hf", "arxiv")


def detect_format(body: bytes) -> str:
    """'hf' for a JSON list, 'arxiv' for Atom XML, else 'listing'; HTML pages are refused."""
    head = body[:512].lstrip().lower()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith((b"[", b"{")):
        return "hf"
    if head.startswith((b"<!doctype html", b"<html")):
        raise SourceError(
            "", "got an HTML page; expected Hugging Face JSON, arXiv Atom XML or a plain-text listing"
        )
    if head.startswith(b"<?xml") or head.startswith(b"<feed"):
        return "arxiv"
    return "listing"


def parse_source(
    body: bytes,
    fmt: str,
    *,
    where: str,
    content_type: str | None = None,
    date: dt.date | None = None,
    today: dt.date | None = None,
) -> Parsed:
    """Decode and parse one source's bytes in the given format ('auto' detects it)."""
    if fmt == "auto":
        try:
            fmt = detect_format(body)
        except SourceError as exc:
            raise SourceError(where, exc.reason) from None
    looks_html = body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))
    if fmt == "arxiv":
        if looks_html:
            raise SourceError(where, f"expected arXiv Atom XML, got an HTML page{_ctype(content_type)}")
        return _date_ignored(parse_arxiv(body, where=where), where, date)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(where, f"expected UTF-8 text, got an invalid byte at offset {exc.start}") from None
    if fmt == "hf":
        if looks_html:
            raise SourceError(
                where, f"expected JSON (Hugging Face daily papers), got an HTML page{_ctype(content_type)}"
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(
                where, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        return _date_ignored(parse_hf(data, where=where), where, date)
    if fmt == "listing":
        if looks_html:
            raise SourceError(where, f"expected a plain-text listing, got an HTML page{_ctype(content_type)}")
        return parse_listing(text, where=where, date=date, today=today)
    raise SourceError(where, f"expected a format among {', '.join(FORMATS)} or auto, got {fmt!r}")


def _date_ignored(parsed: Parsed, where: str, date: dt.date | None) -> Parsed:
    if date is not None:
        parsed.notes.append(f"{where}: --date {date} ignored: its items carry their own dates")
    return parsed


def _ctype(content_type: str | None) -> str:
    return f" (Content-Type: {content_type})" if content_type else ""
