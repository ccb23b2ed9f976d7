"""The daily trending digest: one day's Hugging Face papers imported, and an issue file made of them.

`newsletter digest` runs from cron every day, so each step is safe to repeat: the day's
issue file (`issues/<date>-<digest.slug>.md`) is the mark that a day is done; the papers
and the issue file are written in one all-or-nothing step, and only after the fetch and
the parse succeeded, so a failed fetch leaves nothing behind. The issue picks its papers
with rules (`select: {sort: upvotes, limit: N}`), not a fixed list, so the papers an
editor removes or tags later are respected like in any other issue. Building, checking
and publishing it belong to the command (they need the mail layer, above this one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.ingest.candidates import Parsed
from newsletter.ingest.fetch import read_source
from newsletter.ingest.plan import ImportPlan, plan_import, write_atomically
from newsletter.ingest.sources import parse_source

if TYPE_CHECKING:
    from newsletter.config import Settings


def digest_slug(settings: Settings, day: dt.date) -> str:
    """The digest issue's slug for `day`: `<date>-<digest.slug>`."""
    return f"{day.isoformat()}-{settings.digest.slug}"


def digest_path(settings: Settings, day: dt.date) -> Path:
    return settings.issues_dir / f"{digest_slug(settings, day)}.md"


def local_day(settings: Settings, now: dt.datetime) -> dt.date:
    """The day `now` falls on in the newsletter's time zone (the digest's default day)."""
    return now.astimezone(settings.zone).date()


def next_send_at(settings: Settings, now: dt.datetime) -> dt.datetime:
    """The first `digest.send_time` in the newsletter's zone that is not before `now`."""
    zone = settings.zone
    day = now.astimezone(zone).date()
    for offset in (0, 1):
        moment = dt.datetime.combine(day + dt.timedelta(days=offset), settings.digest.send_time, tzinfo=zone)
        if moment >= now:
            return moment
    raise AssertionError("unreachable: tomorrow's send time is after now")


def day_url(settings: Settings, day: dt.date) -> str:
    base = settings.digest.source_url
    return f"{base}{'&' if '?' in base else '?'}date={day.isoformat()}"


def fetch_day(settings: Settings, day: dt.date, **fetch_options: Any) -> Parsed:
    """The day's daily papers, fetched and parsed; SourceError when they cannot be had."""
    url = day_url(settings, day)
    fetched = read_source(url, **fetch_options)
    return parse_source(fetched.body, "hf", where=url, content_type=fetched.content_type)


@dataclass
class DigestPlan:
    """What a digest run writes: the day's papers (created or refreshed) and its issue file."""

    day: dt.date
    path: Path  # the issue file
    number: int
    papers: int  # the day's papers on the source
    since: dt.date | None  # the oldest publication date among them: the rules look no further back
    imported: ImportPlan
    top: int  # the issue's `select.limit`

    @property
    def expected_count(self) -> int:
        """The papers the issue will feature, unless other issues featured some of the day's already."""
        return min(self.top, self.papers)


def plan_digest(
    settings: Settings, day: dt.date, parsed: Parsed, *, number: int, top: int, today: dt.date
) -> DigestPlan:
    """Plan the import of the day's papers and the digest issue (nothing is written)."""
    imported = plan_import(settings.papers_dir, [parsed], today=today)
    dates = [c.published for c in parsed.candidates if c.published is not None]
    return DigestPlan(
        day=day,
        path=digest_path(settings, day),
        number=number,
        papers=len(parsed.candidates),
        since=min(dates) if dates else None,
        imported=imported,
        top=top,
    )


def issue_text(
    settings: Settings,
    plan: DigestPlan,
    *,
    count: int,
    status: str = "draft",
    send_at: dt.datetime | None = None,
) -> str:
    """The digest issue file: generated title, subject and preheader, and the rules that pick the papers."""
    import yaml

    values = {"date": plan.day.isoformat(), "count": count, "name": settings.name}
    digest = settings.digest
    select: dict[str, object] = {"sort": "upvotes", "limit": plan.top}
    if plan.since is not None:
        select["since"] = plan.since.isoformat()
    front: dict[str, object] = {
        "title": digest.title.format_map(values),
        "subject": digest.subject.format_map(values),
        "date": plan.day.isoformat(),
        "number": plan.number,
        "preheader": digest.preheader.format_map(values),
        "status": status,
    }
    if send_at is not None:
        front["send_at"] = send_at.isoformat()
    front["select"] = select
    intro = (
        f"The papers readers upvoted most on [Hugging Face's daily papers]"
        f"(https://huggingface.co/papers?date={plan.day.isoformat()}) of {plan.day.isoformat()}."
    )
    dumped = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=2**30)
    return f"---\n{dumped}---\n{intro}\n"


def write_digest(settings: Settings, plan: DigestPlan, text: str) -> None:
    """Write the day's papers and its issue file together, all or none; the issue file must be new."""
    writes = {**plan.imported.writes, plan.path: text}
    expected = {**plan.imported.expected, plan.path: None}
    write_atomically(writes, expected, command="`newsletter digest`")


def rewrite_digest(plan: DigestPlan, old: str, text: str) -> None:
    """Replace the issue file made by this run (its count corrected, or published), unless it changed meanwhile."""
    write_atomically({plan.path: text}, {plan.path: old}, command="`newsletter digest`")
