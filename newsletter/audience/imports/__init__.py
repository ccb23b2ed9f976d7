"""Subscriber import: CSV exports of Mailchimp, Substack, Buttondown, Ghost, Kit, beehiiv, listmonk, or any CSV.

The file is checked as a whole first (exists, is UTF-8 text, has an email column, its
platform is recognised from the header or given with `format`), so an unusable file
writes nothing. Each platform's statuses map onto ours through one table
(`newsletter.audience.imports.platforms`); every opt-out signal wins over "active", and
an unknown status refuses the row. Rows are then read lazily and merged into the store
in batches; a row's status goes through the lifecycle as an ``import``
(`newsletter.audience.lifecycle`): an unsubscribed, bounced or complained address is
never re-activated, and a bounce or complaint is never replaced. `strict=True` validates
every row before writing anything and refuses the whole file on any bad row;
`plan_import` reads the file and writes nothing (``--dry-run``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from newsletter.audience.imports.platforms import PLATFORMS, Platform, markdown_table
from newsletter.audience.imports.reading import (
    ImportFileError,
    Layout,
    Refusal,
    inspect,
    parse_language,
    rows,
)
from newsletter.audience.lifecycle import import_decision
from newsletter.errors import Problem, ProblemsError
from newsletter.store import ImportCounts, Store, normalize_email

__all__ = [
    "PLATFORMS",
    "ImportFileError",
    "ImportPlan",
    "ImportReport",
    "Refusal",
    "import_csv",
    "markdown_table",
    "normalize_email",
    "parse_language",
    "plan_import",
]

BATCH = 1000


@dataclass
class ImportReport:
    path: Path
    format: str = "generic"
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


@dataclass
class ImportPlan:
    """What an import of a file would bring, read without writing (``--dry-run``)."""

    path: Path
    platform: Platform
    status_column: str | None  # the header name the status is read from; None: the file name or nothing
    file_status: str | None  # Mailchimp: the status the file name gives every row
    signals: list[str]  # the opt-out columns present, described
    rows: int = 0
    statuses: Counter[str] = field(
        default_factory=Counter
    )  # our status -> rows ("no status": none given, active if new)
    refused: list[Refusal] = field(default_factory=list)


def plan_import(path: Path | str, *, format: str | None = None, check_dns: bool = False) -> ImportPlan:
    """Read the whole file as `import_csv` would and count the statuses it gives; writes nothing."""
    path = Path(path)
    layout = inspect(path, format)
    plan = ImportPlan(
        path=path,
        platform=layout.platform,
        status_column=None if layout.status is None else layout.header[layout.status].strip(),
        file_status=layout.file_status,
        signals=[signal.describe() for _, signal in layout.signals],
    )
    for item in rows(path, layout, check_dns):
        plan.rows += 1
        if isinstance(item, Refusal):
            plan.refused.append(item)
        else:
            plan.statuses[item.status or "no status"] += 1
    return plan


def import_csv(
    store: Store,
    path: Path | str,
    *,
    strict: bool = False,
    check_dns: bool = False,
    format: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Merge the subscribers of a CSV file into `store`.

    Rows are streamed and written in batches of BATCH, each batch its own
    transaction (a re-run after a crash is harmless: merging is idempotent); only
    the set of addresses already seen is kept, to count duplicates exactly.
    `progress(rows_done, rows_total)` is called after each batch. `format` names the
    platform (see PLATFORMS); by default it is recognised from the header. Raises
    ImportFileError for an unusable file and ProblemsError (nothing written) when
    `strict` and some row is refused.
    """
    path = Path(path)
    layout: Layout = inspect(path, format)
    report = ImportReport(path=path, format=layout.platform.name)
    if strict:
        refused = [r for r in rows(path, layout, check_dns) if isinstance(r, Refusal)]
        if refused:
            report.refused = refused
            report.written = False
            problems = [r.problem(str(path)) for r in refused]
            problems[0] = Problem(problems[0].where, None, problems[0].message, hint=_STRICT_HINT)
            raise ProblemsError(problems)

    seen: set[str] = set()  # keys of earlier batches: a repeat there is a duplicate, not a new address
    batch: list = []

    decide = import_decision(now=datetime.now(UTC))

    def flush() -> None:
        counts = store.upsert_many(batch, decide)
        _recount(report, counts, seen)
        batch.clear()
        if progress:
            progress(report.rows, max(layout.lines - 1, report.rows))

    for item in rows(path, layout, check_dns):
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
