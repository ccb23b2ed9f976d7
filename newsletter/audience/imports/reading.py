"""Reading an import file: checking it whole, recognising its platform, and turning rows into subscribers.

Nothing here writes: `inspect` reads the whole file once (text, encoding, header,
platform) so that an unusable file is refused before anything is stored, and `rows`
yields one `SubscriberRow` or `Refusal` per line.
"""

from __future__ import annotations

import ast
import codecs
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.audience.imports.platforms import PLATFORMS, Platform, fold, strongest
from newsletter.errors import NewsletterError, Problem
from newsletter.store import SubscriberRow, normalize_email
from newsletter.text import fold_tag, is_language_tag

_SNIFF_BYTES = 1024
_SCAN_CHUNK = 1 << 16

# Header names every format shares (folded) -> our field. The first column present wins.
_COLUMNS = {
    "email": "email",
    "email address": "email",
    "e mail": "email",
    "e mail address": "email",
    "emailaddress": "email",
    "mail": "email",
    "name": "name",
    "full name": "name",
    "fullname": "name",
    "display name": "name",
    "first name": "first_name",
    "firstname": "first_name",
    "fname": "first_name",
    "given name": "first_name",
    "last name": "last_name",
    "lastname": "last_name",
    "lname": "last_name",
    "surname": "last_name",
    "family name": "last_name",
    "language": "language",
    "lang": "language",
    "locale": "language",
    "preferred language": "language",
}
# When consent was given, after a platform's own columns.
_CONSENT = (
    "consent at",
    "subscribed at",
    "confirm time",
    "optin time",
    "created at",
    "creation date",
    "date added",
)
# Columns that hold a dict of more attributes: this tool's export (JSON), listmonk (JSON), Buttondown (Python repr).
_DICTS = ("attributes", "metadata")
# Columns of our own export that describe the database, not the subscriber.
_IGNORED = {"id", "source", "updated at", "unsubscribed at", "soft bounces"}


class ImportFileError(NewsletterError):
    """The import file cannot be used at all."""


@dataclass(frozen=True)
class Refusal:
    line: int
    email: str
    reason: str

    def problem(self, where: str) -> Problem:
        return Problem(f"{where}:{self.line}", None, self.reason)


@dataclass(frozen=True)
class Layout:
    encoding: str
    delimiter: str
    header: list[str]
    platform: Platform
    columns: dict[str, int]  # our field -> index
    status: int | None  # the status column's index
    tags: int | None  # the tags column's index
    signals: list[tuple[int, Any]]  # (index, Signal)
    dicts: list[int]
    extras: dict[str, int]  # other columns, kept as attributes
    file_status: str | None  # Mailchimp: the status its file name (or section columns) gives
    lines: int  # physical lines, for the progress total


def inspect(path: Path, format: str | None = None) -> Layout:
    """Check the whole file is usable text with an email column; nothing is written before this."""
    encoding, lines, head = _scan(path)
    where = str(path)
    sample = head[: _SNIFF_BYTES * 4].decode(encoding, errors="ignore").lstrip("\ufeff")
    if not sample.strip():
        raise ImportFileError(f"{where}: the file is empty; expected a header line with an 'email' column")
    delimiter = _delimiter(sample)
    header = next(csv.reader([sample.splitlines()[0]], delimiter=delimiter), [])
    folded = [fold(name) for name in header]
    index: dict[str, int] = {}
    for i, name in enumerate(folded):
        index.setdefault(name, i)
    platform = _platform(set(index), path, format)

    columns: dict[str, int] = {}
    for name, i in index.items():
        target = _COLUMNS.get(name)
        if target:
            columns.setdefault(target, i)
    consent = next((index[c] for c in (*platform.consent_columns, *_CONSENT) if c in index), None)
    if consent is not None:
        columns["consent_at"] = consent
    status = next((index[c] for c in platform.status_columns if c in index), None)
    tags = next((index[c] for c in platform.tag_columns if c in index), None)
    signals = [(index[s.column], s) for s in platform.signals if s.column in index]
    dicts = [index[d] for d in _DICTS if d in index]
    used = {*columns.values(), *(i for i, _ in signals), *dicts}
    used |= {index[c] for c in _CONSENT if c in index}  # a second consent column is not an attribute
    used |= {i for i in (status, tags) if i is not None}
    extras = {
        header[i].strip(): i
        for i, name in enumerate(folded)
        if i not in used and name not in _IGNORED and header[i].strip()
    }
    if "email" not in columns:
        shown = ", ".join(repr(h) for h in header[:8]) + (", ..." if len(header) > 8 else "")
        raise ImportFileError(
            f"{where}:1: expected a header line with an 'email' column "
            f"(or 'Email Address', 'email_address'), got {shown or 'nothing'}"
        )
    file_status = _file_status(platform, path, set(index)) if platform.file_name else None
    return Layout(
        encoding=encoding,
        delimiter=delimiter,
        header=header,
        platform=platform,
        columns=columns,
        status=status,
        tags=tags,
        signals=signals,
        dicts=dicts,
        extras=extras,
        file_status=file_status,
        lines=lines + (0 if sample.endswith("\n") else 1),
    )


