"""The numbers of a report: one issue's send (ledger, events, engagement) or every issue side by side.

Every rate is a share of the messages sent (ledger rows in ``sent``). Opens and clicks
count readers (distinct messages) and leave out the events that look like a machine's
(`newsletter.audience.engagement`), which are counted apart. SES reviews an account
whose bounce rate reaches 5 % or whose complaint rate reaches 0.1 %.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from newsletter.content.selection import plan
from newsletter.mail.tracking import link_tag

if TYPE_CHECKING:
    from newsletter.content.library import Issue, Library
    from newsletter.store import Store

BOUNCE_REVIEW = 0.05  # SES puts an account under review at a 5 % bounce rate
COMPLAINT_REVIEW = 0.001  # and at a 0.1 % complaint rate


@dataclass(frozen=True)
class PaperClicks:
    """Clicks on one paper's links: readers' clicks and the machines'."""

    paper_id: str
    title: str
    clicks: int
    machine: int


@dataclass(frozen=True)
class Problem:
    """A recipient whose message failed or is uncertain (addresses are untrusted text)."""

    email: str
    state: str  # "failed" or "uncertain"
    outcome: str
    error: str


@dataclass
class IssueFigures:
    """Everything the report of one issue shows."""

    slug: str
    title: str
    number: int
    date: str
    language: str
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    failed: int = 0
    uncertain: int = 0
    opened: int = 0
    machine_opens: int = 0
    clicked: int = 0
    clicks: int = 0
    machine_clicks: int = 0
    engagement_known: bool = False  # any open or click stored for this issue
    synthetic: int = 0  # engagement rows made up (the demo's), not reported by SES
    sent_per_minute: list[tuple[datetime, int]] = field(default_factory=list)
    papers: list[PaperClicks] = field(default_factory=list)
    languages: dict[str, dict[str, int]] = field(default_factory=dict)  # language -> sent, delivered, opened
    problems: list[Problem] = field(default_factory=list)
    links: set[str] = field(default_factory=set)  # the issue's own links (a report may name them)

    def rate(self, count: int) -> float:
        return count / self.sent if self.sent else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.rate(self.bounces)

    @property
    def complaint_rate(self) -> float:
        return self.rate(self.complaints)

    @property
    def delivery_rate(self) -> float:
        return self.rate(self.delivered)

    @property
    def open_rate(self) -> float:
        return self.rate(self.opened)

    @property
    def click_rate(self) -> float:
        return self.rate(self.clicked)


def issue_figures(library: Library, store: Store, issue: Issue) -> IssueFigures:
    """Read one issue's figures from the store; its papers (for titles) from the library."""
    figures = IssueFigures(
        slug=issue.slug,
        title=issue.title,
        number=issue.number,
        date=issue.date.isoformat(),
        language=issue.language,
    )
    summary = store.send_summary(issue.slug)
    uncertain = store.uncertain(issue.slug)
    default = library.settings.language
    languages: dict[str, Counter[str]] = {}
    for (language, state), (n, delivered) in summary.states.items():
        counts = languages.setdefault(language or default, Counter())
        counts["recipients"] += n
        counts["delivered"] += delivered
        figures.recipients += n
        figures.delivered += delivered
        if state == "sent":
            counts["sent"] += n
            figures.sent += n
        elif state == "failed":
            figures.failed += n
    for language, n in summary.opened.items():
        languages.setdefault(language or default, Counter())["opened"] += n
    figures.sent_per_minute = summary.minutes
    figures.problems = [
        Problem(email, "failed", outcome or "permanent", error or "")
        for email, outcome, error in summary.failed
    ]
    figures.problems += [Problem(d.email, "uncertain", "uncertain", d.error or "") for d in uncertain]
    figures.uncertain = len(uncertain)
    events = store.issue_event_counts(issue.slug)
    figures.bounces = events.get("bounce", 0)
    figures.soft_bounces = events.get("soft_bounce", 0)
    figures.complaints = events.get("complaint", 0)
    papers = plan(library).get(issue.slug, [])
    _engagement(figures, store.engagement_rows(issue.slug), papers)
    figures.languages = {k: dict(v) for k, v in sorted(languages.items())}
    figures.links = {p.link(library.settings) for p in papers} | {library.settings.base_url}
    return figures


def _engagement(figures: IssueFigures, rows: list[dict[str, Any]], papers: list[Any]) -> None:
    """Opens, clicks and clicks per paper from the engagement rows."""
    figures.engagement_known = bool(rows)
    figures.synthetic = sum(1 for r in rows if r["synthetic"])
    titles = {link_tag(p.id): (p.id, p.title) for p in papers}
    opened: set[str] = set()
    clicked: set[str] = set()
    per_paper: dict[str, list[int]] = {}
    for row in rows:
        machine = row["machine"] is not None
        if row["type"] == "open":
            if machine:
                figures.machine_opens += 1
            else:
                opened.add(row["message_id"])
            continue
        if machine:
            figures.machine_clicks += 1
        else:
            figures.clicks += 1
            clicked.add(row["message_id"])
        if row["paper"]:
            counts = per_paper.setdefault(row["paper"], [0, 0])
            counts[1 if machine else 0] += 1
    figures.opened, figures.clicked = len(opened), len(clicked)
    ranked = sorted(per_paper.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
    figures.papers = [
        PaperClicks(*titles.get(tag, (tag, f"(a paper not in this issue: {tag})")), human, machine)
        for tag, (human, machine) in ranked
    ]


@dataclass(frozen=True)
class IssueLine:
    """One issue in the report of every issue."""

    slug: str
    number: int
    date: str
    title: str
    sent: int
    open_rate: float | None  # None: no engagement recorded
    click_rate: float | None
    list_size: int  # subscribers who had joined and not left by the issue's date
    unsubscribes: int  # readers who left between this issue's send and the next one's


def all_issues(library: Library, store: Store) -> list[IssueLine]:
    """Every issue that has a ledger, oldest first, with its rates and the list around it."""
    sent = set(store.issues_sent())
    issues = [i for i in library.issues if i.slug in sent]
    figures = [issue_figures(library, store, i) for i in issues]
    starts = [store.send_started(i.slug) for i in issues]
    people = store.subscriber_dates()
    lines = []
    for n, (issue, f) in enumerate(zip(issues, figures, strict=True)):
        start = starts[n]
        end = starts[n + 1] if n + 1 < len(starts) else None
        lines.append(
            IssueLine(
                slug=issue.slug,
                number=issue.number,
                date=issue.date.isoformat(),
                title=issue.title,
                sent=f.sent,
                open_rate=f.open_rate if f.engagement_known else None,
                click_rate=f.click_rate if f.engagement_known else None,
                list_size=sum(1 for p in people if _on_list(p, start)),
                unsubscribes=sum(
                    1
                    for p in people
                    if p["unsubscribed_at"] is not None
                    and start is not None
                    and p["unsubscribed_at"] >= start
                    and (end is None or p["unsubscribed_at"] < end)
                ),
            )
        )
    return lines


def _on_list(person: dict[str, Any], when: datetime | None) -> bool:
    """Whether a subscriber was on the list (joined, confirmed, not yet left) at `when`."""
    if when is None or person["created_at"] > when or person["status"] == "pending":
        return False
    left = person["unsubscribed_at"]
    return left is None or left > when
