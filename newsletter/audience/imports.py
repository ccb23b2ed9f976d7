"""Subscriber import: CSV files from this tool or from Mailchimp, Substack and Buttondown.

The file is checked as a whole first (exists, is UTF-8 text, has an email column),
so an unusable file writes nothing. Rows are then read lazily and merged into the
store in batches; a row's status goes through the lifecycle as an ``import``
(`newsletter.audience.lifecycle`): an unsubscribed, bounced or complained address is
never re-activated, and a bounce or complaint is never replaced. `strict=True` validates
every row before writing anything and refuses the whole file on any bad row.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsletter.audience.lifecycle import import_decision
from newsletter.errors import NewsletterError, Problem, ProblemsError
from newsletter.store import ImportCounts, Store, SubscriberRow, normalize_email
from newsletter.text import is_language_tag

__all__ = ["ImportFileError", "ImportReport", "Refusal", "import_csv", "normalize_email", "parse_language"]

BATCH = 1000
_SNIFF_BYTES = 1024
_SCAN_CHUNK = 1 << 16

# Header names, normalised (lowercase; spaces, '_' and '-' folded to one space) -> our field.
# Mailchimp: "Email Address", "First Name", "Last Name", OPTIN_TIME, CONFIRM_TIME, UNSUB_TIME
# (unsubscribed export), CLEAN_TIME (cleaned export). Substack: email, name, created_at,
# email_disabled. Buttondown: email / email_address, notes, tags, type, creation_date.
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
    "status": "status",
    "subscriber status": "status",
    "subscription status": "status",
    "email marketing status": "status",
    "type": "status",
    "subscriber type": "status",
    "consent at": "consent_at",
    "subscribed at": "consent_at",
    "confirm time": "consent_at",
    "optin time": "consent_at",
    "created at": "consent_at",
    "creation date": "consent_at",
    "date added": "consent_at",
    "unsub time": "unsub_time",
    "clean time": "clean_time",
    "email disabled": "email_disabled",
    "attributes": "attributes",
}
# Mailchimp, Substack and Buttondown status words -> ours.
_STATUS_WORDS = {
    "active": "active",
    "subscribed": "active",
    "confirmed": "active",
    "regular": "active",
    "premium": "active",
    "paid": "active",
    "free": "active",
    "gifted": "active",
    "trialed": "active",
    "churning": "active",
    "pending": "pending",
    "unconfirmed": "pending",
    "unactivated": "pending",
    "unsubscribed": "unsubscribed",
    "removed": "unsubscribed",
    "bounced": "bounced",
    "cleaned": "bounced",
    "undeliverable": "bounced",
    "complained": "complained",
    "spammy": "complained",
}
# Columns of our own export that describe the database, not the subscriber.
_IGNORED = {"id", "source", "updated at", "unsubscribed at", "soft bounces"}
_TRUE = {"true", "yes", "1", "t", "y"}
_FOLD = re.compile(r"[\s_\-]+")


class ImportFileError(NewsletterError):
    """The import file cannot be used at all."""


@dataclass(frozen=True)
class Refusal:
    line: int
    email: str
    reason: str

    def problem(self, where: str) -> Problem:
        return Problem(f"{where}:{self.line}", None, self.reason)


@dataclass
class ImportReport:
    path: Path
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # rows for an address already seen earlier in the file (merged into it)
    refused: list[Refusal] = field(default_factory=list)
    written: bool = True  # False when strict mode refused the file

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.duplicates} duplicates merged, {len(self.refused)} refused"
        )


@dataclass(frozen=True)
class _Layout:
    encoding: str
    delimiter: str
    header: list[str]
    columns: dict[str, int]  # our field -> index
    extras: dict[str, int]  # other columns, kept as attributes
    lines: int  # physical lines, for the progress total


def import_csv(
    store: Store,
    path: Path | str,
    *,
    strict: bool = False,
    check_dns: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Merge the subscribers of a CSV file into `store`.

    Rows are streamed and written in batches of BATCH, each batch its own
    transaction (a re-run after a crash is harmless: merging is idempotent); only
    the set of addresses already seen is kept, to count duplicates exactly.
    `progress(rows_done, rows_total)` is called after each batch. Raises
    ImportFileError for an unusable file and ProblemsError (nothing written) when
    `strict` and some row is refused.
    """
    path = Path(path)
    layout = _inspect(path)
    report = ImportReport(path=path)
    if strict:
        refused = [r for r in _rows(path, layout, check_dns) if isinstance(r, Refusal)]
        if refused:
            report.refused = refused
            report.written = False
            problems = [r.problem(str(path)) for r in refused]
            problems[0] = Problem(problems[0].where, None, problems[0].message, hint=_STRICT_HINT)
            raise ProblemsError(problems)

    seen: set[str] = set()  # keys of earlier batches: a repeat there is a duplicate, not a new address
    batch: list[SubscriberRow] = []

    decide = import_decision(now=datetime.now(UTC))

    def flush() -> None:
        counts = store.upsert_many(batch, decide)
        _recount(report, counts, seen)
        batch.clear()
        if progress:
            progress(report.rows, max(layout.lines - 1, report.rows))

    for item in _rows(path, layout, check_dns):
        report.rows += 1
        if isinstance(item, Refusal):
            report.refused.append(item)
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    if progress:
        progress(report.rows, report.rows)
    return report