def _platform(header: set[str], path: Path, format: str | None) -> Platform:
    if format is not None:
        if format not in PLATFORMS:
            raise ImportFileError(f"--format: expected one of {', '.join(PLATFORMS)}, got {format!r}")
        return PLATFORMS[format]
    return next(p for p in PLATFORMS.values() if p.detects(header, path.name) or p.name == "generic")


def _file_status(platform: Platform, path: Path, header: set[str]) -> str:
    """Mailchimp's status: from the file's name, else from the columns only one section has."""
    assert platform.file_name is not None
    match = platform.file_name.match(path.name.lower())
    if match:
        return platform.statuses[match.group(1)]
    for column, word in (
        ("unsub time", "unsubscribed"),
        ("clean time", "cleaned"),
        ("last changed", "subscribed"),
    ):
        if column in header:
            return platform.statuses[word]
    raise ImportFileError(
        f"{path}: expected a Mailchimp export named subscribed_…, unsubscribed_… or cleaned_… "
        f"(Mailchimp puts the status in the file name), got {path.name!r}\n\n"
        "Import the files of Mailchimp's zip under the names Mailchimp gave them."
    )


def _scan(path: Path) -> tuple[str, int, bytes]:
    """The encoding, the number of lines and the first bytes; the whole file is decoded once."""
    where = str(path)
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES * 4)
            encoding = _encoding(head)
            decoder = codecs.getincrementaldecoder(encoding)()
            lines, chunk, offset = 0, head, 0
            while chunk:
                if b"\x00" in chunk and not encoding.startswith("utf-16"):
                    raise ImportFileError(f"{where}: expected a CSV text file, got binary data")
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line = lines + chunk[: exc.start].count(b"\n") + 1
                    raise ImportFileError(
                        f"{where}:{line}: expected UTF-8 text, got byte {chunk[exc.start]:#04x} "
                        f"(offset {offset + exc.start})\n\n"
                        "Save the file as 'CSV UTF-8' in your spreadsheet program."
                    ) from None
                lines += text.count("\n")
                offset += len(chunk)
                chunk = f.read(_SCAN_CHUNK)
            decoder.decode(b"", final=True)
    except FileNotFoundError:
        raise ImportFileError(f"{where}: no such file; expected a CSV file of subscribers") from None
    except IsADirectoryError:
        raise ImportFileError(f"{where}: is a folder; expected a CSV file of subscribers") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{where}: expected UTF-8 text, got a truncated character at the end") from None
    except OSError as exc:
        raise ImportFileError(f"{where}: cannot read the file ({exc.strerror})") from None
    return encoding, lines, head


