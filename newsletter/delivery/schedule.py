"""Scheduled sends: which published issues are due (`send_at` has come, readers left), and `send --due`.

`send --due` is meant to run every minute from cron, a systemd timer or a CI schedule, so
it must be cheap and quiet when nothing is due, and safe when two runs overlap. Each due
issue goes through the same steps as `newsletter send ISSUE --yes`: it is built, checked
(a failing check skips that issue and says why), frozen, and sent through the ledger,
which resumes a partial send and never reaches a reader twice. Exclusivity comes from a
database lease (`newsletter.store.leases`): the run that holds it sends, renewing it while
it works; another run finds it held and says by whom and since when instead of competing.

The clock is passed in (`now`): it decides only what is due. The lease's times are the
real clock's, because they measure whether its holder still lives.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.content.freeze import freeze
from newsletter.content.issues import Issue
from newsletter.content.library import Library, check_references, load_issues, load_papers
from newsletter.content.translations import load_translations
from newsletter.delivery.plan import plan_send, resolve_secret, send_languages
from newsletter.delivery.sending import send_issue
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.file import issue_outbox
from newsletter.errors import NewsletterError, Problem, ProblemsError
from newsletter.mail.build import build_message
from newsletter.mail.checks import check_built
from newsletter.mail.message import MessageTemplate
from newsletter.store.senders import sender_name

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.delivery.report import SendReport
    from newsletter.store import Lease, Store

LEASE_NAME = "send --due"
LEASE_TTL = dt.timedelta(minutes=2)  # a crashed holder blocks the schedule at most this long
RENEW_EVERY = 20.0  # seconds between renewals: several chances before the lease runs out


def scheduled_later(issue: Issue, now: dt.datetime) -> bool:
    """A published issue whose `send_at` is still ahead: `newsletter issues` shows it as scheduled."""
    return issue.published and issue.send_at is not None and issue.send_at > now


def has_readers_left(store: Store, slug: str) -> bool:
    """Whether a send of `slug` would mail anyone now (never started, or stopped part-way)."""
    return store.reachable(slug) > 0


def due_issues(issues: Sequence[Issue], store: Store, now: dt.datetime) -> list[Issue]:
    """Published issues whose `send_at` has come and that have readers left, in `send_at` order.

    A draft is never due, whatever its `send_at`; neither is an issue fully sent.
    """
    due = [
        i
        for i in issues
        if i.published and i.send_at is not None and i.send_at <= now and has_readers_left(store, i.slug)
    ]
    return sorted(due, key=lambda i: (i.send_at, i.number))


def next_scheduled(issues: Sequence[Issue], now: dt.datetime) -> Issue | None:
    """The published issue whose `send_at` comes next after `now`."""
    later = sorted((i for i in issues if scheduled_later(i, now)), key=lambda i: (i.send_at, i.number))
    return later[0] if later else None


def schedule_warnings(issue: Issue) -> list[str]:
    """What `check` says about an issue's `send_at`: a draft with one is never sent by `send --due`."""
    if issue.send_at is None or issue.published:
        return []
    return [
        f"send_at: {issue.send_at.isoformat()}, but status is {issue.status}: `send --due` sends "
        "only published issues (set 'status: published' when it is ready)"
    ]


def load_for_schedule(settings: Settings) -> tuple[Library, list[Problem]]:
    """Every paper and issue, and the problems found; an issue file with errors is left out of the library.

    One broken draft must not stop the scheduled issues; `send_due` reports the problems.
    """
    problems: list[Problem] = []
    broken: set[str] = set()
    papers = {p.id: p for p in load_papers(settings, problems, broken)}
    issue_problems: list[Problem] = []
    issues = load_issues(settings, issue_problems)
    translations = load_translations(settings, issue_problems)
    issue_problems += check_references(settings, papers, issues, broken)
    failing = {Path(p.where.split(":")[0]).name.split(".")[0] for p in issue_problems if not p.warning}
    issues = [i for i in issues if i.slug not in failing]
    library = Library(settings=settings, papers=papers, issues=issues, translations=translations)
    return library, problems + issue_problems


@dataclass
class DueSend:
    """One due issue: its send's report, or why it was skipped."""

    issue: Issue
    report: SendReport | None = None
    skipped: str | None = None  # why it was not sent (a failing check, a broken file)
    warnings: list[str] = field(default_factory=list)


@dataclass
class DueRun:
    """What one `send --due` run did."""

    now: dt.datetime
    sends: list[DueSend] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # content files with errors (left out)
    held_by: Lease | None = None  # another run holds the lease: nothing was sent here
    next: Issue | None = None  # when nothing was due: the next scheduled issue
    lost_lease: bool = False  # the lease ran out while sending (this process stalled)
    warning: str | None = None  # the development-key warning, when one applies

    @property
    def exit_code(self) -> int:
        """0 when every due issue went out as planned; 1 when one was skipped or failed; 130 on Ctrl-C."""
        codes = [s.report.exit_code for s in self.sends if s.report is not None]
        if any(s.skipped for s in self.sends) or any(not p.warning for p in self.problems) or self.lost_lease:
            codes.append(1)
        return max(codes, default=0)