_STRICT_HINT = (
    "Nothing was imported (--strict). Fix or delete these rows, or import without --strict to skip them."
)


def _recount(report: ImportReport, counts: ImportCounts, seen: set[str]) -> None:
    report.added += counts.added
    report.updated += counts.updated
    report.unchanged += counts.unchanged
    report.duplicates += counts.duplicates
    for key, outcome in counts.outcomes.items():
        if key in seen:
            # already counted in an earlier batch: this one is a duplicate row
            setattr(report, outcome, getattr(report, outcome) - 1)
            report.duplicates += 1
    seen.update(counts.outcomes)


# --------------------------------------------------------------------------- reading


def _inspect(path: Path) -> _Layout:
    """Check the whole file is usable text with an email column; nothing is written before this."""
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

    sample = head[: _SNIFF_BYTES * 4].decode(encoding, errors="ignore").lstrip("\ufeff")
    if not sample.strip():
        raise ImportFileError(f"{where}: the file is empty; expected a header line with an 'email' column")
    delimiter = _delimiter(sample)
    header = next(csv.reader([sample.splitlines()[0]], delimiter=delimiter), [])
    columns: dict[str, int] = {}
    extras: dict[str, int] = {}
    for index, name in enumerate(header):
        folded = _FOLD.sub(" ", name.strip().lower())
        target = _COLUMNS.get(folded)
        if target:
            # a second column for the same field (e.g. created_at after consent_at) is ignored
            columns.setdefault(target, index)
        elif folded not in _IGNORED and name.strip():
            extras[name.strip()] = index
    if "email" not in columns:
        shown = ", ".join(repr(h) for h in header[:8]) + (", ..." if len(header) > 8 else "")
        raise ImportFileError(
            f"{where}:1: expected a header line with an 'email' column "
            f"(or 'Email Address', 'email_address'), got {shown or 'nothing'}"
        )
    return _Layout(encoding, delimiter, header, columns, extras, lines + (0 if sample.endswith("\n") else 1))


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


def _rows(path: Path, layout: _Layout, check_dns: bool) -> Iterator[SubscriberRow | Refusal]:
    with path.open(encoding=layout.encoding, newline="") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        next(reader, None)  # the header
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank lines are not rows
            yield _row(record, reader.line_num, layout, check_dns)


def _row(record: list[str], line: int, layout: _Layout, check_dns: bool) -> SubscriberRow | Refusal:
    def cell(name: str) -> str:
        index = layout.columns.get(name)
        return record[index].strip() if index is not None and index < len(record) else ""

    raw = cell("email")
    if not raw:
        return Refusal(line, raw, "column 'email': empty")
    try:
        email = normalize_email(raw, check_dns=check_dns)
    except ValueError as exc:
        return Refusal(line, raw, f"column 'email': {raw!r} is not a usable address: {exc}")

    name = cell("name") or " ".join(p for p in (cell("first_name"), cell("last_name")) if p)
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

    status = None
    word = cell("status").lower()
    if word:
        status = _STATUS_WORDS.get(word)
        if status is None:
            expected = "one of active, pending, unsubscribed, bounced, complained"
            return Refusal(line, raw, f"column 'status': expected {expected}, got {cell('status')!r}")
    # Mailchimp's unsubscribed/cleaned exports and Substack's email_disabled mark suppressed rows
    if cell("unsub_time") or cell("email_disabled").lower() in _TRUE:
        status = "unsubscribed"
    elif cell("clean_time"):
        status = "bounced"

    attributes: dict[str, Any] = {}
    exported = cell("attributes")
    if exported.startswith("{"):
        try:
            attributes.update(json.loads(exported))
        except ValueError:
            attributes["attributes"] = exported
    for key, index in layout.extras.items():
        if index < len(record) and record[index].strip():
            attributes[key] = record[index].strip()
    consent_text = cell("consent_at")
    consent_at = _parse_time(consent_text)
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
    )


def parse_language(text: str) -> str | None:
    """'EN' -> 'en', 'pt_br' -> 'pt-BR'; None if `text` is not a language tag."""
    text = text.strip()
    if not is_language_tag(text.replace("_", "-")):
        return None
    primary, *rest = re.split(r"[-_]", text)
    return "-".join([primary.lower(), *(p.upper() if len(p) == 2 else p for p in rest)])


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