def _encoding(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" export
    return "utf-8-sig"


def _delimiter(sample: str) -> str:
    """The delimiter: csv.Sniffer on the first KB, else the most frequent of , ; tab in the header.

    Only the delimiter is taken from the sniffer; quoting stays Excel's, which every
    export we read uses (the sniffer's quoting guesses are unreliable on short samples).
    """
    first = sample.splitlines()[0]
    try:
        delimiter = csv.Sniffer().sniff(sample[:_SNIFF_BYTES], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ""
    if delimiter not in first or not delimiter:
        delimiter = max(",;\t", key=first.count)
    return delimiter


def rows(path: Path, layout: Layout, check_dns: bool) -> Iterator[SubscriberRow | Refusal]:
    with path.open(encoding=layout.encoding, newline="") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        next(reader, None)  # the header
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank lines are not rows
            yield _row(record, reader.line_num, layout, check_dns)


def _row(record: list[str], line: int, layout: Layout, check_dns: bool) -> SubscriberRow | Refusal:
    def at(index: int | None) -> str:
        return record[index].strip() if index is not None and index < len(record) else ""

    def cell(name: str) -> str:
        return at(layout.columns.get(name))

    raw = cell("email")
    if not raw:
        return Refusal(line, raw, "column 'email': empty")
    try:
        email = normalize_email(raw, check_dns=check_dns)
    except ValueError as exc:
        return Refusal(line, raw, f"column 'email': {raw!r} is not a usable address: {exc}")
    platform = layout.platform
    domain = email.rpartition("@")[2]
    if any(domain.startswith(prefix) for prefix in platform.refuse_domains):
        return Refusal(line, raw, f"column 'email': {raw!r} stands for a deleted {platform.name} account")

    status, unknown = _status(at, layout)
    if unknown:
        return Refusal(line, raw, unknown)

    attributes: dict[str, Any] = {}
    for index in layout.dicts:
        attributes.update(_dict_cell(at(index), layout.header[index].strip()))
    for key, index in layout.extras.items():
        if at(index):
            attributes[key] = at(index)

    language = cell("language")
    if language:
        parsed = parse_language(language)
        if parsed is None:
            return Refusal(
                line,
                raw,
                f"column 'language': expected a language tag like 'en' or 'pt-BR', got {language!r}",
            )
        language = parsed
    else:  # listmonk's attributes and Buttondown's metadata may say it; a bad tag there is ignored
        said = attributes.get("language") or attributes.get("lang")
        language = (parse_language(said) if isinstance(said, str) else None) or ""

    name = cell("name") or " ".join(p for p in (cell("first_name"), cell("last_name")) if p)
    if not name:
        said = attributes.get("name") or " ".join(
            str(attributes[k]).strip() for k in ("first_name", "last_name") if attributes.get(k)
        )
        name = said.strip() if isinstance(said, str) else ""

    tags, bad_tag = _tags(at(layout.tags), layout)
    if bad_tag:
        return Refusal(line, raw, bad_tag)

    consent_text = cell("consent_at")
    consent_at = platform.parse_time(consent_text) if consent_text else None
    if consent_text and consent_at is None:
        attributes["consent"] = consent_text  # kept as written rather than refusing the row

    return SubscriberRow(
        email=email,
        name=name or None,
        language=language or None,
        status=status,
        source="import",
        consent_at=consent_at,
        attributes=attributes or None,
        line=line,
        tags=tags,
    )


def _tags(text: str, layout: Layout) -> tuple[tuple[str, ...], str | None]:
    """The row's tags, folded (a quoted tag may hold the separator), or why one is unusable."""
    if not text:
        return (), None
    cells = next(csv.reader([text], delimiter=layout.platform.tag_separator, skipinitialspace=True), [])
    try:
        return tuple(dict.fromkeys(fold_tag(c) for c in cells if c.strip())), None
    except ValueError as exc:
        column = layout.header[layout.tags].strip()  # type: ignore[index]
        return (), f"column {column!r}: {exc}"


def _status(at: Any, layout: Layout) -> tuple[str | None, str | None]:
    """The row's status (the strongest of its status word and signals), or why its word is unknown."""
    platform = layout.platform
    found: list[str] = []
    if layout.file_status:
        found.append(layout.file_status)
    word = at(layout.status)
    if word:
        mapped = platform.statuses.get(word.lower())
        if mapped is None:
            column = layout.header[layout.status].strip()  # type: ignore[index]
            return None, f"column {column!r}: expected one of {platform.known_words()}, got {word!r}"
        found.append(mapped)
    found.extend(signal.status for index, signal in layout.signals if signal.fires(at(index)))
    return strongest(found), None


def _dict_cell(text: str, column: str) -> dict[str, Any]:
    """A cell holding a dict: JSON, or a Python literal (Buttondown's metadata); else kept as text."""
    if not text.startswith("{"):
        return {column: text} if text else {}
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
    return {column: text}


def parse_language(text: str) -> str | None:
    """'EN' -> 'en', 'pt_br' -> 'pt-BR'; None if `text` is not a language tag."""
    text = text.strip()
    if not is_language_tag(text.replace("_", "-")):
        return None
    primary, *rest = re.split(r"[-_]", text)
    return "-".join([primary.lower(), *(p.upper() if len(p) == 2 else p for p in rest)])
