"""Plain listings: pasted text with a date line, then title and abstract paragraphs."""

from __future__ import annotations

import datetime as dt
import re

from newsletter.ingest.candidates import (
    Candidate,
    Parsed,
    Refusal,
    SourceError,
    accept,
    clean_line,
    clean_paragraphs,
)
from newsletter.text import CONTROL_CHARS

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, start=1)}
DATE_LINE = re.compile(
    r"^(?:(?P<m1>[A-Za-z]{3,9})\.?\s+(?P<d1>\d{1,2})|(?P<d2>\d{1,2})\s+(?P<m2>[A-Za-z]{3,9})\.?)"
    r"(?:,?\s+(?P<y>\d{4}))?$"
)


def _is_abstract(block: str) -> bool:
    """Abstracts are paragraphs of sentences; titles, dates and site boilerplate are short lines.

    Titles run up to ~20 words and rarely end with a full stop; a short final paragraph of an
    abstract still does.
    """
    words = len(block.split())
    return words >= 25 or (words >= 12 and block.endswith("."))


def _date_line(block: str) -> tuple[int, int] | None:
    match = DATE_LINE.match(block)
    if not match:
        return None
    month = MONTHS.get((match["m1"] or match["m2"])[:3].lower())
    day = int(match["d1"] or match["d2"])
    if month is None:
        return None
    try:
        dt.date(2000, month, day)  # a leap year, so Feb 29 passes
    except ValueError:
        return None
    return month, day


def most_recent(month: int, day: int, today: dt.date) -> dt.date:
    """The latest date with this month and day that is not after today."""
    year = today.year
    while True:
        try:
            candidate = dt.date(year, month, day)
        except ValueError:  # Feb 29 in a common year
            year -= 1
            continue
        if candidate <= today:
            return candidate
        year -= 1


def _blocks(text: str) -> list[tuple[int, str, str]]:
    """The text's paragraphs as (line number, one-line text, raw text)."""
    blocks: list[tuple[int, str, str]] = []
    line_no = 1
    for raw in re.split(r"(\n[ \t]*\n)", text):
        if raw.strip() and not raw.startswith("\n"):
            offset = len(raw) - len(raw.lstrip("\n"))
            blocks.append((line_no + offset, " ".join(raw.split()), raw))
        line_no += raw.count("\n")
    return blocks


def _listing_start(blocks: list[tuple[int, str, str]], where: str) -> int:
    """The first block after the header: a date line, else a short block before an abstract."""
    start = next((i for i, (_, b, _) in enumerate(blocks) if _date_line(b)), None)
    if start is None:
        start = next(
            (
                i
                for i in range(len(blocks) - 1)
                if not _is_abstract(blocks[i][1]) and _is_abstract(blocks[i + 1][1])
            ),
            None,
        )
    if start is None:
        raise SourceError(
            where, "expected a listing of titles each followed by an abstract paragraph, found none"
        )
    return start


def parse_listing(
    text: str, *, where: str, date: dt.date | None = None, today: dt.date | None = None
) -> Parsed:
    """A plain listing: header lines, a date line ("Mar 17"), then title / abstract paragraphs.

    The header is whatever comes before the first date line, or, without one, before the
    first short block that is followed by an abstract-like paragraph. A date line without
    a year takes `date` when given, else its most recent past occurrence.
    """
    today = today or dt.date.today()
    parsed = Parsed()
    text = CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).removeprefix("\ufeff")
    blocks = _blocks(text)
    start = _listing_start(blocks, where)
    header = [b for _, b, _ in blocks[:start]]
    if header:
        parsed.notes.append(f"{where}: skipped {len(header)} header line(s): " + ", ".join(map(repr, header)))

    current_date = date
    title: tuple[int, str] | None = None
    previous: Candidate | None = None
    for line, block, raw in blocks[start:]:
        day = _date_line(block)
        if day is not None:
            if title is not None:
                parsed.refused.append(
                    Refusal(f"{where}:{title[0]}", title[1], "no abstract follows the title")
                )
                title = None
            if date is not None:
                current_date = date
                if (date.month, date.day) != day:
                    parsed.notes.append(f"{where}:{line}: the listing says {block!r}; used --date {date}")
            else:
                current_date = most_recent(*day, today)
                parsed.notes.append(
                    f"{where}:{line}: {block!r} has no year; assumed {current_date} "
                    f"(its most recent past occurrence; pass --date to set it)"
                )
            previous = None
            continue
        if _is_abstract(block):
            if title is None and previous is not None:
                # a second paragraph of the previous abstract
                previous.abstract += "\n\n" + clean_paragraphs(raw)
                continue
            if title is None:
                parsed.refused.append(Refusal(f"{where}:{line}", None, "abstract without a title before it"))
                continue
            candidate = Candidate(
                title=clean_line(title[1]),
                abstract=clean_paragraphs(raw),
                source="listing",
                where=f"{where}:{title[0]}",
                published=current_date,
            )
            parsed.candidates.append(candidate)
            previous, title = candidate, None
        else:
            if title is not None:
                parsed.refused.append(
                    Refusal(f"{where}:{title[0]}", title[1], "no abstract follows the title")
                )
            title, previous = (line, block), None
    if title is not None:
        parsed.refused.append(Refusal(f"{where}:{title[0]}", title[1], "no abstract follows the title"))
    # Validate after multi-paragraph abstracts are complete.
    candidates, parsed.candidates = parsed.candidates, []
    for position, candidate in enumerate(candidates, start=1):
        # The page's order is its trending order, the only ranking a listing gives.
        candidate.rank = position
        accept(parsed, candidate)
    return parsed