@dataclass(frozen=True)
class DueOptions:
    """How each due issue is sent: the options `send` takes, decided once for the whole run."""

    transport: str | None = None
    outbox: Path | None = None
    rate: float | None = None
    workers: int = 1
    threads: int = 8
    spamassassin: bool = True


def send_due(
    settings: Settings,
    store: Store,
    *,
    now: dt.datetime,
    options: DueOptions = DueOptions(),
    stop_event: threading.Event | None = None,
    on_start: Callable[[DueSend], None] | None = None,
    holder: str | None = None,
) -> DueRun:
    """Send every due issue, in `send_at` order, unless another run holds the lease.

    `on_start` is called as each issue starts (for the command line to say so);
    `stop_event` stops between messages and between issues (Ctrl-C).
    """
    if now.tzinfo is None:
        raise ValueError("now: pass an aware datetime")
    library, problems = load_for_schedule(settings)
    run = DueRun(now=now, problems=problems)
    if not due_issues(library.issues, store, now):
        run.next = next_scheduled(library.issues, now)
        return run
    if any(not p.warning and p.where.startswith(settings.papers_dir.name) for p in problems):
        # a paper missing from the pool would silently change what an issue's rules pick
        raise ProblemsError([p for p in problems if not p.warning])
    name = options.transport or settings.transport
    secret, run.warning = resolve_secret(settings, name)  # refuses a real transport without a secret
    holder = holder or sender_name()
    answer = store.acquire_lease(LEASE_NAME, holder, LEASE_TTL)
    if not answer.granted:
        run.held_by = answer.lease
        return run
    stop = stop_event or threading.Event()
    lost = threading.Event()
    renewer = _LeaseRenewer(store, holder, stop, lost)
    renewer.start()
    try:
        # looked at again under the lease: a run that just finished may have sent them
        for issue in due_issues(library.issues, store, now):
            if stop.is_set():
                break
            due = DueSend(issue)
            run.sends.append(due)
            if on_start is not None:
                on_start(due)
            _send_one(library, issue, store, due, options, secret, stop)
    finally:
        renewer.finish()
        run.lost_lease = lost.is_set()
        if not lost.is_set():
            store.release_lease(LEASE_NAME, holder)
    return run


def _send_one(
    library: Library,
    issue: Issue,
    store: Store,
    due: DueSend,
    options: DueOptions,
    secret: bytes,
    stop: threading.Event,
) -> None:
    """Build, check, freeze and send one due issue, as `send ISSUE --yes` would; record a skip instead of raising."""
    settings = library.settings
    try:
        # rendered and checked once per language, as `send ISSUE` does
        builds = {
            lang: build_message(library, issue, language=lang) for lang in send_languages(library, issue)
        }
        errors: list[str] = []
        for language, built in builds.items():
            checks = check_built(built, spamassassin=options.spamassassin)
            named = "" if language == issue.language else f"{language}: "
            due.warnings += [named + line for line in checks.warnings]
            errors += [named + line for line in checks.errors]
        if errors:
            due.skipped = "the pre-flight checks failed:\n" + "\n".join(f"  {e}" for e in errors)
            return
        outbox = issue_outbox(options.outbox or settings.outbox_dir, issue.slug)
        transport = make_transport(
            settings, options.transport or settings.transport, outbox=outbox, concurrency=options.threads
        )
        transport.check()
        plan = plan_send(
            settings,
            library,
            issue,
            transport=transport,
            rate=options.rate,
            workers=options.workers,
            threads=options.threads,
            secret=secret,
            templates={lang: MessageTemplate.build(b.rendered, settings) for lang, b in builds.items()},
        )
        # the first real send records its papers and translations, as `send ISSUE` does
        translations = {
            lang: library.translations.issues[(issue.slug, lang)].path
            for lang in builds
            if lang != issue.language
        }
        original = builds[issue.language].rendered.papers
        freeze(issue, original, issue.subject, dt.datetime.now(dt.UTC), translations=translations)
    except NewsletterError as exc:
        due.skipped = exc.format_message()
        return
    due.report = send_issue(plan, store, stop_event=stop)


class _LeaseRenewer:
    """Renews the lease every RENEW_EVERY seconds while the run sends; stops the send if it is lost.

    Losing it means this process stalled longer than LEASE_TTL and another run may have
    taken over: stopping is the safe answer (the ledger still prevents a double send).
    """

    def __init__(self, store: Store, holder: str, stop: threading.Event, lost: threading.Event) -> None:
        self.store, self.holder, self.stop, self.lost = store, holder, stop, lost
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lease renewer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(RENEW_EVERY):
            try:
                held = self.store.renew_lease(LEASE_NAME, self.holder, LEASE_TTL)
            except Exception:  # a database hiccup: try again at the next tick, the lease has room
                continue
            if not held:
                self.lost.set()
                self.stop.set()
                return

    def finish(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)
