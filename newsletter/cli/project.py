"""Commands for a whole newsletter folder: init and the demo."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from newsletter.cli import Context, display_path, pass_context

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.content.library import Library


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="Paper Digest", show_default=True, help="The newsletter's name.")
def init(directory: Path, name: str) -> None:
    """Create a new newsletter in DIRECTORY: settings, templates, an example paper and issue.

    DIRECTORY must not exist or be empty. Edit newsletter.toml first.

    \b
    Example:
        newsletter init my-digest --name "Speech Papers Weekly"
    """
    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory}: expected an empty or new folder, found files in it")
    scaffold = resources.files("newsletter") / "scaffold"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "digest"
    # The name goes inside double-quoted strings of TOML and YAML; JSON's escapes suit both.
    quoted_name = json.dumps(name, ensure_ascii=False)[1:-1]
    created = []
    directory.mkdir(parents=True, exist_ok=True)
    with resources.as_file(scaffold) as source:
        shutil.copytree(source / "templates", directory / "templates")
        for sub in ("papers", "issues"):
            (directory / sub).mkdir()
            for item in sorted((source / sub).iterdir()):
                text = item.read_text(encoding="utf-8").replace("{name}", quoted_name)
                (directory / sub / item.name).write_text(text, encoding="utf-8")
                created.append(f"{sub}/{item.name}")
        settings = (source / "newsletter.toml").read_text(encoding="utf-8")
        settings = settings.replace("{name}", quoted_name).replace("{list_id}", f"{slug}.example.org")
        (directory / "newsletter.toml").write_text(settings, encoding="utf-8")
    (directory / "subscribers").mkdir()
    (directory / ".gitignore").write_text(
        "/build/\n/site/\n/outbox/\nsubscribers/*.db\nsubscribers/*.db-*\n", encoding="utf-8"
    )
    click.echo(f"Created a newsletter in {directory}/")
    for path in ["newsletter.toml", "templates/", *created, "subscribers/"]:
        click.echo(f"  {path}")
    click.echo(f"\nNext: edit {directory}/newsletter.toml, then `newsletter --root {directory} build --all`.")


def _languages_sent(database_url: str, issue: str) -> str:
    """'Readers by language: ar 2 (ar, ar-EG), …' — which translation the sent messages were in."""
    from newsletter.store import Store

    readers: dict[str, list[str]] = {}
    with Store.open(database_url) as store:
        for row in store.ledger(issue):
            if row.state == "sent" and row.sent_language:
                readers.setdefault(row.sent_language, []).append(row.language or "no language")
    if not readers:
        return f"Readers by language: none of {issue}'s messages records its language."
    parts = [
        f"{language} {len(tags)} ({', '.join(sorted(set(tags)))})"
        for language, tags in sorted(readers.items())
    ]
    return f"Readers by language (the translation they got, and their own languages): {'; '.join(parts)}."


@click.command()
@click.option("--issue", "issue_ref", help="The issue to send [default: the first published one].")
@pass_context
def demo(ctx: Context, issue_ref: str | None) -> None:
    """Run the example newsletter end to end on the embedded defaults.

    Builds every issue into build/, checks them, imports subscribers/sample.csv
    into the SQLite list, sends the first published issue through the `file`
    transport into outbox/ (one .eml per reader, each in the reader's language when
    the issue has that translation), writes its report to build/report.html (with a
    few synthetic opens and clicks, marked as such: the outbox reports none), and
    builds the archive in site/. Safe to run again: a finished send sends nothing twice.

    \b
    Example:
        newsletter demo
    """
    from newsletter.cli.archive import build as archive_build
    from newsletter.cli.content import build, check
    from newsletter.cli.report import report
    from newsletter.cli.send import send, status
    from newsletter.cli.subscribers import import_ as subscribers_import
    from newsletter.content.library import load_library

    click.get_current_context().obj = ctx
    settings = ctx.settings
    library = load_library(settings)
    published = [i for i in library.issues if i.published]
    if issue_ref is None and not published:
        raise click.ClickException("no published issue to send: set 'status: published' in an issue")
    target = issue_ref or published[0].slug
    sample = settings.root / "subscribers" / "sample.csv"

    steps = [
        ("Build every issue", build, {"issues": (), "all_issues": True}),
        ("Check every issue", check, {"issues": (), "all_issues": True}),
        ("Import the sample subscribers", subscribers_import, {"file": sample}),
        (f"Send {target} to the outbox", send, {"issue_ref": target, "transport_name": "file", "yes": True}),
        ("Ledger", status, {"issue_ref": target}),
        ("Synthetic opens and clicks (the outbox reports none)", None, {}),
        (
            "Report",
            report,
            {"issue_ref": target, "all_issues": False, "out": settings.build_dir / "report.html"},
        ),
        ("Build the archive", archive_build, {}),
    ]
    for title, command, params in steps:
        click.secho(f"\n== {title}", bold=True)
        if command is None:
            made = synthetic_engagement(settings, load_library(settings), target)
            click.echo(f"{made} synthetic events stored (marked synthetic in the report)")
            continue
        click.get_current_context().invoke(command, **params)
    click.echo("\n" + _languages_sent(settings.database_url, target))
    click.echo(
        f"\nDone. Open {display_path(settings.build_dir)}/{target}/email.html, the messages in "
        f"{display_path(settings.outbox_dir)}/{target}/, {display_path(settings.build_dir)}/report.html "
        f"and {display_path(settings.site_dir)}/index.html, "
        "or run `newsletter archive serve`."
    )


def synthetic_engagement(settings: Settings, library: Library, slug: str) -> int:
    """Made-up opens and clicks for the demo's report, stored marked as synthetic; how many were new.

    The outbox reports nothing, so the report would show no engagement. These events
    take the path real ones take (SES's event format → `observe`, which flags machines)
    and differ only in their `synthetic` mark. Their times follow each message's send
    time, so a second demo stores nothing new.
    """
    from newsletter.audience.engagement import observe
    from newsletter.audience.notifications import parse_notification
    from newsletter.content.selection import plan
    from newsletter.mail.tracking import PAPER_TAG, link_tag
    from newsletter.store import Store

    papers = plan(library).get(slug, [])
    made = 0
    with Store.open(settings.database_url) as store:
        sent = [d for d in store.ledger(slug) if d.state == "sent" and d.message_id and d.sent_at]
        for n, row in enumerate(sent):
            for kind, seconds, paper, agent, address in _synthetic_plan(n, len(papers)):
                section: dict[str, Any] = {
                    "timestamp": (row.sent_at + timedelta(seconds=seconds)).isoformat(),
                    "ipAddress": address,
                    "userAgent": agent,
                }
                if kind == "Click" and paper is not None:
                    chosen = papers[paper]
                    section["link"] = chosen.link(settings)
                    section["linkTags"] = {PAPER_TAG: [link_tag(chosen.id)]}
                event = {
                    "eventType": kind,
                    "mail": {"messageId": row.message_id, "timestamp": row.sent_at.isoformat()},
                    kind.lower(): section,
                }
                observation = observe(parse_notification(event))
                if observation is not None:
                    made += store.record_engagement(replace(observation, synthetic=True)) == "stored"
    return made


_BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def _synthetic_plan(n: int, papers: int) -> list[tuple[str, float, int | None, str, str]]:
    """(event type, seconds after sending, paper index, user agent, IP address) for the n-th message."""
    events: list[tuple[str, float, int | None, str, str]] = []
    if n % 5 != 4:
        events.append(("Open", 600 + 97 * n, None, _BROWSER, "192.0.2.10"))
    if n == 1:  # Apple Mail Privacy Protection's prefetch: a machine, not a reader
        events.append(("Open", 3, None, "Mozilla/5.0", "17.58.0.1"))
    if papers and n % 2 == 0:
        events.append(("Click", 900 + 61 * n, (n // 2) % min(papers, 4), _BROWSER, "192.0.2.10"))
    if papers >= 3 and n == 3:  # a link scanner: every link within a second, seconds after sending
        events += [("Click", 4 + i * 0.3, i, "Mozilla/5.0", "198.51.100.7") for i in range(3)]
    return events
